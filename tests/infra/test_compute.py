"""The dask client factory: a LocalCluster by default, or real scheduler/worker processes by address, on which
the emissions derivation runs; how the backend is chosen and checked; and the DaskCluster the Kubernetes backend
submits, validated offline against the operator's CRD (the Gateway backend: test_gateway.py)."""

from __future__ import annotations

import copy
import importlib.metadata
import os
import re
from pathlib import Path
from typing import Any

import dask.array as da
import jsonschema
import pytest
import yaml
from dask_kubernetes.operator import make_cluster_spec

from infra.compute import ComputeError, dask_client
from infra.dask_cluster import cluster_name, dask_cluster_spec
from infra.dask_processes import start_dask
from infra.services import free_port
from infra.settings import Settings, SettingsError
from tests.conftest import Cli
from tests.infra.dask_crd import validate_dask_cluster


def test_local_cluster_by_default() -> None:
    with dask_client(Settings(dask_workers=1, dask_threads_per_worker=1)) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in client.scheduler_info()["workers"])


def test_existing_scheduler_by_address(tmp_path: Path) -> None:
    procs = start_dask(tmp_path, n_workers=1)
    try:
        with dask_client(Settings(dask_address=procs.address)) as client:
            (worker,) = client.scheduler_info()["workers"].values()
            assert worker["name"] == "eolake-0" and worker["id"] == "eolake-0"
            assert int(da.ones((100, 100), chunks=10).sum().compute(scheduler=client.get)) == 10_000
    finally:
        procs.stop()
    assert procs.scheduler.process.poll() is not None and all(
        w.process.poll() is not None for w in procs.workers
    )


# ---- choosing the backend: combinations are checked when the settings are read ----


@pytest.mark.parametrize(
    ("env", "backend"),
    [
        ({}, "local"),
        ({"EOLAKE_DASK_ADDRESS": "tcp://127.0.0.1:8786"}, "address"),
        ({"EOLAKE_DASK_GATEWAY_ADDRESS": "http://127.0.0.1:8000"}, "gateway"),
        ({"EOLAKE_DASK_BACKEND": "kubernetes"}, "kubernetes"),
        ({"EOLAKE_DASK_BACKEND": "local"}, "local"),
    ],
)
def test_backend_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], backend: str
) -> None:
    for name in list(os.environ):
        if name.startswith("EOLAKE_DASK_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings().resolved_dask_backend() == backend


def test_gateway_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOLAKE_DASK_GATEWAY_ADDRESS", "https://gateway.example.org")
    monkeypatch.setenv("EOLAKE_DASK_GATEWAY_AUTH", "jupyterhub")
    monkeypatch.setenv("EOLAKE_DASK_GATEWAY_TOKEN", "hub-token-0123456789")
    monkeypatch.setenv("EOLAKE_DASK_GATEWAY_OPTIONS", '{"worker_cores": 2, "worker_memory": 8.5}')
    monkeypatch.setenv("EOLAKE_DASK_ADAPT_MAX", "20")
    s = Settings()
    assert (s.resolved_dask_backend(), s.dask_gateway_auth) == ("gateway", "jupyterhub")
    assert s.dask_gateway_options == {"worker_cores": 2, "worker_memory": 8.5}
    assert (s.dask_adapt_min, s.dask_adapt_max) == (None, 20)
    assert (
        s.dask_gateway_token is not None and s.dask_gateway_token.get_secret_value() == "hub-token-0123456789"
    )
    assert "hub-token-0123456789" not in repr(s) + str(s) + s.model_dump_json()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"dask_backend": "address"}, "EOLAKE_DASK_BACKEND=address needs EOLAKE_DASK_ADDRESS"),
        ({"dask_backend": "gateway"}, "EOLAKE_DASK_BACKEND=gateway needs EOLAKE_DASK_GATEWAY_ADDRESS"),
        (
            {"dask_backend": "kubernetes", "dask_address": "tcp://h:8786"},
            "EOLAKE_DASK_ADDRESS is set but EOLAKE_DASK_BACKEND=kubernetes",
        ),
        (
            {"dask_backend": "address", "dask_address": "tcp://h:8786", "dask_gateway_address": "http://g"},
            "EOLAKE_DASK_GATEWAY_ADDRESS is set but EOLAKE_DASK_BACKEND=address",
        ),
        (
            {"dask_address": "tcp://h:8786", "dask_gateway_address": "http://g"},
            "both EOLAKE_DASK_ADDRESS and EOLAKE_DASK_GATEWAY_ADDRESS are set",
        ),
        ({"dask_adapt_max": 4}, "EOLAKE_DASK_ADAPT_MAX applies to gateway and kubernetes clusters"),
        (
            {"dask_backend": "kubernetes", "dask_adapt_min": 1},
            "EOLAKE_DASK_ADAPT_MIN needs EOLAKE_DASK_ADAPT_MAX",
        ),
        ({"dask_backend": "kubernetes", "dask_adapt_min": 5, "dask_adapt_max": 2}, "need 0 <= min <= max"),
        (
            {"dask_gateway_address": "http://g", "dask_gateway_auth": "jupyterhub"},
            "EOLAKE_DASK_GATEWAY_AUTH=jupyterhub needs EOLAKE_DASK_GATEWAY_TOKEN",
        ),
    ],
)
def test_bad_combinations_say_what_to_fix(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings(**kw)


def test_bad_combination_is_a_one_line_cli_error(offline_cli: Cli) -> None:
    offline_cli.env.update(EOLAKE_DASK_BACKEND="gateway", EOLAKE_STATE_DIR=str(offline_cli.cwd / "state"))
    proc = offline_cli("status", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "eolake: error: EOLAKE_DASK_BACKEND=gateway needs EOLAKE_DASK_GATEWAY_ADDRESS"
    ]


# ---- Kubernetes: the DaskCluster the factory submits (no cluster is reachable here; see docs/operations.md) ----

S3_KEY, S3_SECRET = "AKIA-LOCAL-KEY-0001", "local-secret-value-0002"


def _k8s_settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "dask_backend": "kubernetes",
        "lake": "s3://eolake/lake",
        "s3_endpoint_url": "http://minio:9000",
        "s3_key": S3_KEY,  # this process's credentials: the spec must only reference the cluster's Secret
        "s3_secret": S3_SECRET,
        "dask_workers": 3,
        "dask_threads_per_worker": 2,
        "dask_memory_limit": "3GiB",
    }
    return Settings(**{**base, **kw})


