"""deployments/prefect.yaml parses, and every entrypoint names a Prefect flow whose parameters it matches."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_entrypoints_are_flows_with_matching_parameters() -> None:
    from prefect import Flow

    doc = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    assert doc["deployments"]
    for dep in doc["deployments"]:
        path, name = dep["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, name)
        assert isinstance(flow, Flow), dep["name"]
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(dep.get("parameters", {})) <= accepted, (dep["name"], set(dep["parameters"]) - accepted)
