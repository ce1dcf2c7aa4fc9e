"""Turn a lake URL and settings into an fsspec filesystem: the only place that builds one.

A :class:`Lake` is a filesystem plus a root path; every zone (raw/, ledger/, cubes/, tables/, stac/) is a key
below the root. Local paths are made absolute; ``s3://`` URLs use s3fs with the endpoint and credentials from
settings (or the standard ``AWS_*`` variables).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any

import fsspec

from infra.settings import Settings, get_settings
from transforms.errors import LakeError
from transforms.storage import put_atomic


@dataclass(frozen=True)
class Lake:
    """A lake root on a filesystem. ``url`` is what users see; ``path(...)`` gives keys for ``fs``."""

    fs: fsspec.AbstractFileSystem
    root: str  # path on fs, without protocol
    protocol: str  # "file" or "s3"

    @property
    def url(self) -> str:
        return self.root if self.protocol == "file" else f"{self.protocol}://{self.root}"

    def path(self, *parts: str) -> str:
        """A key below the root, for ``self.fs``."""
        return posixpath.join(self.root, *parts)

    def url_of(self, *parts: str) -> str:
        """A full URL below the root, for tools that take URLs (xarray, intake, pystac)."""
        p = self.path(*parts)
        return p if self.protocol == "file" else f"{self.protocol}://{p}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """Options that let another fsspec user (xarray, dask workers) open the same URLs. May hold secrets:
        never write them into the lake or a catalog file."""
        return dict(self.fs.storage_options) if self.protocol != "file" else {}


def s3_storage_options(settings: Settings) -> dict[str, Any]:
    """s3fs keyword arguments from settings, falling back to the standard AWS environment variables."""
    endpoint = settings.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    opts: dict[str, Any] = {}
    # Resolved here (not left to botocore's own lookup) so that stores handed to dask workers carry them.
    key = settings.s3_key.get_secret_value() if settings.s3_key else os.environ.get("AWS_ACCESS_KEY_ID")
    secret = (
        settings.s3_secret.get_secret_value()
        if settings.s3_secret
        else os.environ.get("AWS_SECRET_ACCESS_KEY")
    )
    if key and secret:
        opts["key"], opts["secret"] = key, secret
    client_kwargs: dict[str, Any] = {}
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    if settings.s3_region:
        client_kwargs["region_name"] = settings.s3_region
    if client_kwargs:
        opts["client_kwargs"] = client_kwargs
    # Send checksums only where S3 requires them: objects PUT with botocore's default CRC32 trailer come back
    # from some S3-compatible servers (rclone) with a checksum that other clients (pyarrow/AWS SDK C++) reject.
    opts["config_kwargs"] = {
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    return opts


def open_lake(url: str | None = None, *, settings: Settings | None = None, create: bool = True) -> Lake:
    """Open (and by default create) the lake at ``url`` (default: ``settings.lake``).

    Raises :class:`LakeError` with a fix-it message if the location cannot be reached or written.
    """
    settings = settings or get_settings()
    url = url or settings.lake
    protocol, _, rest = url.partition("://")
    if not rest:
        protocol, rest = "file", url
    if protocol == "file":
        root = os.path.abspath(os.path.expanduser(rest))
        fs = fsspec.filesystem("file", auto_mkdir=True)
        try:
            if create:
                os.makedirs(root, exist_ok=True)
            elif not os.path.isdir(root):
                raise LakeError(
                    f"no lake at {root}: run `eolake demo --lake {root}` or harvest into it first"
                )
            if not os.access(root, os.W_OK):
                raise LakeError(f"lake directory {root} is not writable: choose another --lake")
        except OSError as exc:
            if isinstance(exc, LakeError):
                raise
            raise LakeError(f"cannot create lake directory {root}: {exc.strerror or exc}") from exc
        return Lake(fs, root.replace(os.sep, "/"), "file")
    if protocol == "s3":
        return _open_s3_lake(rest.rstrip("/"), settings, create=create)
    raise LakeError(f"unsupported lake URL {url!r}: use a local directory or s3://bucket/prefix")


def _open_s3_lake(root: str, settings: Settings, *, create: bool) -> Lake:
    import s3fs  # only infra builds S3 filesystems

    opts = s3_storage_options(settings)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
    # The reachability probe gives up after two short attempts (s3fs and botocore would otherwise retry an
    # unreachable endpoint for half a minute); the lake's own file system keeps the default retries.
    probe_config = {
        **opts["config_kwargs"],
        "connect_timeout": 5,
        "retries": {"max_attempts": 2, "mode": "standard"},
    }
    probe = s3fs.S3FileSystem(skip_instance_cache=True, **{**opts, "config_kwargs": probe_config})
    probe.retries = 2  # s3fs's own retry loop (a class attribute, not a constructor argument)
    bucket = root.split("/", 1)[0]
    endpoint = opts.get("client_kwargs", {}).get("endpoint_url", "AWS")
    try:
        if not probe.exists(bucket):
            if not create:
                raise LakeError(f"bucket {bucket!r} does not exist at {endpoint}")
            probe.mkdir(bucket)
        probe.ls(bucket, refresh=True)
    except LakeError:
        raise
    except Exception as exc:  # botocore raises many unrelated types for one failure
        raise LakeError(
            f"cannot reach lake s3://{root} at {endpoint}: {type(exc).__name__}: {exc}. "
            "Check EOLAKE_S3_ENDPOINT_URL (or AWS_ENDPOINT_URL) and the credentials"
        ) from exc
    return Lake(fs, root, "s3")


def write_bytes_atomic(lake: Lake, key: str, data: bytes) -> None:
    """Put ``data`` at ``key`` so that readers see the old object or the new one, never a part."""
    put_atomic(lake.fs, lake.path(key), data)


def zarr_store(lake: Lake, key: str, *, read_only: bool = False) -> Any:
    """A Zarr v3 store for ``key`` in the lake (LocalStore on disk, FsspecStore on S3)."""
    import zarr.storage

    path = lake.path(key)
    if lake.protocol == "file":
        return zarr.storage.LocalStore(path, read_only=read_only)
    return zarr.storage.FsspecStore(fs=_async_fs(lake), path=path, read_only=read_only)


def _async_fs(lake: Lake) -> Any:
    """The async S3 filesystem Zarr uses. fsspec reuses one instance per set of options in a process, so
    sessions are not opened (and closed on another event loop at exit) once per store."""
    import s3fs

    return s3fs.S3FileSystem(asynchronous=True, **lake.storage_options)
