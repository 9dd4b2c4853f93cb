"""Throughput of NMO correction, inverse NMO and semblance scans: Cython kernel vs NumPy reference.

One synthetic marine CMP gather (120 traces, 8 s at 4 ms, offsets 100-6000 m), 100 trial
velocities. Each figure is the best of ``--repeat`` runs; the ratio to the NumPy reference is
measured in the same run. Units: NMO "samples/s" are output samples (trace x time);
semblance "evals/s" are (trace, time, velocity) evaluations.

    .venv/bin/python benchmarks/bench_nmo.py [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from seis_hpc.kernels import openmp
from seis_hpc.velocity.nmo import inverse_nmo, nmo_correct
from seis_hpc.velocity.semblance import semblance


def best_time(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: as set)")
    args = ap.parse_args()
    if args.threads:
        openmp.set_threads(args.threads)

    ntr, ns, dt = 120, 2001, 0.004
    x = np.linspace(100.0, 6000.0, ntr)
    rng = np.random.default_rng(0)
    d = rng.standard_normal((ntr, ns)).astype(np.float32)
    t0 = np.arange(ns) * dt
    v = 1500.0 + 250.0 * t0
    vel = np.linspace(1400.0, 4000.0, 100)

    cases = [
        ("nmo_correct linear", ntr * ns, "samples/s",
         lambda b: nmo_correct(d, x, dt, v, backend=b)),
        ("nmo_correct cubic", ntr * ns, "samples/s",
         lambda b: nmo_correct(d, x, dt, v, interp="cubic", backend=b)),
        ("inverse_nmo linear", ntr * ns, "samples/s",
         lambda b: inverse_nmo(d, x, dt, v, backend=b)),
        ("semblance conventional", ntr * ns * vel.size, "evals/s",
         lambda b: semblance(d, x, dt, vel, backend=b)),
        ("semblance ab", ntr * ns * vel.size, "evals/s",
         lambda b: semblance(d, x, dt, vel, method="ab", backend=b)),
    ]
    print(f"gather {ntr} x {ns}, {vel.size} velocities, OpenMP threads: "
          f"{openmp.max_threads()} (have OpenMP: {openmp.have_openmp()})")
    print(f"{'kernel':<24} {'cython':>12} {'numpy':>12} {'unit':>10} {'ratio':>7}")
    for name, work, unit, fn in cases:
        tc = best_time(lambda fn=fn: fn("cython"), args.repeat)
        tn = best_time(lambda fn=fn: fn("numpy"), args.repeat)
        print(f"{name:<24} {work / tc:12.3e} {work / tn:12.3e} {unit:>10} {tn / tc:7.1f}")


if __name__ == "__main__":
    main()
