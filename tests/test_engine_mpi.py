"""The PSTM engine under MPI (run with ``mpiexec -n 1, 2, 3 python -m pytest --with-mpi -m mpi``).

Every rank builds the same in-memory survey: one point diffractor modelled with the adjoint of
the migration kernel. Whatever the number of ranks and the strategy, the engine's image must
equal one serial call of the kernel over all traces and bins, and focus on the diffractor.
"""

from __future__ import annotations

import numpy as np
import pytest

from seis_hpc.geometry import BinGrid

pytestmark = pytest.mark.mpi

GRID = BinGrid(0.0, 0.0, 20.0, 12.5, 25.0, 1, 101, 6, 22)
DT = 0.004
TIME = np.arange(126) * DT  # 0 .. 0.5 s
SPIKE = (3, 9, 80)  # inline index, crossline index, time sample of the diffractor
V = 1800.0
KARGS = {"aperture": 220.0, "max_angle": 70.0, "taper": 0.1, "antialias": True,
         "weights": "spreading+obliquity", "interp": "linear", "stretch_mute": None}
EDGES = np.array([0.0, 150.0, 300.0, 500.0])


class ConstVelocity:
    def window(self, i0, i1, j0, j1):
        return np.full(((i1 - i0) * (j1 - j0), len(TIME)), V, np.float32)


def make_survey():
    from seis_hpc.engine.memory_source import ArraySource
    from seis_hpc.migration.pstm import kirchhoff_model

    # Shots along three sail lines over the grid, 12 receivers trailing each.
    sa, ca = np.sin(np.radians(GRID.azimuth)), np.cos(np.radians(GRID.azimuth))
    along = np.arange(-4, 26) * 25.0
    sx, sy, rx, ry, sid = [], [], [], [], []
    for k, line in enumerate((25.0, 75.0, 125.0)):
        for n, s in enumerate(along):
            off = 50.0 + 37.5 * np.arange(12)
            ux, uy = GRID.grid_to_world(GRID.inline0 + line / 25.0, GRID.crossline0 + s / 12.5)
            sx += [ux] * 12
            sy += [uy] * 12
            rx += list(ux - off * sa)
            ry += list(uy - off * ca)
            sid += [k * 100 + n] * 12
    sx, sy, rx, ry = (np.asarray(a, float) for a in (sx, sy, rx, ry))
    img = np.zeros(GRID.shape + (len(TIME),), np.float32)
    img[SPIKE] = 1.0
    vr = np.full((GRID.n_bins, len(TIME)), V, np.float32)
    data = kirchhoff_model(img.reshape(GRID.n_bins, -1), GRID.points(), TIME, vr, sx, sy, rx,
                           ry, 140, DT, aperture=np.inf, dims=3)
    return ArraySource(data, DT, sx, sy, rx, ry, source_id=np.asarray(sid)), vr


def reference(src, vr, ids=None):
    from seis_hpc.migration.pstm import pstm

    ids = np.arange(src.n_traces) if ids is None else ids
    out = pstm(src.read_traces(ids), DT, src["sx"][ids], src["sy"][ids], src["rx"][ids],
               src["ry"][ids], GRID.points(), TIME, vr, **KARGS)
    return out.reshape(GRID.shape + (len(TIME),))


@pytest.fixture(scope="module")
def comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


@pytest.fixture
def shared_dir(comm, tmp_path):
    return comm.bcast(str(tmp_path) if comm.Get_rank() == 0 else None, root=0)


def run_engine(comm, out, strategy, gathers, n_units=16, tile=4):
    from seis_hpc.engine.pstm_run import execute, make_job

    src, _ = make_survey()
    job = None
    if comm.Get_rank() == 0:
        job = make_job(src, GRID, TIME, out, kernel_args=KARGS, mem_per_rank="8G",
                       strategy=strategy, tile=tile, n_units=n_units,
                       offset_edges=EDGES if gathers else None, checkpoint_interval=0.0)
    job = comm.bcast(job, root=0)
    status = execute(job, src, ConstVelocity(), comm, log=lambda s: None)
    comm.Barrier()
    return status, job


