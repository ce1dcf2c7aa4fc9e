"""One-off conversion of Natural Earth 1:110m admin-0 countries to the vendored GeoJSON.

Not imported by the product (it needs pyshp, which is not a dependency). Re-run it only to regenerate
``naturalearth_110m_countries.geojson``::

    uv run --with pyshp python transforms/data/convert_naturalearth.py \\
        /path/to/geopandas-0.14.4-naturalearth_lowres/naturalearth_lowres.shp

What it does (see PROVENANCE.md): keeps ``name``, ``iso_a3``, ``continent``; replaces the ``-99`` and
non-ISO codes listed in ``ISO3_FIXES``; adds Malta (absent at 1:110m) as a hand-drawn approximate outline;
rounds coordinates to 4 decimals (~10 m, far below the 1:110m generalisation).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import shapefile  # pyshp

OUT = Path(__file__).with_name("naturalearth_110m_countries.geojson")

# Natural Earth marks some countries "-99" (no ISO code of their own) or uses non-ISO codes. Fixed by name.
# XKX is the code the EU and others use for Kosovo; N. Cyprus and Somaliland have no ISO code: we keep
# Natural Earth's own adm0_a3 codes (CYN, SOL) so each feature has a stable unique code.
ISO3_FIXES = {"France": "FRA", "Norway": "NOR", "Kosovo": "XKX", "N. Cyprus": "CYN", "Somaliland": "SOL"}

# Malta is an EU member but too small for the 1:110m layer. Approximate outlines (lon, lat), drawn by hand
# from the islands' known extent (Malta 14.18-14.58E, 35.78-36.09N); good enough for 0.1° masks.
MALTA = {
    "type": "MultiPolygon",
    "coordinates": [
        [[[14.33, 35.99], [14.42, 35.96], [14.56, 35.87], [14.57, 35.82], [14.45, 35.80], [14.33, 35.87],
          [14.33, 35.99]]],
        [[[14.19, 36.07], [14.33, 36.04], [14.34, 36.02], [14.25, 36.01], [14.18, 36.04], [14.19, 36.07]]],
    ],
}  # fmt: skip


def _round(coords: Any) -> Any:
    if isinstance(coords, (int, float)):
        return round(float(coords), 4)
    return [_round(c) for c in coords]


def convert(shp: Path) -> dict[str, Any]:
    """Read the shapefile and return the GeoJSON FeatureCollection written by :func:`main`."""
    reader = shapefile.Reader(str(shp))
    features: list[dict[str, Any]] = []
    seen: set[str] = set()
    for shape_record in reader.iterShapeRecords():
        rec = shape_record.record.as_dict()
        name = str(rec["name"])
        iso3 = ISO3_FIXES.get(name, str(rec["iso_a3"]))
        if iso3 == "-99" or iso3 in seen:
            raise SystemExit(f"{name}: iso_a3 {iso3!r} missing or duplicated; add it to ISO3_FIXES")
        seen.add(iso3)
        geometry = shape_record.shape.__geo_interface__
        features.append(
            {
                "type": "Feature",
                "properties": {"name": name, "iso_a3": iso3, "continent": str(rec["continent"])},
                "geometry": {"type": geometry["type"], "coordinates": _round(geometry["coordinates"])},
            }
        )
    features.append(
        {
            "type": "Feature",
            "properties": {"name": "Malta", "iso_a3": "MLT", "continent": "Europe"},
            "geometry": MALTA,
        }
    )
    return {"type": "FeatureCollection", "features": features}


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    collection = convert(Path(argv[1]))
    OUT.write_text(json.dumps(collection, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(collection['features'])} features, {OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv)
