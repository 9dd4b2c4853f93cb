"""The NMO stack block by block (issue 19): the same stack bit for bit as the whole-survey
computation, for any block size, in 2D and 3D; and a memory that does not grow with the
survey (tracemalloc peak of a line and of the same line with twice the CMPs)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import segyio

from seis_hpc import synth
from seis_hpc.io.volume import read_volume
from seis_hpc.survey import Survey
from seis_hpc.velocity.model import open_vrms
from seis_hpc.velocity.nmo import nmo_correct
from seis_hpc.velocity.stack import bin_blocks, nmo_stack_survey, stack


def _survey(tmp_path_factory, name, shots, record=0.5):
    p = synth.configure(name, shots=shots, record_length=record)
    out = tmp_path_factory.mktemp(f"{name}_{shots}")
    synth.write_survey(p, out)
    return out


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return _survey(tmp_path_factory, "marine2d", 40)


@pytest.fixture(scope="module")
def line2(tmp_path_factory):
    return _survey(tmp_path_factory, "marine2d", 104)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return _survey(tmp_path_factory, "tiny3d", 16, record=None)


def _whole_survey(idx, bins, grid, vel, stretch_mute):
    """The stack as it was computed before blocks: per inline, every trace of the inline in
    file order, summed in float64 and divided by the live fold of each sample."""
    b = np.asarray(bins)
    off = np.asarray(idx["offset"], dtype=np.float64)
    ns, nj = idx.ns, grid.n_crossline
    total = np.zeros((grid.n_bins, ns))
    fold = np.zeros((grid.n_bins, ns), dtype=np.int64)
    for i in range(grid.n_inline):
        ids = np.flatnonzero((b >= i * nj) & (b < (i + 1) * nj))
        if ids.size:
            v = np.asarray(vel.window(i, i + 1, 0, nj), dtype=np.float64)
            out = nmo_correct(idx.read_traces(ids), off[ids], idx.dt, v[b[ids] - i * nj],
                              t_start=idx.t_start, stretch_mute=stretch_mute)
            np.add.at(total, b[ids], out.astype(np.float64))
            np.add.at(fold, b[ids], (out != 0.0).astype(np.int64))
    st = np.where(fold > 0, total / np.maximum(fold, 1), 0.0).astype(np.float32)
    return st.reshape(grid.shape + (ns,)), fold.max(axis=1).reshape(grid.shape)


@pytest.mark.parametrize("which", ["line", "cube"])
def test_blocked_stack_equals_whole_survey_stack(which, request):
    folder = request.getfixturevalue(which)
    sv = Survey.open(folder / "shots.sgy")
    idx, grid = sv.index, sv.grid
    vel = open_vrms(folder / "velocity.csv", grid, idx.times())
    want, want_fold = _whole_survey(idx, sv.bin_serial(), grid, vel, 0.3)
    assert np.abs(want).max() > 0.05 and want_fold.max() >= 3  # a real stack
    ns = idx.ns
    # one block, whole inlines, pieces of an inline of 7 bins, one bin a block
    for bb in (1 << 40, 20 * ns * grid.n_crossline, 20 * ns * 7, 1):
        blocks = bin_blocks(grid, ns, bb)
        assert len(blocks) > 1 or bb == 1 << 40 or grid.n_inline == 1
        got, fold = nmo_stack_survey(idx, sv.bin_serial(), grid, vel, stretch_mute=0.3,
                                     return_fold=True, block_bytes=bb)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(fold, want_fold)


def test_stack_file_written_in_blocks_equals_whole_survey(line, tmp_path):
    """stack() with small blocks writes the whole-survey stack, HDF5 and SEG-Y."""
    sv = Survey.open(line / "shots.sgy")
    vel = open_vrms(line / "velocity.csv", sv.grid, sv.index.times())
    want, fold = _whole_survey(sv.index, sv.bin_serial(), sv.grid, vel, 0.3)
    out, sgy = tmp_path / "s.h5", tmp_path / "s.sgy"
    assert stack(sv, line / "velocity.csv", out, segy=sgy, progress=False,
                 block_bytes=20 * sv.index.ns * 5, return_stack=False) is None
    np.testing.assert_array_equal(read_volume(out).data, want)
    with segyio.open(sgy, ignore_geometry=True) as f:
        np.testing.assert_array_equal(f.trace.raw[:], want)
        np.testing.assert_array_equal(f.attributes(segyio.TraceField.NStackedTraces)[:], fold)


def _peak(folder, tmp_path, block_bytes):
    sv = Survey.open(folder / "shots.sgy")  # the index and bins, before counting
    bins = sv.bin_serial()
    tracemalloc.start()
    try:
        stack(sv, folder / "velocity.csv", tmp_path / f"s{folder.name}.h5", progress=False,
              block_bytes=block_bytes, return_stack=False)
        return tracemalloc.get_traced_memory()[1], sv.index.n_traces, sv.grid.n_bins, bins
    finally:
        tracemalloc.stop()


def test_stack_memory_does_not_grow_with_the_survey(line, line2, tmp_path):
    ns = 251
    small = 20 * ns * 30  # 30 CMPs a block
    p1, n1, b1, _ = _peak(line, tmp_path, small)
    p2, n2, b2, _ = _peak(line2, tmp_path, small)
    assert b2 >= 1.95 * b1 and n2 > 2 * n1  # twice the CMPs
    # What grows is a few bytes per trace and per bin (sort keys, fold): 64 bytes a trace
    # and 64 a bin is far above them and far below a block's samples.
    assert p2 <= p1 + 64 * (n2 - n1) + 64 * (b2 - b1), (p1, p2)
    # The whole survey in one block grows with it (the check above would fail).
    w1 = _peak(line, tmp_path, 1 << 40)[0]
    w2 = _peak(line2, tmp_path, 1 << 40)[0]
    assert w2 - w1 > 64 * (n2 - n1) + 64 * (b2 - b1), (w1, w2)
