"""What a harvest fetches, given upstream and the ledger (pure bookkeeping, no I/O)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from infra.harvest import RETRY_BUDGET, plan_harvest, plan_report, resolve_versions
from infra.sources import UpstreamGranule
from transforms.granules import format_granule_name, parse_granule_name

T0 = dt.datetime(2020, 3, 3, 1, 35, 47, tzinfo=dt.UTC)


def _g(
    orbit: int, *, mode: str = "OFFL", processor: str = "010302", sha: str | None = "a" * 64
) -> UpstreamGranule:
    start = T0 + dt.timedelta(minutes=101.5 * (orbit - 12367))
    name = parse_granule_name(
        format_granule_name(
            "no2",
            start=start,
            end=start + dt.timedelta(minutes=101),
            orbit=orbit,
            mode=mode,
            processor_version=processor,
        )
    )
    return UpstreamGranule(name, f"https://up/{name.filename}", 100, sha, {})


def _row(g: UpstreamGranule, status: str, *, attempts: int = 1, sha: str = "a" * 64) -> dict[str, object]:
    return {
        "granule_id": g.granule_id,
        "status": status,
        "attempts": attempts,
        "sha256": sha,
        "acquisition": "/".join(str(p) for p in g.name.acquisition_key if p is not None),
        "start": g.name.start,
        "end": g.name.end,
    }


def test_new_quarantined_within_budget_and_republished_are_fetched() -> None:
    new, done, bad, spent, changed = (_g(o) for o in range(12367, 12372))
    ledger = pd.DataFrame(
        [
            _row(done, "harvested"),
            _row(bad, "quarantined", attempts=RETRY_BUDGET - 1),
            _row(spent, "quarantined", attempts=RETRY_BUDGET),
            _row(changed, "harvested", sha="b" * 64),
        ]
    )
    todo = plan_harvest([new, done, bad, spent, changed], ledger)
    assert [g.granule_id for g in todo] == [new.granule_id, bad.granule_id, changed.granule_id]


def test_better_versions_supersede_and_are_planned() -> None:
    offl = _g(12367)
    rpro = _g(12367, mode="RPRO", processor="020400")
    ledger = pd.DataFrame([_row(offl, "harvested")])
    plan = plan_report([offl, rpro], ledger)
    assert plan["fetch"] == [(rpro.granule_id, 100)] and plan["supersede"] == [
        (offl.granule_id, rpro.granule_id)
    ]
    both = pd.DataFrame([_row(offl, "harvested"), _row(rpro, "harvested")])
    changes = resolve_versions(both).set_index("granule_id")["status"].to_dict()
    assert changes == {offl.granule_id: "superseded"}


def _resolve_by_rows(ledger: pd.DataFrame) -> dict[str, tuple[str, str | None]]:
    """The row-by-row precedence the vectorised ``resolve_versions`` replaced: rank each acquisition's live
    rows by parsed version key (stable, so ties go to the later row) and keep the last."""
    live = ledger[ledger["status"].isin(["harvested", "superseded"])]
    changed = {}
    for _, group in live.groupby("acquisition"):
        ranked = sorted(
            group.itertuples(index=False), key=lambda r: parse_granule_name(r.granule_id).version_key
        )
        best = ranked[-1]
        for row in ranked:
            want = "harvested" if row is best else "superseded"
            if row.status != want:
                changed[row.granule_id] = (want, None if row is best else f"superseded by {best.granule_id}")
    return changed


def test_resolve_versions_matches_row_by_row_precedence_on_a_mixed_ledger() -> None:
    produced = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    rows = []
    for orbit in range(12367, 12391):  # 24 acquisitions, each in a different state
        versions = [_g(orbit)]  # OFFL 010302
        if orbit % 2:
            versions.append(_g(orbit, mode="RPRO", processor="020400"))
        if orbit % 3 == 0:
            versions.append(_g(orbit, processor="010400"))
        if orbit % 5 == 0:  # an NRTI piece: its own acquisition
            versions.append(_g(orbit, mode="NRTI"))
        for i, g in enumerate(versions):
            status = ["harvested", "superseded", "quarantined", "harvested"][(orbit + i) % 4]
            rows.append(_row(g, status))
    # same mode and processor, later production: ranks above
    start = T0 + dt.timedelta(days=30)
    for day, when in enumerate([produced, produced + dt.timedelta(days=9)]):
        name = format_granule_name(
            "no2", start=start, end=start + dt.timedelta(minutes=101), orbit=13000, production_time=when
        )
        rows.append(
            _row(
                UpstreamGranule(parse_granule_name(name), name, 1, None, {}), ["superseded", "harvested"][day]
            )
        )
    ledger = pd.DataFrame(rows)
    expected = _resolve_by_rows(ledger)
    assert len(expected) > 10 and any(s == "harvested" for s, _ in expected.values())
    got = resolve_versions(ledger)
    assert (
        dict(zip(got["granule_id"], zip(got["status"], got["reason"], strict=True), strict=True)) == expected
    )
    settled = ledger.set_index("granule_id")
    settled.update(got.set_index("granule_id")[["status", "reason"]])
    assert resolve_versions(settled.reset_index()).empty  # resolving twice changes nothing


def test_resolve_versions_on_a_settled_or_empty_ledger_changes_nothing() -> None:
    settled = pd.DataFrame([_row(_g(o), "harvested") for o in range(12367, 12370)])
    assert resolve_versions(settled).empty
    assert resolve_versions(settled.iloc[:0]).empty
