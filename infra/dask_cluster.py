"""The ``DaskCluster`` resource eolake asks the dask-kubernetes operator for: our image, worker size from the
settings, and credentials only as references to Kubernetes Secrets."""

from __future__ import annotations

import importlib.metadata
import secrets
from typing import Any

from dask.utils import parse_bytes

from infra.settings import Settings

IMAGE_REPOSITORY = "ghcr.io/eolake/eolake"
SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
WORKER_DASHBOARD_PORT = 8788


def default_image() -> str:
    """The eolake image of the installed version (the one ``infra/docker/Dockerfile`` builds)."""
    return f"{IMAGE_REPOSITORY}:{importlib.metadata.version('eolake')}"


def _quantity(size: str) -> str:
    """A dask memory size (``4GiB``, ``1.5 GB``) as a Kubernetes quantity (``4Gi``, or bytes)."""
    n = parse_bytes(size)
    for unit, suffix in ((2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki")):
        if n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def _env(settings: Settings) -> list[dict[str, Any]]:
    """The workers' environment: plain settings as values; the S3 credentials as ``secretKeyRef`` (never
    the values this process has)."""
    env: list[dict[str, Any]] = [{"name": "EOLAKE_LAKE", "value": settings.lake}]
    for name, value in (
        ("EOLAKE_S3_ENDPOINT_URL", settings.s3_endpoint_url),
        ("EOLAKE_S3_REGION", settings.s3_region),
    ):
        if value:
            env.append({"name": name, "value": value})
    if settings.dask_kubernetes_s3_secret:
        for name, key in (("EOLAKE_S3_KEY", "access-key"), ("EOLAKE_S3_SECRET", "secret-key")):
            ref = {"name": settings.dask_kubernetes_s3_secret, "key": key}
            env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    return env


def cluster_name() -> str:
    """A fresh name per run (the operator names the scheduler's Service ``<name>-scheduler``)."""
    return f"eolake-{secrets.token_hex(4)}"


def dask_cluster_spec(settings: Settings, *, name: str) -> dict[str, Any]:
    """The ``kubernetes.dask.org/v1`` ``DaskCluster`` for one run: ``dask_workers`` workers (the operator's
    autoscaler changes that when adaptive), each with ``dask_threads_per_worker`` CPUs and
    ``dask_memory_limit`` memory, running as ``dask_kubernetes_service_account``."""
    image = settings.dask_kubernetes_image or default_image()
    memory = _quantity(settings.dask_memory_limit)
    threads = settings.dask_threads_per_worker
    worker: dict[str, Any] = {
        "name": "worker",
        "image": image,
        "args": [
            "dask", "worker",
            "--name", "$(DASK_WORKER_NAME)",
            "--nthreads", str(threads),
            "--memory-limit", str(parse_bytes(settings.dask_memory_limit)),
            "--dashboard-address", str(WORKER_DASHBOARD_PORT),
        ],
        "env": _env(settings),  # the workers run the tasks: they alone read the lake
    }  # fmt: skip
    if settings.dask_kubernetes_env_secret:
        worker["envFrom"] = [{"secretRef": {"name": settings.dask_kubernetes_env_secret}}]
    worker["resources"] = {"requests": {"cpu": str(threads), "memory": memory}, "limits": {"memory": memory}}
    worker["ports"] = [{"name": "http-dashboard", "containerPort": WORKER_DASHBOARD_PORT, "protocol": "TCP"}]
    scheduler: dict[str, Any] = {
        "name": "scheduler",
        "image": image,
        "args": ["dask", "scheduler", "--host", "0.0.0.0", "--port", str(SCHEDULER_PORT),
                 "--dashboard-address", str(DASHBOARD_PORT)],
    }  # fmt: skip
    scheduler["ports"] = [
        {"name": "tcp-comm", "containerPort": SCHEDULER_PORT, "protocol": "TCP"},
        {"name": "http-dashboard", "containerPort": DASHBOARD_PORT, "protocol": "TCP"},
    ]
    scheduler["readinessProbe"] = {
        "httpGet": {"port": "http-dashboard", "path": "/health"},
        "periodSeconds": 2,
        "timeoutSeconds": 10,
    }
    pod = {"serviceAccountName": settings.dask_kubernetes_service_account}
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": name, "namespace": settings.dask_kubernetes_namespace},
        "spec": {
            "worker": {"replicas": settings.dask_workers, "spec": {**pod, "containers": [worker]}},
            "scheduler": {
                "spec": {**pod, "containers": [scheduler]},
                "service": {
                    "type": "ClusterIP",
                    "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
                    "ports": [
                        {
                            "name": "tcp-comm",
                            "protocol": "TCP",
                            "port": SCHEDULER_PORT,
                            "targetPort": "tcp-comm",
                        },
                        {
                            "name": "http-dashboard",
                            "protocol": "TCP",
                            "port": DASHBOARD_PORT,
                            "targetPort": "http-dashboard",
                        },
                    ],
                },
            },
        },
    }
