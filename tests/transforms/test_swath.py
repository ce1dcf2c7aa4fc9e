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


def test_a_real_length_orbit_runs_past_the_turns_symmetrically() -> None:
    # a real OFFL file has ~4172 scanlines: the half orbit (3639 at 5.5 km) plus its daylight past the turns
    half = simulate_swath(12367)
    full = simulate_swath(12367, scanlines=4172)
    assert half is not None and full is not None
    assert half.latitude.shape == (3639, 450) and full.latitude.shape == (4172, 450)
    centre = full.latitude[:, 225]
    turn = int(np.argmax(centre))
    assert 0 < turn < 4171 and centre[-1] < centre[turn]  # ascends to the turn, then descends
    assert abs((4171 - turn) - int(np.argmin(centre))) <= 1  # as far past the north turn as the south one
    assert np.all(np.diff(full.delta_time_ms) > 0)
    start = full.time_reference + dt.timedelta(milliseconds=int(full.delta_time_ms[0]))
    end = full.time_reference + dt.timedelta(milliseconds=int(full.delta_time_ms[-1]))
    assert full.start < start and end < full.end  # still inside the orbit
    assert np.all(np.ptp(full.latitude_bounds, axis=-1)[:, 200:250] < 1.0)  # corners stay around the centres
