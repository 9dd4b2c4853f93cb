"""Memory per rank independent of the survey (issue 19): a rank reads the coordinates of the
units it takes, when it takes them, and the job it receives holds each unit's traces as runs.

The test runs one rank's unit loop (what every rank does between the broadcast of the job
and the output) under tracemalloc on two surveys with the same units to compute: survey A,
and survey A plus twice its traces elsewhere (units other ranks would take). The peak must
not grow by more than a small fraction of what holding those traces' coordinates (32 B a
trace) would cost, and the tiles must come out bitwise identical.
"""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest

from seis_hpc.geometry import BinGrid

NS, DT = 64, 0.004
CHANNELS = 50
GROUP = 25.0
# one bin grid for both surveys: 50 m bins, inlines along x (0..4950 m) numbered northward
# (y -250..4700 m)
GRID = BinGrid(0.0, -250.0, 90.0, 50.0, 50.0, 1, 1, 100, 100, handedness=-1)


def write_survey(path, lines):
    """Shots along x every 50 m on sail lines at the given y (m), one streamer of CHANNELS
    groups behind each shot; samples: a spike per trace (any data serves here)."""
    from seis_hpc.io.segy import write_segy

    sx, sy, rx, ffid, chan = [], [], [], [], []
    rec = 1
    for y, n_shots in lines:
        for k in range(n_shots):
            x = 100.0 + 50.0 * k
            for c in range(CHANNELS):
                sx.append(x)
                sy.append(y)
                rx.append(x + 100.0 + GROUP * c)
                ffid.append(rec)
                chan.append(c + 1)
            rec += 1
    n = len(sx)
    data = np.zeros((n, NS), np.float32)
    data[np.arange(n), 10 + np.arange(n) % 40] = 1.0
    write_segy(path, data, {"FieldRecord": ffid, "TraceNumber": chan, "SourceX": sx,
                            "SourceY": sy, "GroupX": rx, "GroupY": sy,
                            "offset": np.asarray(rx) - np.asarray(sx)}, DT)
    from seis_hpc.io.index import TraceIndex

    return TraceIndex.build(path)


class Vel:
    def __init__(self, nt):
        self.nt = nt

    def window(self, i0, i1, j0, j1):
        return np.full(((i1 - i0) * (j1 - j0), self.nt), 2000.0, np.float32)


def plan_blob(idx, tmp, name):
    """What rank 0 broadcasts: the pickled job (tile strategy, small tiles)."""
    from seis_hpc.engine.pstm_run import make_job
    from seis_hpc.migration.pstm import PstmParams

    time = np.arange(40) * DT
    job = make_job(idx, GRID, time, tmp / f"{name}.h5", strategy="tile", tile=8,
                   kernel_args=PstmParams(aperture=150.0).kernel_args(),
                   checkpoint_dir=tmp / f"{name}.ckpt", mem_per_rank="1G")
    return pickle.dumps(job), job


def run_units(blob, index_path, uids):
    """One rank's unit loop over ``uids``; returns (tracemalloc peak bytes, tiles)."""
    from seis_hpc.engine.pstm_run import _Compute, _Results, default_kernel
    from seis_hpc.engine.timers import Timers
    from seis_hpc.io.index import TraceIndex

    tracemalloc.start()
    try:
        job = pickle.loads(blob)
        idx = TraceIndex.open(index_path)  # as a rank other than 0 opens it
        tm = Timers()
        compute = _Compute(job, idx, Vel(len(job.time)), default_kernel(), tm)
        results = _Results(job, 1, 2, tm)
        for uid in uids:
            results.run_unit(uid, compute)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    tiles = {uid: results.ckpt.load_tile(uid)[0] for uid in uids}
    return peak, tiles, tm.traces


@pytest.mark.parametrize("order", ["file", "shuffled-lines"])
def test_rank_memory_does_not_grow_with_other_ranks_traces(tmp_path, order):
    near = [(0.0, 40), (50.0, 40)]  # 4,000 traces near y = 0 (this rank's tiles)
    far = [(4000.0, 80), (4050.0, 80)]  # 8,000 more near y = 4,000 m (other ranks')
    lines_b = near + far if order == "file" else [far[0], near[0], far[1], near[1]]
    a = write_survey(tmp_path / "a.sgy", near)
    b = write_survey(tmp_path / "b.sgy", lines_b)
    blob_a, job_a = plan_blob(a, tmp_path, "a")
    blob_b, job_b = plan_blob(b, tmp_path, "b")
    mine = [u.uid for u in job_a.plan.units if u.n_traces > 0]
    assert len(mine) >= 4 and len(job_a.plan.units) == len(job_b.plan.units)
    # the same tiles, with the traces of survey A (in survey B's numbering)
    ids_a = a["mx"], a["my"]
    for uid in mine:
        ua, ub = job_a.plan.units[uid], job_b.plan.units[uid]
        assert ua.window == ub.window and ua.n_traces == ub.n_traces
        np.testing.assert_array_equal(ids_a[0][ua.traces], b["mx"][ub.traces])
        np.testing.assert_array_equal(ids_a[1][ua.traces], b["my"][ub.traces])
    others = [u for u in job_b.plan.units if u.uid not in mine and u.n_traces]
    outside = b.n_traces - a.n_traces
    assert outside == 8000 and sum(u.n_traces for u in others) >= outside
    run_units(blob_a, a.path, mine[:1])  # imports and first-use caches out of the figures
    peak_a, tiles_a, read_a = run_units(blob_a, a.path, mine)
    peak_b, tiles_b, read_b = run_units(blob_b, b.path, mine)
    assert read_a == read_b == sum(job_a.plan.units[u].n_traces for u in mine)
    assert sum(np.abs(t).max() > 0 for t in tiles_a.values()) >= len(mine) // 2
    for uid in mine:
        np.testing.assert_array_equal(tiles_a[uid], tiles_b[uid])
    # Holding every trace's coordinates costs 32 B a trace (256 kB for the 8,000 outside),
    # their trace numbers 8 B a read; the job's runs and the reads stay far below.
    grow = peak_b - peak_a
    print(f"peak A {peak_a} B, B {peak_b} B, job {len(blob_a)} / {len(blob_b)} B, "
          f"{len(mine)} tiles of {len(job_b.plan.units)}")
    assert grow < 0.25 * 32 * outside, (peak_a, peak_b)
    # and the broadcast job itself: far less than 8 B per trace read of all units
    reads_b = sum(u.n_traces for u in job_b.plan.units)
    assert len(blob_b) < 2 * reads_b, (len(blob_b), reads_b)