@pytest.mark.parametrize("strategy,gathers", [("shard", False), ("tile", False),
                                              ("shard", True), ("tile", True)])
def test_image_independent_of_rank_count(comm, shared_dir, strategy, gathers):
    from seis_hpc.io.volume import read_volume

    out = f"{shared_dir}/img-{strategy}-{int(gathers)}.h5"
    status, job = run_engine(comm, out, strategy, gathers)
    assert status == 0
    assert job.plan.strategy == strategy and len(job.plan.units) > 3
    src, vr = make_survey()
    ref = reference(src, vr)
    vol = read_volume(out, "image")
    scale = np.abs(ref).max()
    assert scale > 0
    assert np.abs(vol.data - ref).max() <= 1e-5 * scale
    # The diffractor focuses where it was put.
    assert np.unravel_index(np.argmax(vol.data), vol.data.shape) == SPIKE
    if gathers:
        g = read_volume(out, "gathers")
        assert g.data.shape == (3,) + GRID.shape + (len(TIME),)
        cls = np.searchsorted(EDGES, src["offset"], side="right") - 1
        for k in range(3):
            want = reference(src, vr, np.flatnonzero(cls == k))
            assert np.abs(g.data[k] - want).max() <= 1e-5 * scale
    import h5py

    with h5py.File(out) as f:
        assert int(f.attrs["n_ranks"]) == comm.Get_size()
        assert len(__import__("json").loads(f.attrs["timing"])) == comm.Get_size()
        assert f.attrs["strategy"] == strategy


def test_more_ranks_than_units(comm, shared_dir):
    from seis_hpc.io.volume import read_volume

    out = f"{shared_dir}/img-one-unit.h5"
    status, job = run_engine(comm, out, "shard", False, n_units=2)
    assert status == 0 and len(job.plan.units) == 2
    src, vr = make_survey()
    ref = reference(src, vr)
    vol = read_volume(out, "image")
    assert np.abs(vol.data - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("strategy", ["shard", "tile"])
def test_normalised_image_independent_of_rank_count(comm, shared_dir, strategy):
    """normalise="reflector": the division by the flat-reflector response (measured on coarse
    points split among the ranks) gives, for any number of ranks and either plan, the serial
    raw image divided by the serially measured response, image and gathers alike."""
    from seis_hpc.engine.pstm_run import execute, job_response, make_job
    from seis_hpc.io.volume import read_volume

    out = f"{shared_dir}/norm-{strategy}.h5"
    src, vr = make_survey()
    job = None
    if comm.Get_rank() == 0:
        job = make_job(src, GRID, TIME, out, kernel_args=KARGS, mem_per_rank="8G",
                       strategy=strategy, tile=4, n_units=16, offset_edges=EDGES,
                       checkpoint_interval=0.0, normalise="reflector")
    job = comm.bcast(job, root=0)
    assert execute(job, src, ConstVelocity(), comm, log=lambda s: None) == 0
    comm.Barrier()
    resp = job_response(job, src, ConstVelocity())  # serial
    rows, cols = np.arange(GRID.n_inline), np.arange(GRID.n_crossline)
    want = resp.apply("image", reference(src, vr), rows, cols)
    got = read_volume(out, "image").data
    assert np.abs(want).max() > 0
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    # the response is positive and grows with t0 (3D: about v^2 t0 per unit fold)
    r = resp.image[resp.image.shape[0] // 2, resp.image.shape[1] // 2]
    assert np.all(r > 0) and r[100] > 1.5 * r[40]
    g = read_volume(out, "gathers").data
    cls = np.searchsorted(EDGES, src["offset"], side="right") - 1
    for k in range(len(EDGES) - 1):
        want_k = resp.apply("gathers", reference(src, vr, np.flatnonzero(cls == k)), rows,
                            cols, (k,))
        assert np.abs(g[k] - want_k).max() <= 1e-5 * np.abs(want_k).max()
