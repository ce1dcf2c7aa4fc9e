"""Property-based fuzzing of the STAC API with schemathesis: every GET and POST operation of the OpenAPI
document the API serves at ``/api`` gets valid and invalid generated requests, over real HTTP on 127.0.0.1,
on both backends (the same demo lake and servers as ``test_stac_api``). No request may get a 5xx: bad input
is answered 400 by the guard in front of both backends (:mod:`catalog.api.guard`).

Bounded: ``EXAMPLES`` cases per operation and generation mode, derandomised (the same cases every run)."""

from __future__ import annotations

import contextlib
import urllib.parse
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from tests.e2e.test_stac_api import _get, _post

pytestmark = pytest.mark.slow
EXAMPLES = 25  # per operation and mode
METHODS = {"GET", "POST"}


def _operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(url + "/api", timeout=30)
    schema.config.update(base_url=url)
    ops = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an operation the schema does not describe well enough
        op = result.ok()
        if op.method.upper() in METHODS:
            ops.append(op)
    return ops


def _fuzz(op: Any, mode: GenerationMode, base_url: str) -> tuple[int, list[str]]:
    """Run ``EXAMPLES`` generated cases of ``op``; the count sent and a line per 5xx answer."""
    sent = 0
    errors: list[str] = []

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal sent
        response = case.call(base_url=base_url, timeout=60)
        sent += 1
        if response.status_code >= 500:
            errors.append(f"{response.status_code} {case.as_curl_command()} -> {response.text[:300]}")

    with contextlib.suppress(hypothesis.errors.Unsatisfiable):  # an operation with no input to make invalid
        run()
    return sent, errors


@pytest.mark.parametrize("backend", ["embedded", "pgstac"])
def test_no_server_error_on_generated_requests(apis: dict[str, str], backend: str) -> None:
    url = apis[backend]
    ops = _operations(url)
    labels = {f"{op.method.upper()} {op.path}" for op in ops}
    # every search/read route of the API is covered, GET and POST
    for expected in (
        "GET /",
        "GET /conformance",
        "GET /collections",
        "GET /collections/{collection_id}",
        "GET /collections/{collection_id}/items",
        "GET /collections/{collection_id}/items/{item_id}",
        "GET /search",
        "POST /search",
        "GET /queryables",
        "GET /aggregate",
    ):
        assert expected in labels, sorted(labels)
    sent: dict[str, int] = {}
    errors: list[str] = []
    for op in ops:
        label = f"{op.method.upper()} {op.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            n, errs = _fuzz(op, mode, url)
            sent[f"{label} [{mode.value}]"] = n
            errors.extend(f"{label}: {e}" for e in errs)
    print(f"{backend}: {sum(sent.values())} requests over {len(ops)} operations: {sent}")
    assert sum(sent.values()) >= len(ops) * EXAMPLES  # the generator did run
    assert errors == [], "\n".join(errors)


def test_fuzz_findings(apis: dict[str, str]) -> None:
    """What schemathesis found (pgstac answered 500): an empty ``query`` object, or a property in it without
    operators, constrains nothing on both backends; an empty property name is a 400 with a message."""
    for name, root in apis.items():
        _, everything = _post(root + "/search", {"limit": 1})
        bodies: list[dict[str, Any]] = [
            {"query": {}, "limit": 1},
            {"query": {"sat:absolute_orbit": {}}, "limit": 1},
            {"bbox": None, "fields": {"exclude": [], "include": []}, "filter": None, "query": {}, "limit": 1},
        ]
        for body in bodies:
            status, doc = _post(root + "/search", body)
            assert status == 200, (name, body, doc)
            assert doc["numberMatched"] == everything["numberMatched"] > 0, (name, body)
        for q in ("{}", '{"sat:absolute_orbit":{}}'):
            status, doc = _get(root + "/search?" + urllib.parse.urlencode({"query": q, "limit": 1}))
            assert status == 200 and doc["numberMatched"] == everything["numberMatched"], (name, q, doc)
        status, doc = _post(root + "/search", {"query": {"": {"eq": 1}}})
        assert status == 400 and "property names" in doc["description"], (name, doc)
