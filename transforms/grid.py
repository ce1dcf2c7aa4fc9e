"""Regular latitude/longitude grids.

A grid is aligned to multiples of its resolution, so grids of equal resolution share cell edges. A regional
grid that crosses the antimeridian is written with ``east > 180`` (for example ``(170, -20, 190, 0)``); its
longitudes stay ascending in the extended range and observation longitudes are wrapped into
``[west, west + 360)`` before binning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from transforms.errors import InputError

_EPS = 1e-9


@dataclass(frozen=True)
class GridSpec:
    """A regular lat/lon grid; cell centres at ``bound + (i + 0.5) * resolution`` (degrees)."""

    resolution: float
    bounds: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)  # west, south, east, north

    def __post_init__(self) -> None:
        west, south, east, north = self.bounds
        if not (self.resolution > 0 and math.isfinite(self.resolution)):
            raise InputError(f"grid resolution must be a positive number of degrees, got {self.resolution!r}")
        if not (-90.0 <= south < north <= 90.0):
            raise InputError(
                f"bbox south/north must satisfy -90 <= south < north <= 90, got south={south}, north={north}"
            )
        if not (-180.0 <= west < east <= west + 360.0 and east <= 540.0):
            raise InputError(
                f"bbox west/east must satisfy -180 <= west < east, got west={west}, east={east}; "
                "to cross the antimeridian give east beyond 180 (e.g. 170,-20,190,0)"
            )
        for name, n in (("lon", (east - west) / self.resolution), ("lat", (north - south) / self.resolution)):
            if abs(n - round(n)) > 1e-6:
                raise InputError(
                    f"grid bounds {self.bounds} are not a whole number of {self.resolution}° cells in {name}; "
                    "use GridSpec.snapped(...) to align them"
                )

    @classmethod
    def snapped(cls, resolution: float, bounds: tuple[float, float, float, float]) -> GridSpec:
        """A grid of ``resolution`` whose edges are ``bounds`` rounded outward to multiples of it."""
        west, south, east, north = bounds
        if south >= north:
            raise InputError(f"bbox south must be less than north, got {south} >= {north}")
        if west >= east:
            raise InputError(
                f"bbox west must be less than east, got {west} >= {east}; "
                "to cross the antimeridian give east beyond 180 (e.g. 170,-20,190,0)"
            )

        def down(x: float) -> float:
            return round(math.floor(x / resolution + _EPS) * resolution, 10)

        def up(x: float) -> float:
            return round(math.ceil(x / resolution - _EPS) * resolution, 10)

        return cls(
            resolution,
            (max(down(west), -180.0), max(down(south), -90.0), up(east), min(up(north), 90.0)),
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(n_lat, n_lon)."""
        west, south, east, north = self.bounds
        return (round((north - south) / self.resolution), round((east - west) / self.resolution))

    @property
    def is_global(self) -> bool:
        west, south, east, north = self.bounds
        return east - west >= 360.0 - _EPS and south <= -90.0 and north >= 90.0

    @property
    def grid_id(self) -> str:
        """A deterministic, path-safe id, e.g. ``0p1deg-global`` or ``0p1deg-w5-s42-e20-n56``."""
        res = f"{self.resolution:g}".replace(".", "p")
        if self.is_global:
            return f"{res}deg-global"
        parts = zip("wsen", self.bounds, strict=True)
        return f"{res}deg-" + "-".join(f"{k}{v:g}".replace(".", "p").replace("-", "m") for k, v in parts)

    def lat(self) -> np.ndarray:
        """Cell-centre latitudes, ascending, dims (lat,), degrees_north."""
        _, south, _, _ = self.bounds
        return south + (np.arange(self.shape[0]) + 0.5) * self.resolution

    def lon(self) -> np.ndarray:
        """Cell-centre longitudes, ascending, dims (lon,), degrees_east (may exceed 180 across the antimeridian)."""
        west = self.bounds[0]
        return west + (np.arange(self.shape[1]) + 0.5) * self.resolution

    def wrap_lon(self, lon: np.ndarray) -> np.ndarray:
        """Longitudes mapped into ``[west, west + 360)`` so they can be compared with the grid's edges."""
        west = self.bounds[0]
        return (np.asarray(lon, dtype=np.float64) - west) % 360.0 + west

    def cell_index(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Flat cell index ``i_lat * n_lon + i_lon`` of each point, -1 where outside the grid or non-finite."""
        west, south, _, _ = self.bounds
        n_lat, n_lon = self.shape
        lat = np.asarray(lat, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            i = np.floor((lat - south) / self.resolution)
            j = np.floor((self.wrap_lon(lon) - west) / self.resolution)
            ok = np.isfinite(i) & np.isfinite(j) & (i >= 0) & (i < n_lat) & (j >= 0) & (j < n_lon)
        # a point exactly on the north pole belongs to the top row
        out = np.full(lat.shape, -1, dtype=np.int64)
        out[ok] = i[ok].astype(np.int64) * n_lon + j[ok].astype(np.int64)
        return out

    def cell_area_km2(self) -> np.ndarray:
        """Area of each cell on a sphere of radius 6371.0088 km, dims (lat, lon), km²."""
        r = 6371.0088
        _, south, _, _ = self.bounds
        edges = np.radians(south + np.arange(self.shape[0] + 1) * self.resolution)
        band = r * r * np.radians(self.resolution) * (np.sin(edges[1:]) - np.sin(edges[:-1]))
        return np.broadcast_to(band[:, None], self.shape).copy()
