"""Velocity for the image grid: CSV functions, vrms volumes on other grids, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid
from seis_hpc.io.volume import Volume, write_volume
from seis_hpc.velocity.model import load_vrms, open_vrms

GRID = BinGrid(1000.0, 500.0, 25.0, 12.5, 25.0, 10, 200, 4, 9)
TIME = np.arange(0, 1.0001, 0.004)


def test_csv_function_interpolated_and_clamped(tmp_path):
    p = tmp_path / "v.csv"
    p.write_text("# water then sediment\ntime_s,vrms_mps\n0.2,1500\n0.6,1900\n")
    v = load_vrms(p, GRID, TIME)
    assert v.shape == (GRID.n_bins, len(TIME)) and v.dtype == np.float32
    want = np.interp(TIME, [0.2, 0.6], [1500, 1900])
    np.testing.assert_allclose(v, np.broadcast_to(want, v.shape), rtol=1e-6)


@pytest.mark.parametrize("text,msg", [
    ("time_s,v\n0,1500\n", "missing column(s) vrms_mps"),
    ("time_s,vrms_mps\n0,1500\n0.5,-3\n", "line 3: vrms_mps must be > 0"),
    ("time_s,vrms_mps\n0,1500\n0.5,nan\n", "line 3: time_s/vrms_mps is NaN"),
    ("time_s,vrms_mps\n0,1500\n0.5,1600\n0.5,1700\n", "line 4: time_s must increase"),
    ("time_s,vrms_mps\n0,fast\n", "line 2: time_s and vrms_mps must be numbers"),
])
def test_csv_errors_name_file_and_line(tmp_path, text, msg):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(SeisError) as e:
        load_vrms(p, GRID, TIME)
    assert msg in str(e.value) and str(p) in str(e.value)


def test_volume_on_another_grid_bilinear_exact_for_linear_field(tmp_path):
    # A coarser, shifted grid around the image grid; v linear in x, y and t is reproduced
    # exactly by bilinear + linear interpolation.
    vg = BinGrid(900.0, 400.0, 25.0, 50.0, 50.0, 1, 1, 8, 10)
    vt = np.arange(0, 1.2, 0.1)
    x, y = vg.cdp_xy()

    def field(x, y, t):
        return 1500 + 0.2 * (x - 1000) + 0.1 * (y - 500) + 800 * t

    data = field(x[..., None], y[..., None], vt).astype(np.float32)
    write_volume(tmp_path / "v.h5", Volume(data, vg, vt, "vrms"))
    v = load_vrms(tmp_path / "v.h5", GRID, TIME)
    px, py = GRID.points().T
    np.testing.assert_allclose(v, field(px[:, None], py[:, None], TIME), rtol=1e-5)
    m = open_vrms(tmp_path / "v.h5", GRID, TIME)
    # A window of bins (inlines 1-2, crosslines 2-4 of the 4 x 9 grid) against the field
    # itself at those bins' coordinates.
    wx, wy = (c.reshape(4, 9)[1:3, 2:5].ravel() for c in (px, py))
    np.testing.assert_allclose(m.window(1, 3, 2, 5), field(wx[:, None], wy[:, None], TIME),
                               rtol=1e-5)


def test_volume_with_bad_values_refused(tmp_path):
    vt = np.arange(0, 1.0, 0.1)
    data = np.full(GRID.shape + (len(vt),), 2000, np.float32)
    data[2, 3, 4] = np.nan
    write_volume(tmp_path / "v.h5", Volume(data, GRID, vt, "vrms"))
    with pytest.raises(SeisError, match="NaN"):
        load_vrms(tmp_path / "v.h5", GRID, TIME)
    data[2, 3, 4] = 0
    write_volume(tmp_path / "v.h5", Volume(data, GRID, vt, "vrms"))
    with pytest.raises(SeisError, match=r"vrms\[2, 3, 4\] \(inline 12, crossline 203, "
                       r"t = 0.4 s\): vrms 0 m/s is outside the physical range 300..10000"):
        load_vrms(tmp_path / "v.h5", GRID, TIME)
