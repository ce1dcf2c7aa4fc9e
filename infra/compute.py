"""The dask client factory: a LocalCluster by default, an existing scheduler by address, a Dask Gateway cluster
or a dask-kubernetes ``DaskCluster`` (``EOLAKE_DASK_BACKEND``, see docs/operations.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from distributed import Client, LocalCluster

from infra.settings import Settings, get_settings
from transforms.errors import EolakeError


class ComputeError(EolakeError):
    """The dask cluster cannot be had (refused credentials, rejected options); the message says what to fix."""


@contextmanager
def dask_client(settings: Settings | None = None) -> Iterator[Client]:
    """A connected client for the run; a cluster it starts (local, gateway, kubernetes) is shut down on exit.

    ``EOLAKE_DASK_ADDRESS=tcp://127.0.0.1:8786`` connects to a running scheduler instead.
    """
    settings = settings or get_settings()
    backend = settings.resolved_dask_backend()
    if backend == "address":
        with Client(settings.dask_address, set_as_default=False) as client:
            yield client
        return
    if backend == "gateway":
        with _gateway_cluster(settings) as cluster, cluster.get_client(set_as_default=False) as client:
            yield client
        return
    if backend == "kubernetes":
        with _kubernetes_cluster(settings) as cluster, Client(cluster, set_as_default=False) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=settings.dask_workers,
            threads_per_worker=settings.dask_threads_per_worker,
            memory_limit=settings.dask_memory_limit,
            host="127.0.0.1",
            dashboard_address=None,
            processes=True,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def _scale(cluster: Any, settings: Settings) -> None:
    if settings.dask_adapt_max is not None:
        cluster.adapt(minimum=settings.dask_adapt_min or 0, maximum=settings.dask_adapt_max)
    else:
        cluster.scale(settings.dask_workers)


def _gateway_auth(settings: Settings) -> Any:
    from dask_gateway.auth import BasicAuth, JupyterHubAuth, KerberosAuth

    token = settings.dask_gateway_token.get_secret_value() if settings.dask_gateway_token else None
    if settings.dask_gateway_auth == "jupyterhub":
        return JupyterHubAuth(api_token=token)
    if settings.dask_gateway_auth == "kerberos":
        return KerberosAuth()
    return BasicAuth(username=settings.dask_gateway_user, password=token)


def close_gateway(gateway: Any) -> None:
    """Close a ``dask_gateway.Gateway`` (unless closed already) once and for all.

    dask-gateway 2026.3's ``Gateway.__del__`` closes again, and a second close reads distributed's stopped
    loop ("Accessing the loop property while the loop is not running"), an exception at garbage collection;
    without its loop runner ``__del__`` does nothing.
    """
    runner = vars(gateway).get("_loop_runner")
    if runner is not None:
        if runner.is_started():
            gateway.close()
        del gateway._loop_runner


def _discard(cluster: Any) -> None:
    """Stop the IO loop of a GatewayCluster whose start failed (it has cleaned up its own comms already)."""
    gateway = vars(cluster).get("gateway")
    if gateway is not None:
        close_gateway(gateway)


@contextmanager
def _gateway_cluster(settings: Settings) -> Iterator[Any]:
    """A new cluster from the gateway, scaled or adaptive per the settings, shut down on exit."""
    from aiohttp import ClientResponseError
    from dask_gateway import GatewayCluster

    address = settings.dask_gateway_address
    # Built in two steps so that a refused start can be cleaned up here: GatewayCluster.__init__ raises with its
    # Gateway client's IO-loop thread still running, and that client's __del__ closes it with a blocking call
    # into the loop; when garbage collection runs it on the loop's own thread, the process hangs.
    cluster = GatewayCluster.__new__(GatewayCluster)
    try:
        cluster.__init__(
            address=address,
            proxy_address=settings.dask_gateway_proxy_address,
            auth=_gateway_auth(settings),
            shutdown_on_close=True,
            **settings.dask_gateway_options,
        )
    except ClientResponseError as exc:
        _discard(cluster)
        if exc.status in (401, 403):
            raise ComputeError(
                f"the Dask Gateway at {address} refused {settings.dask_gateway_auth} authentication "
                f"(HTTP {exc.status}): check EOLAKE_DASK_GATEWAY_USER and EOLAKE_DASK_GATEWAY_TOKEN"
            ) from None
        raise
    except ValueError as exc:  # unknown option names or values out of the gateway's bounds
        _discard(cluster)
        raise ComputeError(
            f"the Dask Gateway at {address} rejected the cluster options "
            f"EOLAKE_DASK_GATEWAY_OPTIONS={settings.dask_gateway_options}: {exc}"
        ) from None
    except BaseException:
        _discard(cluster)
        raise
    try:
        _scale(cluster, settings)
        yield cluster
    finally:
        cluster.close()
        close_gateway(cluster.gateway)


@contextmanager
def _kubernetes_cluster(settings: Settings) -> Iterator[Any]:
    """A new ``DaskCluster`` from the dask-kubernetes operator, deleted on exit.

    Not exercised against a live cluster in the tests (none is reachable there): they validate the spec it
    submits against the operator's CRD schema and check the error when no Kubernetes API answers.
    """
    from dask_kubernetes.operator import KubeCluster
    from distributed.core import Status

    from infra.dask_cluster import cluster_name, dask_cluster_spec

    name, namespace = cluster_name(), settings.dask_kubernetes_namespace
    spec = dask_cluster_spec(settings, name=name)
    try:
        cluster = KubeCluster(
            custom_cluster_spec=spec, namespace=namespace, shutdown_on_close=True, quiet=True
        )
    except Exception as exc:
        # The half-made instance stays registered (dask-kubernetes' exit hook would fail on it again): delete
        # whatever of it reached the API server, and mark it closed.
        for stale in [c for c in KubeCluster._instances if c.name == name]:
            KubeCluster._instances.discard(stale)
            with suppress(Exception):
                stale.close()
            stale.status = Status.closed
        raise ComputeError(
            f"could not create DaskCluster {name} in namespace {namespace} (EOLAKE_DASK_BACKEND=kubernetes): "
            f"{type(exc).__name__}: {exc}; check the Kubernetes credentials (in-cluster service account or "
            "KUBECONFIG), the dask-kubernetes operator, and infra/k8s/dask-rbac.yaml"
        ) from None
    try:
        if settings.dask_adapt_max is not None:
            _scale(cluster, settings)
        yield cluster
    finally:
        cluster.close()
