"""Throughput of the PSTM kernels against the NumPy reference and a plain C loop (the ceiling).

Fixed 3D problem (printed): random marine-like traces over a 1.5 x 1.5 km patch migrated to a
20 x 20 grid of output points at 25 m, 600 output samples at 4 ms, 1000 m aperture. One
evaluation = one (trace, output sample) pair inside the aperture, i.e. pairs within the
aperture x output samples with t0 > 0, whatever the variant does per evaluation. Figures are
evaluations per second per core (divided by the thread count), best of ``--repeat`` runs.

The plain C loop (``benchmarks/plain_loop.c``: DSR + linear interpolation + accumulate, one
thread) is compiled in the same run with the kernels' flags (``gcc -O3 -march=native
-ffp-contract=fast -fno-math-errno -fno-trapping-math``, see ``setup.py``; no ``-ffast-math``:
neither flag changes a computed value) and loaded with ctypes.

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
# the kernels' flags (setup.py), so that the ceiling is compiled exactly as the kernels are
C_FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math",
           "-fPIC", "-shared"]

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
    """Compile plain_loop.c into a shared library; None when no C compiler is found."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    so = tmp / "plain_loop.so"
    subprocess.run([cc, *C_FLAGS, str(HERE / "plain_loop.c"), "-o", str(so), "-lm"], check=True)
    lib = ctypes.CDLL(str(so))
    dp = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
    fp = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
    i, d = ctypes.c_int, ctypes.c_double
    lib.plain_pstm.argtypes = [fp, i, i, d, d, dp, dp, dp, dp, dp, i, dp, i, dp, d, fp]
    lib.plain_pstm.restype = None
    return lib


def run_benchmark(repeat: int = 3, log=print) -> dict:
    """Time every variant; return the figures (evaluations/s/core) and ratios as a dict."""
    from seis_hpc.kernels import openmp
    from seis_hpc.migration.pstm import pstm

    data, sx, sy, rx, ry, pts, time_axis, vr = problem()
    n_eval = evaluations(sx, sy, rx, ry, pts, time_axis)
    log(f"problem: {NTR} traces x {NS} samples at {DT * 1e3:g} ms -> {len(pts)} points "
        f"({GRID_N} x {GRID_N} at {GRID_DX:g} m) x {NT} samples, aperture {APERTURE:g} m: "
        f"{n_eval:.3e} evaluations")
    log(f"OpenMP: {'on' if openmp.have_openmp() else 'off'}; plain C flags: {' '.join(C_FLAGS)}")
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
               "c_flags": " ".join(C_FLAGS), "rates": {}}
    rates = results["rates"]

    # NumPy reference on a subset of points (it is slow); rate per evaluation is what counts
    sub = slice(0, 40)
    n_sub = evaluations(sx, sy, rx, ry, pts[sub], time_axis)
    t = best_time(lambda: pstm(data, DT, sx, sy, rx, ry, pts[sub], time_axis, vr[sub],
                               backend="numpy", **base), 1)
    rates["numpy reference, no AA, linear"] = n_sub / t

    with tempfile.TemporaryDirectory() as tmp:
        lib = build_plain_loop(Path(tmp))
        if lib is not None:
            a2 = (0.5 * time_axis) ** 2
            iv2 = np.ascontiguousarray(1.0 / vr.astype(np.float64) ** 2)
            out = np.zeros((len(pts), NT), np.float32)
            # t0 = 0 is not imaged by the kernels; the C loop skips it the same way
            t = best_time(lambda: lib.plain_pstm(
                data, NTR, NS, DT, 0.0, sx, sy, rx, ry, np.ascontiguousarray(pts), len(pts),
                a2[1:].copy(), NT - 1, np.ascontiguousarray(iv2[:, 1:]), APERTURE, out),
                repeat)
            rates["plain C loop (ceiling)"] = n_eval / t
    for name, kw, threads in variants:
        t = best_time(lambda kw=kw, th=threads: pstm(data, DT, sx, sy, rx, ry, pts, time_axis,
                                                     vr, threads=th, **kw), repeat)
        rates[name] = n_eval / t / threads
    ref = rates["numpy reference, no AA, linear"]
    ceiling = rates.get("plain C loop (ceiling)")
    log(f"{'variant':58s} {'evals/s/core':>13s} {'x numpy':>8s} {'x plain C':>9s}")
    for name, r in rates.items():
        c = f"{r / ceiling:9.2f}" if ceiling else "      n/a"
        log(f"{name:58s} {r:13.3e} {r / ref:8.1f} {c}")
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
