"""Issue 19, rank 0's plan: the engine's tile plan from the index streamed in chunks is the
in-memory plan, bit for bit, and its memory does not grow with the survey's traces."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from _units import assert_same_units

from seis_hpc.engine import stream_plan
from seis_hpc.engine.decomposition import plan_job
from seis_hpc.engine.job import compact_plan, distinct_traces, from_runs, merge_runs, to_runs
from seis_hpc.engine.pstm_run import make_job
from seis_hpc.engine.stream_plan import midpoint_chunks, plan_tiles_streamed
from seis_hpc.geometry import BinGrid
from seis_hpc.io.index import TraceIndex
from seis_hpc.io.spec3d import SpecSurvey, write_headers_only


class _Columns:
    """An in-memory source of midpoints (what ``midpoint_chunks`` slices)."""

    def __init__(self, mx, my):
        self.c = {"mx": mx, "my": my}
        self.n_traces = len(mx)

    def __getitem__(self, name):
        return self.c[name]


def test_merge_runs_and_distinct_traces():
    ids = np.array([3, 4, 5, 9, 10, 20])
    parts = [to_runs(ids[:2]), to_runs(ids[2:4]), to_runs(ids[4:])]
    assert np.array_equal(merge_runs(np.concatenate(parts)), to_runs(ids))
    assert np.array_equal(from_runs(merge_runs(np.concatenate(parts))), ids)

    class U:
        def __init__(self, ids):
            self.runs = to_runs(np.asarray(ids))

    units = [U([0, 1, 2, 7]), U([2, 3, 8, 9]), U([]), U([20])]
    assert distinct_traces(units) == 8  # 0-3, 7-9, 20


@pytest.mark.parametrize("tile,aperture,budget,nt,strategy", [
    (None, 300.0, "1G", 30, "tile"),       # tile edge chosen by the budget
    (8, 150.0, "1G", 30, "tile"),
    (16, np.inf, "1G", 30, "tile"),        # no aperture: every tile takes every trace
    (None, 500.0, "330M", 3000, "auto"),   # auto: the image does not fit, so tiles
])
def test_streamed_tile_plan_is_the_in_memory_plan(tile, aperture, budget, nt, strategy):
    rng = np.random.default_rng(7)
    grid = BinGrid(100.0, 50.0, 0.3, 12.5, 25.0, 1, 1, 41, 70)  # rotated, 3D
    n = 6000
    x, y = rng.uniform(-300, 1200, n), rng.uniform(-300, 1600, n)
    shot = np.arange(n) // 40
    src = _Columns(x, y)
    for sel in (None, np.sort(rng.choice(n, n // 3, replace=False))):
        ids = np.arange(n) if sel is None else sel
        ref = plan_job(grid, nt, 50, x[ids], y[ids], shot[ids], aperture, budget,
                       strategy=strategy, tile=tile)
        for u in ref.units:
            u.traces = ids[u.traces]
        compact_plan(ref)
        for chunk in (777, 1 << 16):  # chunks that cut tiles' runs, and one chunk
            got = plan_tiles_streamed(grid, nt, 50, midpoint_chunks(src, sel, chunk),
                                      len(ids), aperture, budget, strategy=strategy,
                                      tile=tile)
            assert (got.strategy, got.tile, got.bytes_tile, got.reason) == (
                ref.strategy, ref.tile, ref.bytes_tile, ref.reason)
            if strategy == "tile":
                assert got.bytes_shard == ref.bytes_shard
            else:  # a lower bound of the shard plan's memory, above the budget
                assert got.budget < got.bytes_shard <= ref.bytes_shard
            assert_same_units(got.units, ref.units)
            seen = np.zeros(n, bool)
            for u in ref.units:
                seen[u.traces] = True
            assert distinct_traces(got.units) == seen.sum()


def test_streamed_plan_leaves_shard_to_the_in_memory_planner():
    grid = BinGrid(0.0, 0.0, 0.0, 12.5, 25.0, 1, 1, 8, 8)
    x = np.linspace(0, 100, 500)
    src = _Columns(x, x)
    # a small image fits a rank: shard is possible, plan_job decides
    assert plan_tiles_streamed(grid, 50, 50, midpoint_chunks(src), 500, 100.0, "1G") is None
    assert plan_tiles_streamed(grid, 50, 50, midpoint_chunks(src), 500, 100.0, "1G",
                               strategy="shard") is None


def _spec(tmp_path, k, length):
    acq = SpecSurvey(width=1200.0, length=length, n_streamers=4, n_channels=24,
                     near_offset=50.0, run_in=150.0, run_out=150.0, segment=100.0,
                     record_length=1.0, dt=0.004)
    write_headers_only(tmp_path / f"s{k}", 1.0, acq, log=None)
    return tmp_path / f"s{k}" / "spec3d.index.h5"


def test_engine_plan_memory_does_not_grow_with_the_traces(tmp_path, monkeypatch):
    """make_job on a blocked index, the image too large for one rank (auto -> tiles): the
    units are those of the in-memory plan, and twice the sail-line length (1.8x the traces,
    the same image grid and tiles) leaves the planning's peak memory (tracemalloc) nearly
    unchanged: one chunk of rows and the tiles' runs, not the survey's columns."""
    monkeypatch.setattr(stream_plan, "PLAN_CHUNK", 2048)
    paths = [_spec(tmp_path, 0, 1600.0), _spec(tmp_path, 1, 3200.0)]
    grid = BinGrid.from_attrs(TraceIndex.open(paths[0]).attrs)  # the first survey's grid
    time = np.arange(0.0, 1.0, 0.004)
    kw = dict(kernel_args={"aperture": 250.0}, mem_per_rank="280M", tile=16,
              restart="fresh")

    def plan(path, k):
        idx = TraceIndex.open(path)
        tracemalloc.start()
        job = make_job(idx, grid, time, tmp_path / f"o{k}.h5",
                       checkpoint_dir=tmp_path / f"c{k}", **kw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return idx, job, peak

    plan(paths[0], "warm")  # imports and first-call allocations out of the figures
    figs = []
    for k, path in enumerate(paths):
        idx, job, peak = plan(path, k)
        assert job.plan.strategy == "tile" and job.plan.extra["bytes_shard_bound"]
        assert idx.n_traces > 8 * stream_plan.PLAN_CHUNK  # really streamed
        # the same units as the in-memory plan of the loaded columns
        ref = plan_job(grid, len(time), idx.ns, idx["mx"], idx["my"], idx["source_id"],
                       250.0, "280M", tile=16, trace_order=idx["byte_offset"])
        compact_plan(ref)
        assert ref.strategy == "tile"
        assert_same_units(job.plan.units, ref.units)
        assert job.traces_distinct == len(np.unique(np.concatenate(
            [u.traces for u in ref.units])))
        figs.append((idx.n_traces, peak))
    (n0, p0), (n1, p1) = figs
    assert n1 > 1.8 * n0
    assert p1 < 1.3 * p0
    # below what holding the midpoints and shots of the survey alone would take
    assert p0 < 24 * n0
