"""Dot-product test: ``kirchhoff_model`` is the exact adjoint of ``pstm(antialias=False)``,
with the rho filter too (``rho=True`` on both).

For random m (image) and d (data), <L m, d> must equal <m, L' d> to rounding: relative
mismatch below 1e-4 in float32 and 1e-10 in float64, for both backends.
"""

from __future__ import annotations

import numpy as np
import pytest

from seis_hpc.migration.pstm import kirchhoff_model, pstm

DT = 0.004
NS = 120


def geometry(two_d: bool, seed: int):
    rng = np.random.default_rng(seed)
    ntr = 25
    sx = rng.uniform(0, 1000, ntr)
    rx = sx + rng.uniform(-600, 600, ntr)
    if two_d:
        sy = ry = np.zeros(ntr)
        pts = np.column_stack([np.arange(300, 700, 20.0), np.zeros(20)])
    else:
        sy = rng.uniform(0, 300, ntr)
        ry = sy + rng.uniform(-80, 80, ntr)
        gx, gy = np.meshgrid(np.arange(350, 650, 30.0), np.arange(50, 250, 40.0))
        pts = np.column_stack([gx.ravel(), gy.ravel()])
    time = 0.002 + np.arange(100) * DT  # output axis off the data grid on purpose
    vr = (1700 + 300 * rng.random((len(pts), 1)) + 600 * time[None]).astype(np.float32)
    return sx, sy, rx, ry, pts, time, vr


CASES = [
    {},
    {"interp": "cubic"},
    {"weights": "none"},
    {"weights": "spreading"},
    {"aperture": 300.0, "taper": 0.3},
    {"max_angle": 45.0, "interp": "cubic", "t_start": 0.01},
    # the rho filter and its adjoint (the synthetic diffractors' modelling)
    {"rho": True, "max_angle": 60.0},
]


@pytest.mark.parametrize("kw", CASES)
@pytest.mark.parametrize("two_d", [False, True])
@pytest.mark.parametrize(
    "backend, dtype, tol",
    # the NumPy reference computes in float64 whatever the input: its float64 case covers it
    [("cython", np.float32, 1e-4), ("cython", np.float64, 1e-10), ("numpy", np.float64, 1e-10)],
)
def test_dot_product(kw, two_d, dtype, tol, backend):
    sx, sy, rx, ry, pts, time, vr = geometry(two_d, seed=len(kw) + 7 * two_d)
    rng = np.random.default_rng(11)
    m = rng.standard_normal((len(pts), time.size)).astype(dtype)
    d = rng.standard_normal((sx.size, NS)).astype(dtype)
    Lm = kirchhoff_model(m, pts, time, vr, sx, sy, rx, ry, NS, DT, backend=backend, **kw)
    Ltd = pstm(d, DT, sx, sy, rx, ry, pts, time, vr, antialias=False, backend=backend, **kw)
    assert Lm.dtype == dtype and Ltd.dtype == dtype
    lhs = np.dot(Lm.ravel().astype(np.float64), d.ravel().astype(np.float64))
    rhs = np.dot(m.ravel().astype(np.float64), Ltd.ravel().astype(np.float64))
    # the operator is not trivially zero on this geometry
    assert np.abs(Lm).max() > 0 and np.abs(Ltd).max() > 0
    assert abs(lhs - rhs) / max(abs(lhs), abs(rhs)) < tol
