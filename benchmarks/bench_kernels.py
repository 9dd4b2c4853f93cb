"""Throughput of the PSTM kernels against a float32 SIMD plain C loop (the ceiling).

Fixed 3D problem (printed): random marine-like traces over a 1.5 x 1.5 km patch migrated to a
20 x 20 grid of output points at 25 m, 600 output samples at 4 ms, 1000 m aperture. One
evaluation = one (trace, output sample) pair inside the aperture, i.e. pairs within the
aperture x output samples with t0 > 0, whatever the variant does per evaluation. Figures are
evaluations per second per core (divided by the thread count), best of ``--repeat`` runs.

Yardsticks (``benchmarks/plain_loop.c``: DSR + linear interpolation + accumulate, one thread,
compiled in the same run and loaded with ctypes):

* the ceiling, ``plain_pstm_f32``: float32 throughout, output samples vectorised
  (``omp simd``), read index clamped, compiled with whatever helps it (``C_FLAGS_F32``,
  ``-ffast-math`` included: it is a yardstick, not the product);
* the former ceiling, ``plain_pstm_f64``: the same loop scalar in float64, compiled with the
  kernels' flags (``setup.py``);
* Seismic Unix's ``suktmig2d`` (``SU_RATE``, not run here: measured on the 2-core
  development VM, issue #20), for the ratio of each variant to it.

    .venv/bin/python benchmarks/bench_kernels.py [--repeat 3] [--json]
    seis-hpc bench [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# the kernels' flags (setup.py), for the float64 loop
C_FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math",
           "-fPIC", "-shared"]
# the float32 ceiling: any flag that makes it faster
C_FLAGS_F32 = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-fPIC", "-shared"]
# Seismic Unix suktmig2d (2D Kirchhoff PSTM, one core), evaluations/s: ~5.4e6 on the 2-core
# development VM (issue #20); a published figure, not measured by this script
SU_RATE = 5.4e6
CEILING = "plain C float32 SIMD (ceiling)"

NTR, NS, DT, NT, APERTURE = 1200, 700, 0.004, 600, 1000.0
GRID_N, GRID_DX = 20, 25.0


def problem():
    """The fixed benchmark problem: data, geometry, output points, times and velocities."""
    rng = np.random.default_rng(0)
    mx = rng.uniform(0, 1500, NTR)
    my = rng.uniform(0, 1500, NTR)
    off = rng.uniform(100, 3000, NTR)
    az = rng.uniform(-0.2, 0.2, NTR)  # mostly inline, narrow azimuth
    hx, hy = 0.5 * off * np.cos(az), 0.5 * off * np.sin(az)
    sx, sy, rx, ry = mx - hx, my - hy, mx + hx, my + hy
    g = 750 + GRID_DX * (np.arange(GRID_N) - GRID_N / 2)
    pts = np.column_stack([a.ravel() for a in np.meshgrid(g, g)])
    time_axis = np.arange(NT) * DT
    vr = (1500 + 600 * time_axis[None] + 50 * rng.random((len(pts), 1))).astype(np.float32)
    data = rng.standard_normal((NTR, NS)).astype(np.float32)
    return data, sx, sy, rx, ry, pts, time_axis, vr


def evaluations(sx, sy, rx, ry, pts, time_axis) -> int:
    """(trace, output sample) pairs inside the aperture."""
    mx, my = 0.5 * (sx + rx), 0.5 * (sy + ry)
    dist = np.hypot(pts[:, 0, None] - mx[None], pts[:, 1, None] - my[None])
    return int((dist <= APERTURE).sum()) * int((time_axis > 0).sum())


def best_time(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def build_plain_loop(tmp: Path):
    """Compile plain_loop.c twice (ceiling flags, kernel flags); (f32, f64) functions, or None
    when no C compiler is found."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    funcs = []
    for name, flags in (("f32", C_FLAGS_F32), ("f64", C_FLAGS)):
        so = tmp / f"plain_loop_{name}.so"
        subprocess.run([cc, *flags, str(HERE / "plain_loop.c"), "-o", str(so), "-lm"],
                       check=True)
        fn = getattr(ctypes.CDLL(str(so)), f"plain_pstm_{name}")
        dtype, real = ((np.float32, ctypes.c_float) if name == "f32"
                       else (np.float64, ctypes.c_double))
        rp = np.ctypeslib.ndpointer(dtype, flags="C_CONTIGUOUS")
        fp = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
        i = ctypes.c_int
        fn.argtypes = [fp, i, i, real, real, rp, rp, rp, rp, rp, i, rp, i, rp, real, fp]
        fn.restype = None
        funcs.append(fn)
    return funcs


