"""Issue 19: the blocked index sorted from a file-order index FILE in bounded memory
(``block_index_file``, ``seis-hpc index --spatial``).

The external sort must give what the in-memory sort (``write_blocked_index``) gives, row for
row and column for column, with the same block table and attributes, for any row budget
(one row, budgets that cut cells and runs, one run); leave nothing behind on error or
SIGTERM; and the blocked index it writes is taken by ``Survey.open`` without binning again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from seis_hpc import synth
from seis_hpc.errors import SeisError
from seis_hpc.io import blocked
from seis_hpc.io.blocked import (
    BlockTable,
    block_index_file,
    scratch_name,
    sort_rows,
    spatial_index_path,
    write_blocked_index,
)
from seis_hpc.io.index import TraceIndex
from seis_hpc.survey import Survey

ROOT = Path(__file__).resolve().parents[1]


def _indexed(tmp_path_factory, name, **kw):
    """A synth survey, indexed (binned) by ``seis-hpc index``; its index file."""
    d = tmp_path_factory.mktemp(name)
    synth.write_survey(synth.configure(name, **kw), d)
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "index", str(d / "shots.sgy")],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    return d / "shots.sgy.index.h5"


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return _indexed(tmp_path_factory, "tiny3d")


@pytest.fixture(scope="module")
def feathered(tmp_path_factory):  # scattered midpoints: cells of every size
    return _indexed(tmp_path_factory, "tiny3d-midpoints", record_length=0.3)


@pytest.fixture(scope="module")
def line(tmp_path_factory):  # a short 2D line (96 traces: a one-row budget stays quick)
    return _indexed(tmp_path_factory, "marine2d", shots=6, channels=16, record_length=0.3)


def _content(path):
    """Every column, the block table and the attributes but ``created``."""
    with h5py.File(path, "r") as f:
        cols = {k: f[k][...] for k in f if isinstance(f[k], h5py.Dataset)}
        table = {k: f["blocks"][k][...] for k in f["blocks"]}
        attrs = {k: v for k, v in f.attrs.items() if k != "created"}
    return cols, table, attrs


def _assert_same(got, want):
    (gc, gt, ga), (wc, wt, wa) = _content(got), _content(want)
    assert gc.keys() == wc.keys() and gt.keys() == wt.keys() and ga.keys() == wa.keys()
    for k in wc:
        assert gc[k].dtype == wc[k].dtype, k
        np.testing.assert_array_equal(gc[k], wc[k], err_msg=k)
    for k in wt:
        np.testing.assert_array_equal(gt[k], wt[k], err_msg=f"blocks/{k}")
    for k in wa:
        assert np.array_equal(ga[k], wa[k]), k


@pytest.mark.parametrize("which,cell,budgets", [
    ("cube", 100.0, (97, 500, 1 << 20)),      # runs that cut cells; one run
    ("cube", 37.5, (1000,)),                  # small cells, two unequal runs
    ("feathered", 50.0, (61, 1536)),          # a budget of exactly the survey
    ("line", 50.0, (1, 7, 95, 96, 97)),       # a row at a time; one row short of one run
])
def test_external_sort_is_the_in_memory_sort(which, cell, budgets, request, tmp_path):
    src = request.getfixturevalue(which)
    idx = TraceIndex.open(src)
    want = write_blocked_index(idx, tmp_path / "want.h5", cell=cell)
    table = BlockTable.read(want)
    n = idx.n_traces
    assert len(table) > 3 and table.count.max() > 1  # several cells, several rows a cell
    for m in budgets:
        got = block_index_file(src, tmp_path / f"got{m}.h5", cell=cell, max_rows=m)
        _assert_same(got, want)
        # the block table really places the rows: each block's midpoints inside its box
        with h5py.File(got, "r") as f:
            mx, my, trace = f["mx"][...], f["my"][...], f["trace"][...]
        np.testing.assert_array_equal(np.sort(trace), np.arange(n))  # each trace once
        np.testing.assert_array_equal(idx["mx"][trace], mx)
        t = BlockTable.read(got)
        for a, c, (x0, x1, y0, y1) in zip(t.start, t.count, t.bbox, strict=True):
            assert mx[a:a + c].min() == x0 and mx[a:a + c].max() == x1
            assert my[a:a + c].min() == y0 and my[a:a + c].max() == y1
            assert x1 - x0 < cell and y1 - y0 < cell
    assert not list(tmp_path.glob(".*"))  # no scratch, no temporary left


def test_a_cell_larger_than_the_budget_is_one_block(cube, tmp_path):
    """One cell holding every trace, budgets of 1..n rows: still one block, in file order."""
    want = write_blocked_index(TraceIndex.open(cube), tmp_path / "want.h5", cell=1e5)
    assert len(BlockTable.read(want)) == 1
    for m in (100, 1000):
        _assert_same(block_index_file(cube, tmp_path / f"g{m}.h5", cell=1e5, max_rows=m), want)


def test_blocked_index_opens_without_binning(cube, tmp_path):
    """The blocked index keeps the binning request and grid of its source: Survey.open
    takes its bins as they are (no column loaded, the file not rewritten)."""
    got = block_index_file(cube, tmp_path / "b.h5", cell=100.0, max_rows=300)
    mtime = got.stat().st_mtime_ns
    sv = Survey.open(got)
    assert sv.index.attrs["order"] == "spatial" and not sv.index._columns
    assert got.stat().st_mtime_ns == mtime
    ref = Survey.open(cube)
    assert sv.grid.to_attrs() == ref.grid.to_attrs() and sv.method == ref.method
    # the bins and fold streamed from the blocked index are those of the file-order one
    tr = TraceIndex.open(got)["trace"]
    np.testing.assert_array_equal(sv.index["inline"], ref.index["inline"][tr])
    np.testing.assert_array_equal(sv.fold(), ref.fold())
    # its traces are those of the file, through the trace column
    np.testing.assert_array_equal(sv.index.read_traces(np.arange(5, 40)),
                                  ref.index.read_traces(tr[5:40]))


def test_refusals(cube, tmp_path):
    b = block_index_file(cube, tmp_path / "b.h5", cell=100.0)
    with pytest.raises(SeisError, match="already blocked"):
        block_index_file(b, tmp_path / "c.h5")
    with pytest.raises(SeisError, match="would replace"):
        block_index_file(cube, cube)
    with pytest.raises(SeisError, match="cell edge"):
        block_index_file(cube, tmp_path / "c.h5", cell=0.0)
    with pytest.raises(SeisError, match="row budget"):
        block_index_file(cube, tmp_path / "c.h5", max_rows=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.h5"]


def test_error_in_the_merge_leaves_nothing(cube, tmp_path, monkeypatch):
    def fail(self, cols, key=(0, 0)):
        assert scratch_name(tmp_path / "b.h5").exists()  # the runs are on disk now
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(blocked.BlockedIndexWriter, "write_block", fail)
    with pytest.raises(OSError, match="No space"):
        block_index_file(cube, tmp_path / "b.h5", max_rows=100)
    assert list(tmp_path.iterdir()) == []


def test_sigterm_in_the_merge_leaves_nothing(cube, tmp_path):
    """SIGTERM under seis-hpc's handler (cleanup_on_signals) while the runs are on disk:
    exit 143, the scratch file and the output's temporary removed, no output."""
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from seis_hpc.io import blocked
        from seis_hpc.io.atomic import cleanup_on_signals
        dst = Path({str(tmp_path / "b.h5")!r})
        real = blocked.BlockedIndexWriter.write_block
        def write_block(self, cols, key=(0, 0)):
            assert blocked.scratch_name(dst).exists()
            os.kill(os.getpid(), signal.SIGTERM)
            return real(self, cols, key)
        blocked.BlockedIndexWriter.write_block = write_block
        with cleanup_on_signals():
            blocked.block_index_file({str(cube)!r}, dst, max_rows=100)
        """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 143, r.stderr
    assert "stopped by SIGTERM" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_sort_budget_and_default_name(cube, tmp_path):
    with h5py.File(cube, "r") as f:
        row = 8 + sum(f[k].dtype.itemsize for k in f)
    assert sort_rows(cube, 3 * row * 1000) == 1000 and sort_rows(cube, 10) == 1
    assert spatial_index_path("/d/s.sgy.index.h5") == Path("/d/s.sgy.spatial.index.h5")
    assert spatial_index_path("/d/x.h5") == Path("/d/x.spatial.index.h5")
    assert spatial_index_path("/d/x") == Path("/d/x.spatial.index.h5")


def test_index_spatial_cli(tmp_path):
    """``seis-hpc index FILE --spatial``: both indexes, the blocked one by default beside
    the file-order one; it equals the in-memory sort; pstm takes FILE's default index
    still (the blocked one is never taken as the default)."""
    synth.write_survey(synth.configure("marine2d", shots=6, channels=16, record_length=0.3),
                       tmp_path)
    sgy = tmp_path / "shots.sgy"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "index", str(sgy), "--spatial",
                        "--cell", "50", "--sort-memory", "10k"], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "shots.sgy.spatial.index.h5"
    assert f"spatial index: {out}" in r.stdout
    assert sort_rows(tmp_path / "shots.sgy.index.h5", 10 << 10) < 96  # several runs
    want = write_blocked_index(TraceIndex.open(tmp_path / "shots.sgy.index.h5"),
                               tmp_path / "want.h5", cell=50.0)
    _assert_same(out, want)
    assert TraceIndex.for_file(sgy).path == tmp_path / "shots.sgy.index.h5"
    # a bad option fails before any work, with the one-line message
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "index", str(sgy), "--spatial",
                        "--sort-memory", "lots", "--index", str(tmp_path / "x.index.h5")],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and r.stderr.startswith("seis-hpc: error:")
    assert "lots" in r.stderr and not (tmp_path / "x.index.h5").exists()


def test_sort_memory_is_bounded_by_the_budget_not_the_survey(tmp_path_factory, monkeypatch):
    """tracemalloc peak of the sort of a survey and of one with twice the traces, the same
    row budget: nearly the same, about three budgets of rows, far below the survey's columns
    (which the in-memory sort holds)."""
    monkeypatch.setattr(blocked, "_CHUNK_ROWS", 256)  # the output's buffer floor, scaled down
    srcs = [_indexed(tmp_path_factory, "tiny3d", shots=s, record_length=0.1) for s in (32, 64)]
    d = tmp_path_factory.mktemp("sorted")
    with h5py.File(srcs[0], "r") as f:
        row = 8 + sum(f[k].dtype.itemsize for k in f)
    m = 400
    block_index_file(srcs[0], d / "warm.h5", cell=100.0, max_rows=m)  # first-call allocations

    def peak(fn, *args, **kw):
        tracemalloc.start()
        try:
            fn(*args, **kw)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peaks = [peak(block_index_file, s, d / f"b{k}.h5", cell=100.0, max_rows=m)
             for k, s in enumerate(srcs)]
    n = [TraceIndex.open(s).n_traces for s in srcs]
    assert n[1] == 2 * n[0] and n[0] > 6 * m  # several runs each
    assert peaks[1] < 1.1 * peaks[0]
    assert peaks[1] < 4 * m * row + (64 << 10)  # three budgets of rows and h5py's objects
    in_memory = peak(write_blocked_index, TraceIndex.open(srcs[1]), d / "mem.h5", cell=100.0)
    assert in_memory > n[1] * row > 4 * peaks[1]
    _assert_same(d / "b1.h5", d / "mem.h5")
