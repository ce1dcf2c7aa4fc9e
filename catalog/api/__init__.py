"""The lake's STAC API (stac-fastapi): an embedded backend over the catalog store, or pgstac."""
