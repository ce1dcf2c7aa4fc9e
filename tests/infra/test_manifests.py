"""The cluster manifests, compose file, Dockerfile and Kubernetes deployments cannot run here, so they are
checked: they parse, validate against the Kubernetes schemas (offline; the DaskCluster against the
dask-kubernetes CRD), pin their images to the versions the project pins, use the settings' environment
variables, agree on names and ports with each other and with the DaskCluster the kubernetes backend
generates, grant that backend what it does, and hold no secrets."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from infra.dask_cluster import dask_cluster_spec
from infra.settings import Settings
from tests.infra.dask_crd import validate_dask_cluster

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "infra" / "k8s"
K8S_VERSION = "1.31.0"


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("containers"), list):
                found.extend(node["containers"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return found


def _pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for dep in deps["dependencies"]:
        m = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([\w.]+)$", dep)
        if m:
            pins[m.group(1).lower()] = m.group(3)
    pins["eolake"] = deps["version"]
    return pins


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk


@pytest.mark.parametrize(("name", "doc"), _docs(), ids=lambda x: x if isinstance(x, str) else x["kind"])
def test_manifest_validates(name: str, doc: dict[str, Any]) -> None:
    assert doc["metadata"]["name"] and doc["apiVersion"] and doc["kind"]
    if doc["apiVersion"].startswith("kubernetes.dask.org"):  # against the operator's CRD schema
        validate_dask_cluster(doc)
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_images_are_pinned_to_the_project_pins() -> None:
    pins = _pins()
    images = [c["image"] for _, d in _docs() for c in _containers(d)]
    compose = yaml.safe_load((REPO / "infra" / "compose.yaml").read_text())
    images += [s["image"] for s in compose["services"].values()]
    for image in images:
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", image
        if repo.endswith("/eolake"):
            assert tag == pins["eolake"], image
        elif repo.endswith("prefecthq/prefect"):
            assert tag.startswith(pins["prefect"] + "-"), image
        elif repo.endswith("stac-fastapi-pgstac"):
            assert tag == pins["stac-fastapi-pgstac"], image
        elif repo.endswith("stac-utils/pgstac"):
            assert tag == "v" + pins["pypgstac"], image


def test_environment_names_are_the_settings_and_secrets_are_references() -> None:
    fields = {f"EOLAKE_{name.upper()}" for name in Settings.model_fields}
    compose = yaml.safe_load((REPO / "infra" / "compose.yaml").read_text())
    envs: list[tuple[str, Any]] = [
        (n, e.get("value", e.get("valueFrom")))
        for _, d in _docs()
        for c in _containers(d)
        for n, e in _env(c).items()
    ]
    for svc in compose["services"].values():
        envs += list((svc.get("environment") or {}).items())
    assert any(n.startswith("EOLAKE_") for n, _ in envs)
    for name, value in envs:
        if name.startswith("EOLAKE_"):
            assert name in fields, f"{name} is not a setting (infra/settings.py)"
        if re.search(r"SECRET|PASSWORD|_KEY$", name):
            ok = (isinstance(value, dict) and "secretKeyRef" in value) or (
                isinstance(value, str) and value.startswith("${")
            )
            assert ok, f"{name} must come from a secret or the environment, not a literal"


def test_names_and_ports_agree() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in _docs()}
    svc_port = {name: d["spec"]["ports"][0]["port"] for (kind, name), d in docs.items() if kind == "Service"}
    worker = _env(_containers(docs[("Deployment", "prefect-worker")])[0])
    assert worker["PREFECT_API_URL"]["value"] == f"http://prefect-server:{svc_port['prefect-server']}/api"
    assert worker["EOLAKE_S3_ENDPOINT_URL"]["value"] == f"http://minio:{svc_port['minio']}"
    dask = docs[("DaskCluster", "eolake")]
    dask_port = dask["spec"]["scheduler"]["service"]["ports"][0]["port"]
    assert (
        worker["EOLAKE_DASK_ADDRESS"]["value"] == f"tcp://eolake-scheduler:{dask_port}"
    )  # operator's service name
    api = _containers(docs[("Deployment", "stac-api")])[0]
    assert (
        str(svc_port["stac-api"]) in api["command"]
        and api["ports"][0]["containerPort"] == svc_port["stac-api"]
    )
    assert (
        _env(api)["PGHOST"]["value"] == "pgstac" and int(_env(api)["PGPORT"]["value"]) == svc_port["pgstac"]
    )
    compose = yaml.safe_load((REPO / "infra" / "compose.yaml").read_text())
    for svc in compose["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"compose publishes {port} beyond loopback"


def test_kubernetes_deployments_match_the_process_ones() -> None:
    process = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())["deployments"]
    k8s = yaml.safe_load((REPO / "deployments" / "prefect-kubernetes.yaml").read_text())["deployments"]
    assert [d["name"] + "-k8s" for d in process] == [d["name"] for d in k8s]
    for p, k in zip(process, k8s, strict=True):
        assert (p["entrypoint"], p.get("schedules"), p.get("concurrency_limit")) == (
            k["entrypoint"],
            k.get("schedules"),
            k.get("concurrency_limit"),
        )
        assert set(p.get("parameters", {})) == set(k.get("parameters", {}))
        assert k["work_pool"]["name"] == "eolake-kubernetes"
        assert k["work_pool"]["job_variables"]["image"] == f"ghcr.io/eolake/eolake:{_pins()['eolake']}"


def test_dockerfile_copies_what_exists_and_installs_locked() -> None:
    text = (REPO / "infra" / "docker" / "Dockerfile").read_text()
    assert "uv sync --locked" in text
    for src in re.findall(r"^COPY (\S+)", text, flags=re.M):
        assert (REPO / src).exists(), src


def test_static_dask_cluster_matches_the_generated_one() -> None:
    """infra/k8s/dask-cluster.yaml (the long-lived cluster) and the per-run cluster of the kubernetes backend
    (infra/dask_cluster.py) run the same image, read the same Secret the same way, and expose the same ports."""
    static = {(d["kind"], d["metadata"]["name"]): d for _, d in _docs()}[("DaskCluster", "eolake")]
    generated = dask_cluster_spec(
        Settings(dask_backend="kubernetes", lake="s3://eolake/lake", s3_endpoint_url="http://minio:9000"),
        name="eolake",
    )
    for part in ("scheduler", "worker"):
        (s,) = static["spec"][part]["spec"]["containers"]
        (g,) = generated["spec"][part]["spec"]["containers"]
        assert s["image"] == g["image"]
        assert [(p["name"], p["containerPort"]) for p in s["ports"]] == [
            (p["name"], p["containerPort"]) for p in g["ports"]
        ]
        assert _env(s) == _env(g), part  # the workers: the same Secret references; the scheduler: none
        assert static["spec"][part]["spec"].get("serviceAccountName", "eolake") == "eolake"
    assert static["spec"]["scheduler"]["service"] == generated["spec"]["scheduler"]["service"]


def test_the_service_account_may_run_the_kubernetes_backend() -> None:
    """What dask-kubernetes' KubeCluster does as the flow run's service account, per resource: create,
    watch, scale and delete its DaskCluster (a DaskAutoscaler when adaptive), wait for the scheduler's Pod and
    Service, read the Pod's log when it crashes."""
    needs = {
        ("kubernetes.dask.org", "daskclusters"): {"create", "get", "list", "watch", "patch", "delete"},
        ("kubernetes.dask.org", "daskworkergroups"): {"get", "list", "patch"},
        ("kubernetes.dask.org", "daskautoscalers"): {"create", "get", "patch", "delete"},
        ("", "pods"): {"get", "list", "watch"},
        ("", "pods/log"): {"get"},
        ("", "services"): {"get", "list", "watch"},
    }
    docs = [d for _, d in _docs()]
    bound = {
        d["roleRef"]["name"]
        for d in docs
        if d["kind"] == "RoleBinding"
        and {"kind": "ServiceAccount", "name": "eolake", "namespace": "eolake"} in d["subjects"]
    }
    granted: dict[tuple[str, str], set[str]] = {}
    for d in docs:
        if d["kind"] == "Role" and d["metadata"]["name"] in bound:
            for rule in d["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        granted.setdefault((group, resource), set()).update(rule["verbs"])
    missing = {k: v - granted.get(k, set()) for k, v in needs.items() if v - granted.get(k, set())}
    assert not missing, f"service account eolake lacks {missing}"
