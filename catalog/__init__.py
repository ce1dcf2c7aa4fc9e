"""STAC for the lake: item and collection builders, offline validation, the catalog store and API."""
