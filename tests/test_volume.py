"""The HDF5 volume format: layout, dimension scales, provenance, atomic writes, xarray."""

import h5py
import numpy as np
import pytest

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid
from seis_hpc.io.volume import Volume, read_volume, write_volume


def grid3d():
    return BinGrid(500_000.0, 3_650_000.0, 30.0, 6.25, 25.0, 100, 2000, 4, 7)


def test_3d_image_roundtrip_and_layout(tmp_path):
    g = grid3d()
    t = np.arange(50) * 0.004
    data = np.random.default_rng(0).normal(size=(4, 7, 50)).astype(np.float32)
    vol = Volume(data, g, t, config="aperture = 1000.0\n", history=["synth", "pstm"])
    path = tmp_path / "img.h5"
    write_volume(path, vol)
    with h5py.File(path) as f:
        assert f["image"].dtype == np.float32 and f["image"].chunks is not None
        assert [d.label or f["image"].dims[i][0].name.strip("/")
                for i, d in enumerate(f["image"].dims)] == ["inline", "crossline", "time"]
        assert list(f["inline"][...]) == [100, 101, 102, 103]
        assert list(f["crossline"][...]) == list(range(2000, 2007))
        assert f["time"].attrs["units"] == "s"
        # bin centre of (101, 2003): 3 bins along the inline, 1 across (azimuth 30 deg)
        x, y = f["cdp_x"][1, 3], f["cdp_y"][1, 3]
        a = np.radians(30.0)
        assert x == pytest.approx(500_000 + 3 * 6.25 * np.sin(a) + 25 * np.cos(a))
        assert y == pytest.approx(3_650_000 + 3 * 6.25 * np.cos(a) - 25 * np.sin(a))
        assert "seis_hpc" in f.attrs["software"]
    back = read_volume(path)
    np.testing.assert_array_equal(back.data, data)
    assert back.grid == g and back.history == ["synth", "pstm"]
    assert back.config == "aperture = 1000.0\n"
    assert not list(tmp_path.glob(".*tmp*"))


def test_2d_and_gathers_dims(tmp_path):
    g = BinGrid.line(0.0, 0.0, 90.0, 6.25, 1, 20)
    t = np.arange(30) * 0.002
    write_volume(tmp_path / "v.h5", Volume(np.full((20, 30), 1500, np.float32), g, t, "vrms"))
    with h5py.File(tmp_path / "v.h5") as f:
        assert f["vrms"].shape == (20, 30) and f["vrms"].attrs["units"] == "m/s"
        assert f["cdp_x"][5] == pytest.approx(5 * 6.25)  # azimuth 90: along +x
    gath = np.zeros((3, 20, 30), np.float32)
    write_volume(tmp_path / "g.h5",
                 Volume(gath, g, t, "gathers", offset=np.array([100.0, 300.0, 500.0])))
    back = read_volume(tmp_path / "g.h5")
    assert back.dims() == ("offset", "cmp", "time") and list(back.offset) == [100, 300, 500]


def test_shape_mismatch_is_refused_and_nothing_written(tmp_path):
    vol = Volume(np.zeros((4, 6, 50), np.float32), grid3d(), np.arange(50) * 0.004)
    with pytest.raises(SeisError, match="does not match"):
        write_volume(tmp_path / "bad.h5", vol)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "img.h5"
    g = grid3d()
    t = np.arange(50) * 0.004
    write_volume(path, Volume(np.ones((4, 7, 50), np.float32), g, t))
    import seis_hpc.io.volume as volmod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(volmod, "write_into", boom)
    with pytest.raises(RuntimeError):
        write_volume(path, Volume(np.zeros((4, 7, 50), np.float32), g, t))
    assert read_volume(path).data.min() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["img.h5"]


def test_xarray_opens_the_volume(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    g = grid3d()
    t = np.arange(50) * 0.004
    data = np.arange(4 * 7 * 50, dtype=np.float32).reshape(4, 7, 50)
    write_volume(tmp_path / "img.h5", Volume(data, g, t))
    ds = xr.open_dataset(tmp_path / "img.h5", engine="h5netcdf", phony_dims="access")
    assert ds["image"].dims == ("inline", "crossline", "time")
    assert float(ds["image"].sel(inline=102, crossline=2001).isel(time=3)) == data[2, 1, 3]
    assert ds["cdp_x"].dims == ("inline", "crossline")
    ds.close()


def test_info_summarises_a_volume(tmp_path, capsys):
    """``seis-hpc info`` on a volume: dimension names, time range, value range, history."""
    import json

    from seis_hpc.cli import main

    g = grid3d()
    t = 0.1 + np.arange(50) * 0.004
    data = np.zeros((4, 7, 50), np.float32)
    data[1, 2, 3], data[3, 6, 49] = -2.0, 5.0
    write_volume(tmp_path / "img.h5", Volume(data, g, t, history=["synth", "pstm"]))
    assert main(["info", str(tmp_path / "img.h5"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dims"] == ["inline", "crossline", "time"]
    assert info["start_time_ms"] == pytest.approx(100.0)
    assert info["end_time_ms"] == pytest.approx(100.0 + 49 * 4.0)
    r = info["image_range"]
    assert (r["min"], r["max"]) == (-2.0, 5.0)
    assert r["rms"] == pytest.approx(np.sqrt((4 + 25) / data.size))
    assert info["history"] == ["synth", "pstm"]