def test_dask_cluster_spec_validates_against_the_operator_crd() -> None:
    spec = dask_cluster_spec(_k8s_settings(), name="eolake-0a1b2c3d")
    validate_dask_cluster(spec)
    assert spec["metadata"] == {"name": "eolake-0a1b2c3d", "namespace": "eolake"}
    assert spec["spec"]["worker"]["replicas"] == 3
    assert spec["spec"]["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == "eolake-0a1b2c3d"


def test_dask_cluster_spec_carries_image_resources_and_secret_references() -> None:
    spec = dask_cluster_spec(_k8s_settings(dask_kubernetes_env_secret="eolake-env"), name="eolake-x")
    pods = [spec["spec"]["worker"]["spec"], spec["spec"]["scheduler"]["spec"]]
    (worker,) = pods[0]["containers"]
    (scheduler,) = pods[1]["containers"]
    version = importlib.metadata.version("eolake")
    assert worker["image"] == scheduler["image"] == f"ghcr.io/eolake/eolake:{version}"
    assert all(p["serviceAccountName"] == "eolake" for p in pods)
    assert worker["resources"] == {"requests": {"cpu": "2", "memory": "3Gi"}, "limits": {"memory": "3Gi"}}
    args = worker["args"]
    assert args[:2] == ["dask", "worker"] and scheduler["args"][:2] == ["dask", "scheduler"]
    assert args[args.index("--nthreads") + 1] == "2"
    assert args[args.index("--memory-limit") + 1] == str(3 * 2**30)
    assert (
        "env" not in scheduler and "envFrom" not in scheduler
    )  # tasks, and so credentials, are the workers'
    env = {e["name"]: e for e in worker["env"]}
    assert env["EOLAKE_LAKE"]["value"] == "s3://eolake/lake"
    assert env["EOLAKE_S3_ENDPOINT_URL"]["value"] == "http://minio:9000"
    assert env["EOLAKE_S3_KEY"] == {
        "name": "EOLAKE_S3_KEY",
        "valueFrom": {"secretKeyRef": {"name": "eolake-s3", "key": "access-key"}},
    }
    assert env["EOLAKE_S3_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "eolake-s3", "key": "secret-key"}
    }
    assert worker["envFrom"] == [{"secretRef": {"name": "eolake-env"}}]
    assert set(env) <= {f"EOLAKE_{f.upper()}" for f in Settings.model_fields}
    text = yaml.safe_dump(spec)
    assert S3_KEY not in text and S3_SECRET not in text


def test_dask_cluster_spec_follows_the_settings() -> None:
    settings = _k8s_settings(
        dask_kubernetes_image="registry.example.org/eolake:0.1.0-rc1",
        dask_kubernetes_namespace="carbon",
        dask_kubernetes_service_account="carbon-dask",
        dask_kubernetes_s3_secret=None,  # workload identity: no S3 credentials in the pods at all
        dask_memory_limit="1.5 GiB",
        dask_threads_per_worker=1,
    )
    spec = dask_cluster_spec(settings, name="eolake-y")
    validate_dask_cluster(spec)
    (worker,) = spec["spec"]["worker"]["spec"]["containers"]
    assert spec["metadata"]["namespace"] == "carbon"
    assert spec["spec"]["worker"]["spec"]["serviceAccountName"] == "carbon-dask"
    assert worker["image"] == "registry.example.org/eolake:0.1.0-rc1"
    assert worker["resources"]["requests"] == {"cpu": "1", "memory": "1536Mi"}
    assert not {"EOLAKE_S3_KEY", "EOLAKE_S3_SECRET"} & {e["name"] for e in worker["env"]}
    assert "envFrom" not in worker


def test_cluster_names_are_fresh_and_valid_service_names() -> None:
    names = {cluster_name() for _ in range(20)}
    assert len(names) == 20
    assert all(re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", n) and len(n + "-scheduler") <= 63 for n in names)


def test_the_crd_check_catches_what_the_api_server_would_reject_or_drop() -> None:
    good = dask_cluster_spec(_k8s_settings(), name="eolake-z")
    validate_dask_cluster(
        make_cluster_spec(
            "eolake-upstream", image="ghcr.io/eolake/eolake:0.1.0", n_workers=1, env={}, resources={}
        )
    )
    typo = copy.deepcopy(good)
    typo["spec"]["worker"]["replica"] = typo["spec"]["worker"].pop("replicas")  # silently dropped
    with pytest.raises(AssertionError):
        validate_dask_cluster(typo)
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["worker"]["replicas"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        validate_dask_cluster(wrong_type)
    no_scheduler = copy.deepcopy(good)
    del no_scheduler["spec"]["scheduler"]["service"]
    with pytest.raises(jsonschema.ValidationError):
        validate_dask_cluster(no_scheduler)


@pytest.mark.parametrize("kubeconfig", ["missing", "closed-port"])
def test_kubernetes_backend_without_an_api_server_says_what_to_check(
    kubeconfig: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The factory branch itself, as far as it goes here: with no credentials, or an API server that does not
    answer (a closed port on 127.0.0.1), one clear error, and the kubeconfig's token nowhere in it."""
    token = "kube-token-5e6f7a8b9c"
    config = tmp_path / "kubeconfig"
    if kubeconfig == "closed-port":
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
                    "users": [{"name": "u", "user": {"token": token}}],
                    "contexts": [
                        {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "eolake"}}
                    ],
                    "current-context": "x",
                }
            )
        )
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config either
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # nor an in-cluster service account
    expected = r"could not create DaskCluster eolake-[0-9a-f]{8} in namespace eolake"
    with (
        pytest.raises(ComputeError, match=expected) as info,
        dask_client(Settings(dask_backend="kubernetes")),
    ):
        pass
    assert "KUBECONFIG" in str(info.value) and token not in str(info.value)
