"""GPU backend (``backend="gpu"``): the CUDA kernels of seis_hpc/gpu/kernels.cu.

Three layers, so that the kernels are checked where no GPU is:

* the CPU emulator (``SEIS_HPC_GPU_EMULATE=1``) runs the very source a GPU runs, thread by
  thread: it must match the Cython kernel within 1e-4 relative on the kernel tests' problem,
  pass the dot-product test with its modelling adjoint and focus a diffractor at its place;
* NVRTC compiles every variant for Hopper (compute_90) when libnvrtc is installed (CI installs
  the ``nvidia-cuda-nvrtc-cu12`` wheel);
* on a machine with CuPy and a CUDA GPU the same checks run on the GPU (skipped elsewhere).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from seis_hpc.errors import SeisError
from seis_hpc.gpu import EMULATE_ENV, available, runtime
from seis_hpc.gpu import pstm as gpu_pstm
from seis_hpc.migration import reference as _reference
from seis_hpc.migration.pstm import kirchhoff_model, pstm

DT = 0.004
ON_GPU = available()

# the cases of tests/test_pstm.py::test_cython_matches_numpy_reference (sparse_t0 is a CPU
# economy the GPU does not use: it evaluates exactly), plus the no-AA and bare-time paths
CASES = [
    {},
    {"interp": "cubic", "aperture": 350.0, "stretch_mute": 1.0},
    {"weights": "none", "max_angle": 50.0, "t_start": 0.013},
    {"weights": "spreading"},
    {"max_angle": 60.0, "taper": 0.2},
    {"antialias": False},
    {"weights": "none", "taper": 0.0, "antialias": False},
]


@pytest.fixture(params=["emulator"] + (["cuda"] if ON_GPU else []))
def where(request, monkeypatch):
    """Run the gpu backend on the emulator, and on the GPU when there is one."""
    if request.param == "emulator":
        monkeypatch.setenv(EMULATE_ENV, "1")
    else:
        monkeypatch.delenv(EMULATE_ENV, raising=False)
    return request.param


def _flat(case, two_d):
    data, sx, sy, rx, ry, pts, time, vr = case
    if two_d:
        sy, ry, pts = 0 * sy, 0 * ry, np.column_stack([pts[:, 0], 0 * pts[:, 1]])
    return data, sx, sy, rx, ry, pts, time, vr


@pytest.mark.parametrize("kw", CASES)
@pytest.mark.parametrize("two_d", [False, True])
def test_gpu_matches_cython(where, random_case, kw, two_d):
    data, sx, sy, rx, ry, pts, time, vr = _flat(random_case, two_d)
    a = pstm(data, DT, sx, sy, rx, ry, pts, time, vr, backend="cython", **kw)
    b = pstm(data, DT, sx, sy, rx, ry, pts, time, vr, backend="gpu", **kw)
    assert b.dtype == np.float32 and np.abs(a).max() > 0
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 1e-4
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-4


def test_gpu_far_coordinates(where, random_case):
    """UTM-sized coordinates (500 km E, 3,600 km N): the hi/lo split keeps float32 exact
    enough that the image is that of the same survey near the origin."""
    data, sx, sy, rx, ry, pts, time, vr = random_case
    e, n = 512_345.678, 3_612_345.678
    a = pstm(data, DT, sx, sy, rx, ry, pts, time, vr, backend="cython")
    b = pstm(data, DT, sx + e, sy + n, rx + e, ry + n, pts + [e, n], time, vr, backend="gpu")
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 1e-4


@pytest.mark.parametrize("spt, batch", [(1, None), (4, 7), (8, 1)])
def test_gpu_samples_per_thread_and_batches(where, random_case, spt, batch):
    """Launch shape and trace batching change the summation grouping only."""
    data, sx, sy, rx, ry, pts, time, vr = random_case
    ref = pstm(data, DT, sx, sy, rx, ry, pts, time, vr, backend="gpu")
    p = _params(pts, time, vr, sx, sy, rx, ry)
    a = 0.5 * time
    iv2 = 1.0 / vr.astype(np.float64) ** 2
    out = np.zeros_like(ref)
    gpu_pstm.migrate(p, data, sx, sy, rx, ry, pts, time, a, np.broadcast_to(iv2, ref.shape),
                     out, spt=spt, batch_traces=batch)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def _params(pts, time, vr, sx, sy, rx, ry):
    from seis_hpc.migration.pstm import _setup, default_dx_aa

    *_, p = _setup(pts, time, vr, sx, sy, rx, ry, DT, 0.0, np.inf, 90.0, 0.1,
                   "spreading+obliquity", "linear", "gpu", 3, 1)
    p.update(antialias=1, dx_aa=default_dx_aa(pts), aa_max=32.0, pad=34)
    return p


def ricker(t, f=25.0):
    a = (np.pi * f * t) ** 2
    return (1 - 2 * a) * np.exp(-a)


def test_gpu_diffractor_focuses_at_its_place(where):
    """Analytic DSR data of a point diffractor image at its point and t0 sample."""
    g = np.arange(-400, 401, 20.0)
    mx, my = (a.ravel() for a in np.meshgrid(g, g))
    sx, rx, sy, ry = mx - 150.0, mx + 150.0, my.copy(), my.copy()
    pg = np.arange(-100, 101, 20.0)
    pts = np.column_stack([a.ravel() for a in np.meshgrid(pg, pg)])
    v, t0, ns = 2000.0, 0.4, 250
    x0, y0 = 20.0, -40.0
    ts = np.sqrt(t0**2 / 4 + ((sx - x0) ** 2 + (sy - y0) ** 2) / v**2)
    tr = np.sqrt(t0**2 / 4 + ((rx - x0) ** 2 + (ry - y0) ** 2) / v**2)
    data = ricker(np.arange(ns) * DT - (ts + tr)[:, None]).astype(np.float32)
    time = np.arange(200) * DT
    vr = np.full((len(pts), time.size), v, np.float32)
    img = pstm(data, DT, sx, sy, rx, ry, pts, time, vr, backend="gpu", aperture=600.0)
    p, j = np.unravel_index(np.argmax(np.abs(img)), img.shape)
    assert np.allclose(pts[p], [x0, y0]) and j == round(t0 / DT)
    assert np.abs(img).max() > 20 * np.sqrt(np.mean(img.astype(np.float64) ** 2))


ADJ_CASES = [{}, {"interp": "cubic"}, {"weights": "none"}, {"aperture": 300.0, "taper": 0.3},
             {"max_angle": 45.0, "interp": "cubic", "t_start": 0.01}]


@pytest.mark.parametrize("kw", ADJ_CASES)
@pytest.mark.parametrize("two_d", [False, True])
def test_gpu_dot_product(where, kw, two_d):
    """The GPU modelling kernel is the adjoint of the GPU migration (no AA), to float32."""
    from test_adjoint import NS as ns
    from test_adjoint import geometry

    sx, sy, rx, ry, pts, time, vr = geometry(two_d, seed=3 + len(kw))
    rng = np.random.default_rng(11)
    ntr = sx.size
    m = rng.standard_normal((len(pts), time.size)).astype(np.float32)
    d = rng.standard_normal((ntr, ns)).astype(np.float32)
    Lm = kirchhoff_model(m, pts, time, vr, sx, sy, rx, ry, ns, DT, backend="gpu", **kw)
    Ltd = pstm(d, DT, sx, sy, rx, ry, pts, time, vr, antialias=False, backend="gpu", **kw)
    lhs = np.dot(Lm.ravel().astype(np.float64), d.ravel().astype(np.float64))
    rhs = np.dot(m.ravel().astype(np.float64), Ltd.ravel().astype(np.float64))
    assert np.abs(Lm).max() > 0 and np.abs(Ltd).max() > 0
    assert abs(lhs - rhs) / max(abs(lhs), abs(rhs)) < 1e-4
    # and the modelling itself matches the Cython modelling
    ref = kirchhoff_model(m, pts, time, vr, sx, sy, rx, ry, ns, DT, backend="cython", **kw)
    assert np.linalg.norm(Lm - ref) / np.linalg.norm(ref) < 1e-4


def test_split_double_integral_gives_the_triangle_to_float32():
    """(H, Lo, D) in float32 reproduce the float64 second difference 2S(k) - S(k-L) - S(k+L)
    that float32 S alone would get wrong by ~1e-3 (the reason for the split)."""
    rng = np.random.default_rng(5)
    d = (rng.standard_normal((3, 1500)) + 0.3).astype(np.float32)  # a DC offset, as in field data
    pad = 34
    S = _reference.double_integral(d, pad)
    q = gpu_pstm.split_double_integral(np, d, pad)
    H, Lo, D = (q[..., c].astype(np.float64) for c in range(3))
    # H + Lo is S to ~2^-47 of its largest value (H exact on a grid of 2^-22 max|S|)
    big = np.abs(S).max(axis=1, keepdims=True)
    assert np.all(np.abs(H + Lo - S) <= 2.0**-45 * big)
    assert np.all(np.abs(Lo) <= 2.0**-22 * big)
    k = np.arange(pad + 40, pad + 1400, 7)
    errs = {}
    for L in (1.5, 4.25, 20.0):
        x0, x1, x2 = k + 0.3, k + 0.3 - L, k + 0.3 + L

        def lin(s, x):
            i = np.floor(x).astype(int)
            return s[:, i] + (x - i) * (s[:, i + 1] - s[:, i])

        exact = (2 * lin(S, x0) - lin(S, x1) - lin(S, x2)) / L**2
        i0, i1, i2 = (np.floor(x).astype(int) for x in (x0, x1, x2))
        f0, f1, f2 = x0 - i0, x1 - i1, x2 - i2
        split = (((H[:, i0] - H[:, i1]) + (H[:, i0] - H[:, i2]))
                 + (2 * Lo[:, i0] - Lo[:, i1] - Lo[:, i2])
                 + (2 * f0 * D[:, i0] - f1 * D[:, i1] - f2 * D[:, i2])) / L**2
        S32 = S.astype(np.float32).astype(np.float64)
        naive = (2 * lin(S32, x0) - lin(S32, x1) - lin(S32, x2)) / L**2
        scale = np.abs(exact).max()
        errs[L] = (np.abs(split - exact).max() / scale, np.abs(naive - exact).max() / scale)
        # what remains is the float32 rounding of D (|coefficients| 2 + 1 + 1)
        bound = 4 * 2.0**-24 * np.abs(D).max() / L**2 / scale
        errs[L] += (bound,)
    for L, (e_split, e_naive, bound) in errs.items():
        assert e_split <= bound, (L, e_split, bound)
        assert e_naive > 100 * e_split, (L, e_naive, e_split)


def test_gpu_rejects_float64_and_far_points(monkeypatch, random_case):
    monkeypatch.setenv(EMULATE_ENV, "1")
    data, sx, sy, rx, ry, pts, time, vr = random_case
    with pytest.raises(SeisError, match="float32"):
        pstm(data.astype(np.float64), DT, sx, sy, rx, ry, pts, time, vr, backend="gpu")
    with pytest.raises(SeisError, match="km from the centre"):
        pstm(data, DT, sx + 2e6, sy, rx, ry, pts, time, vr, backend="gpu")


def test_gpu_without_cupy_says_so(monkeypatch):
    monkeypatch.delenv(EMULATE_ENV, raising=False)
    monkeypatch.setattr(runtime, "_RUNTIME", None)
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(SeisError, match="CuPy is not installed"):
            runtime.get_runtime()
        return
    pytest.skip("CuPy is installed here")


def _variants():
    keys = ("SEIS_AA", "SEIS_INTERP", "SEIS_OBL", "SEIS_SPREAD", "SEIS_NEED_INV",
            "SEIS_ANGLE_TAPER", "SEIS_ANGLE_LIMIT", "SEIS_MUTE", "SEIS_SPT")
    for aa, interp, obl, spread, limit, spt in itertools.product((0, 1), (1, 3), (0, 1),
                                                                 (0, 1, 2), (0, 1), (1, 4)):
        need = int(aa or obl or spread or limit)
        yield dict(zip(keys, (aa, interp, obl, spread, need, need, limit, 1 - limit, spt),
                       strict=True))
    yield dict(zip(keys, (0, 1, 0, 0, 0, 0, 0, 0, 2), strict=True))  # traveltime only


@pytest.mark.skipif(__import__("seis_hpc.gpu.nvrtc", fromlist=["x"]).find_library() is None,
                    reason="libnvrtc not installed (pip install nvidia-cuda-nvrtc-cu12)")
def test_every_variant_compiles_for_hopper_with_nvrtc():
    from seis_hpc.gpu import nvrtc

    for dfs in _variants():
        ptx, log = nvrtc.compile_ptx(dfs, arch="compute_90")
        assert log == "", (dfs, log)  # no warnings either
        for name in ("pstm_migrate", "pstm_model", "pstm_bare"):
            assert f".entry {name}(" in ptx
        assert ".target sm_90" in ptx


def test_cupy_runtime_code_path_on_a_fake_cupy(monkeypatch, random_case):
    """CudaRuntime (the CuPy path: RawModule, device arrays, launches) run on tests/fake_cupy,
    which builds the kernels with the emulator: the image is the Cython kernel's."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    import fake_cupy

    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.delenv(EMULATE_ENV, raising=False)
    monkeypatch.setattr(runtime, "_RUNTIME", None)
    rt = runtime.get_runtime()
    assert isinstance(rt, runtime.CudaRuntime) and "emulator" in rt.describe()
    data, sx, sy, rx, ry, pts, time, vr = random_case
    a = pstm(data, DT, sx, sy, rx, ry, pts, time, vr, backend="cython")
    b = pstm(data, DT, sx, sy, rx, ry, pts, time, vr, backend="gpu")
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 1e-4
    monkeypatch.setattr(runtime, "_RUNTIME", None)


def test_one_gpu_per_rank_by_local_rank(monkeypatch):
    """Local rank r of a node uses GPU r % n (the launcher's variable; SLURM's too)."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    import fake_cupy

    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(fake_cupy.cuda.runtime, "getDeviceCount", lambda: 4)
    for var in ("SEIS_HPC_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                "PMI_LOCAL_RANK", "PALS_LOCAL_RANKID", "SLURM_LOCALID"):
        monkeypatch.delenv(var, raising=False)
    assert runtime.CudaRuntime().device_id == 0
    monkeypatch.setenv("SLURM_LOCALID", "6")
    assert runtime.CudaRuntime().device_id == 2
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "3")  # the MPI launcher's wins
    assert runtime.CudaRuntime().device_id == 3


def test_bench_command_gpu_without_cupy_says_so(capsys):
    """``seis-hpc bench --gpu`` runs benchmarks/bench_gpu.py; without CuPy it says so."""
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    from seis_hpc.cli import main

    assert main(["bench", "--gpu", "--repeat", "1"]) == 2
    assert "no usable CuPy/GPU" in capsys.readouterr().err
    assert main(["bench", "--gpu", "--json"]) == 2
    assert "--json with --gpu" in capsys.readouterr().err
