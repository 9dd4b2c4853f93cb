"""DSR traveltimes: straight-ray geometry, VTI, backends, and the sparse-t0 error bound."""

from __future__ import annotations

import numpy as np
import pytest

from seis_hpc.errors import SeisError
from seis_hpc.migration.traveltime import dsr_traveltime, sparse_knots


def test_constant_velocity_is_straight_ray_time_to_depth():
    """In constant v, t0 maps to depth z = v t0 / 2 and the DSR time is the path length / v."""
    v = 2500.0
    pts = np.array([[100.0, -50.0], [0.0, 0.0], [730.0, 410.0]])
    time = np.array([0.1, 0.5, 1.7])
    sx, sy = np.array([0.0, 900.0]), np.array([0.0, -300.0])
    rx, ry = np.array([1200.0, 100.0]), np.array([50.0, 200.0])
    vr = np.full((3, 3), v)
    tt = dsr_traveltime(pts, time, vr, sx, sy, rx, ry)
    for i in range(2):
        for p in range(3):
            for j in range(3):
                z = v * time[j] / 2
                ls = np.sqrt((pts[p, 0] - sx[i]) ** 2 + (pts[p, 1] - sy[i]) ** 2 + z**2)
                lr = np.sqrt((pts[p, 0] - rx[i]) ** 2 + (pts[p, 1] - ry[i]) ** 2 + z**2)
                assert tt[i, p, j] == pytest.approx((ls + lr) / v, rel=1e-14)


def random_geometry(seed=0, npts=30, ntr=20, nt=50):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 3000, (npts, 2))
    sx, sy, rx, ry = (rng.uniform(0, 3000, ntr) for _ in range(4))
    time = np.linspace(0.0, 3.0, nt)
    vr = 1500 + 800 * time[None] + 200 * rng.random((npts, 1))
    return pts, time, vr, sx, sy, rx, ry


def test_cython_matches_numpy_and_reciprocity():
    pts, time, vr, sx, sy, rx, ry = random_geometry()
    a = dsr_traveltime(pts, time, vr, sx, sy, rx, ry, backend="numpy")
    b = dsr_traveltime(pts, time, vr, sx, sy, rx, ry, backend="cython")
    np.testing.assert_allclose(b, a, rtol=1e-14)
    swapped = dsr_traveltime(pts, time, vr, rx, ry, sx, sy, backend="cython")
    np.testing.assert_allclose(swapped, b, rtol=1e-14)
    eta = 0.1 * np.random.default_rng(1).random(vr.shape)
    np.testing.assert_allclose(dsr_traveltime(pts, time, vr, sx, sy, rx, ry, eta, "cython"),
                               dsr_traveltime(pts, time, vr, sx, sy, rx, ry, eta, "numpy"),
                               rtol=1e-13)


def test_vti_legs_follow_alkhalifah_tsvankin():
    """Symmetric geometry (s, r at +-d from x): the sum of legs is the two-way A-T moveout
    with offset 2d; eta = 0 is the isotropic DSR; eta > 0 is faster at long offsets."""
    v, eta, t0 = 2000.0, 0.12, 1.0
    pts = np.array([[0.0, 0.0]])
    d = np.array([0.0, 500.0, 1500.0, 3000.0])
    time = np.array([t0])
    vr = np.full((1, 1), v)
    zeros = np.zeros_like(d)
    tt = dsr_traveltime(pts, time, vr, -d, zeros, d, zeros, eta=eta)[:, 0, 0]
    x = 2 * d
    two_way = np.sqrt(t0**2 + x**2 / v**2
                      - 2 * eta * x**4 / (v**2 * (t0**2 * v**2 + (1 + 2 * eta) * x**2)))
    np.testing.assert_allclose(tt, two_way, rtol=1e-12)
    iso = dsr_traveltime(pts, time, vr, -d, zeros, d, zeros, eta=0.0)[:, 0, 0]
    np.testing.assert_allclose(iso, np.sqrt(t0**2 + x**2 / v**2), rtol=1e-14)
    assert tt[0] == pytest.approx(t0)
    assert np.all(tt[1:] < iso[1:])


@pytest.mark.parametrize("dt", [0.002, 0.004])
@pytest.mark.parametrize("gradient", [0.0, 1000.0, 2500.0])
def test_sparse_t0_error_below_a_tenth_of_a_sample(dt, gradient):
    """Automatic knots: the max interpolation error against the exact DSR, over distances
    from 0 to 6 km and all t0, stays below 0.1 data sample; and the knots are sparse."""
    time = np.arange(int(4.0 / dt)) * dt
    x = np.concatenate([np.linspace(0, 300, 31), np.linspace(300, 6000, 58)])
    pts = np.column_stack([x, np.zeros_like(x)])
    # split-spread and end-on traces, zero offset included
    sx = np.array([0.0, -200.0, 0.0, 1500.0, -3000.0])
    rx = np.array([0.0, 200.0, 2000.0, -1500.0, 3000.0])
    zeros = np.zeros_like(sx)
    vr = np.repeat((1480.0 + gradient * time)[None], len(pts), axis=0)
    exact = dsr_traveltime(pts, time, vr, sx, zeros, rx, zeros)
    sparse = dsr_traveltime(pts, time, vr, sx, zeros, rx, zeros, sparse_t0="auto", dt=dt)
    err = np.abs(sparse - exact).max() / dt
    knots = sparse_knots(time, dt)
    assert err < 0.1
    assert knots.size < time.size / 4


def test_fixed_sparse_t0_is_interpolation_between_every_kth_sample():
    pts, time, vr, sx, sy, rx, ry = random_geometry(nt=41)
    exact = dsr_traveltime(pts, time, vr, sx, sy, rx, ry)
    sparse = dsr_traveltime(pts, time, vr, sx, sy, rx, ry, sparse_t0=5)
    knots = sparse_knots(time, 0.004, 5)
    np.testing.assert_array_equal(knots, np.arange(0, 41, 5))
    np.testing.assert_allclose(sparse[..., knots], exact[..., knots], rtol=1e-15)
    # sample 12 lies 2/5 of the way from knot 10 to knot 15
    np.testing.assert_allclose(sparse[..., 12],
                               exact[..., 10] + 0.4 * (exact[..., 15] - exact[..., 10]),
                               rtol=1e-14)


def test_bad_input():
    pts, time, vr, sx, sy, rx, ry = random_geometry()
    with pytest.raises(SeisError, match="vrms"):
        dsr_traveltime(pts, time, vr[:, :-1], sx, sy, rx, ry)
    with pytest.raises(SeisError, match="time"):
        dsr_traveltime(pts, time[::-1], vr, sx, sy, rx, ry)
    with pytest.raises(SeisError, match="eta"):
        dsr_traveltime(pts, time, vr, sx, sy, rx, ry, eta=-0.7)
    with pytest.raises(SeisError, match="dt"):
        dsr_traveltime(pts, time, vr, sx, sy, rx, ry, sparse_t0="auto")
    with pytest.raises(SeisError, match="backend"):
        dsr_traveltime(pts, time, vr, sx, sy, rx, ry, backend="gpu")
