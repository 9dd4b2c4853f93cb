"""Strong and weak scaling of 3D PSTM on 1, 2, 4, ... MPI ranks (the engine + Cython kernel).

    .venv/bin/python benchmarks/bench_scaling.py [--ranks 1,2,4,8,16] [--scale 1.0]

No SEG-Y and no segyio: every rank synthesises the same traces in memory (random samples on a
marine-like 3D geometry; the kernel's cost does not depend on the values).

Yardstick. Cores slow down when all of them are busy (shared caches, memory bandwidth, clock),
so a parallel run is compared with N *independent* single-rank runs of the same kernel on the
same machine at the same time, each migrating a 1/N share of the units:

    T1c(N)      = N x (mean time of one independent share), the single-rank time under load
    speedup     = T1 / TN
    efficiency  = (T1 / TN) / (N x T1 / T1c(N)) = T1c(N) / (N x TN)

Strong scaling keeps the survey fixed; weak scaling grows the number of shots with N (the
image stays the same), so each rank has the same work. The job time TN includes planning on
rank 0, scheduling, the reduction of the partial images and writing the HDF5 image.

The launcher is ``.venv/bin/mpiexec`` if present, else ``mpiexec`` on PATH; with Open MPI
``--oversubscribe`` is added, and ``--allow-run-as-root`` when run as root.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NT = 376            # output samples (1.5 s at 4 ms)
DT = 0.004
APERTURE = 500.0    # m
N_CHANNELS = 96
GRID_SHAPE = (16, 48)  # inlines x crosslines of 25 x 12.5 m


def problem(n_shots: int, seed: int = 7):
    """A 3D marine-like survey: shots along sail lines over the grid, 96 channels each."""
    from seis_hpc.engine.memory_source import ArraySource
    from seis_hpc.geometry import BinGrid

    grid = BinGrid(0.0, 0.0, 0.0, 12.5, 25.0, 1, 1, *GRID_SHAPE)
    rng = np.random.default_rng(seed)
    lines = 4
    per_line = int(np.ceil(n_shots / lines))
    sx, sy, rx, ry, sid = [], [], [], [], []
    off = 100.0 + 12.5 * np.arange(N_CHANNELS)
    for k in range(n_shots):
        line, n = divmod(k, per_line)
        y = (line + 0.5) * GRID_SHAPE[0] * 25.0 / lines
        # Shots spread so that every shot's midpoints (x - 50 .. x - 650 m) lie over the grid
        # (x 0 .. 600 m) as much as the next one's: equal work per shot at any survey size.
        x = 375.0 + 600.0 * ((n + 0.5) / per_line - 0.5) * 0.9
        sx.append(np.full(N_CHANNELS, x))
        sy.append(np.full(N_CHANNELS, y))
        rx.append(x - off)
        ry.append(np.full(N_CHANNELS, y) + rng.normal(0, 5, N_CHANNELS))
        sid.append(np.full(N_CHANNELS, k))
    cat = [np.concatenate(a) for a in (sx, sy, rx, ry, sid)]
    data = rng.standard_normal((len(cat[0]), 400), dtype=np.float32)
    src = ArraySource(data, DT, *cat[:4], source_id=cat[4])
    return src, grid, np.arange(NT) * DT


class ConstVrms:
    def window(self, i0, i1, j0, j1):
        t = np.arange(NT) * DT
        return np.broadcast_to((1500 + 400 * t).astype(np.float32),
                               ((i1 - i0) * (j1 - j0), NT)).copy()


def worker(args) -> None:
    """Run under mpiexec: the parallel job, or independent shares (``--independent``)."""
    from mpi4py import MPI

    from seis_hpc.engine.pstm_run import execute, make_job

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    src, grid, t = problem(args.shots)
    kargs = {"aperture": APERTURE, "max_angle": 60.0, "threads": 1}
    job = None
    if rank == 0:
        job = make_job(src, grid, t, f"{args.tmp}/image.h5", kernel_args=kargs,
                       mem_per_rank="8G", strategy="shard", n_units=args.units,
                       checkpoint_interval=1e9, progress_period=1e9, restart="fresh")
    job = comm.bcast(job, root=0)
    quiet = lambda s: None  # noqa: E731
    comm.Barrier()
    t0 = time.perf_counter()
    if args.independent:
        mine = dataclasses.replace(job, pending=job.pending[rank::size],
                                   out=f"{args.tmp}/share-{rank}.h5",
                                   checkpoint_dir=f"{args.tmp}/share-{rank}.ckpt")
        execute(mine, src, ConstVrms(), None, log=quiet)
        el = time.perf_counter() - t0
        times = comm.gather(el, root=0)
    else:
        execute(job, src, ConstVrms(), comm, log=quiet)
        comm.Barrier()
        times = [time.perf_counter() - t0]
    if rank == 0:
        print("RESULT " + json.dumps({"times": times, "traces": int(src.n_traces),
                                      "units": len(job.plan.units)}), flush=True)


def launcher() -> list[str]:
    """mpiexec and the options this MPI needs."""
    exe = ROOT / ".venv" / "bin" / "mpiexec"
    exe = str(exe) if exe.exists() else shutil.which("mpiexec")
    if exe is None:
        sys.exit("bench_scaling: no mpiexec found")
    ver = subprocess.run([exe, "--version"], capture_output=True, text=True)
    cmd = [exe]
    if "Open MPI" in ver.stdout + ver.stderr or "OpenRTE" in ver.stdout + ver.stderr:
        cmd.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
    return cmd


def launch(n: int, shots: int, units: int, independent: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        cmd = launcher() + ["-n", str(n), sys.executable, __file__, "--worker", "--shots",
                            str(shots), "--units", str(units), "--tmp", tmp]
        if independent:
            cmd.append("--independent")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.exit(f"bench_scaling: {' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1]
        return json.loads(line[7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default=None, help="comma-separated rank counts (default "
                    "1,2,4,8,16 up to the number of cores)")
    ap.add_argument("--scale", type=float, default=1.0, help="problem size factor")
    ap.add_argument("--strong-scale", type=float, help="size factor of the strong-scaling "
                    "survey (default --scale; 64 shots per unit of scale)")
    ap.add_argument("--weak-scale", type=float, help="size factor of the weak-scaling survey "
                    "per rank (default --scale; 16 shots per rank per unit of scale)")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--independent", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--shots", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--units", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    cores = os.cpu_count() or 1
    ranks = ([int(v) for v in args.ranks.split(",")] if args.ranks
             else [n for n in (1, 2, 4, 8, 16) if n <= cores])
    strong_shots = max(8, int(round(64 * (args.strong_scale or args.scale))))
    weak_shots = max(2, int(round(16 * (args.weak_scale or args.scale))))  # per rank
    print(f"# PSTM scaling: grid {GRID_SHAPE[0]} x {GRID_SHAPE[1]} bins x {NT} samples, "
          f"aperture {APERTURE:g} m, {N_CHANNELS} channels/shot, {cores} cores, "
          f"launcher {' '.join(launcher())}")
    t1 = None
    rows = []
    for kind, shots_of in (("strong", lambda n: strong_shots), ("weak", lambda n: weak_shots * n)):
        t1 = None
        for n in ranks:
            shots = shots_of(n)
            units = max(256, 20 * n)
            job = launch(n, shots, units, False)
            tn = job["times"][0]
            # one independent single-rank run is the job itself: not run twice
            t1c = tn if n == 1 else n * float(np.mean(launch(n, shots, units, True)["times"]))
            if n == 1 or t1 is None:
                t1 = tn
            if kind == "strong":
                speedup = t1 / tn
                eff = t1c / (n * tn)
            else:  # same work per rank: the ideal TN is the loaded single-rank time T1c/N
                speedup = n * t1 / tn
                eff = t1c / (n * tn)
            rows.append((kind, n, job["traces"], job["units"], tn, t1c, speedup, eff))
            print(f"  {kind} N={n}: {tn:.2f} s, T1c {t1c:.2f} s, efficiency {eff:.1%}",
                  file=sys.stderr, flush=True)
    print("| scaling | ranks | traces | units | T_N (s) | T1c(N) (s) | speedup | efficiency |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, n, tr, un, tn, t1c, sp, eff in rows:
        print(f"| {kind} | {n} | {tr} | {un} | {tn:.2f} | {t1c:.2f} | {sp:.2f} | {eff:.1%} |")
    if args.json:
        keys = ("scaling", "ranks", "traces", "units", "t_n", "t1c", "speedup", "efficiency")
        Path(args.json).write_text(json.dumps([dict(zip(keys, r, strict=True)) for r in rows],
                                              indent=1))


if __name__ == "__main__":
    main()
