"""File-name parsing, building and version ordering of every product family; the product registry."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from transforms.errors import GranuleNameError, InputError, UnknownProductError
from transforms.granules import (
    format_granule_name,
    format_nies_name,
    format_oco_lite_name,
    format_tansat_name,
    parse_granule_name,
)
from transforms.products import get_product

SAMPLES = {
    "no2": "S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.nc",
    "co": "S5P_OFFL_L2__CO_____20200303T013547_20200303T031717_12367_01_010302_20200306T032410.nc",
    "ch4": "S5P_OFFL_L2__CH4____20200303T013547_20200303T031717_12367_01_010302_20200306T053811.nc",
}
NRTI = "S5P_NRTI_L2__NO2____20230415T101112_20230415T101612_28512_03_020500_20230415T105026.nc"


@pytest.mark.parametrize(("product", "filename"), SAMPLES.items())
def test_parse_sample_names(product: str, filename: str) -> None:
    g = parse_granule_name(filename)
    assert g.mode == "OFFL"
    assert g.product == product
    assert g.product_type == get_product(product).product_type
    assert g.start == datetime(2020, 3, 3, 1, 35, 47, tzinfo=UTC)
    assert g.end == datetime(2020, 3, 3, 3, 17, 17, tzinfo=UTC)
    assert g.start.tzinfo is UTC and g.production_time.tzinfo is UTC
    assert (g.orbit, g.collection, g.processor_version) == (12367, "01", "010302")
    assert g.processor_version_dotted == "1.3.2"
    assert g.filename == filename
    assert g.id == filename.removesuffix(".nc")
    assert g.acquisition_key == (product, 12367, None)


def test_parse_accepts_paths_urls_and_ids() -> None:
    name = SAMPLES["no2"]
    expected = parse_granule_name(name)
    assert parse_granule_name(Path("/lake/raw/no2") / name) == expected
    assert parse_granule_name(f"s3://bucket/raw/{name}") == expected
    assert parse_granule_name(f"https://example.org/files/{name}?sig=abc") == expected
    assert parse_granule_name(name.removesuffix(".nc")) == expected


def test_parse_nrti_name() -> None:
    g = parse_granule_name(NRTI)
    assert (g.mode, g.product, g.orbit, g.collection, g.processor_version) == (
        "NRTI",
        "no2",
        28512,
        "03",
        "020500",
    )
    assert g.processing_mode_name == "Near-realtime"
    assert (g.end - g.start).total_seconds() == 300
    # NRTI pieces of one orbit are distinct acquisitions; they share the orbit key
    other = parse_granule_name(NRTI.replace("T101112_20230415T101612", "T101612_20230415T102112"))
    assert g.acquisition_key != other.acquisition_key
    assert g.orbit_key == other.orbit_key == ("no2", 28512)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "S5P_OFFL_L2__NO2____20200303T013547.nc",
        "S5A_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.nc",
        "S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.h5",
        "S5P_OFFL_L2__NO2____20201303T013547_20200303T031717_12367_01_010302_20200306T053815.nc",  # month 13
        "S5P_OFFL_L2__NO2____20200230T013547_20200303T031717_12367_01_010302_20200306T053815.nc",  # 30 Feb
        "S5P_OFFL_L2__NO2____20200303T240000_20200303T031717_12367_01_010302_20200306T053815.nc",  # hour 24
        "S5P_OFFL_L2__NO2____20200303T013547_20200303T031760_12367_01_010302_20200306T053815.nc",  # second 60
        "S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_00000306T053815.nc",  # year 0
        # end before start
        "S5P_OFFL_L2__NO2____20200303T031717_20200303T013547_12367_01_010302_20200306T053815.nc",
        "oco2_LtCO2_201231_B11014Ar_220729012824s.nc",  # Lite files are .nc4
        "oco2_LtCO2_201331_B11014Ar_220729012824s.nc4",  # month 13
        "oco4_LtCO2_201231_B11014Ar_220729012824s.nc4",
        "GOSATTFTS2020030220200301_02C01SV0295.h5",  # last day before first
        "GOSATTFTS2020030120200301_02C02SV0295.h5",  # CH4, not CO2
        "TanSat_ACGS_SCI_XX_L2_XCO2_lite_20170301.nc",
    ],
)
def test_bad_names_raise(bad: str) -> None:
    with pytest.raises(GranuleNameError) as info:
        parse_granule_name(bad)
    assert isinstance(info.value, InputError)


def test_an_impossible_time_is_named_in_the_message() -> None:
    bad = SAMPLES["no2"].replace("T013547_", "T016047_")  # minute 60
    with pytest.raises(GranuleNameError, match=r"impossible date or time \(minute must be in 0\.\.59\)"):
        parse_granule_name(bad)


def test_parsed_times_and_ids_match_the_strptime_spelling() -> None:
    """Names are parsed with slices and formatted with f-strings (strptime/strftime cost ~5x more in a
    10,000-item listing): the same instants and the same stems."""
    for name in [*SAMPLES.values(), NRTI]:
        g = parse_granule_name(name)
        parts = name.removesuffix(".nc").split("_")
        times = [parts[i] for i in (-6, -5, -1)]  # start, end, production
        expected = [datetime.strptime(t, "%Y%m%dT%H%M%S").replace(tzinfo=UTC) for t in times]
        assert [g.start, g.end, g.production_time] == expected
        assert g.id == name.removesuffix(".nc") and g.id is g.id  # formatted once


def test_bad_name_message_shows_the_pattern() -> None:
    with pytest.raises(GranuleNameError, match=r"expected S5P_<MODE>_.*e\.g\. S5P_OFFL_L2__NO2"):
        parse_granule_name("granule.nc")


def test_version_key_orders_modes_then_processor_then_production() -> None:
    base = SAMPLES["no2"]
    offl = parse_granule_name(base)
    rpro = parse_granule_name(base.replace("_OFFL_", "_RPRO_"))
    nrti = parse_granule_name(base.replace("_OFFL_", "_NRTI_"))
    newer_proc = parse_granule_name(base.replace("_010302_", "_020400_"))
    later = parse_granule_name(base.replace("20200306T053815", "20200307T000000"))
    ordered = sorted([rpro, later, nrti, newer_proc, offl], key=lambda g: g.version_key)
    assert ordered == [nrti, offl, later, newer_proc, rpro]
    assert offl.acquisition_key == rpro.acquisition_key == newer_proc.acquisition_key


def test_format_round_trips() -> None:
    name = format_granule_name(
        "ch4",
        start=datetime(2021, 6, 1, 10, 0, 5),
        end=datetime(2021, 6, 1, 11, 41, 35),
        orbit=18900,
        mode="RPRO",
        collection="03",
        processor_version="020400",
        production_time=datetime(2022, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert name == "S5P_RPRO_L2__CH4____20210601T100005_20210601T114135_18900_03_020400_20220102T030405.nc"
    g = parse_granule_name(name)
    assert g.product == "ch4" and g.orbit == 18900 and g.processor_version_dotted == "2.4.0"


def test_format_defaults_and_product_type_input() -> None:
    name = format_granule_name(
        "L2__NO2___", start=datetime(2020, 1, 1), end=datetime(2020, 1, 1, 0, 5), orbit=7
    )
    g = parse_granule_name(name)
    assert g.mode == "OFFL" and g.orbit == 7 and g.production_time == datetime(2020, 1, 4, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "kwargs",
    [{"orbit": 100000}, {"mode": "FAST"}, {"collection": "1"}, {"processor_version": "1.3.2"}],
)
def test_format_rejects_bad_parts(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "start": datetime(2020, 1, 1),
        "end": datetime(2020, 1, 1, 1),
        "orbit": 1,
    } | kwargs
    with pytest.raises(GranuleNameError):
        format_granule_name("no2", **args)  # type: ignore[arg-type]


def test_products_registry() -> None:
    no2 = get_product("NO2")
    assert no2.product_type == "L2__NO2___"
    assert no2.value_var == "nitrogendioxide_tropospheric_column"
    assert no2.precision_var == "nitrogendioxide_tropospheric_column_precision"
    assert no2.qa_threshold == 0.75 and no2.units == "mol m-2"
    assert no2.standard_name == "troposphere_mole_content_of_nitrogen_dioxide"
    assert get_product("L2__CO____").name == "co"
    assert get_product("ch4").corrected_var == "methane_mixing_ratio_bias_corrected"
    assert get_product(no2) is no2
    with pytest.raises(UnknownProductError, match=r"unknown product 'so3': choose one of no2, co, ch4"):
        get_product("so3")


@pytest.mark.parametrize(
    ("filename", "product", "family", "day", "version"),
    [
        (
            "oco2_LtCO2_201231_B11014Ar_220729012824s.nc4",
            "oco2-xco2",
            "oco_lite",
            date(2020, 12, 31),
            "B11014A",
        ),
        (
            "oco3_LtCO2_200301_B10400Br_210120115503s.nc4",
            "oco3-xco2",
            "oco_lite",
            date(2020, 3, 1),
            "B10400B",
        ),
        (
            "acos_LtCO2_160404_v201202_B7310A_161107201902s.nc4",
            "acos-xco2",
            "oco_lite",
            date(2016, 4, 4),
            "B7310A",
        ),
        (
            "GOSATTFTS2020030120200301_02C01SV0295R20210615.h5",
            "gosat-xco2",
            "gosat_nies",
            date(2020, 3, 1),
            "0295",
        ),
        ("TanSat_ACGS_SCI_GL_L2_XCO2_lite_20170301.nc", "tansat-xco2", "tansat_lite", date(2017, 3, 1), ""),
    ],
)
def test_parses_every_family(filename: str, product: str, family: str, day: date, version: str) -> None:
    g = parse_granule_name(f"https://example.org/data/{filename}?token=x")
    assert (g.product, g.family, g.processor_version) == (product, family, version)
    assert g.filename == filename and g.id == filename.rsplit(".", 1)[0]
    assert parse_granule_name(g.id) == g  # ledger rows and items keep the bare id
    assert g.start == datetime(day.year, day.month, day.day, tzinfo=UTC)
    assert g.end - g.start == timedelta(days=1)
    assert get_product(g.product).family == family


def test_oco_lite_parts_and_round_trip() -> None:
    g = parse_granule_name("oco2_LtCO2_201231_B11014Ar_220729012824s.nc4")
    assert g.production_time == datetime(2022, 7, 29, 1, 28, 24, tzinfo=UTC)
    assert g.product_type == "OCO2_L2_Lite_FP" and g.orbit == 0 and g.collection == ""
    name = format_oco_lite_name(
        "oco2-xco2", day=date(2020, 12, 31), build="B11014A", production_time=datetime(2022, 7, 29, 1, 28, 24)
    )
    assert name == "oco2_LtCO2_201231_B11014Ar_220729012824s.nc4"
    assert parse_granule_name("acos_LtCO2_160404_v201202_B7310A_161107201902s.nc4").collection == "v201202"


def test_oco_newer_build_wins_numerically_then_production() -> None:
    def lite(build: str, produced: str) -> str:
        return f"oco2_LtCO2_201231_{build}r_{produced}s.nc4"

    v9 = parse_granule_name(lite("B9003", "190101000000"))
    v10 = parse_granule_name(lite("B10206A", "200601000000"))
    v11 = parse_granule_name(lite("B11014A", "220729012824"))
    v11_again = parse_granule_name(lite("B11014A", "230101000000"))
    assert sorted([v11_again, v10, v11, v9], key=lambda g: g.version_key) == [v9, v10, v11, v11_again]
    assert v9.acquisition_key == v11.acquisition_key  # one day, one acquisition
    other_day = parse_granule_name("oco2_LtCO2_210101_B11014Ar_220729012824s.nc4")
    assert other_day.acquisition_key != v11.acquisition_key


def test_nies_version_then_revision_and_tansat_modes() -> None:
    old = parse_granule_name("GOSATTFTS2020030120200301_02C01SV0290R20200401.h5")
    new = parse_granule_name("GOSATTFTS2020030120200301_02C01SV0295.h5")
    again = parse_granule_name("GOSATTFTS2020030120200301_02C01SV0295R20210615.h5")
    assert sorted([again, new, old], key=lambda g: g.version_key) == [old, new, again]
    assert old.acquisition_key == new.acquisition_key == again.acquisition_key
    nd = parse_granule_name(format_tansat_name(day=date(2017, 3, 1), mode="ND"))
    gl = parse_granule_name(format_tansat_name(day=date(2017, 3, 1), mode="GL"))
    assert nd.acquisition_key != gl.acquisition_key and nd.mode == "ND"
    assert format_nies_name(day=date(2020, 3, 1), version="0295", revision="20210615") == again.filename


@pytest.mark.parametrize(
    "call",
    [
        lambda: format_oco_lite_name("no2", day=date(2020, 1, 1), production_time=datetime(2020, 1, 2)),
        lambda: format_oco_lite_name(
            "oco2-xco2", day=date(2020, 1, 1), build="11014", production_time=datetime(2020, 1, 2)
        ),
        lambda: format_nies_name(day=date(2020, 1, 1), version="2.95"),
        lambda: format_tansat_name(day=date(2017, 3, 1), mode="TG"),
    ],
)
def test_format_other_families_rejects_bad_parts(call: object) -> None:
    with pytest.raises(GranuleNameError):
        call()  # type: ignore[operator]