def test_take_reads_rows_as_whole_columns_would(tmp_path):
    """TraceIndex.take gives exactly the rows of the loaded columns, in any order."""
    from seis_hpc.io.index import TraceIndex

    idx = write_survey(tmp_path / "s.sgy", [(0.0, 30), (300.0, 30)])
    disk = TraceIndex.open(idx.path)
    rng = np.random.default_rng(3)
    for ids in (np.arange(0, 3000, 7), np.array([2999, 0, 1500, 1501, 5]),
                rng.choice(3000, 400, replace=False), np.arange(0), np.r_[10:20, 2500:2600]):
        got = disk.take(("sx", "ry", "ffid", "offset"), ids)
        for k, v in got.items():
            np.testing.assert_array_equal(v, idx[k][ids])
            assert v.dtype == idx[k].dtype
    assert not disk._columns  # nothing loaded whole


@pytest.mark.parametrize(("capacity", "width"), [(60, 60), (2500, 900)])
def test_trace_cache_returns_what_a_read_returns(capacity, width):
    """Random overlapping requests moving along the traces through a cache (small; and one
    whose buffers grow past 1024 traces and then wrap): the same samples and columns as
    direct reads, only traces not kept are read, and most requests come from the cache."""
    from seis_hpc.engine.pstm_run import TraceCache

    rng = np.random.default_rng(5)
    n = 12 * width
    table = rng.normal(size=(n, 7)).astype(np.float32)
    col = rng.normal(size=n)
    log = []

    def read(ids):
        log.append(ids.copy())
        return table[ids], {"sx": col[ids]}

    cache = TraceCache(capacity)
    start, asked = 0, 0
    for _ in range(80):
        start = int(np.clip(start + rng.integers(-width // 3, width // 2), 0, n - width))
        ids = np.unique(rng.integers(start, start + width, 3 * width // 4))
        asked += len(ids)
        before = len(log)
        data, geo, k = cache.get(ids, read)
        np.testing.assert_array_equal(data, table[ids])
        np.testing.assert_array_equal(geo["sx"], col[ids])
        read_now = np.concatenate(log[before:]) if len(log) > before else np.zeros(0, int)
        assert k == len(read_now) <= len(ids)
        assert np.isin(read_now, ids).all()
        assert len(cache.ids) <= capacity
    assert sum(len(x) for x in log) < 0.6 * asked
    assert len(cache.ids) == capacity  # filled up


def test_tile_images_do_not_depend_on_the_trace_cache(tiny3d, tmp_path):
    """Tiles migrated with no cache, a cache of about one tile's traces, or all traces:
    bitwise the same image; the cache cuts the traces read (reported per rank in the
    image's timing) from the planned reads (about 16 a trace here) towards one."""
    import json

    import h5py

    from seis_hpc.engine.pstm_run import execute, make_job
    from seis_hpc.migration.job import select_grid
    from seis_hpc.migration.pstm import PstmParams
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.model import open_vrms

    sv = Survey.open(tiny3d / "shots.sgy", save=False)
    grid = select_grid(sv.grid, (1, 5, 44, 80))
    time = np.arange(101) * 0.004
    vel = open_vrms(tiny3d / "velocity.csv", grid, time)
    images, reads = {}, {}
    for cache in (0, 1500, None):
        out = tmp_path / f"img{cache}.h5"
        job = make_job(sv.index, grid, time, out, strategy="tile", tile=4,
                       kernel_args=PstmParams(aperture=250.0).kernel_args())
        assert job.cache_traces == job.traces_distinct  # 2G holds every trace of tiny3d
        if cache is not None:
            job.cache_traces = cache
        assert execute(job, sv.index, vel, None, log=lambda s: None) == 0
        with h5py.File(out) as f:
            images[cache] = f["image"][...]
            reads[cache] = json.loads(f.attrs["timing"])[0]["reads"]
            assert f.attrs["reads_per_trace"] > 8  # planned: tiles re-read the traces
    planned, distinct = job.plan.n_traces_total, job.traces_distinct
    assert reads[0] == planned and reads[None] == distinct
    assert distinct < reads[1500] < 0.5 * planned, (reads, planned)
    assert np.abs(images[0]).max() > 0
    for cache in (1500, None):
        np.testing.assert_array_equal(images[cache], images[0])
