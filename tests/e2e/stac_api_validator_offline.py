"""Run stac-api-validator with no network: JSON-schema fetches are answered from pystac's bundled core
schemas and the project's vendored extension schemas (catalog/schemas/). Usage: same arguments as
``stac-api-validator``. A schema that is neither bundled nor vendored fails loudly."""

from __future__ import annotations

import sys
from typing import Any

import stac_validator.utilities as utilities
import stac_validator.validate as validate
from pystac.validation.local_validator import get_local_schema_cache

from catalog.validation import vendored_schemas

_SCHEMAS: dict[str, Any] = {**get_local_schema_cache(), **vendored_schemas()}
_fetch = utilities.fetch_and_parse_file


def fetch_and_parse_file(input_path: str, headers: dict[str, Any] | None = None) -> Any:
    key = str(input_path).split("#", 1)[0]
    if key in _SCHEMAS:
        return _SCHEMAS[key]
    if key.startswith("http") and not key.startswith("http://127.0.0.1"):
        raise OSError(f"offline: schema {key} is not bundled or vendored")
    return _fetch(input_path, headers)


def main() -> None:
    utilities.fetch_and_parse_file = fetch_and_parse_file
    validate.fetch_and_parse_file = fetch_and_parse_file
    utilities.set_schema_cache_size(64)
    from stac_api_validator.__main__ import main as validator_main

    sys.exit(validator_main())


if __name__ == "__main__":
    main()
