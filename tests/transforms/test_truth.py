"""Carbon Monitor CSV reading/writing, the base inventory and the built-in scenario."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transforms import truth
from transforms.errors import InputError, TruthTableError

HEADER = "country,date,sector,value\n"


def _read(text: str) -> pd.DataFrame:
    return truth.read_carbon_monitor_csv(io.StringIO(text))


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    df = truth.builtin_scenario("2019-01-01", "2019-01-10", countries=["DEU", "USA", "CZE"])
    path = tmp_path / "cm.csv"
    truth.write_carbon_monitor_csv(df, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "country,date,sector,value"
    assert lines[1].startswith("Germany,01/01/2019,Power,")
    back = truth.read_carbon_monitor_csv(path)
    pd.testing.assert_frame_equal(back, df)
    assert list(back.columns) == list(truth.COLUMNS)
    assert str(back["date"].dtype) == "datetime64[ns]" and back["value"].dtype == np.float64
    assert set(back["country"]) == {"Germany", "United States", "Czech Republic"}


def test_real_variants_are_accepted() -> None:
    text = (
        "\ufeffcountry,date,sector,MtCO2,timestamp\n"
        "United States,31/12/2019,Ground Transport,3.1,1577750400\n"
        "WORLD,31/12/2019,Power,40.0,1577750400\n"
    )
    df = _read(text)
    assert df["value"].tolist() == [3.1, 40.0]
    assert df["date"].tolist() == [pd.Timestamp("2019-12-31")] * 2
    assert df["is_aggregate"].tolist() == [False, True]
    trailing = "country,date,sector,value,\nEU27,01/02/2020,Residential,1.5,\nROW,01/02/2020,Power,9,\n"
    df = _read(trailing)
    assert df["iso3"].tolist() == ["EU27", "ROW"] and df["is_aggregate"].all()
    older = _read(HEADER + "EU27 & UK,01/02/2020,Industry,2.0\nczechia,01/02/2020,industry,0.1\n")
    assert older["iso3"].tolist() == ["EU27 & UK", "CZE"]
    assert older["sector"].tolist() == ["Industry", "Industry"]
    assert older["country"].tolist() == ["EU27 & UK", "Czech Republic"]


def test_binary_file_objects_are_accepted() -> None:
    df = truth.read_carbon_monitor_csv(io.BytesIO((HEADER + "France,01/01/2019,Power,0.1\n").encode()))
    assert df["iso3"].tolist() == ["FRA"]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(TruthTableError, match=r"not found: .*nope\.csv"):
        truth.read_carbon_monitor_csv(path)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            HEADER + "Germany,01/01/2019,Shipping,1\n",
            r"line 2: unknown sector .*Power, Industry, Ground Transport",
        ),
        (
            HEADER + "Germany,01/01/2019,Power,1\nAtlantis,01/01/2019,Power,1\n",
            r"line 3: unknown country 'Atlantis'",
        ),
        (
            HEADER + "Germany,01/01/2019,Power,1\nGermany,2019-01-02,Power,1\n",
            r"line 3: malformed date.*DD/MM/YYYY",
        ),
        (HEADER + "Germany,31/02/2019,Power,1\n", r"line 2: malformed date"),
        (HEADER + "Germany,01/01/2019,Power,-0.5\n", r"line 2: negative value"),
        (HEADER + "Germany,01/01/2019,Power,abc\n", r"line 2: missing or non-numeric value: 'abc'"),
        (HEADER + "Germany,01/01/2019,Power,\n", r"line 2: missing or non-numeric value"),
        (HEADER + "Germany,01/01/2019,Power,inf\n", r"line 2: non-finite value"),
        (HEADER + "Germany,01/01/2019,Power,1\nGermany,01/01/2019,Power,2\n", r"line 3: duplicated"),
        ("country,day,sector,value\nGermany,01/01/2019,Power,1\n", r"lack \['date'\]"),
        ("country,date,sector,amount\nGermany,01/01/2019,Power,1\n", r"lack \['value'\]"),
        ("country,date,sector,value,notes\nGermany,01/01/2019,Power,1,x\n", r"unexpected column 'notes'"),
        (HEADER, r"no data rows"),
        ("", r"empty file"),
    ],
)
def test_errors_say_where_and_what(text: str, pattern: str) -> None:
    with pytest.raises(TruthTableError, match=pattern):
        _read(text)


def test_errors_are_input_errors() -> None:
    with pytest.raises(InputError):
        _read(HEADER + "Germany,01/01/2019,Shipping,1\n")
    with pytest.raises(ValueError):
        _read(HEADER + "Germany,01/01/2019,Shipping,1\n")


def test_write_needs_the_columns() -> None:
    with pytest.raises(TruthTableError, match=r"\['value'\] are missing"):
        truth.write_carbon_monitor_csv(pd.DataFrame({"country": [], "date": [], "sector": []}), io.StringIO())


def test_base_inventory_scale() -> None:
    inv = truth.load_base_inventory()
    assert list(inv.columns) == ["iso3", "country", "sector", "annual_mt"]
    assert 34_000 < inv["annual_mt"].sum() < 36_000
    assert set(inv["sector"]) == set(truth.SECTORS)
    codes = set(inv["iso3"])
    assert {"CHN", "USA", "IND", "RUS", "JPN", "GBR", "CHE", "NOR", "ROW"} <= codes
    from transforms.regions import EU27

    assert set(EU27) <= codes
    assert (inv.groupby("iso3").size() == 6).all()


def test_builtin_scenario_is_realistic_and_deterministic() -> None:
    a = truth.builtin_scenario("2019-01-01", "2019-12-31", countries=["FRA", "DEU"])
    b = truth.builtin_scenario("2019-01-01", "2019-12-31", countries=["FRA", "DEU"])
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == list(truth.COLUMNS) and not a["is_aggregate"].any()
    inv = truth.load_base_inventory().set_index(["iso3", "sector"])["annual_mt"]
    annual = a.groupby(["iso3", "sector"])["value"].sum()
    ratio = annual / inv.loc[annual.index]
    assert ratio.between(0.93, 1.05).all(), ratio  # year total ≈ inventory (minus the lockdown)
    gt = a[(a.iso3 == "DEU") & (a.sector == "Ground Transport")].set_index("date")["value"]
    sunday = gt[gt.index.day_of_week == 6].mean() / gt[gt.index.day_of_week < 5].mean()
    assert 0.74 < sunday < 0.84
    res = a[(a.iso3 == "DEU") & (a.sector == "Residential")].set_index("date")["value"]
    assert res["2019-01"].mean() > 1.5 * res["2019-07"].mean()  # heating season


def test_builtin_scenario_lockdown_step() -> None:
    df = truth.builtin_scenario("2020-03-01", "2020-04-15", countries=["ITA", "ESP"])
    ld = df.attrs["lockdown"]
    assert ld["iso3"] == "ITA" and ld["start"] == pd.Timestamp("2020-03-06")
    assert ld["end"] == pd.Timestamp("2020-03-19")
    obs = (
        df[df.sector.isin(["Power", "Industry", "Ground Transport"])].groupby(["iso3", "date"])["value"].sum()
    )
    ita, esp = obs["ITA"], obs["ESP"]
    inside = (ita.index >= ld["start"]) & (ita.index <= ld["end"])
    # compare with the same weekdays just after the step, to cancel the weekly cycle
    after = (ita.index > ld["end"]) & (ita.index <= ld["end"] + pd.Timedelta(days=14))
    drop = 1 - ita[inside].mean() / ita[after].mean()
    assert 0.17 < drop < 0.27
    assert abs(1 - esp[inside].mean() / esp[after].mean()) < 0.08
    short = truth.builtin_scenario("2020-03-01", "2020-03-10", countries=["ITA"])
    assert short.attrs["lockdown"] == {}


def test_builtin_scenario_overlapping_periods_agree() -> None:
    a = truth.builtin_scenario("2019-05-01", "2019-05-10", countries=["POL"]).set_index(["date", "sector"])
    b = truth.builtin_scenario("2019-05-05", "2019-05-12", countries=["POL"]).set_index(["date", "sector"])
    common = a.index.intersection(b.index)
    assert len(common) == 6 * 6
    np.testing.assert_allclose(a.loc[common, "value"], b.loc[common, "value"])


def test_builtin_scenario_errors() -> None:
    with pytest.raises(TruthTableError, match="no base-inventory entry for Mongolia"):
        truth.builtin_scenario("2019-01-01", "2019-01-02", countries=["MNG"])
    with pytest.raises(TruthTableError, match="unknown country 'XXX'"):
        truth.builtin_scenario("2019-01-01", "2019-01-02", countries=["XXX"])
    with pytest.raises(TruthTableError, match="before start"):
        truth.builtin_scenario("2019-01-02", "2019-01-01", countries=["DEU"])
    with pytest.raises(TruthTableError, match="at least one country"):
        truth.builtin_scenario("2019-01-01", "2019-01-02", countries=[])
