"""The one settings class. Read lazily (``get_settings()``), never at import time.

Every field can be set from the environment with the ``EOLAKE_`` prefix, e.g. ``EOLAKE_LAKE=s3://bucket/lake``.
Secrets are ``SecretStr`` so they never appear in logs or reprs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from transforms.errors import EolakeError

DaskBackend = Literal["local", "address", "gateway", "kubernetes"]
GatewayAuth = Literal["basic", "jupyterhub", "kerberos"]
HarvestCheck = Literal["auto", "full", "structure"]


class SettingsError(EolakeError):
    """A combination of settings that cannot work together (the message names the variables to fix)."""


class Settings(BaseSettings):
    """eolake configuration (environment prefix ``EOLAKE_``)."""

    model_config = SettingsConfigDict(env_prefix="EOLAKE_", extra="ignore")

    lake: str = "./lake"
    """Where the lake lives: a local directory or an ``s3://bucket/prefix`` URL."""

    s3_endpoint_url: str | None = None
    """S3 endpoint for non-AWS servers (falls back to ``AWS_ENDPOINT_URL``)."""
    s3_key: SecretStr | None = None
    """S3 access key id (falls back to ``AWS_ACCESS_KEY_ID``)."""
    s3_secret: SecretStr | None = None
    """S3 secret access key (falls back to ``AWS_SECRET_ACCESS_KEY``)."""
    s3_region: str | None = None

    dask_backend: DaskBackend | None = None
    """Where dask runs: ``local`` (a LocalCluster), ``address`` (the scheduler at ``EOLAKE_DASK_ADDRESS``),
    ``gateway`` (a cluster from the Dask Gateway at ``EOLAKE_DASK_GATEWAY_ADDRESS``) or ``kubernetes`` (a
    ``DaskCluster`` through the dask-kubernetes operator). Unset: ``address`` or ``gateway`` when that address is
    set, else ``local``."""
    dask_address: str | None = None
    """An existing dask scheduler (``tcp://host:8786``)."""
    dask_workers: int = 2
    """Workers of a local, gateway or kubernetes cluster (fixed size; see ``dask_adapt_max``)."""
    dask_threads_per_worker: int = 1
    """Threads per worker; on Kubernetes also the worker's CPU request."""
    dask_memory_limit: str = "4GiB"
    """Memory per worker (dask units); on Kubernetes also the worker's memory request and limit."""
    dask_adapt_min: int | None = None
    dask_adapt_max: int | None = None
    """Adaptive scaling between ``dask_adapt_min`` (default 0) and ``dask_adapt_max`` workers for gateway and
    kubernetes clusters, instead of a fixed ``dask_workers``."""

    dask_gateway_address: str | None = None
    """The Dask Gateway's HTTP(S) address (``https://gateway.example.org``)."""
    dask_gateway_proxy_address: str | None = None
    """The gateway's scheduler proxy (``gateway://host:8786``); unset: the gateway's default."""
    dask_gateway_auth: GatewayAuth = "basic"
    dask_gateway_user: str | None = None
    """User name for ``basic`` auth (default: the OS user)."""
    dask_gateway_token: SecretStr | None = None
    """The password for ``basic`` auth or the JupyterHub API token for ``jupyterhub`` auth."""
    dask_gateway_options: dict[str, str | int | float | bool] = {}
    """Cluster options the gateway offers, as JSON: ``{"worker_cores": 2, "worker_memory": 8}``."""

    dask_kubernetes_namespace: str = "eolake"
    dask_kubernetes_image: str | None = None
    """The scheduler and worker image (default: ``ghcr.io/eolake/eolake:<installed version>``)."""
    dask_kubernetes_service_account: str = "eolake"
    dask_kubernetes_s3_secret: str | None = "eolake-s3"
    """The Secret (keys ``access-key``, ``secret-key``) the pods read ``EOLAKE_S3_KEY``/``EOLAKE_S3_SECRET``
    from; unset: none (workload identity)."""
    dask_kubernetes_env_secret: str | None = None
    """A Secret whose every key becomes an environment variable of the pods (``envFrom``)."""

    harvest_concurrency: int = 4
    """Concurrent transfers for a source given by URL/path (configured sources set ``max_connections``)."""
    harvest_check: HarvestCheck = "auto"
    """How a harvested S5P granule is checked before it is kept: ``full`` decodes every pixel variable gridding
    reads; ``structure`` opens it and checks groups, variables, dims and that every stored chunk lies inside the
    file, without inflating (gridding quarantines what it then cannot decode); ``auto``: ``structure`` when
    upstream published a SHA-256 and it matched, else ``full``. Other product families: always their reader."""

    sources_file: str | None = None
    """The sources file (default: ``deployments/sources.yaml`` in the repository)."""
    source_urls: dict[str, str] = {}
    """Per-source overrides of the sources file, as JSON: ``{"cdse": "<root URL>", "cdse.token_url": "<URL>"}``."""
    cdse_username: SecretStr | None = None
    """Copernicus Data Space account (OAuth2 password grant, client ``cdse-public``)."""
    cdse_password: SecretStr | None = None
    cdse_client_id: SecretStr | None = None
    """CDSE OAuth2 client (client-credentials grant), used instead of username/password when set."""
    cdse_client_secret: SecretStr | None = None
    pc_subscription_key: SecretStr | None = None
    """Optional Planetary Computer subscription key (higher SAS token rate limits)."""
    earthdata_token: SecretStr | None = None
    """NASA Earthdata Login bearer token (else the CMR adapter reads ~/.netrc)."""

    state_dir: str | None = None
    """Where ``eolake up`` keeps PIDs, logs, generated credentials and service data (default: the user's
    data directory, e.g. ``~/.local/share/eolake``)."""

    @model_validator(mode="after")
    def _dask_combination(self) -> Settings:
        self.resolved_dask_backend()
        lo, hi = self.dask_adapt_min, self.dask_adapt_max
        if lo is not None and hi is None:
            raise SettingsError(
                "EOLAKE_DASK_ADAPT_MIN needs EOLAKE_DASK_ADAPT_MAX (adaptive scaling's upper bound)"
            )
        if hi is not None:
            if self.resolved_dask_backend() not in ("gateway", "kubernetes"):
                raise SettingsError(
                    "EOLAKE_DASK_ADAPT_MAX applies to gateway and kubernetes clusters; "
                    f"the dask backend is {self.resolved_dask_backend()}"
                )
            if hi < 1 or (lo or 0) < 0 or (lo or 0) > hi:
                raise SettingsError(
                    f"EOLAKE_DASK_ADAPT_MIN={lo} and EOLAKE_DASK_ADAPT_MAX={hi}: need 0 <= min <= max and max >= 1"
                )
        if self.dask_gateway_auth == "jupyterhub" and self.dask_gateway_token is None:
            raise SettingsError(
                "EOLAKE_DASK_GATEWAY_AUTH=jupyterhub needs EOLAKE_DASK_GATEWAY_TOKEN (the API token)"
            )
        return self

    def resolved_dask_backend(self) -> DaskBackend:
        """The dask backend, checked against the addresses that are set."""
        addresses = {"address": self.dask_address, "gateway": self.dask_gateway_address}
        variables = {"address": "EOLAKE_DASK_ADDRESS", "gateway": "EOLAKE_DASK_GATEWAY_ADDRESS"}
        given = [name for name, value in addresses.items() if value]
        backend = self.dask_backend
        if backend is None:
            if len(given) > 1:
                raise SettingsError(
                    "both EOLAKE_DASK_ADDRESS and EOLAKE_DASK_GATEWAY_ADDRESS are set; unset one "
                    "or choose with EOLAKE_DASK_BACKEND"
                )
            return "address" if given == ["address"] else "gateway" if given == ["gateway"] else "local"
        if backend in variables and not addresses[backend]:
            raise SettingsError(f"EOLAKE_DASK_BACKEND={backend} needs {variables[backend]}")
        for other in given:
            if other != backend:
                raise SettingsError(
                    f"{variables[other]} is set but EOLAKE_DASK_BACKEND={backend}; unset one of them"
                )
        return backend

    def resolved_state_dir(self) -> str:
        import platformdirs

        return self.state_dir or platformdirs.user_data_dir("eolake")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings()