def run_benchmark(repeat: int = 3, log=print) -> dict:
    """Time every variant; return the figures (evaluations/s/core) and ratios as a dict."""
    from seis_hpc.kernels import openmp
    from seis_hpc.migration.pstm import pstm

    data, sx, sy, rx, ry, pts, time_axis, vr = problem()
    n_eval = evaluations(sx, sy, rx, ry, pts, time_axis)
    log(f"problem: {NTR} traces x {NS} samples at {DT * 1e3:g} ms -> {len(pts)} points "
        f"({GRID_N} x {GRID_N} at {GRID_DX:g} m) x {NT} samples, aperture {APERTURE:g} m: "
        f"{n_eval:.3e} evaluations")
    log(f"OpenMP: {'on' if openmp.have_openmp() else 'off'}; plain C flags: float32 "
        f"{' '.join(C_FLAGS_F32)}; float64 {' '.join(C_FLAGS)}")
    base = {"aperture": APERTURE, "taper": 0.0, "weights": "none", "antialias": False}
    full = {"aperture": APERTURE, "taper": 0.1, "weights": "spreading+obliquity",
            "antialias": True}
    variants = [
        ("cython PSTM, no AA, linear", base, 1),
        ("cython PSTM, AA + weights + taper", full, 1),
        ("cython PSTM, AA + weights + taper, sparse t0", {**full, "sparse_t0": "auto"}, 1),
        ("cython PSTM, no AA, linear, sparse t0", {**base, "sparse_t0": "auto"}, 1),
        ("cython PSTM, AA + weights + taper, 2 threads", full, 2),
        ("cython PSTM, AA + weights + taper, sparse t0, 2 threads",
         {**full, "sparse_t0": "auto"}, 2),
    ]
    results = {"problem": {"ntr": NTR, "ns": NS, "dt": DT, "npts": len(pts), "nt": NT,
                           "aperture_m": APERTURE, "evaluations": n_eval},
               "c_flags": {"float32": " ".join(C_FLAGS_F32), "float64": " ".join(C_FLAGS)},
               "su_rate": SU_RATE, "rates": {}}
    rates = results["rates"]

    # NumPy reference on a subset of points (it is slow); rate per evaluation is what counts
    sub = slice(0, 40)
    n_sub = evaluations(sx, sy, rx, ry, pts[sub], time_axis)
    t = best_time(lambda: pstm(data, DT, sx, sy, rx, ry, pts[sub], time_axis, vr[sub],
                               backend="numpy", **base), 1)
    rates["numpy reference, no AA, linear"] = n_sub / t

    with tempfile.TemporaryDirectory() as tmp:
        funcs = build_plain_loop(Path(tmp))
    if funcs is not None:
        f32, f64 = funcs
        # t0 = 0 is not imaged by the kernels; the C loops skip it the same way
        a2 = (0.5 * time_axis[1:]) ** 2
        iv2 = np.ascontiguousarray(1.0 / vr[:, 1:].astype(np.float64) ** 2)
        geo = [np.ascontiguousarray(v) for v in (sx, sy, rx, ry, pts)]
        out = np.zeros((len(pts), NT - 1), np.float32)
        for fn, dtype, name in ((f32, np.float32, CEILING),
                                (f64, np.float64, "plain C float64 scalar (former ceiling)")):
            args = ([data, NTR, NS, DT, 0.0, *(g.astype(dtype) for g in geo[:4]),
                     geo[4].astype(dtype), len(pts), a2.astype(dtype), NT - 1,
                     iv2.astype(dtype), APERTURE, out])
            rates[name] = n_eval / best_time(lambda fn=fn, args=args: fn(*args), repeat)
    for name, kw, threads in variants:
        t = best_time(lambda kw=kw, th=threads: pstm(data, DT, sx, sy, rx, ry, pts, time_axis,
                                                     vr, threads=th, **kw), repeat)
        rates[name] = n_eval / t / threads
    ref = rates["numpy reference, no AA, linear"]
    ceiling = rates.get(CEILING)
    if ceiling:
        results["x_ceiling"] = {name: r / ceiling for name, r in rates.items()}
    results["x_su"] = {name: r / SU_RATE for name, r in rates.items()}
    log(f"{'variant':58s} {'evals/s/core':>13s} {'x numpy':>8s} {'x ceiling':>9s} {'x SU':>6s}")
    for name, r in rates.items():
        c = f"{r / ceiling:9.2f}" if ceiling else "      n/a"
        log(f"{name:58s} {r:13.3e} {r / ref:8.1f} {c} {r / SU_RATE:6.1f}")
    log(f"x SU: against Seismic Unix suktmig2d at {SU_RATE:.2g} evaluations/s (not run here)")
    one = rates["cython PSTM, AA + weights + taper"]
    two = rates["cython PSTM, AA + weights + taper, 2 threads"] * 2
    results["speedup_2_threads"] = two / one
    log(f"2 threads / 1 thread (AA + weights + taper): {two / one:.2f}x")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant, best is kept")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = ap.parse_args(argv)
    res = run_benchmark(args.repeat, log=(lambda *a: None) if args.json else print)
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
