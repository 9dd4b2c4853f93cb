"""Trace index columns and survey geometry against surveys whose geometry is known exactly."""

from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pytest

from seis_hpc.geometry import BinGrid
from seis_hpc.io import index as index_mod
from seis_hpc.io.index import TraceIndex
from seis_hpc.io.segy import write_segy
from seis_hpc.survey import Survey

NS, DT = 16, 0.004


def line_2d(n_shots=10, n_ch=24, group=12.5, shot_step=25.0, az=30.0, near=100.0):
    """Towed-streamer 2D line along azimuth ``az``: receivers trail the source."""
    u = np.array([math.sin(math.radians(az)), math.cos(math.radians(az))])
    origin = np.array([431000.0, 6470000.0])
    s_pos = np.repeat(np.arange(n_shots) * shot_step, n_ch)
    r_pos = s_pos - near - np.tile(np.arange(n_ch), n_shots) * group
    sx, sy = origin[0] + s_pos * u[0], origin[1] + s_pos * u[1]
    rx, ry = origin[0] + r_pos * u[0], origin[1] + r_pos * u[1]
    h = {"FieldRecord": 1000 + np.repeat(np.arange(n_shots), n_ch),
         "TraceNumber": np.tile(np.arange(1, n_ch + 1), n_shots),
         "SourceX": sx, "SourceY": sy, "GroupX": rx, "GroupY": ry,
         "offset": np.rint(r_pos - s_pos)}
    return h, u, origin, s_pos, r_pos


def _write(path, h, ns=NS, fmt=5):
    ntr = len(h["FieldRecord"])
    data = (np.arange(ntr)[:, None] * 1000 + np.arange(ns)[None, :]).astype(np.float32)
    write_segy(path, data, h, DT, fmt=fmt)
    return data


def test_index_columns_2d(tmp_path):
    h, u, origin, s_pos, r_pos = line_2d()
    p = tmp_path / "line.sgy"
    data = _write(p, h)
    idx = TraceIndex.build(p)
    assert idx.path == tmp_path / "line.sgy.index.h5" and idx.path.is_file()
    n = len(s_pos)
    assert idx.n_traces == n and idx.ns == NS and idx.dt == pytest.approx(DT)
    assert np.allclose(idx["offset"], np.abs(s_pos - r_pos), atol=0.01)
    assert np.array_equal(idx["header_offset"], h["offset"])
    # receivers trail: source -> receiver points opposite to the line direction
    assert np.allclose(idx["azimuth"], (30.0 + 180.0) % 360, atol=1e-3)
    assert np.allclose(idx["mx"], origin[0] + 0.5 * (s_pos + r_pos) * u[0], atol=0.01)
    assert np.array_equal(idx["source_id"], np.repeat(np.arange(10), 24))
    assert np.array_equal(idx["byte_offset"], 3600 + np.arange(n) * (240 + 4 * NS))
    with h5py.File(idx.path) as f:
        for k in ("ffid", "channel", "source_id", "sx", "sy", "rx", "ry", "mx", "my",
                  "offset", "azimuth", "cmp", "inline", "crossline", "byte_offset"):
            assert f[k].shape == (n,)
        for k in ("segy_path", "ns", "dt", "t_start", "format", "endian", "kind", "n_traces",
                  "trace_bytes"):
            assert k in f.attrs
        assert f.attrs["trace_bytes"] == 240 + 4 * NS and f.attrs["kind"] == "segy"
    again = TraceIndex.open(idx.path)
    assert np.array_equal(again["mx"], idx["mx"])
    ids = np.array([17, 3, 200])
    assert np.array_equal(again.read_traces(ids), data[ids])


