"""Issue 19, ``sort`` and ``select`` in memory independent of the survey: the output's trace
order is made on disk (``sort``: an external sort of runs merged into an order file;
``select``: the kept trace numbers streamed into one), and each rank reads its slices. The
order must be exactly the stable in-memory sort (``np.lexsort`` of the keys, ties in file
order) with many runs and small merge blocks, the outputs byte for byte those of the
in-memory order, on one rank and on two; the peak must not follow the traces; and no scratch
file may stay behind, on success or on error.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import segyio
from _conditioning_data import small_preset
from test_flow_memory import step_peaks

from seis_hpc.engine import gather_run
from seis_hpc.engine.gather_run import run_step
from seis_hpc.flows import orderfile
from seis_hpc.flows.steps import STEPS
from seis_hpc.io.index import TraceIndex
from seis_hpc.synth import write_survey


def _small_runs(monkeypatch, run=37, merge=50, write=23, chunk=29):
    """Many runs, merge blocks (down to one row a run) and chunks that do not divide the
    line, so that every boundary is crossed."""
    monkeypatch.setattr(orderfile, "RUN_ROWS", run)
    monkeypatch.setattr(orderfile, "MERGE_ROWS", merge)
    monkeypatch.setattr(orderfile, "MIN_BLOCK", 1)
    monkeypatch.setattr(orderfile, "WRITE_ROWS", write)
    monkeypatch.setattr(orderfile, "CHUNK", chunk)


def test_sortable_orders_as_lexsort_orders_floats():
    v = np.array([3.0, -0.0, 0.0, np.nan, -np.inf, np.inf, -1e300, 1e-300, -5e-324, np.nan,
                  2.0, -2.0, 0.0])
    ids = np.arange(v.size)
    np.testing.assert_array_equal(np.lexsort((ids, orderfile.sortable(v))),
                                  np.lexsort((ids, v)))


@pytest.mark.parametrize("kind", ["random", "sorted", "reversed", "ties"])
@pytest.mark.parametrize("run, merge", [(1, 1), (7, 3), (64, 1000), (10_000, 1 << 20)])
def test_external_sort_is_the_stable_lexsort(tmp_path, monkeypatch, kind, run, merge):
    """Keys with ties, NaN, -0.0 and descending (negated) keys; runs disjoint in key
    (already sorted, reversed) or interleaved: the merged order is np.lexsort's."""
    monkeypatch.setattr(orderfile, "MIN_BLOCK", 1)
    monkeypatch.setattr(orderfile, "WRITE_ROWS", 5)
    rng = np.random.default_rng(3)
    n = 997
    if kind == "random":
        k1 = rng.integers(0, 9, n).astype(float)
        k1[rng.random(n) < 0.05] = np.nan
        k1[rng.random(n) < 0.05] = -0.0
    elif kind == "sorted":
        k1 = np.arange(n) // 3.0
    elif kind == "reversed":
        k1 = -(np.arange(n) // 3.0)
    else:
        k1 = np.zeros(n)
    k2 = -rng.normal(size=n).round(1)
    keys = [k1, k2]
    got = orderfile.sort_order(tmp_path / "s", n, 2, lambda ids: [k[ids] for k in keys],
                               run_rows=run, merge_rows=merge)
    expect = np.lexsort((np.arange(n), k2, k1))
    assert len(got) == n
    np.testing.assert_array_equal(got[0:n], expect)
    np.testing.assert_array_equal(got[100:357], expect[100:357])  # a rank's slice


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """A line and one with twice its shots, both indexed."""
    d = tmp_path_factory.mktemp("order_lines")
    paths = []
    for shots in (40, 80):
        root = d / f"s{shots}"
        write_survey(small_preset(shots=shots, channels=48, record=0.3), root)
        TraceIndex.build(root / "shots.sgy")
        paths.append(root / "shots.sgy")
    return paths


def _raw_traces(path) -> tuple[bytes, list[bytes]]:
    """(everything before the traces, each trace's bytes)."""
    with segyio.open(str(path), ignore_geometry=True) as f:
        n, ns = f.tracecount, len(f.samples)
    data = path.read_bytes() if hasattr(path, "read_bytes") else open(path, "rb").read()
    tb = 240 + 4 * ns
    head = len(data) - n * tb
    return data[:head], [data[head + i * tb: head + (i + 1) * tb] for i in range(n)]


CASES = [("sort", {"keys": "cdp,offset"}, ("CDP", "offset")),
         ("sort", {"keys": "-header_offset,ffid"}, ("-offset", "FieldRecord")),
         ("select", {"where": "channel % 3 == 0 or header_offset > -300"}, None)]


def _expected_order(path, name, params, fields):
    with segyio.open(str(path), ignore_geometry=True) as f:
        h = {k: f.attributes(getattr(segyio.TraceField, k.lstrip("-")))[:].astype(np.int64)
             for k in ("CDP", "offset", "FieldRecord", "TraceNumber")}
    n = len(h["CDP"])
    if name == "sort":
        cols = [-h[k[1:]] if k.startswith("-") else h[k] for k in fields]
        return np.lexsort([np.arange(n)] + cols[::-1])
    keep = (h["TraceNumber"] % 3 == 0) | (h["offset"] > -300)
    return np.flatnonzero(keep)


@pytest.mark.parametrize("name, params, fields", CASES)
def test_outputs_are_byte_identical_with_many_runs(lines, tmp_path, monkeypatch, name, params,
                                                   fields):
    src = lines[0]
    spec = STEPS[name]
    p = spec.resolve(params, name)
    run_step(spec, p, src, tmp_path / "one.sgy", quiet=True)  # one run, one chunk
    _small_runs(monkeypatch)
    run_step(spec, p, src, tmp_path / "many.sgy", quiet=True)
    one, many = (tmp_path / "one.sgy").read_bytes(), (tmp_path / "many.sgy").read_bytes()
    assert one == many
    # and the traces are the input's, in the order the headers give
    expect = _expected_order(src, name, params, fields)
    _, src_traces = _raw_traces(src)
    _, out_traces = _raw_traces(tmp_path / "many.sgy")
    assert 0 < len(expect) and out_traces == [src_traces[i] for i in expect]
    # no scratch file stays behind
    assert sorted(q.name for q in tmp_path.iterdir()) == \
        ["many.sgy", "many.sgy.qc.json", "one.sgy", "one.sgy.qc.json"]


@pytest.mark.parametrize("where", ["merge", "run"])
def test_nothing_left_behind_on_error(lines, tmp_path, monkeypatch, capsys, where):
    """A failure while the runs are written or merged: the one-line error and exit status
    2, and neither the output's temporary nor the scratch file stays."""
    _small_runs(monkeypatch)
    if where == "merge":
        def boom(*a, **k):
            raise OSError("disk full while merging")
        monkeypatch.setattr(orderfile, "_merge", boom)
    else:
        real = orderfile.sortable
        calls = []

        def boom(v):
            calls.append(1)
            if len(calls) > 5:  # a few runs written first
                raise OSError("disk full while sorting")
            return real(v)
        monkeypatch.setattr(orderfile, "sortable", boom)
    spec = STEPS["sort"]
    with pytest.raises(SystemExit) as e:
        run_step(spec, spec.resolve({"keys": "cdp,offset"}, "sort"), lines[0],
                 tmp_path / "o.sgy", quiet=True)
    assert e.value.code == 2
    assert "seis-hpc: error: OSError: disk full while" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, params, fields", CASES)
def test_reorder_peak_does_not_follow_the_traces(lines, tmp_path, monkeypatch, name, params,
                                                 fields):
    """1,920 -> 3,840 traces, runs of 128 traces, chunks of 64: the peak grows by less than
    8 B per added trace (h5py's registry of open objects and the runs' bookkeeping move it by
    a few kB). Before, sort grew by about 40 B a trace (every key, the sort's permutation and
    the order on every rank) and select by 8 B and more (the kept traces and the driver's
    list of the line's traces)."""
    _small_runs(monkeypatch, run=128, merge=128, write=64, chunk=64)
    # copy blocks of 64 traces (the default 64 MB would hold the whole small line)
    monkeypatch.setattr(gather_run, "_copy_ordered",
                        functools.partial(gather_run._copy_ordered, block_bytes=64 * 840))
    peaks, n0, n1 = step_peaks(name, params, lines, tmp_path)
    assert n1 == 2 * n0
    assert peaks[1] - peaks[0] < 8 * (n1 - n0), (peaks, n1 - n0)


@pytest.mark.mpi
@pytest.mark.parametrize("name, params, fields", CASES)
def test_reorder_on_two_ranks_is_byte_identical(tmp_path_factory, monkeypatch, name, params,
                                                fields):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    root = None
    if comm.rank == 0:
        root = tmp_path_factory.mktemp("mpi_order")
        write_survey(small_preset(shots=12, channels=24, record=0.3), root)
        TraceIndex.build(root / "shots.sgy")
    root = comm.bcast(root, root=0)
    spec = STEPS[name]
    p = spec.resolve(params, name)
    if comm.rank == 0:
        run_step(spec, p, root / "shots.sgy", root / "one.sgy", quiet=True)
    comm.Barrier()
    _small_runs(monkeypatch)
    run_step(spec, p, root / "shots.sgy", root / "two.sgy", comm=comm, quiet=True)
    if comm.rank == 0:
        assert (root / "one.sgy").read_bytes() == (root / "two.sgy").read_bytes()
        expect = _expected_order(root / "shots.sgy", name, params, fields)
        _, src_traces = _raw_traces(root / "shots.sgy")
        _, out_traces = _raw_traces(root / "two.sgy")
        assert out_traces == [src_traces[i] for i in expect]
        assert not [q for q in root.iterdir() if ".tmp-" in q.name or q.name.endswith(".pass")]
    comm.Barrier()


FAILING = """
import sys
from seis_hpc.flows import orderfile
orderfile.RUN_ROWS = orderfile.CHUNK = 16
RANK, WHERE = int(sys.argv[1]), sys.argv[2]
real_sortable, real_merge = orderfile.sortable, orderfile._merge

def rank():
    from mpi4py import MPI
    return MPI.COMM_WORLD.Get_rank()

def sortable(v):
    if WHERE == "run" and rank() == RANK:
        raise OSError("disk full while sorting")
    return real_sortable(v)

def merge(*a, **k):
    raise OSError("disk full while merging")

orderfile.sortable = sortable
if WHERE == "merge":
    orderfile._merge = merge
from seis_hpc.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("rank, where", [(1, "run"), (0, "merge")])
def test_failure_on_one_rank_leaves_nothing(lines, tmp_path, rank, where):
    """Under mpiexec -n 2, a run failing on rank 1, or the merge on rank 0: one error line,
    exit status 2, and neither the output, its temporary nor the scratch file stays."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("no mpiexec beside python")
    script = tmp_path / "failing.py"
    script.write_text(FAILING)
    work = tmp_path / "work"
    work.mkdir()
    out = work / "o.sgy"
    r = subprocess.run([str(mpiexec), "-n", "2", sys.executable, str(script), str(rank), where,
                        "sort", str(lines[0]), "-o", str(out), "--keys", "cdp,offset"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OMP_NUM_THREADS="1", SEIS_HPC_PROGRESS="off"))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("seis-hpc: error") == 1 and "Traceback" not in r.stderr
    assert f"disk full while {'sorting' if where == 'run' else 'merging'}" in r.stderr
    assert list(work.iterdir()) == []
