"""Quicklook PNG of one cube day: the day's mean on a lat/lon map with Natural Earth coastlines and country
borders (the vendored 1:110m countries of :mod:`transforms.regions`), a colour bar with the units and a title
with product, date and coverage.

Rendered with matplotlib's Agg canvas on a private ``Figure`` (no pyplot state, safe in threads); returns the
PNG bytes, writes nothing.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import shapely
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from transforms.grid import GridSpec
from transforms.regions import load_countries

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class QuicklookStyle:
    """How a quicklook looks. ``width_in`` × height (from the grid's aspect) at ``dpi``."""

    width_in: float = 10.0
    dpi: int = 100
    cmap: str = "viridis"
    percentiles: tuple[float, float] = (2.0, 98.0)  # colour range: robust to a few extreme cells


@lru_cache(maxsize=1)
def _outlines() -> tuple[tuple[npt.NDArray[np.float64], ...], tuple[npt.NDArray[np.float64], ...]]:
    """(country borders, coastlines) as lists of (n, 2) lon/lat vertex arrays; computed once."""
    geoms = [c.geometry for c in load_countries()]
    borders = _lines(shapely.union_all([shapely.boundary(g) for g in geoms]))
    coast = _lines(shapely.boundary(shapely.union_all(geoms)))
    return borders, coast


def _lines(geom: shapely.Geometry) -> tuple[npt.NDArray[np.float64], ...]:
    return tuple(
        np.asarray(part.coords, dtype=np.float64) for part in shapely.get_parts(geom) if not part.is_empty
    )


def _shifted(lines: tuple[npt.NDArray[np.float64], ...], grid: GridSpec) -> list[npt.NDArray[np.float64]]:
    """The outlines, plus copies moved by 360° when the grid extends beyond ±180° (antimeridian grids)."""
    west, _, east, _ = grid.bounds
    out = list(lines)
    if east > 180.0:
        out += [ln + np.array([360.0, 0.0]) for ln in lines]
    if west < -180.0:
        out += [ln - np.array([360.0, 0.0]) for ln in lines]
    return out


def render_quicklook(
    mean: xr.DataArray,
    *,
    grid: GridSpec,
    title: str,
    units: str,
    day: dt.date,
    coverage: float,
    style: QuicklookStyle = QuicklookStyle(),
) -> bytes:
    """PNG bytes of a map of ``mean`` (dims (lat, lon) of ``grid``, product ``units``; NaN = no data, shown
    transparent over a light background). The title reads ``<title> — <day> — coverage <x>%``."""
    if mean.dims != ("lat", "lon") or mean.shape != grid.shape:
        raise ValueError(
            f"mean must have dims (lat, lon) and shape {grid.shape}, got {mean.dims} {mean.shape}"
        )
    values = np.asarray(mean.values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size:
        vmin, vmax = (float(v) for v in np.percentile(finite, style.percentiles))
        if not vmax > vmin:
            vmin, vmax = vmin - 0.5 * abs(vmin or 1.0), vmax + 0.5 * abs(vmax or 1.0)
    else:
        vmin, vmax = 0.0, 1.0
    west, south, east, north = grid.bounds
    aspect = (north - south) / (east - west)
    height = min(max(style.width_in * aspect + 1.6, 3.0), 2.0 * style.width_in)
    fig = Figure(figsize=(style.width_in, height), dpi=style.dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("#e8e8e8")
    image = ax.imshow(
        np.ma.masked_invalid(values),
        origin="lower",
        extent=(west, east, south, north),
        cmap=style.cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
        aspect="equal",
    )
    borders, coast = _outlines()
    ax.add_collection(LineCollection(_shifted(borders, grid), colors="0.35", linewidths=0.4))
    ax.add_collection(LineCollection(_shifted(coast, grid), colors="black", linewidths=0.7))
    ax.set_xlim(west, east)
    ax.set_ylim(south, north)
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title(f"{title} — {day.isoformat()} — coverage {100.0 * coverage:.1f}%", fontsize=10)
    if not finite.size:
        ax.text(0.5, 0.5, "no valid data", transform=ax.transAxes, ha="center", va="center")
    bar = fig.colorbar(image, ax=ax, orientation="horizontal", fraction=0.05, pad=0.1, extend="both")
    bar.set_label(units)
    bar.formatter.set_powerlimits((-3, 4))  # type: ignore[attr-defined]
    bar.update_ticks()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=style.dpi)
    return buf.getvalue()
