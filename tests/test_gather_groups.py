"""Issue 19, the flow driver's gathers: a rank collects only its own gathers from the index,
streamed (one pass counting the traces of each gather label, then a pass per group of its
gathers), instead of every rank sorting the survey's label and order columns. The gathers
must be exactly those of the in-memory sort (same gathers, same traces in the same order,
the same longest-first assignment), and the grouping's peak traced memory must not follow
the traces outside the rank's gathers.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from _conditioning_data import small_preset

from seis_hpc.engine import gather_run
from seis_hpc.engine.decomposition import assign_longest_first
from seis_hpc.engine.gather_run import assigned_gathers, rank_gathers, run_step
from seis_hpc.flows.steps import STEPS
from seis_hpc.io.index import TraceIndex
from seis_hpc.survey import open_traces
from seis_hpc.synth import Noise, write_survey

COLS = {"shot": ("source_id", "channel"), "cmp": ("cmp", "offset")}


def _reference(index, key, rank, size):
    """The rank's gathers as the driver made them before: every trace sorted by (label,
    order, trace number) in memory, cut at label changes, assigned longest first."""
    n = index.n_traces
    label, order = (np.asarray(index[c]) for c in COLS[key])
    srt = np.lexsort((np.arange(n), order, label))
    groups = np.split(srt, np.flatnonzero(np.diff(label[srt])) + 1)
    mine = sorted(assign_longest_first([len(g) for g in groups], size)[rank])
    return [groups[g] for g in mine], len(groups)


def _index_file(path: Path, n_gathers: int, per: int, seed: int = 0, shuffle: bool = True):
    """An index file of ``n_gathers`` x ~``per`` traces (gather sizes vary), rows in a random
    order when ``shuffle``, ties in the order columns, labels not contiguous numbers."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(per // 2, per + per // 2, n_gathers)
    label = np.repeat(np.arange(n_gathers, dtype=np.int64) * 7 - 50, sizes)
    n = label.size
    rows = rng.permutation(n) if shuffle else np.arange(n)
    label = label[rows]
    cols = {"source_id": label, "cmp": label[::-1].copy(),
            "channel": rng.integers(1, per // 3, n).astype(np.int32),  # many ties
            "offset": np.round(rng.uniform(0, 500, n), 0),  # ties too
            "byte_offset": np.arange(n, dtype=np.int64) * 240}
    TraceIndex(cols, {"segy_path": "none.sgy", "n_traces": n})._write(path, cols)
    return TraceIndex.open(path)


def test_assigned_gathers_are_those_of_assign_longest_first(monkeypatch):
    monkeypatch.setattr(gather_run, "LABEL_CHUNK", 13)  # its loop in chunks
    rng = np.random.default_rng(4)
    for counts in (rng.integers(1, 9, 200), rng.integers(1, 2000, 157), np.full(40, 5),
                   np.zeros(0, np.int64), np.array([7])):
        for size in (1, 2, 3, 7):
            ref = assign_longest_first(counts.tolist(), size)
            for rank in range(size):
                got = assigned_gathers(counts, size, rank)
                assert got.tolist() == sorted(ref[rank])


@pytest.mark.parametrize("key", ["shot", "cmp"])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_streamed_gathers_equal_the_in_memory_sort(tmp_path, monkeypatch, key, size):
    # chunks and groups much smaller than the survey, not dividing it: every boundary crossed
    monkeypatch.setattr(gather_run, "LABEL_CHUNK", 97)
    monkeypatch.setattr(gather_run, "GROUP_TRACES", 150)
    index = _index_file(tmp_path / "i.h5", 60, 40)
    for rank in range(size):
        expect, n_gathers = _reference(TraceIndex.open(index.path), key, rank, size)
        got, n = rank_gathers(index, key, rank, size)
        assert n == n_gathers and len(got) == len(expect) > 0
        assert len(got.bounds) > 3  # several groups, each one pass
        for a, b in zip(got, expect, strict=True):
            np.testing.assert_array_equal(a, b)
        # by position too (each group collected again), and again once iterated
        for i in (0, len(expect) // 2, -1):
            np.testing.assert_array_equal(got[i], expect[i])
        assert [len(g) for g in got] == [len(g) for g in expect]
    assert not index._columns  # never a whole column in memory


def test_streamed_gathers_of_a_survey(tmp_path, monkeypatch):
    """A synthetic line: shots from its index file, CMPs from the bins made in memory."""
    monkeypatch.setattr(gather_run, "LABEL_CHUNK", 100)
    monkeypatch.setattr(gather_run, "GROUP_TRACES", 300)
    write_survey(small_preset(shots=12, channels=24, record=0.2), tmp_path)
    TraceIndex.build(tmp_path / "shots.sgy")
    for key in ("shot", "cmp"):
        for size in (1, 2):
            for rank in range(size):
                rd = open_traces(tmp_path / "shots.sgy", bin_cmps=key == "cmp")
                got, n = rank_gathers(rd.index, key, rank, size)
                expect, n_ref = _reference(rd.index, key, rank, size)
                assert n == n_ref
                assert len(got) == len(expect)
                for a, b in zip(got, expect, strict=True):
                    np.testing.assert_array_equal(a, b)
    got, n = rank_gathers(rd.index, "line", 0, 2)
    assert n == 1 and len(got) == 1
    np.testing.assert_array_equal(got[0], np.arange(rd.index.n_traces))
    assert rank_gathers(rd.index, "line", 1, 2) == ([], 1)


def _grouping_peak(index, key, rank, size):
    tracemalloc.start()
    try:
        mine, _ = rank_gathers(index, key, rank, size)
        held = sum(g.size for g in mine)
        return tracemalloc.get_traced_memory()[1], held
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("key", ["shot", "cmp"])
def test_grouping_peak_does_not_follow_other_ranks_traces(tmp_path, monkeypatch, key):
    """A survey twice as large on twice the ranks: the rank's share is the same, its peak
    must be too, up to the gathers' labels and counts (memory per gather, 100 traces each
    here). Before, every rank sorted the whole survey: ~50 B per trace of the survey."""
    monkeypatch.setattr(gather_run, "LABEL_CHUNK", 2048)
    small = _index_file(tmp_path / "a.h5", 400, 100, seed=1)
    large = _index_file(tmp_path / "b.h5", 800, 100, seed=1)
    _grouping_peak(small, key, 0, 1)  # imports, caches
    p0, held0 = _grouping_peak(TraceIndex.open(small.path), key, 0, 1)
    p1, held1 = _grouping_peak(TraceIndex.open(large.path), key, 0, 2)
    added = large.n_traces - small.n_traces
    assert abs(held1 - held0) < 0.05 * held0  # the same share (sizes vary a little)
    assert p1 - p0 < 6 * added, (p0, p1, added)
    # and the peak itself: the rank's half of the survey sorted, not the whole survey's sort
    tracemalloc.start()
    try:
        _reference(TraceIndex.open(large.path), key, 0, 2)
        before = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert p1 < 0.6 * before, (p1, before)


def test_grouping_peak_is_one_group_when_the_share_is_larger(tmp_path, monkeypatch):
    """On one rank, with groups smaller than its share, iterating its gathers holds one
    group at a time: the peak does not grow with the survey beyond the per-gather arrays."""
    monkeypatch.setattr(gather_run, "LABEL_CHUNK", 2048)
    monkeypatch.setattr(gather_run, "GROUP_TRACES", 4000)
    paths = [_index_file(tmp_path / f"{k}.h5", k, 100, seed=2).path for k in (300, 600)]
    peaks = []
    for path in [paths[0], *paths]:
        tracemalloc.start()
        try:
            mine, _ = rank_gathers(TraceIndex.open(path), "shot", 0, 1)
            total = sum(g.size for g in mine)  # one group held at a time
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert total == TraceIndex.open(path).n_traces
    added = TraceIndex.open(paths[1]).n_traces - TraceIndex.open(paths[0]).n_traces
    assert peaks[2] - peaks[1] < 6 * added, (peaks, added)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("groups_line")
    write_survey(small_preset(shots=10, channels=24, record=0.4,
                              noise=Noise(dead=3, spikes=4, noisy=3, reversed=2, seed=5)), root)
    return root / "shots.sgy"


STEP_CASES = [("edit", {}), ("bandpass", {"corners": "5,10,60,80"}),
              ("fxdecon", {}), ("fk", {"vmin": 1200.0, "gathers": "cmp"})]


@pytest.mark.parametrize("name, params", STEP_CASES)
def test_steps_identical_with_many_groups(damaged, tmp_path, monkeypatch, name, params):
    """A rank's gathers collected in many groups (collected again for edit's second pass)
    give the same output file, bit for bit, as one group."""
    spec = STEPS[name]
    p = spec.resolve(params, name)
    run_step(spec, p, damaged, tmp_path / "one.sgy", quiet=True)
    monkeypatch.setattr(gather_run, "GROUP_TRACES", 30)
    monkeypatch.setattr(gather_run, "LABEL_CHUNK", 41)
    run_step(spec, p, damaged, tmp_path / "many.sgy", quiet=True)
    assert (tmp_path / "one.sgy").read_bytes() == (tmp_path / "many.sgy").read_bytes()


@pytest.mark.mpi
def test_steps_on_two_ranks_with_many_groups_equal_one_rank(tmp_path_factory, monkeypatch):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    root = None
    if comm.rank == 0:
        root = tmp_path_factory.mktemp("mpi_groups")
        write_survey(small_preset(shots=8, channels=24, record=0.4,
                                  noise=Noise(dead=2, spikes=3, noisy=2, seed=3)), root)
    root = comm.bcast(root, root=0)
    for name, params in STEP_CASES:
        spec = STEPS[name]
        p = spec.resolve(params, name)
        if comm.rank == 0:
            run_step(spec, p, root / "shots.sgy", root / f"{name}1.sgy", quiet=True)
        comm.Barrier()
        monkeypatch.setattr(gather_run, "GROUP_TRACES", 30)
        monkeypatch.setattr(gather_run, "LABEL_CHUNK", 41)
        run_step(spec, p, root / "shots.sgy", root / f"{name}2.sgy", comm=comm, quiet=True)
        monkeypatch.undo()
        if comm.rank == 0:
            assert (root / f"{name}1.sgy").read_bytes() == (root / f"{name}2.sgy").read_bytes()
        comm.Barrier()
