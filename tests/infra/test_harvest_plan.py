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
