"""SEG-Y export of volumes: segyio reads the 3D geometry (inline/crossline), the 2D CDP
numbers, coordinates and the gathers' offsets back."""

from __future__ import annotations

import numpy as np
import pytest
import segyio

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid
from seis_hpc.io.export import write_volume_segy
from seis_hpc.io.volume import Volume


def _grid3d():
    return BinGrid(500000.0, 3650000.0, 30.0, 6.25, 25.0, 100, 1000, 4, 7)


def test_3d_stack_reads_back_with_geometry(tmp_path):
    g = _grid3d()
    t = np.arange(0.0, 0.4, 0.004)
    data = np.random.default_rng(1).normal(size=g.shape + (t.size,)).astype(np.float32)
    write_volume_segy(tmp_path / "s.sgy", Volume(data, g, t, "image"))
    with segyio.open(tmp_path / "s.sgy") as f:  # geometry inferred, as interpreters do
        np.testing.assert_array_equal(f.ilines, g.inlines())
        np.testing.assert_array_equal(f.xlines, g.crosslines())
        np.testing.assert_allclose(f.iline[102], data[2], atol=0)
        np.testing.assert_allclose(f.xline[1003][:, 10], data[:, 3, 10])
        n = 2 * g.n_crossline + 5  # inline 102, crossline 1005
        h = f.header[n]
        x, y = g.grid_to_world(102, 1005)
        scal = h[segyio.TraceField.SourceGroupScalar]
        assert scal == -100
        assert h[segyio.TraceField.CDP_X] / 100 == pytest.approx(float(x), abs=0.01)
        assert h[segyio.TraceField.CDP_Y] / 100 == pytest.approx(float(y), abs=0.01)
        assert h[segyio.TraceField.CDP] == n + 1
        np.testing.assert_allclose(f.samples, t * 1e3)


def test_vrms_volume_and_2d_line(tmp_path):
    g = BinGrid.line(1000.0, 2000.0, 45.0, 6.25, 11, 30)
    t = np.arange(0.1, 1.0, 0.002)
    v = (1500.0 + 1000.0 * t[None, :] + np.arange(30)[:, None]).astype(np.float32)
    write_volume_segy(tmp_path / "v.sgy", Volume(v, g, t, "vrms"))
    with segyio.open(tmp_path / "v.sgy", ignore_geometry=True) as f:
        np.testing.assert_array_equal(f.attributes(segyio.TraceField.CDP)[:], np.arange(11, 41))
        np.testing.assert_allclose(f.trace.raw[:], v)
        assert f.header[0][segyio.TraceField.DelayRecordingTime] == 100
        x, _ = g.grid_to_world(0, 20)
        assert f.header[9][segyio.TraceField.CDP_X] / 100 == pytest.approx(float(x), abs=0.01)


def test_gathers_read_back_with_offsets(tmp_path):
    g = _grid3d()
    t = np.arange(0.0, 0.2, 0.004)
    off = np.array([150.0, 450.0, 750.0])
    data = np.random.default_rng(2).normal(size=(3,) + g.shape + (t.size,)).astype(np.float32)
    write_volume_segy(tmp_path / "g.sgy", Volume(data, g, t, "gathers", offset=off))
    with segyio.open(tmp_path / "g.sgy") as f:
        np.testing.assert_array_equal(f.offsets, off.astype(int))
        np.testing.assert_allclose(f.iline[101, 450], data[1, 1], atol=0)


def test_irregular_time_axis_is_refused(tmp_path):
    g = BinGrid.line(0.0, 0.0, 0.0, 6.25, 1, 3)
    t = np.array([0.0, 0.002, 0.005])
    with pytest.raises(SeisError, match="not regular"):
        write_volume_segy(tmp_path / "x.sgy", Volume(np.zeros((3, 3), np.float32), g, t))
    assert not (tmp_path / "x.sgy").exists()
