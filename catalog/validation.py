"""Offline STAC validation: core schemas bundled with pystac plus extension schemas vendored here.

Nothing is ever fetched: a schema that is neither bundled nor vendored in ``catalog/schemas/`` fails with
:class:`SchemaNotVendoredError`, which says which file to add. See ``catalog/schemas/PROVENANCE.md``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import pystac
import pystac.validation
from pystac.errors import STACValidationError
from pystac.validation.stac_validator import JsonSchemaSTACValidator

from transforms.errors import InputError

EXTENSION_SCHEMA_ROOT = "https://stac-extensions.github.io"


class SchemaNotVendoredError(InputError):
    """A STAC object declares a schema that is not available offline."""


class StacObjectInvalidError(InputError, STACValidationError):
    """A STAC object fails its core or extension schema; the message names the failing JSON path."""

    def __init__(self, message: str, source: Any | None = None) -> None:
        STACValidationError.__init__(self, message, source=source)


def vendored_schemas() -> dict[str, dict[str, Any]]:
    """Extension schemas shipped in ``catalog/schemas/<ext>/<version>/schema.json``, keyed by their URL."""
    out: dict[str, dict[str, Any]] = {}
    root = resources.files("catalog") / "schemas"
    for ext_dir in root.iterdir():
        if not ext_dir.is_dir():
            continue
        for version_dir in ext_dir.iterdir():
            schema_file = version_dir / "schema.json"
            if version_dir.is_dir() and schema_file.is_file():
                schema = json.loads(schema_file.read_text(encoding="utf-8"))
                if ext_dir.name == "projjson":  # referenced by datacube's reference_system
                    out[f"https://proj.org/schemas/{version_dir.name}/projjson.schema.json"] = schema
                    continue
                out[f"{EXTENSION_SCHEMA_ROOT}/{ext_dir.name}/{version_dir.name}/schema.json"] = schema
    return out


class OfflineSTACValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator with its schema cache pre-filled and fetching disabled."""

    def __init__(self) -> None:
        super().__init__()
        self.schema_cache.update(vendored_schemas())

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        key = schema_uri.split("#", 1)[0]
        if key in self.schema_cache:
            return self.schema_cache[key]
        raise SchemaNotVendoredError(
            f"STAC schema {key} is not available offline; vendor it into catalog/schemas/<ext>/<version>/"
            "schema.json (record its origin in catalog/schemas/PROVENANCE.md) or use an extension version "
            f"that is vendored: {', '.join(sorted(self.schema_cache))}"
        )


@lru_cache(maxsize=1)
def offline_validator() -> OfflineSTACValidator:
    """One shared validator (schemas parsed once)."""
    return OfflineSTACValidator()


def validate_stac(obj: pystac.STACObject | dict[str, Any]) -> None:
    """Validate a STAC object or dict against its core and extension schemas, without network access.

    Raises :class:`StacObjectInvalidError` (also a ``pystac.STACValidationError``) naming the failing JSON
    path, or :class:`SchemaNotVendoredError` when a declared schema is not vendored.
    """
    if isinstance(obj, pystac.STACObject):
        stac_dict = obj.to_dict(include_self_link=False, transform_hrefs=False)
    elif isinstance(obj, dict):
        stac_dict = obj
    else:
        raise InputError(f"validate_stac takes a pystac object or a dict, got {type(obj).__name__}")
    try:
        pystac.validation.validate_dict(stac_dict, validator=offline_validator())
    except SchemaNotVendoredError:
        raise
    except STACValidationError as err:
        raise StacObjectInvalidError(_describe_failure(err, stac_dict), source=err.source) from err
    except pystac.STACTypeError as err:
        raise InputError(f"not a STAC object ({err}); check its 'type' and 'stac_version'") from err


def _describe_failure(err: STACValidationError, stac_dict: dict[str, Any]) -> str:
    import jsonschema.exceptions

    errors = err.source if isinstance(err.source, list) else []
    best = jsonschema.exceptions.best_match(errors) if errors else None
    first_line = str(err).split("\n", 1)[0]
    if best is None:
        return first_line
    return (
        f"{first_line}: at {best.json_path}: {best.message} "
        f"(fix the STAC object {stac_dict.get('id', '?')!r} or the builder that made it)"
    )
