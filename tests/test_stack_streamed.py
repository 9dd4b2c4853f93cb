"""The stack holds nothing per trace of the survey (issue 19): its blocks' traces are found
by streamed passes over the index's bins in chunks of rows, and a 2D line's shot points by
one streamed pass; the stack is the same bit for bit as the whole-survey computation for
any chunk, group and block size, and its memory does not grow with the survey's traces
(twice the traces per bin) nor with the bins beyond a few bytes per bin (twice the bins in
blocks of the same size)."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
import segyio
from test_stack_blocked import _whole_survey

from seis_hpc import synth
from seis_hpc.engine import stream_plan
from seis_hpc.io import columns as columns_module
from seis_hpc.io.shotpoint import interpolate_shotpoints, line_shotpoints
from seis_hpc.io.volume import read_volume
from seis_hpc.survey import Survey
from seis_hpc.velocity import stack as stack_mod
from seis_hpc.velocity.model import open_vrms
from seis_hpc.velocity.stack import nmo_stack_survey, stack


def _write(tmp_path_factory, name, shots, record=0.5, interval=None):
    p = synth.configure(name, shots=shots, record_length=record)
    if interval is not None:
        p = replace(p, acquisition=replace(p.acquisition, shot_interval=interval))
    out = tmp_path_factory.mktemp(f"{name}_{shots}_{interval}")
    synth.write_survey(p, out)
    Survey.open(out / "shots.sgy")  # index and bins saved: later opens stream the columns
    return out


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return _write(tmp_path_factory, "marine2d", 40)


@pytest.fixture(scope="module")
def line_long(tmp_path_factory):  # twice the CMPs (and traces), the same fold
    return _write(tmp_path_factory, "marine2d", 80)


@pytest.fixture(scope="module")
def line_dense(tmp_path_factory):  # the same CMPs, twice the traces per CMP
    return _write(tmp_path_factory, "marine2d", 80, interval=12.5)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return _write(tmp_path_factory, "tiny3d", 16, record=None)


def _open(folder):
    sv = Survey.open(folder / "shots.sgy")
    assert columns_module.columns_on_file(sv.index, ["inline", "crossline", "offset"])
    return sv


@pytest.mark.parametrize("which", ["line", "cube"])
def test_streamed_stack_equals_whole_survey_stack(which, request):
    """Bins read chunk by chunk (bins=None) from the index file, for chunks of 1,000 and 7
    rows, groups of one block or of ~100 traces or all, blocks of 7 bins or whole inlines:
    the stack of every trace in file order, bit for bit."""
    folder = request.getfixturevalue(which)
    sv = _open(folder)
    idx, grid = sv.index, sv.grid
    vel = open_vrms(folder / "velocity.csv", grid, idx.times())
    want, want_fold = _whole_survey(idx, sv.bin_serial(), grid, vel, 0.3)
    assert np.abs(want).max() > 0.05 and want_fold.max() >= 3  # a real stack
    ns = idx.ns
    sv = _open(folder)  # no column in memory
    for chunk, group, bb in ((1000, 1, 20 * ns * 7), (7, 24 * 100, 20 * ns * grid.n_crossline),
                             (65536, 1 << 40, 20 * ns * 13), (333, 24 * 1000, 1 << 40)):
        got, fold = nmo_stack_survey(sv.index, None, grid, vel, stretch_mute=0.3,
                                     return_fold=True, block_bytes=bb, chunk=chunk,
                                     group_bytes=group)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(fold, want_fold)
        assert not sv.index._columns  # nothing of the survey's columns was loaded


def test_shotpoints_streamed_equal_whole_columns(line, monkeypatch):
    """The shot point of each CMP from the index streamed in chunks of 50 rows (shots of 96
    traces straddle chunks) is what the whole columns give."""
    sv = _open(line)
    idx, grid = sv.index, sv.grid
    monkeypatch.setattr(columns_module, "COLUMN_CHUNK", 50)
    got = line_shotpoints(idx, grid)
    assert not idx._columns
    _, first = np.unique(idx["source_id"], return_index=True)
    with segyio.open(line / "shots.sgy", ignore_geometry=True) as f:  # bytes 197-200
        file_sp = np.array([f.header[int(t)][segyio.TraceField.ShotPoint] for t in first])
    # the first header that numbers the shots (see seis_hpc.io.shotpoint)
    xy = np.column_stack([idx["sx"][first], idx["sy"][first]]).astype(float)
    n_pos = len(np.unique(np.rint(xy), axis=0))
    sp = next(v for v in (file_sp, idx["energy_source_point"][first], idx["ffid"][first])
              if np.all(v != 0) and 2 * len(np.unique(v)) >= n_pos)
    _, shot_cmp = grid.world_to_grid(idx["sx"][first].astype(float),
                                     idx["sy"][first].astype(float))
    want = np.rint(interpolate_shotpoints(grid.crosslines(), shot_cmp, sp)).astype(np.int64)
    assert got is not None and got.n_sources == first.size == 40
    np.testing.assert_array_equal(got.values, want)
    assert np.unique(np.diff(got.values)).size <= 2  # a real SP ramp along the line


def _peak(folder, tmp_path, block_bytes, monkeypatch):
    # chunks of 512 rows (shorter than the surveys, as 65,536 rows are than a real one)
    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", 512)
    # groups of ~500 traces (the default 64 MB of trace lists would hold these surveys)
    monkeypatch.setattr(stack_mod, "GROUP_BYTES", 24 * 500)
    sv = _open(folder)
    tracemalloc.start()
    try:
        stack(sv, folder / "velocity.csv", tmp_path / f"s{folder.name}.h5", progress=False,
              block_bytes=block_bytes, return_stack=False)
        return tracemalloc.get_traced_memory()[1], sv.index.n_traces, sv.grid.n_bins
    finally:
        tracemalloc.stop()


def test_stack_memory_does_not_grow_with_traces_per_bin(line, line_dense, tmp_path,
                                                        monkeypatch):
    """Twice the traces in (about) the same CMPs, in blocks of half the CMPs (so as many
    traces a block: the NMO of a block's traces is the largest buffer): the same peak."""
    p1, n1, b1 = _peak(line, tmp_path, 20 * 251 * 30, monkeypatch)  # 30 CMPs a block
    p2, n2, b2 = _peak(line_dense, tmp_path, 20 * 251 * 15, monkeypatch)
    assert n2 >= 1.9 * n1 and abs(b2 - b1) <= 0.05 * b1, (n1, n2, b1, b2)
    # 2 B a trace is ~8,000 B here; one 24 B list entry per trace would be 92,000 B
    assert p2 <= p1 + 2 * (n2 - n1) + 64 * abs(b2 - b1), (p1, p2)


def test_stack_memory_grows_only_with_the_bins(line, line_long, tmp_path, monkeypatch):
    """Twice the CMPs (and traces) in blocks of the same size: a few bytes per bin (fold,
    shot points, the list of blocks), nothing per trace."""
    bb = 20 * 251 * 30
    p1, n1, b1 = _peak(line, tmp_path, bb, monkeypatch)
    p2, n2, b2 = _peak(line_long, tmp_path, bb, monkeypatch)
    assert n2 >= 1.9 * n1 and b2 >= 1.5 * b1, (n1, n2, b1, b2)
    # measured: 61 B a bin; 24 B per trace (3,840 more) would be 92,000 B
    assert p2 <= p1 + 128 * (b2 - b1), (p1, p2, n2 - n1, b2 - b1)


@pytest.mark.parametrize("which", ["line", "cube"])
def test_stack_file_streamed_equals_whole_survey(which, request, tmp_path, monkeypatch):
    """stack() of a survey whose columns stay on file, in small blocks, groups and chunks:
    the whole-survey stack in the HDF5 and the SEG-Y (fold in NStackedTraces), and a 2D
    line's shot points, as from the whole columns."""
    folder = request.getfixturevalue(which)
    sv = _open(folder)
    vel = open_vrms(folder / "velocity.csv", sv.grid, sv.index.times())
    want, fold = _whole_survey(sv.index, sv.bin_serial(), sv.grid, vel, 0.3)
    want_sp = line_shotpoints(sv.index, sv.grid)  # in one chunk of 65,536 rows
    assert (want_sp is not None) == (which == "line")
    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", 300)
    monkeypatch.setattr(stack_mod, "GROUP_BYTES", 24 * 400)
    sv = _open(folder)
    out, sgy = tmp_path / "s.h5", tmp_path / "s.sgy"
    stack(sv, folder / "velocity.csv", out, segy=sgy, progress=False,
          block_bytes=20 * sv.index.ns * 5, return_stack=False)
    assert not sv.index._columns
    vol = read_volume(out)
    np.testing.assert_array_equal(vol.data, want)
    with segyio.open(sgy, ignore_geometry=True) as f:
        np.testing.assert_array_equal(f.trace.raw[:].reshape(want.shape), want)
        np.testing.assert_array_equal(f.attributes(segyio.TraceField.NStackedTraces)[:],
                                      fold.ravel())
        if want_sp is not None:
            np.testing.assert_array_equal(vol.shotpoint, want_sp.values)
            np.testing.assert_array_equal(f.attributes(segyio.TraceField.ShotPoint)[:],
                                          want_sp.values)
