"""The simulator's orbit geometry: sun-synchronous timing, pixel sizes, antimeridian and pole crossings."""

from __future__ import annotations

import datetime as dt

import numpy as np

from transforms.swath import OrbitModel, clip_swath, simulate_swath

UTC = dt.UTC


def test_fourteen_orbits_a_day_anchored_on_the_real_orbit() -> None:
    m = OrbitModel()
    orbits = m.orbits_between(dt.datetime(2020, 3, 3, tzinfo=UTC), dt.datetime(2020, 3, 4, tzinfo=UTC))
    assert 14 <= len(orbits) <= 15 and 12367 in orbits
    assert m.orbit_start(12367) == dt.datetime(2020, 3, 3, 1, 35, 47, tzinfo=UTC)


def test_ascending_node_at_1330_local_time_and_pixel_spacing() -> None:
    s = simulate_swath(12367)
    assert s is not None
    centre = s.latitude.shape[1] // 2
    i = int(np.argmin(np.abs(s.latitude[:, centre])))
    utc_h = (s.time_reference + dt.timedelta(milliseconds=int(s.delta_time_ms[i]))).hour
    local = (utc_h + s.longitude[i, centre] / 15.0) % 24
    assert abs(local - 13.5) < 1.0
    assert np.all(np.diff(s.latitude[:, centre]) > 0)  # ascending
    step = np.hypot(
        np.diff(s.latitude[i]), np.diff(s.longitude[i]) * np.cos(np.radians(s.latitude[i, centre]))
    )
    assert np.allclose(step * 111.2, 2600 / 450, rtol=0.1)


def test_corners_surround_centres_and_swaths_cross_antimeridian_and_poles() -> None:
    s = simulate_swath(12367)
    assert s is not None
    assert s.latitude.max() > 85 and s.latitude.min() < -85
    assert (np.ptp(s.longitude_bounds, axis=-1) > 180).any()  # some pixels straddle ±180
    mid = s.latitude.shape[0] // 2
    lat_b, lat = s.latitude_bounds[mid], s.latitude[mid]
    assert np.all((lat_b.min(axis=-1) <= lat) & (lat <= lat_b.max(axis=-1)))


def test_clip_keeps_only_scanlines_over_the_domain() -> None:
    s = simulate_swath(12373, lat_range=(40, 58))
    assert s is not None
    c = clip_swath(s, (-5.0, 42.0, 20.0, 56.0))
    assert c is not None and c.latitude.shape[0] < s.latitude.shape[0]
    assert clip_swath(s, (100.0, -60.0, 120.0, -50.0)) is None
