"""The one settings class. Read lazily (``get_settings()``), never at import time.

Every field can be set from the environment with the ``EOLAKE_`` prefix, e.g. ``EOLAKE_LAKE=s3://bucket/lake``.
Secrets are ``SecretStr`` so they never appear in logs or reprs.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    dask_address: str | None = None
    """An existing dask scheduler (``tcp://host:8786``); unset means a LocalCluster."""
    dask_workers: int = 2
    dask_threads_per_worker: int = 1
    dask_memory_limit: str = "4GiB"

    harvest_concurrency: int = 4
    """Concurrent transfers for a source given by URL/path (configured sources set ``max_connections``)."""

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

    def resolved_state_dir(self) -> str:
        import platformdirs

        return self.state_dir or platformdirs.user_data_dir("eolake")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings()
