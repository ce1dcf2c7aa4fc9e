"""Sentinel-5P-like swath geometry: orbits, scanlines, ground pixels and their corners.

A simplified but orbit-shaped model: a circular sun-synchronous orbit (inclination 98.74°, period 101.5 min,
ascending node at 13:30 local solar time) anchored on the real orbit 12367, which started
2020-03-03T01:35:47Z (from the real granule name in the samples). The sunlit ascending half of each orbit
(argument of latitude -90°…+90°) is imaged, or any number of scanlines centred on the ascending node (a real
OFFL file has ~4172: its daylight part runs past the orbit's turns near the poles); ground pixels lie on the
great circle perpendicular to the ground track, spread evenly over the swath width. Longitudes are in
[-180, 180), so swaths cross the antimeridian exactly as real ones do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from transforms.errors import InputError

EARTH_RADIUS_KM = 6371.0088
_SIDEREAL_DAY_S = 86164.0905
_UTC = dt.UTC


@dataclass(frozen=True)
class OrbitModel:
    """Orbit and instrument constants. Distances in km, angles in degrees, times in seconds."""

    inclination: float = 98.74
    period_s: float = 101.5 * 60.0
    node_local_time_h: float = 13.5
    swath_km: float = 2600.0
    ground_pixels: int = 450
    scanline_km: float = 5.5
    ref_orbit: int = 12367
    ref_orbit_start: dt.datetime = dt.datetime(2020, 3, 3, 1, 35, 47, tzinfo=_UTC)

    def orbit_start(self, orbit: int) -> dt.datetime:
        """Start of orbit ``orbit`` (half a period before its ascending node)."""
        return self.ref_orbit_start + dt.timedelta(seconds=(orbit - self.ref_orbit) * self.period_s)

    def orbits_between(self, start: dt.datetime, end: dt.datetime) -> list[int]:
        """Orbit numbers whose ascending node falls in [start, end)."""
        p = self.period_s
        first = self.ref_orbit + int(np.ceil(((start - self.ref_orbit_start).total_seconds() - p / 2) / p))
        out = []
        n = first
        while self.node_time(n) < end:
            if self.node_time(n) >= start:
                out.append(n)
            n += 1
        return out

    def node_time(self, orbit: int) -> dt.datetime:
        return self.orbit_start(orbit) + dt.timedelta(seconds=self.period_s / 2)


@dataclass(frozen=True)
class Swath:
    """One orbit's imaged pixels. Arrays are (scanline, ground_pixel) [corners: (..., 4)], degrees."""

    orbit: int
    start: dt.datetime  # orbit start
    end: dt.datetime  # orbit end
    time_reference: dt.datetime  # midnight UTC of the orbit start day
    delta_time_ms: np.ndarray  # (scanline,) ms since time_reference
    latitude: np.ndarray
    longitude: np.ndarray
    latitude_bounds: np.ndarray
    longitude_bounds: np.ndarray