def test_survey_2d_cmp_numbers(tmp_path):
    h, u, origin, s_pos, r_pos = line_2d()
    p = tmp_path / "line.sgy"
    _write(p, h)
    s = Survey.open(p)
    assert s.is_2d and s.method == "line-fit"
    assert s.grid.bin_inline == pytest.approx(6.25)  # half the 12.5 m group interval
    # coordinates are stored to 1 cm: over the ~400 m of midpoints that is 1.5e-3 deg
    assert s.grid.azimuth == pytest.approx(30.0, abs=2e-3) or \
        s.grid.azimuth == pytest.approx(210.0, abs=2e-3)
    m = 0.5 * (s_pos + r_pos)
    cmp = s.index["cmp"]
    sign = 1 if s.grid.azimuth == pytest.approx(30.0, abs=2e-3) else -1
    # CMP number advances one per 6.25 m of midpoint, exactly
    assert np.allclose((cmp - cmp[0]) * 6.25, sign * (m - m[0]), atol=1e-6)
    assert cmp.min() == 1 and s.grid.n_crossline == cmp.max()
    gx, gy = s.grid.grid_to_world(0, cmp)
    assert np.allclose(gx, s.index["mx"], atol=0.01) and np.allclose(gy, s.index["my"], atol=0.01)
    # fold, offsets and azimuths per CMP against a direct count
    fold = s.fold()
    assert fold.shape == (s.grid.n_crossline,) and fold.sum() == len(cmp)
    assert np.array_equal(fold, np.bincount(cmp - 1, minlength=s.grid.n_crossline))
    stats = s.offset_stats()
    k = int(np.argmax(fold))
    sel = cmp == k + 1
    off = np.abs(s_pos - r_pos)[sel]
    assert stats["min"][k] == pytest.approx(off.min(), abs=0.01)
    assert stats["max"][k] == pytest.approx(off.max(), abs=0.01)
    assert stats["mean"][k] == pytest.approx(off.mean(), abs=0.01)
    hist, edges = s.azimuth_histogram(8)
    sector = int(210 // 45)  # every source -> receiver azimuth is 210 deg
    assert hist.shape == (s.grid.n_crossline, 8) and edges[sector] < 210 < edges[sector + 1]
    assert np.array_equal(hist[:, sector], fold) and hist.sum() == len(cmp)
    # the bins were stored in the index file
    with h5py.File(s.index.path) as f:
        assert np.array_equal(f["cmp"][...], cmp)
        assert f.attrs["grid_is_2d"] == 1
    # a given CMP interval overrides the default
    s2 = Survey.open(p, cmp_interval=12.5)
    assert s2.grid.bin_inline == 12.5 and s2.fold().sum() == len(cmp)
    assert np.abs(np.diff(s2.index["cmp"][:24])).max() == 1


def _grid_3d():
    return BinGrid(x0=600000.0, y0=6100000.0, azimuth=35.0, bin_inline=12.5, bin_crossline=25.0,
                   inline0=1000, crossline0=2000, n_inline=6, n_crossline=20, handedness=-1)


def _survey_3d(with_headers: bool):
    """Shots along inlines: each trace's midpoint on a bin centre of the truth grid."""
    g = _grid_3d()
    along, across = g.unit_vectors()
    il, xl, off = np.meshgrid(g.inlines(), g.crosslines(), [200.0, 600.0, 1000.0], indexing="ij")
    il, xl, off = il.ravel(), xl.ravel(), off.ravel()
    mx, my = g.grid_to_world(il, xl)
    sx, sy = mx + 0.5 * off * along[0], my + 0.5 * off * along[1]
    rx, ry = mx - 0.5 * off * along[0], my - 0.5 * off * along[1]
    n = len(il)
    h = {"FieldRecord": np.arange(n) // 3, "TraceNumber": np.arange(n) % 3 + 1,
         "SourceX": sx, "SourceY": sy, "GroupX": rx, "GroupY": ry, "offset": off}
    if with_headers:
        h.update(INLINE_3D=il, CROSSLINE_3D=xl, CDP_X=mx, CDP_Y=my)
    return g, h, il, xl


def test_survey_3d_from_headers(tmp_path):
    g, h, il, xl = _survey_3d(True)
    p = tmp_path / "cube.sgy"
    _write(p, h)
    s = Survey.open(p)
    assert not s.is_2d and s.method == "headers"
    got = s.grid
    assert (got.inline0, got.crossline0, got.n_inline, got.n_crossline, got.handedness) == \
        (g.inline0, g.crossline0, g.n_inline, g.n_crossline, g.handedness)
    # coordinates stored to 1 cm over a 250 m crossline extent: ~1e-3 deg
    assert got.azimuth == pytest.approx(g.azimuth, abs=2e-3)
    assert got.bin_inline == pytest.approx(12.5, abs=1e-3)
    assert got.bin_crossline == pytest.approx(25.0, abs=1e-3)
    assert got.x0 == pytest.approx(g.x0, abs=0.01) and got.y0 == pytest.approx(g.y0, abs=0.01)
    assert np.array_equal(s.index["inline"], il) and np.array_equal(s.index["crossline"], xl)
    assert s.fold().shape == g.shape and np.all(s.fold() == 3)
    stats = s.offset_stats()
    assert np.allclose(stats["min"], 200.0, atol=0.01) and np.allclose(stats["max"], 1000, atol=.01)


def test_survey_3d_headers_not_a_rotation(tmp_path):
    g, h, il, xl = _survey_3d(True)
    h["CDP_X"] = h["CDP_X"] + 7.0 * (il - il.min())  # shear: axes no longer perpendicular
    p = tmp_path / "shear.sgy"
    _write(p, h)
    from seis_hpc.errors import SeisError

    with pytest.raises(SeisError, match="shear.sgy.*(perpendicular|follow)"):
        Survey.open(p)
    assert not (tmp_path / "shear.sgy.index.h5").exists()


def test_survey_3d_from_midpoints(tmp_path):
    g, h, il, xl = _survey_3d(False)
    p = tmp_path / "cube.sgy"
    _write(p, h)
    s = Survey.open(p, cmp_interval=12.5)
    assert not s.is_2d and s.method == "midpoints"
    # inline direction from the sail line (source -> receiver axis), folded into 0..180
    assert s.grid.azimuth == pytest.approx(35.0, abs=2e-3)  # cm coordinates
    assert s.grid.bin_inline == 12.5 and s.grid.bin_crossline == 25.0
    assert s.fold().sum() == len(il) and s.fold().max() == 3
    # each trace's bin centre is its midpoint
    cx, cy = s.grid.grid_to_world(s.index["inline"], s.index["crossline"])
    assert np.allclose(cx, s.index["mx"], atol=0.01) and np.allclose(cy, s.index["my"], atol=0.01)
    # same traces, forced 2D, fold onto one line
    s2 = Survey.open(p, is_2d=True, save=False)
    assert s2.is_2d


def test_given_grid(tmp_path):
    g, h, il, xl = _survey_3d(False)
    p = tmp_path / "cube.sgy"
    _write(p, h)
    s = Survey.open(p, grid=g)
    assert s.grid == g and s.method == "given"
    assert np.array_equal(s.index["inline"], il) and np.array_equal(s.index["crossline"], xl)


def test_stale_index_rebuilt(tmp_path):
    h, *_ = line_2d(n_shots=4)
    p = tmp_path / "line.sgy"
    _write(p, h)
    first = TraceIndex.for_file(p)
    assert first.n_traces == 96
    reused = TraceIndex.for_file(p)
    assert reused.path == first.path and reused.matches(p)
    h2, *_ = line_2d(n_shots=6)
    _write(p, h2)
    os.utime(p, ns=(1, 1))  # a different mtime even on a coarse clock
    assert TraceIndex.open(first.path).is_stale()
    fresh = TraceIndex.for_file(p)
    assert fresh.n_traces == 144 and not fresh.is_stale()
    assert TraceIndex.open(first.path).n_traces == 144


def test_index_in_cache_when_folder_read_only(tmp_path, monkeypatch):
    # root ignores permissions, so the unwritable folder is simulated at the check
    h, *_ = line_2d(n_shots=2)
    data_dir = tmp_path / "ro"
    data_dir.mkdir()
    p = data_dir / "line.sgy"
    _write(p, h)
    monkeypatch.setenv("SEIS_HPC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(index_mod, "_dir_writable", lambda folder: folder != data_dir)
    idx = TraceIndex.build(p)
    assert idx.path.parent == tmp_path / "cache" and idx.path.name.startswith("line.sgy-")
    assert not list(data_dir.glob("*.h5"))
    assert TraceIndex.for_file(p).path == idx.path


def test_nan_sample_named(tmp_path):
    from seis_hpc.errors import SeisError

    h, *_ = line_2d(n_shots=2)
    p = tmp_path / "nan.sgy"
    data = np.ones((48, NS), dtype=np.float32)
    data[30, 5] = np.nan
    write_segy(p, data, h, DT)
    idx = TraceIndex.scan(p)
    assert np.array_equal(idx.read_traces([0, 29, 31]), np.ones((3, NS)))
    with pytest.raises(SeisError, match=r"nan.sgy: trace 30 \(FFID 1001, channel 7\): sample 5"):
        idx.read_traces([0, 30])
    with pytest.raises(SeisError, match="trace 30"):
        TraceIndex.scan(p, check_samples=True)


def test_info_and_index_commands(tmp_path, capsys):
    import json

    from seis_hpc.cli import main
    from seis_hpc.io.volume import Volume, write_volume

    h, u, origin, s_pos, r_pos = line_2d()
    p = tmp_path / "line.sgy"
    _write(p, h, fmt=1)
    out = tmp_path / "line.idx.h5"
    assert main(["index", str(p), "--index", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    fold = np.bincount(Survey.open(p, index_path=out, save=False).index["cmp"])[1:]
    assert rep["traces"] == 240 and rep["geometry"] == "2D" and rep["index"] == str(out)
    assert rep["fold_max"] == fold.max() and rep["fold_min"] == fold.min()
    assert rep["shots"] == 10 and out.is_file()
    assert main(["info", str(p), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["traces"], info["samples"], info["interval_ms"]) == (240, NS, 4.0)
    assert info["format"].startswith("1 (IBM") and info["byte_order"] == "big"
    assert info["record_length_ms"] == pytest.approx((NS - 1) * 4.0)
    assert info["header_ranges"]["ffid"] == [1000, 1009]
    assert info["fold_max"] == fold.max()
    assert not list(tmp_path.glob("line.sgy.index.h5"))  # info writes nothing
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kind: trace index" in text and "2D line" in text
    vol = Volume(np.zeros((5, 8), np.float32), BinGrid.line(0, 0, 90, 6.25, 1, 5),
                 np.arange(8) * 0.004)
    write_volume(tmp_path / "img.h5", vol)
    assert main(["info", str(tmp_path / "img.h5"), "--json"]) == 0
    v = json.loads(capsys.readouterr().out)
    assert v["shape"] == [5, 8] and v["interval_ms"] == pytest.approx(4.0)
    assert v["grid"].startswith("2D line: CMP 1..5")
