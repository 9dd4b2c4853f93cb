"""Rank 0's planning of a PSTM job as the engine does it (``make_job``), without computing:
time, peak RSS and the plan's figures, and a digest of its units (to compare two versions).

    python benchmarks/plan_rank0.py INDEX.h5 [--mem-per-rank 4G] [--aperture 3000]
        [--max-angle 60] [--tmax 5] [--dt 0.002] [--tile N] [--strategy auto]

Run it under ``/usr/bin/time -v`` for the process's peak RSS (also printed from getrusage).
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index")
    ap.add_argument("--mem-per-rank", default="4G")
    ap.add_argument("--aperture", type=float, default=3000.0)
    ap.add_argument("--max-angle", type=float, default=60.0)
    ap.add_argument("--tmax", type=float, default=5.0)
    ap.add_argument("--dt", type=float, default=0.002)
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--strategy", default="auto")
    a = ap.parse_args()

    from seis_hpc.engine.pstm_run import make_job
    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.index import TraceIndex

    t0 = time.perf_counter()
    idx = TraceIndex.open(a.index)
    grid = BinGrid.from_attrs(idx.attrs)
    times = np.arange(0.0, a.tmax + 0.5 * a.dt, a.dt)
    with tempfile.TemporaryDirectory() as tmp:
        job = make_job(idx, grid, times, f"{tmp}/image.h5",
                       kernel_args={"aperture": a.aperture, "max_angle": a.max_angle},
                       mem_per_rank=a.mem_per_rank, strategy=a.strategy, tile=a.tile,
                       checkpoint_dir=f"{tmp}/ckpt", restart="fresh")
    wall = time.perf_counter() - t0
    plan = job.plan
    h = hashlib.sha1()
    n_runs = 0
    for u in plan.units:
        runs = np.ascontiguousarray(u.runs)
        n_runs += len(runs)
        h.update(np.array([u.uid, u.n_traces, *u.window, u.offset_class], np.int64).tobytes())
        h.update(np.float64(u.work).tobytes())
        h.update(runs.tobytes())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"traces {job.n_input_traces}, strategy {plan.strategy}, tile {plan.tile}, "
          f"units {len(plan.units)}, runs {n_runs}, trace reads {plan.n_traces_total}, "
          f"distinct {job.traces_distinct}, cache {job.cache_traces}, "
          f"bytes_tile {plan.bytes_tile}, pending {len(job.pending)}")
    print(f"units digest {h.hexdigest()}")
    print(f"planning {wall:.1f} s, peak RSS {peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
