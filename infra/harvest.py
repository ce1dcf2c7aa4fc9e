"""Harvest bookkeeping: what to fetch, one granule's fetch as a ledger row, and version precedence.

A granule is fetched when the ledger has no row for it, or its last attempt was quarantined and the retry
budget is not spent. Harvested and superseded granules are never fetched again, which makes a re-run a no-op.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import pandas as pd

from infra.adapters import Download, SourceAdapter
from infra.http import UpstreamAuthError
from infra.sources import UpstreamGranule, redact_url
from infra.storage import Lake
from infra.transfer import TransferResult, fetch_granule, raw_key
from transforms.errors import SourceError
from transforms.granules import parse_granule_name

RETRY_BUDGET = 3
"""Attempts a quarantined granule gets (over successive runs) before it is left for an operator."""


def incremental_window(
    mark: dt.datetime | None, now: dt.datetime, *, days_back: int
) -> tuple[dt.datetime, dt.datetime]:
    """The sensing-time window [lo, hi) a scheduled run searches, up to ``now``: at least the ``days_back`` whole
    days before ``now``'s day and that day so far (granules published late, reprocessed versions), reaching
    further back to the last successful run's high-water ``mark`` less ``days_back`` days after an outage, so
    nothing sensed meanwhile is missed."""
    today = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
    overlap = dt.timedelta(days=days_back)
    lo = today - overlap if mark is None else min(mark - overlap, today - overlap)
    return lo, now


def plan_harvest(upstream: list[UpstreamGranule], ledger: pd.DataFrame) -> list[UpstreamGranule]:
    """The granules of ``upstream`` that need fetching, given the current ledger: new ones, quarantined ones
    within their retry budget, and ones upstream republished with other bytes (a different published SHA-256,
    or size when no checksum is published)."""
    # only the columns used: itertuples costs per column (a 10,000-row ledger: 3x less)
    columns = [c for c in ("granule_id", "status", "attempts", "sha256", "size") if c in ledger]
    known = {row.granule_id: row for row in ledger[columns].itertuples(index=False)}
    todo = []
    for g in upstream:
        row = known.get(g.granule_id)
        if (
            row is None
            or (row.status == "quarantined" and int(row.attempts or 0) < RETRY_BUDGET)
            or (row.status == "harvested" and _changed_upstream(g, row))
        ):
            todo.append(g)
    return todo


def _changed_upstream(g: UpstreamGranule, row: Any) -> bool:
    """Whether upstream now publishes other bytes than the ledger holds: a different SHA-256, or (services
    that publish only a size, or a size and an MD5 as CDSE does: the ledger keeps SHA-256s) a different size."""
    if g.sha256 and isinstance(row.sha256, str):
        return g.sha256 != row.sha256
    size = getattr(row, "size", None)
    return g.size is not None and size is not None and not pd.isna(size) and int(size) != g.size


class SourceGate:
    """What the concurrent downloads from one source share during a run: its adapter (and so its cached
    tokens), at most ``max_connections`` transfers at a time, and the first refusal of its credentials — after
    which no further download is tried (a wrong password must not turn into a request per granule)."""

    def __init__(
        self, adapter: SourceAdapter, *, shared: Callable[[], AbstractContextManager[object]] | None = None
    ) -> None:
        self.adapter = adapter
        self.shared = shared  # also held around each transfer, inside the local slot (e.g. a cross-run limit)
        self.max_connections = max(1, int(adapter.max_connections))
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0  # the most transfers that ran at once (reported, and checked by tests)
        self.refused: UpstreamAuthError | None = None

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots, self.shared() if self.shared else nullcontext():
            with self._lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            try:
                yield
            finally:
                with self._lock:
                    self.active -= 1

    def __repr__(self) -> str:
        return f"SourceGate({self.adapter.name!r}, max_connections={self.max_connections})"


def harvest_granule(
    g: UpstreamGranule, lake: Lake, *, source: str, attempts: int = 1, gate: SourceGate | None = None
) -> dict[str, Any]:
    """Fetch one granule into the lake and return its ledger row (status harvested or quarantined).
    With a ``gate``, the download is authorised by the source's adapter, runs in one of the source's connection
    slots, and a refused credential is renewed once; a second refusal raises UpstreamAuthError (and stops the
    source's other downloads). Raises SourceError when upstream cannot be read at all (retryable)."""
    name = g.name
    key = raw_key(name.product, name.filename, name.start.date().isoformat())
    if gate is None:
        result = fetch_granule(
            g.href,
            lake,
            key,
            product=name.product,
            expected_size=g.size,
            expected_sha256=g.sha256,
            expected_md5=g.md5,
        )
    else:
        result = _fetch_through(gate, g, lake, key)
    return ledger_row(
        g,
        source=source,
        attempts=attempts,
        key=result.key,
        size=result.size,
        sha256=result.sha256,
        status="harvested" if result.ok else "quarantined",
        reason=result.reason,
    )


def _fetch_through(gate: SourceGate, g: UpstreamGranule, lake: Lake, key: str) -> TransferResult:
    adapter = gate.adapter
    refused: tuple[Download, UpstreamAuthError] | None = None  # the first try's credential and its refusal
    with gate.slot():
        for refresh in (False, True):
            if gate.refused is not None:
                raise gate.refused
            try:
                dl = adapter.authorize(g, refresh=refresh)
            except UpstreamAuthError as exc:  # the token endpoint refused the credentials: final
                gate.refused = exc
                raise
            if refused is not None and dl == refused[0]:  # nothing to renew (no credentials, or the same)
                gate.refused = refused[1]
                raise gate.refused
            try:
                return fetch_granule(
                    dl.href,
                    lake,
                    key,
                    product=g.name.product,
                    expected_size=g.size,
                    expected_sha256=g.sha256,
                    expected_md5=g.md5,
                    headers=dict(dl.headers),
                    credential_hint=adapter.credential_hint,
                )
            except UpstreamAuthError as exc:
                if refresh:  # refused even with a fresh credential
                    gate.refused = UpstreamAuthError(
                        f"source {adapter.name} refused access again after a new token: {exc}"
                    )
                    raise gate.refused from None
                refused = (dl, exc)
    raise AssertionError("unreachable")


def ledger_row(
    g: UpstreamGranule,
    *,
    source: str,
    attempts: int,
    key: str | None,
    size: int | None,
    sha256: str | None,
    status: str,
    reason: str | None,
) -> dict[str, Any]:
    """The ledger row of granule ``g``: its name's parts, where its bytes are (``key``) and what became of it
    (``status`` harvested | quarantined, ``reason``); the upstream href without its query (no tokens)."""
    name = g.name
    return {
        "granule_id": name.id,
        "product": name.product,
        "mode": name.mode,
        "processor_version": name.processor_version,
        "orbit": name.orbit,
        "acquisition": "/".join(str(p) for p in name.acquisition_key if p is not None),
        "start": name.start,
        "end": name.end,
        "key": key,
        "size": size,
        "sha256": sha256,
        "status": status,
        "reason": reason,
        "source": source,
        "source_href": redact_url(g.href),
        "attempts": attempts,
        "updated": dt.datetime.now(dt.UTC),
    }


def failed_row(g: UpstreamGranule, *, source: str, error: SourceError, attempts: int) -> dict[str, Any]:
    """A ledger row for a granule whose download failed after retries (kept for the next run)."""
    return ledger_row(
        g,
        source=source,
        attempts=attempts,
        key=None,
        size=None,
        sha256=None,
        status="quarantined",
        reason=f"download failed: {error}",
    )


def resolve_versions(ledger: pd.DataFrame) -> pd.DataFrame:
    """Rows whose status must change so each acquisition keeps exactly one harvested version: the best by
    mode (RPRO > OFFL > NRTI), then processor version, then production time (ties: the later ledger row);
    the others become superseded.

    Only acquisitions holding several versions, or a version not harvested, are ranked (their file names
    parsed); a settled ledger — one harvested row per acquisition — costs a group count, not a parse per row."""
    live = ledger[ledger["status"].isin(["harvested", "superseded"]) & ledger["acquisition"].notna()]
    versions = live["acquisition"].map(live["acquisition"].value_counts())
    unsettled = live[(versions > 1) | (live["status"] != "harvested")].reset_index(drop=True)
    if unsettled.empty:
        return pd.DataFrame()
    keys = [parse_granule_name(gid).version_key for gid in unsettled["granule_id"]]
    rank = pd.Series(0, index=unsettled.index)
    rank.iloc[sorted(range(len(keys)), key=keys.__getitem__)] = range(len(keys))
    is_best = rank == rank.groupby(unsettled["acquisition"]).transform("max")
    best_id = unsettled["granule_id"].where(is_best).groupby(unsettled["acquisition"]).transform("first")
    want = is_best.map({True: "harvested", False: "superseded"})
    reason = [None if b else f"superseded by {x}" for b, x in zip(is_best, best_id, strict=True)]
    changed = unsettled.assign(status=want, reason=pd.Series(reason, dtype=object), _rank=rank)[
        want != unsettled["status"]
    ]
    if changed.empty:
        return pd.DataFrame()
    changed = changed.sort_values(["acquisition", "_rank"]).drop(columns="_rank")
    return changed.assign(updated=dt.datetime.now(dt.UTC)).reset_index(drop=True)


def days_touched(rows: pd.DataFrame) -> list[dt.date]:
    """UTC days covered by the time spans of ``rows`` (start/end columns)."""
    days: set[dt.date] = set()
    for r in rows.itertuples(index=False):
        d = pd.Timestamp(r.start).date()
        while d <= pd.Timestamp(r.end).date():
            days.add(d)
            d += dt.timedelta(days=1)
    return sorted(days)


def plan_report(upstream: list[UpstreamGranule], ledger: pd.DataFrame) -> dict[str, Any]:
    """What a harvest would do, computed without writing: granules and bytes to fetch (new or retried),
    granules already present, older versions the new ones would supersede, and days to re-grid."""
    todo = plan_harvest(upstream, ledger)
    known = set(ledger["granule_id"]) if not ledger.empty else set()
    live = ledger[ledger["status"].isin(["harvested", "superseded"])] if not ledger.empty else ledger
    supersede = []
    for g in todo:
        acquisition = "/".join(str(p) for p in g.name.acquisition_key if p is not None)
        for row in live[live["acquisition"] == acquisition].itertuples(index=False) if not live.empty else []:
            if (
                row.status == "harvested"
                and parse_granule_name(row.granule_id).version_key < g.name.version_key
            ):
                supersede.append((row.granule_id, g.granule_id))
    days = sorted(
        {d for g in todo for d in days_touched(pd.DataFrame([{"start": g.name.start, "end": g.name.end}]))}
    )
    return {
        "fetch": [(g.granule_id, g.size) for g in todo if g.granule_id not in known],
        "retry": [(g.granule_id, g.size) for g in todo if g.granule_id in known],
        "present": len(upstream) - len(todo),
        "supersede": supersede,
        "days_to_regrid": [d.isoformat() for d in days],
    }