def _ground_track(
    model: OrbitModel, orbit: int, u_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-satellite unit vectors (n, 3) in Earth-fixed coordinates and seconds after the orbit's node."""
    inc = np.radians(model.inclination)
    u = np.radians(u_deg)
    t = u / (2 * np.pi) * model.period_s
    node = model.node_time(orbit)
    utc_h = node.hour + node.minute / 60 + (node.second + node.microsecond / 1e6) / 3600
    node_lon = np.radians(((model.node_local_time_h - utc_h) * 15.0 + 180.0) % 360.0 - 180.0)
    # position in a frame rotating with the Earth, with the ascending node on the x axis at t=0
    x = np.cos(u)
    y = np.cos(inc) * np.sin(u)
    z = np.sin(inc) * np.sin(u)
    lon = np.arctan2(y, x) + node_lon - 2 * np.pi * t / _SIDEREAL_DAY_S
    r = np.hypot(x, y)
    vec = np.stack([r * np.cos(lon), r * np.sin(lon), z], axis=-1)
    return vec, t, node_lon


def _to_latlon(vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat = np.degrees(np.arcsin(np.clip(vec[..., 2], -1.0, 1.0)))
    lon = np.degrees(np.arctan2(vec[..., 1], vec[..., 0]))
    lon = (lon + 180.0) % 360.0 - 180.0
    return lat, lon


def _cross_track_points(track: np.ndarray, ahead: np.ndarray, offsets_km: np.ndarray) -> np.ndarray:
    """Points at signed distances ``offsets_km`` (east of track positive) on the great circle through each
    track point perpendicular to the track. track/ahead: (n, 3); returns (n, m, 3)."""
    normal = np.cross(track, ahead)  # perpendicular to the orbit plane (points to the track's left)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    ang = offsets_km / EARTH_RADIUS_KM
    out: np.ndarray = (
        track[:, None, :] * np.cos(ang)[None, :, None] - normal[:, None, :] * np.sin(ang)[None, :, None]
    )
    return out


def simulate_swath(
    orbit: int,
    *,
    model: OrbitModel | None = None,
    lat_range: tuple[float, float] = (-90.0, 90.0),
    scanlines: int | None = None,
) -> Swath | None:
    """Pixel centres and corners of one orbit's imaged scanlines, keeping those whose centre latitude lies in
    ``lat_range`` (degrees). ``scanlines``: how many, centred on the ascending node (a real OFFL NO2 file
    has ~4172, past the orbit's turns near the poles); default the sunlit half, argument of latitude
    -90°…90° (3639 at 5.5 km). Returns None when no scanline qualifies."""
    model = model or OrbitModel()
    # scanline edges along the track, by argument of latitude (degrees), symmetric about the node
    step_deg = np.degrees(model.scanline_km / EARTH_RADIUS_KM)
    if scanlines is None:
        n_lines, u_first = int(np.floor(180.0 / step_deg)), -90.0
    elif scanlines >= 1:
        n_lines, u_first = scanlines, -0.5 * scanlines * step_deg
    else:
        raise InputError(f"scanlines must be at least 1, got {scanlines}")
    u_edges = u_first + np.arange(n_lines + 1) * step_deg
    u_centres = u_edges[:-1] + step_deg / 2
    centre_vec, _, _ = _ground_track(model, orbit, u_centres)
    lat_c, _ = _to_latlon(centre_vec)
    lo, hi = lat_range
    keep = np.flatnonzero((lat_c >= lo) & (lat_c <= hi))
    if keep.size == 0:
        return None
    first, last = int(keep[0]), int(keep[-1])
    u_edges = u_edges[first : last + 2]
    u_centres = u_centres[first : last + 1]

    px_km = model.swath_km / model.ground_pixels
    cross_centres = (np.arange(model.ground_pixels) - (model.ground_pixels - 1) / 2) * px_km
    cross_edges = (np.arange(model.ground_pixels + 1) - model.ground_pixels / 2) * px_km
    du = step_deg / 10

    def points(u: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        track, _, _ = _ground_track(model, orbit, u)
        ahead, _, _ = _ground_track(model, orbit, u + du)
        return _cross_track_points(track, ahead, offsets)

    lat, lon = _to_latlon(points(u_centres, cross_centres))
    elat, elon = _to_latlon(points(u_edges, cross_edges))
    # corners counter-clockwise as in S5P: (s, k), (s, k+1), (s+1, k+1), (s+1, k)
    lat_b = np.stack([elat[:-1, :-1], elat[:-1, 1:], elat[1:, 1:], elat[1:, :-1]], axis=-1)
    lon_b = np.stack([elon[:-1, :-1], elon[:-1, 1:], elon[1:, 1:], elon[1:, :-1]], axis=-1)

    start = model.orbit_start(orbit)
    t_node = model.node_time(orbit)
    t_lines = np.radians(u_centres) / (2 * np.pi) * model.period_s  # s after node
    time_ref = dt.datetime(start.year, start.month, start.day, tzinfo=_UTC)
    delta_ms = np.round(((t_node - time_ref).total_seconds() + t_lines) * 1000.0).astype(np.int64)
    return Swath(
        orbit=orbit,
        start=start,
        end=start + dt.timedelta(seconds=model.period_s),
        time_reference=time_ref,
        delta_time_ms=delta_ms,
        latitude=lat,
        longitude=lon,
        latitude_bounds=lat_b,
        longitude_bounds=lon_b,
    )


def clip_swath(
    swath: Swath, bounds: tuple[float, float, float, float], *, margin: float = 0.5
) -> Swath | None:
    """Keep the scanlines with at least one pixel centre inside ``bounds`` (west, south, east, north; east may
    exceed 180 across the antimeridian) widened by ``margin`` degrees; None when nothing is inside."""
    west, south, east, north = bounds
    lon_w = (swath.longitude - (west - margin)) % 360.0 + (west - margin)
    inside = (
        (swath.latitude >= south - margin) & (swath.latitude <= north + margin) & (lon_w <= east + margin)
    )
    lines = np.flatnonzero(inside.any(axis=1))
    if lines.size == 0:
        return None
    sl = slice(int(lines[0]), int(lines[-1]) + 1)
    return Swath(
        orbit=swath.orbit,
        start=swath.start,
        end=swath.end,
        time_reference=swath.time_reference,
        delta_time_ms=swath.delta_time_ms[sl],
        latitude=swath.latitude[sl],
        longitude=swath.longitude[sl],
        latitude_bounds=swath.latitude_bounds[sl],
        longitude_bounds=swath.longitude_bounds[sl],
    )
