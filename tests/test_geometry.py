"""Bin grid transforms: world <-> grid round trips, rotation and handedness."""

import numpy as np
import pytest

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid


@pytest.mark.parametrize("azimuth", [0.0, 30.0, 135.0, 271.5])
@pytest.mark.parametrize("hand", [1, -1])
def test_world_grid_round_trip(azimuth, hand):
    g = BinGrid(1000.0, 2000.0, azimuth, 12.5, 25.0, 10, 500, 8, 12, hand)
    il = np.array([10, 13.5, 17])
    xl = np.array([500, 507.25, 511])
    x, y = g.grid_to_world(il, xl)
    il2, xl2 = g.world_to_grid(x, y)
    np.testing.assert_allclose(il2, il, atol=1e-9)
    np.testing.assert_allclose(xl2, xl, atol=1e-9)
    # neighbouring crosslines are bin_inline apart, neighbouring inlines bin_crossline apart
    cx, cy = g.cdp_xy()
    assert np.hypot(cx[0, 1] - cx[0, 0], cy[0, 1] - cy[0, 0]) == pytest.approx(12.5)
    assert np.hypot(cx[1, 0] - cx[0, 0], cy[1, 0] - cy[0, 0]) == pytest.approx(25.0)


def test_azimuth_and_handedness_directions():
    g = BinGrid(0.0, 0.0, 90.0, 10.0, 20.0, 1, 1, 2, 2)  # inline runs east
    x, y = g.grid_to_world(1, 2)
    assert (x, y) == pytest.approx((10.0, 0.0))
    x, y = g.grid_to_world(2, 1)  # next inline toward azimuth + 90 = south
    assert (x, y) == pytest.approx((0.0, -20.0))
    g2 = BinGrid(0.0, 0.0, 90.0, 10.0, 20.0, 1, 1, 2, 2, handedness=-1)
    assert g2.grid_to_world(2, 1) == pytest.approx((0.0, 20.0))


def test_points_order_and_attrs_round_trip():
    g = BinGrid(5.0, 7.0, 45.0, 6.25, 25.0, 3, 4, 2, 3)
    pts = g.points()
    assert pts.shape == (6, 2)
    cx, cy = g.cdp_xy()
    np.testing.assert_array_equal(pts[:, 0], cx.ravel())
    assert BinGrid.from_attrs(g.to_attrs()) == g
    line = BinGrid.line(0.0, 0.0, 0.0, 6.25, 100, 5)
    assert line.shape == (5,) and line.is_2d
    assert BinGrid.from_attrs(line.to_attrs()) == line


@pytest.mark.parametrize("kw, msg", [
    (dict(bin_inline=0.0), "bin sizes"),
    (dict(n_crossline=0), ">= 1 bin"),
    (dict(handedness=2), "handedness"),
])
def test_impossible_grids_are_refused(kw, msg):
    base = dict(x0=0.0, y0=0.0, azimuth=0.0, bin_inline=12.5, bin_crossline=25.0, inline0=1,
                crossline0=1, n_inline=2, n_crossline=2)
    with pytest.raises(SeisError, match=msg):
        BinGrid(**{**base, **kw})
