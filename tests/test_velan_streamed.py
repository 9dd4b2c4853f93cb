"""velan's super-gathers from the index streamed in chunks of rows (issue 19): the same
traces, offsets and picks as from the survey's whole columns, for several chunk and group
sizes, in 2D and 3D; and nothing held per trace of the survey (tracemalloc)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from test_stack_streamed import _write

from seis_hpc.engine import stream_plan
from seis_hpc.io.columns import columns_on_file
from seis_hpc.survey import Survey
from seis_hpc.velocity import velan as velan_mod
from seis_hpc.velocity.velan import (
    ScanParams,
    StreamedSupergathers,
    Supergathers,
    analysis_locations,
    velocity_analysis,
)


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return _write(tmp_path_factory, "marine2d", 40, 1.0)


@pytest.fixture(scope="module")
def line_long(tmp_path_factory):
    return _write(tmp_path_factory, "marine2d", 80, 1.0)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return _write(tmp_path_factory, "tiny3d", 16, record=None)


def _open(folder):
    sv = Survey.open(folder / "shots.sgy")
    assert columns_on_file(sv.index, ["inline", "crossline", "offset"])
    return sv


@pytest.mark.parametrize("which,every,size", [("line", 7, 5), ("cube", 2, 3)])
def test_streamed_supergathers_equal_the_whole_columns(which, every, size, request):
    sv = _open(request.getfixturevalue(which))
    idx, grid = sv.index, sv.grid
    locs = analysis_locations(grid, sv.fold(), every=every, min_fold=1)
    assert len(locs) >= 6
    il, xl = idx["inline"], idx["crossline"]
    whole = Supergathers(il, xl, grid.is_2d)
    off = np.asarray(idx["offset"], dtype=np.float64)
    want = [whole.ids(a, b, size) for a, b in locs]
    assert sum(w.size for w in want) > 100
    sv = _open(request.getfixturevalue(which))
    # chunks of 1 and 97 rows and the default; groups of one location, ~300 traces, all
    for chunk, group in ((97, 1), (1, 56 * 300), (None, None)):
        g = StreamedSupergathers(sv.index, grid.is_2d, locs, size, chunk=chunk,
                                 group_bytes=group)
        assert len(g.groups) == (len(locs) if group == 1 else
                                 1 if group is None else len(g.groups))
        for n, w in enumerate(want):
            ids, o = g.take(n)
            np.testing.assert_array_equal(ids, w)
            np.testing.assert_array_equal(o, off[w])
        assert not sv.index._columns


def test_streamed_velocity_analysis_gives_the_same_picks(line, monkeypatch):
    sv = _open(line)
    idx, grid = sv.index, sv.grid
    locs = analysis_locations(grid, sv.fold(), every=20, min_fold=6)
    params = ScanParams(vint_min=1450.0, vmax=3000.0)
    want = velocity_analysis(idx, idx["inline"], idx["crossline"], grid, locs, params)
    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", 333)
    monkeypatch.setattr(velan_mod, "GATHER_BYTES", 56 * 500)
    sv = _open(line)
    got = velocity_analysis(sv.index, None, None, grid, locs, params)
    assert not sv.index._columns
    assert len(got.locations) == len(want.locations) >= 3
    for a, b in zip(got.locations, want.locations, strict=True):
        assert (a.inline, a.crossline, a.cdp) == (b.inline, b.crossline, b.cdp)
        for k in ("time", "vrms", "semblance"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert got.params == want.params


def _gather_peak(folder, monkeypatch):
    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", 512)
    sv = _open(folder)
    locs = analysis_locations(sv.grid, sv.fold(), every=20, min_fold=6)
    tracemalloc.start()
    try:
        g = StreamedSupergathers(sv.index, True, locs, 5, group_bytes=1)  # one a group
        for n in range(len(locs)):
            g.take(n)
        return tracemalloc.get_traced_memory()[1], sv.index.n_traces, sv.grid.n_bins
    finally:
        tracemalloc.stop()


def test_streamed_supergathers_memory_does_not_grow_with_the_survey(line, line_long,
                                                                    monkeypatch):
    """Twice the CMPs and traces: the peak of finding every location's super-gather (one
    location a group, so the same fold a group) grows by a few bytes per bin (the counts
    near the locations, 32 B), not by the traces (the whole columns' finder held 56 B a
    trace: 215,000 B more here)."""
    _gather_peak(line, monkeypatch)  # once first: one-off imports and caches
    p1, n1, b1 = _gather_peak(line, monkeypatch)
    p2, n2, b2 = _gather_peak(line_long, monkeypatch)
    assert n2 >= 1.9 * n1 and b2 >= 1.5 * b1
    assert p2 <= p1 + 48 * (b2 - b1), (p1, p2, n2 - n1, b2 - b1)
