"""The parallel-HDF5 writer of the PSTM engine (``--parallel-hdf5``), against the serial one.

``make test-phdf5`` runs this file with Debian's ``python3-h5py-mpi`` under OpenMPI's
``mpiexec -n 2`` and ``-n 3`` (the ``mpi`` tests), then once without mpiexec (the tests that
launch mpiexec themselves). In the .venv, whose h5py wheel is serial, the parallel tests skip
and only the pieces that need no MPI h5py run (the reduce-scatter, the refusal of
``--parallel-hdf5 on``).

On the in-memory diffractor survey of ``tests/test_engine_mpi.py`` (and a 2D line), each case
runs the same job twice on the same ranks, once with each writer. The two files must hold
the same data sets, shapes, dtypes, chunks, dimension scales and attributes (all but
``writer``, ``timing`` and ``created``); the tile images must be identical to the bit (the
same tile files, copied), the shard images to float32 rounding (the partial images are
summed in another order), and both must match one serial call of the kernel and focus on
the diffractor. A failure on one rank while writing must end the run, leave no output and no
temporary file.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import test_engine_mpi as em
from conftest import skip_or_fail

from seis_hpc.geometry import BinGrid

ROOT = Path(__file__).resolve().parents[1]
HAS_MPI_H5PY = bool(h5py.get_config().mpi)
NEEDS_MPI_H5PY = pytest.mark.skipif(
    not HAS_MPI_H5PY, reason="h5py is not built with MPI here (the .venv's wheel is serial); "
    "`make test-phdf5` runs these with Debian's python3-h5py-mpi")
# Attributes that differ between two runs of one job by design.
VOLATILE = {"writer", "timing", "created"}
# Attributes holding object references (compared through the scales' names instead).
REFS = {"DIMENSION_LIST", "REFERENCE_LIST"}

# A 2D line: the data sets are (cmp, time), so the shard writer shares out CMPs, not rows.
GRID2D = BinGrid(0.0, 0.0, 90.0, 12.5, 12.5, 1, 101, 1, 48, 1, True)
SPIKE2D = (20, 80)  # CMP index, time sample


def make_line():
    """Shots every 25 m along the 2D line, 12 receivers trailing; one point diffractor."""
    from seis_hpc.engine.memory_source import ArraySource
    from seis_hpc.migration.pstm import kirchhoff_model

    sx, rx, sid = [], [], []
    for n, s in enumerate(np.arange(-8, 56) * 12.5):
        off = 50.0 + 25.0 * np.arange(12)
        sx += [s] * 12
        rx += list(s - off)
        sid += [n] * 12
    x0 = GRID2D.grid_to_world(GRID2D.inline0, GRID2D.crossline0)
    sx = np.asarray(sx) + x0[0]
    rx = np.asarray(rx) + x0[0]
    y = np.full(len(sx), float(x0[1]))
    img = np.zeros(GRID2D.shape + (len(em.TIME),), np.float32)
    img[SPIKE2D] = 1.0
    vr = np.full((GRID2D.n_bins, len(em.TIME)), em.V, np.float32)
    data = kirchhoff_model(img.reshape(GRID2D.n_bins, -1), GRID2D.points(), em.TIME, vr, sx, y,
                           rx, y, 140, em.DT, aperture=np.inf, dims=2)
    return ArraySource(data, em.DT, sx, y, rx, y, source_id=np.asarray(sid)), vr


class ConstVelocity2D:
    def window(self, i0, i1, j0, j1):
        return np.full(((i1 - i0) * (j1 - j0), len(em.TIME)), em.V, np.float32)


@pytest.fixture(scope="module")
def surveys():
    return {"3d": em.make_survey(), "2d": make_line()}


def run_job(comm, src, grid, out, strategy, gathers, writer, n_units=16, tile=4):
    """One engine run with the writer ``writer`` (auto/on/off); returns the exit status."""
    from seis_hpc.engine.pstm_run import execute, make_job

    job = None
    if comm is None or comm.Get_rank() == 0:
        job = make_job(src, grid, em.TIME, out, kernel_args=em.KARGS, mem_per_rank="8G",
                       strategy=strategy, tile=tile, n_units=n_units,
                       offset_edges=em.EDGES if gathers else None, checkpoint_interval=0.0,
                       parallel_hdf5=writer)
    if comm is not None:
        job = comm.bcast(job, root=0)
    vel = em.ConstVelocity() if not grid.is_2d else ConstVelocity2D()
    status = execute(job, src, vel, comm, log=lambda s: None)
    if comm is not None:
        comm.Barrier()
    return status, job


def layout(path) -> dict:
    """Every object of an HDF5 file: shape, dtype, storage, dimension scales, attributes."""
    out = {}

    def attrs(obj):
        return {k: obj.attrs[k] for k in obj.attrs if k not in VOLATILE | REFS}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = dict(
                shape=obj.shape, dtype=obj.dtype, chunks=obj.chunks, maxshape=obj.maxshape,
                compression=obj.compression, fillvalue=obj.fillvalue,
                dims=[(d.label, [Path(s.name).name for s in d.values()]) for d in obj.dims],
                attrs=attrs(obj))
        else:
            out[name] = dict(attrs=attrs(obj))

    with h5py.File(path, "r") as f:
        out["/"] = dict(attrs=attrs(f))
        f.visititems(visit)
    return out


def assert_same_layout(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        da, db = dict(a[name]), dict(b[name])
        aa, ab = da.pop("attrs"), db.pop("attrs")
        assert da == db, name
        assert sorted(aa) == sorted(ab), name
        for k in aa:
            va, vb = np.asarray(aa[k]), np.asarray(ab[k])
            assert va.dtype == vb.dtype and np.array_equal(va, vb), f"{name} attribute {k}"


def abs_terms(job, src, grid, vr) -> dict:
    """Element-wise sum of |each unit's contribution| to the image (and to each gather class).

    A shard image is the float32 sum of these terms, in an order that depends on which rank
    took which unit (handed out dynamically) and on the reduction; two such sums of K terms
    differ by at most (K - 1) * eps * (sum of |terms|), element by element.
    """
    from seis_hpc.geometry import offset_classes
    from seis_hpc.migration.pstm import pstm

    kargs = {"dims": 2 if grid.is_2d else 3, "dx_aa": grid.bin_inline, **em.KARGS}
    cls = offset_classes(src["offset"], job.offset_edges) if job.plan.n_classes else None
    shape = grid.shape + (len(em.TIME),)
    out = {"image": np.zeros(shape), "gathers": np.zeros((job.plan.n_classes,) + shape)}
    for u in job.plan.units:
        groups = [(-1, u.traces)] if cls is None else \
            [(k, u.traces[cls[u.traces] == k]) for k in range(job.plan.n_classes)]
        for k, ids in groups:
            if len(ids) == 0:
                continue
            part = np.abs(pstm(src.read_traces(ids), em.DT, src["sx"][ids], src["sy"][ids],
                               src["rx"][ids], src["ry"][ids], grid.points(), em.TIME, vr,
                               **kargs)).reshape(shape)
            out["image"] += part
            if k >= 0:
                out["gathers"][k] += part
    return out


# -- both writers on the same ranks (mpiexec -n 2 / -n 3 with an MPI h5py) --------------------

@pytest.fixture(scope="module")
def comm():
    from mpi4py import MPI

    c = MPI.COMM_WORLD
    if c.Get_size() < 2:
        pytest.skip("run under mpiexec -n 2 or more (make test-phdf5)")
    return c


@pytest.fixture
def shared_dir(comm, tmp_path):
    return Path(comm.bcast(str(tmp_path) if comm.Get_rank() == 0 else None, root=0))


@pytest.mark.mpi
@NEEDS_MPI_H5PY
@pytest.mark.parametrize("dims,strategy,gathers", [
    ("3d", "shard", False), ("3d", "tile", False), ("3d", "shard", True), ("3d", "tile", True),
    ("2d", "shard", True), ("2d", "tile", False)])
def test_parallel_writer_matches_serial(comm, shared_dir, surveys, dims, strategy, gathers):
    from seis_hpc.io.volume import read_volume

    src, vr = surveys[dims]
    grid = GRID2D if dims == "2d" else em.GRID
    spike = SPIKE2D if dims == "2d" else em.SPIKE
    serial = shared_dir / "serial.h5"
    par = shared_dir / "parallel.h5"
    status, job = run_job(comm, src, grid, serial, strategy, gathers, "off")
    assert status == 0 and job.plan.strategy == strategy and len(job.plan.units) > 3
    # "auto" must choose the parallel writer: MPI h5py and several ranks.
    status, _ = run_job(comm, src, grid, par, strategy, gathers, "auto")
    assert status == 0

    # Only the two images are left: no temporary file, no checkpoint directory.
    assert sorted(p.name for p in shared_dir.iterdir()) == ["parallel.h5", "serial.h5"]
    with h5py.File(serial, "r") as fs, h5py.File(par, "r") as fp:
        assert fs.attrs["writer"] == "rank0-assembly"
        assert fp.attrs["writer"] == "parallel-hdf5"
        assert int(fp.attrs["n_ranks"]) == comm.Get_size()
        assert len(__import__("json").loads(fp.attrs["timing"])) == comm.Get_size()
        # The axes and coordinates are written by the same calls: identical.
        for name in fs:
            if name not in ("image", "gathers"):
                assert np.array_equal(fs[name][...], fp[name][...]), name
    assert_same_layout(layout(serial), layout(par))

    names = ("image", "gathers") if gathers else ("image",)
    terms = abs_terms(job, src, grid, vr) if strategy == "shard" else None
    for name in names:
        a = read_volume(serial, name).data
        b = read_volume(par, name).data
        if strategy == "tile":
            assert np.array_equal(a, b), name  # the same tile files, copied
        else:
            # The same unit contributions summed in another order: float32 rounding only.
            bound = (len(job.plan.units) - 1) * np.finfo(np.float32).eps * terms[name]
            assert np.all(np.abs(a.astype(np.float64) - b) <= bound), name

    img = read_volume(par, "image").data
    if dims == "3d":
        ref = em.reference(src, vr)
        assert np.abs(img - ref).max() <= 1e-5 * np.abs(ref).max()
        assert img.shape == em.GRID.shape + (len(em.TIME),)
    else:
        assert img.shape == (GRID2D.n_crossline, len(em.TIME))
    # The diffractor focuses where it was put.
    assert np.unravel_index(np.argmax(img), img.shape) == spike


# -- a failure while writing (launches its own mpiexec) ----------------------------------------

def _mpiexec() -> list[str] | None:
    """The mpiexec that goes with this Python: $SEIS_HPC_PHDF5_MPIEXEC, or the one beside it."""
    if os.environ.get("SEIS_HPC_PHDF5_MPIEXEC"):
        return shlex.split(os.environ["SEIS_HPC_PHDF5_MPIEXEC"])
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    return [found] if found else None


@pytest.fixture(scope="module")
def mpiexec():
    """An mpiexec under which this Python's h5py has MPI (Debian's picks its MPI build only
    under mpiexec), or skip."""
    cmd = _mpiexec()
    if cmd is None:
        (skip_or_fail if HAS_MPI_H5PY else pytest.skip)("no mpiexec")
    probe = subprocess.run(
        [*cmd, "-n", "2", sys.executable, "-c",
         "import sys, h5py; sys.exit(0 if h5py.get_config().mpi else 3)"],
        capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        # This Python's h5py has MPI (the test-phdf5 run) but not under mpiexec: a broken
        # setup, which CI must not pass. The .venv's serial wheel skips by design.
        (skip_or_fail if HAS_MPI_H5PY else pytest.skip)(
            f"h5py has no MPI under {' '.join(cmd)} (the .venv's wheel is serial); "
            "`make test-phdf5` runs this with Debian's python3-h5py-mpi")
    return cmd


@pytest.mark.parametrize("strategy,rank", [("shard", 1), ("tile", 0)])
def test_failure_while_writing_leaves_nothing(mpiexec, tmp_path, strategy, rank):
    out = tmp_path / "img.h5"
    env = dict(os.environ, OMP_NUM_THREADS="1", SEIS_HPC_FAIL_WRITE_RANK=str(rank),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([*mpiexec, "-n", "2", sys.executable, __file__, str(out), strategy],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode != 0
    assert f"rank {rank}: RuntimeError: injected failure while writing" in r.stderr
    assert "Traceback" not in r.stderr
    # No output and no temporary file; the checkpoint is kept for a rerun.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.h5.ckpt"]


# -- the reduce-scatter of the shard writer (any MPI) ------------------------------------------

@pytest.mark.parametrize("n,size", [(7, 3), (2, 3), (0, 2), (9, 1)])
def test_share_rows_cover_once(n, size):
    from seis_hpc.engine.comm import share_rows

    shares = share_rows(n, size)
    assert len(shares) == size
    assert [r for s in shares for r in range(n)[s]] == list(range(n))
    lengths = [s.stop - s.start for s in shares]
    assert max(lengths) - min(lengths) <= 1


@pytest.mark.mpi
@pytest.mark.parametrize("slab_rows", [1, 2, 5, 100])
def test_reduce_scatter_slabs_sums_each_row_once(slab_rows):
    """Rank r holds (r + 1) * A; every row of (1 + ... + size) * A arrives on exactly one rank,
    whatever the slab (1 row: fewer rows than ranks, so some ranks get none)."""
    from mpi4py import MPI

    from seis_hpc.engine.comm import reduce_scatter_slabs

    c = MPI.COMM_WORLD
    rank, size = c.Get_rank(), c.Get_size()
    base = np.arange(7 * 3 * 5, dtype=np.float32).reshape(7, 3, 5)
    acc = (rank + 1) * base
    got = {}

    def sink(rows, summed):
        for i, r in enumerate(range(7)[rows]):
            assert r not in got
            got[r] = summed[i].copy()

    reduce_scatter_slabs(c, acc, sink, slab_bytes=slab_rows * acc[0].nbytes)
    assert np.array_equal(acc, (rank + 1) * base)  # left unchanged
    want = sum(range(1, size + 1)) * base  # small integers: exact in float32
    for r, v in got.items():
        assert np.array_equal(v, want[r])
    owners = c.allgather(sorted(got))
    assert sorted(r for o in owners for r in o) == list(range(7))


# -- without an MPI h5py --------------------------------------------------------------------

@pytest.mark.skipif(HAS_MPI_H5PY, reason="this h5py has MPI: --parallel-hdf5 on is accepted")
def test_on_without_mpi_h5py_is_refused(tmp_path):
    from seis_hpc.io.segy import write_segy

    n, ns = 24, 50
    i = np.arange(n)
    write_segy(tmp_path / "in.sgy", np.zeros((n, ns), np.float32),
               {"FieldRecord": 1 + i // 12, "TraceNumber": 1 + i,
                "SourceX": 1000.0 + 25.0 * (i // 12), "GroupX": 900.0 - 12.5 * (i % 12),
                "offset": -(100 + 12.5 * (i % 12))}, 0.004)
    (tmp_path / "v.csv").write_text("time_s,vrms_mps\n0,1500\n1,2000\n")
    out = tmp_path / "img.h5"
    r = subprocess.run([sys.executable, "-m", "seis_hpc", "pstm", str(tmp_path / "in.sgy"),
                        "--velocity", str(tmp_path / "v.csv"), "--out", str(out),
                        "--parallel-hdf5", "on"], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--parallel-hdf5 on" in lines[0] and "MPI" in lines[0], lines
    assert not out.exists() and not Path(f"{out}.ckpt").exists()


def main(argv: list[str]) -> int:
    """``mpiexec -n N python tests/test_pstm_phdf5.py OUT STRATEGY``: one job, writer ``on``."""
    from mpi4py import MPI

    out, strategy = argv
    src, _ = em.make_survey()
    status, _ = run_job(MPI.COMM_WORLD, src, em.GRID, out, strategy, False, "on")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
