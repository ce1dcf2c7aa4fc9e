"""Offline checks of a ``kubernetes.dask.org/v1`` resource against the CRD schema the installed dask-kubernetes
ships (its Helm chart's ``crds/``): JSON-schema validation plus the fields an API server would silently prune
(the schema's structural rule), and the embedded pod and service specs against the Kubernetes schemas."""

from __future__ import annotations

import importlib.resources
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = "1.31.0"
CRDS = "operator/deployment/helm/dask-kubernetes-operator/crds"


def crd_schema(kind: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the ``v1`` version of ``kind`` (``DaskCluster``, ``DaskWorkerGroup``…)."""
    path = importlib.resources.files("dask_kubernetes").joinpath(f"{CRDS}/{kind.lower()}.yaml")
    crd = yaml.safe_load(path.read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: dict[str, Any] = v1["schema"]["openAPIV3Schema"]
    return schema


def pruned_fields(node: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths in ``node`` that the schema does not declare (an API server drops them without a word)."""
    out: list[str] = []
    if isinstance(node, dict) and "properties" in schema:
        for key, value in node.items():
            if key in schema["properties"]:
                out += pruned_fields(value, schema["properties"][key], f"{path}.{key}")
            elif not schema.get("additionalProperties") and not schema.get(
                "x-kubernetes-preserve-unknown-fields"
            ):
                out.append(f"{path}.{key}")
    elif isinstance(node, list) and "items" in schema:
        for i, item in enumerate(node):
            out += pruned_fields(item, schema["items"], f"{path}[{i}]")
    return out


def validate_dask_cluster(doc: dict[str, Any]) -> None:
    """Raise if ``doc`` is not a ``DaskCluster`` the operator's CRD accepts as written."""
    assert doc["apiVersion"] == "kubernetes.dask.org/v1" and doc["kind"] == "DaskCluster"
    assert doc["metadata"]["name"]
    schema = crd_schema("DaskCluster")
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    jsonschema.validate(body, schema)
    assert pruned_fields(body, schema) == []
    meta = {"name": "check", "namespace": doc["metadata"].get("namespace", "default")}
    for part in ("scheduler", "worker"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": doc["spec"][part]["spec"]}
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": doc["spec"]["scheduler"]["service"],
    }
    kubernetes_validate.validate(service, K8S_VERSION, strict=True)
