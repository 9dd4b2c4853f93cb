"""A million-trace 3D survey on one machine: index, plan and PSTM on 2 ranks (issue 19).

    .venv/bin/python benchmarks/bench_scale.py [--traces 1000000] [--ns 1000] [--ranks 2]
        [--workdir DIR] [--json OUT.json] [--keep]

Writes a marine 3D survey as SEG-Y *streamed* (one block of shots at a time, never the
whole survey in memory; about 4 GB at 10^6 traces x 1,000 samples), then times, each in
its own process with its peak RSS:

* ``index``: ``seis-hpc index`` of the file;
* ``plan``: opening the survey and planning the PSTM job (rank 0's work before the ranks
  start: binning, units, the checkpoint's parameters);
* ``pstm``: ``mpiexec -n RANKS seis-hpc pstm`` with a small aperture and short ``tmax``, the
  peak RSS of every rank and the throughput (input traces per second of wall time).

Geometry: sail lines along x, 25 m shots, 6 streamers x 120 channels of 12.5 m, 100 m
apart (720 traces a shot); the samples are a few spikes (the kernel's cost does not depend
on them). Run it on a quiet machine; ``--traces 10000`` is a quick check of the script.
"""

from __future__ import annotations

import argparse
import json
import math
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

STREAMERS, CHANNELS = 6, 120
GROUP, SEP, SHOT = 12.5, 100.0, 25.0  # m: group interval, streamer separation, shot step
DT = 0.002
BLOCK_TRACES = 100_000  # traces written at a time

# Runs a command in this interpreter and writes its peak RSS (kB) to $BENCH_RSS_DIR on exit
# (one file per process: the MPI rank's from the launcher's environment). VmHWM, not
# getrusage's ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec.
RSS_WRAPPER = """
import atexit, os, runpy, sys
def _rss():
    rank = next((os.environ[k] for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
                 if k in os.environ), "0")
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(os.path.join(os.environ["BENCH_RSS_DIR"], f"rank{rank}.kb"), "w") as f:
        f.write(kb)
atexit.register(_rss)
sys.argv = sys.argv[1:]
if sys.argv[0] == "-m":
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:  # -c CODE ARGS
    code, sys.argv = sys.argv[1], ["-c"] + sys.argv[2:]
    exec(compile(code, "<bench>", "exec"), {"__name__": "__main__"})
"""

PLAN_SCRIPT = """
import sys, time
import numpy as np
from seis_hpc.engine.pstm_run import make_job
from seis_hpc.migration.pstm import PstmParams
from seis_hpc.survey import Survey
index, ckpt, tmax, aperture, mem = sys.argv[1:6]
t0 = time.perf_counter()
sv = Survey.open(index)
t1 = time.perf_counter()
time_axis = np.arange(int(round(float(tmax) / DT_S)) + 1) * DT_S
job = make_job(sv.index, sv.grid, time_axis, ckpt + "/plan.h5", checkpoint_dir=ckpt,
               kernel_args=PstmParams(aperture=float(aperture)).kernel_args(),
               mem_per_rank=mem)
t2 = time.perf_counter()
print(f"open {t1 - t0:.3f} plan {t2 - t1:.3f} units {len(job.plan.units)} "
      f"strategy {job.plan.strategy}")
""".replace("DT_S", repr(DT))


def layout(n_traces: int) -> tuple[int, int]:
    """(sail lines, shots per line) for about ``n_traces`` traces (lines 4x longer than
    the survey is wide)."""
    per_shot = STREAMERS * CHANNELS
    shots = max(1, math.ceil(n_traces / per_shot))
    lines = max(1, round(math.sqrt(shots / 40)))
    return lines, math.ceil(shots / lines)


def shot_headers(line: int, k: int, ffid: int) -> dict[str, np.ndarray]:
    """Trace headers of one shot (line ``line``, shot ``k`` along it)."""
    n = STREAMERS * CHANNELS
    sx = 1000.0 + SHOT * k
    sy = 1000.0 + line * STREAMERS * SEP / 2
    st = np.repeat(np.arange(STREAMERS), CHANNELS)
    ch = np.tile(np.arange(CHANNELS), STREAMERS)
    rx = sx + 150.0 + GROUP * ch
    ry = sy + (st - (STREAMERS - 1) / 2) * SEP
    return {"FieldRecord": np.full(n, ffid), "TraceNumber": st * CHANNELS + ch + 1,
            "SourceX": np.full(n, sx), "SourceY": np.full(n, sy), "GroupX": rx, "GroupY": ry,
            "offset": np.rint(np.hypot(rx - sx, ry - sy))}


def write_survey(path: Path, n_traces: int, ns: int) -> int:
    """Write the survey block by block; returns the number of traces written."""
    from seis_hpc.io.segy import _header_block, trace_block, write_segy

    lines, per_line = layout(n_traces)
    shots = [(ln, k) for ln in range(lines) for k in range(per_line)]
    per_shot = STREAMERS * CHANNELS
    shots = shots[:max(1, math.ceil(n_traces / per_shot))]
    block = max(1, BLOCK_TRACES // per_shot)
    spikes = np.zeros(ns, np.float32)
    # the first spike inside the default tmax (0.3 s), so that the image is not empty
    spikes[[ns // 10, ns // 3, ns // 2]] = (1.0, -0.7, 0.5)
    written = 0
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as out:
        for a in range(0, len(shots), block):
            hdrs = [shot_headers(ln, k, a + i + 1) for i, (ln, k) in enumerate(shots[a:a + block])]
            h = {key: np.concatenate([x[key] for x in hdrs]) for key in hdrs[0]}
            n = len(h["FieldRecord"])
            data = np.broadcast_to(spikes, (n, ns))
            if a == 0:  # the first block through the library writer: file headers and all
                first = path.with_suffix(".first")
                write_segy(first, np.ascontiguousarray(data), h, DT)
                with open(first, "rb") as f:
                    shutil.copyfileobj(f, out)
                first.unlink()
            else:
                hb = _header_block(h, n, ns, DT, 0.0, ">")
                out.write(trace_block(hb, data, 5, "big").tobytes())
            written += n
    os.replace(tmp, path)
    return written


def run_measured(argv: list[str], rss_dir: Path, mpi: list[str] | None = None,
                 timeout: float = 24 * 3600) -> tuple[float, list[int], str]:
    """Run ``python -m ...`` (under ``mpi`` if given); wall time (s), peak RSS per process
    (kB, by rank) and the standard error."""
    shutil.rmtree(rss_dir, ignore_errors=True)
    rss_dir.mkdir(parents=True)
    env = dict(os.environ, BENCH_RSS_DIR=str(rss_dir), OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-c", RSS_WRAPPER, *argv]
    if mpi:
        cmd = mpi + cmd
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    rss = [int((rss_dir / f"rank{i}.kb").read_text()) for i in range(len(list(rss_dir.iterdir())))]
    return wall, rss, r.stderr + r.stdout


def mpiexec(ranks: int) -> list[str]:
    exe = ROOT / ".venv" / "bin" / "mpiexec"
    exe = str(exe) if exe.exists() else shutil.which("mpiexec")
    if exe is None:
        raise SystemExit("no mpiexec (.venv/bin/mpiexec or on PATH)")
    out = [exe, "-n", str(ranks)]
    ver = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in ver or "OpenRTE" in ver:
        out[1:1] = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=int, default=1_000_000, help="traces (default 10^6)")
    ap.add_argument("--ns", type=int, default=1000, help="samples per trace (2 ms)")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--tmax", type=float, default=0.3, help="output tmax (s; default 0.3)")
    ap.add_argument("--aperture", type=float, default=200.0, help="m (default 200)")
    ap.add_argument("--mem-per-rank", default="4G")
    ap.add_argument("--strategy", choices=("shard", "tile"),
                    help="pstm's strategy (default: the engine's choice)")
    ap.add_argument("--workdir", help="where the survey goes (default a temporary folder)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the survey and image")
    a = ap.parse_args(argv)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    sgy = work / "survey.sgy"
    vel = work / "vrms.csv"
    vel.write_text("time_s,vrms_mps\n0,1500\n2,2500\n10,4000\n")
    res: dict = {"traces_requested": a.traces, "ns": a.ns, "ranks": a.ranks, "tmax": a.tmax,
                 "aperture_m": a.aperture, "mem_per_rank": a.mem_per_rank,
                 "strategy": a.strategy}
    try:
        t0 = time.perf_counter()
        n = write_survey(sgy, a.traces, a.ns)
        res.update(traces=n, write_s=round(time.perf_counter() - t0, 2),
                   segy_bytes=sgy.stat().st_size)
        print(f"wrote {n} traces ({sgy.stat().st_size / 1e9:.2f} GB) in {res['write_s']} s",
              flush=True)
        rss = work / "rss"
        wall, kb, _ = run_measured(["-m", "seis_hpc", "index", str(sgy)], rss)
        res.update(index_s=round(wall, 2), index_rss_mb=round(kb[0] / 1024, 1))
        print(f"index {wall:.1f} s, peak RSS {kb[0] / 1024:.0f} MB", flush=True)
        idx = str(sgy) + ".index.h5"
        wall, kb, text = run_measured(["-c", PLAN_SCRIPT, idx, str(work / "plan.ckpt"),
                                       str(a.tmax), str(a.aperture), a.mem_per_rank], rss)
        res.update(plan_s=round(wall, 2), plan_rss_mb=round(kb[0] / 1024, 1),
                   plan_detail=text.strip().splitlines()[-1])
        print(f"plan {wall:.1f} s ({res['plan_detail']}), peak RSS {kb[0] / 1024:.0f} MB",
              flush=True)
        img = work / "image.h5"
        wall, kb, text = run_measured(
            ["-m", "seis_hpc", "pstm", str(sgy), "--velocity", str(vel), "--out", str(img),
             "--tmax", str(a.tmax), "--aperture", str(a.aperture), "--mem-per-rank",
             a.mem_per_rank, "--progress-every", "60",
             *(["--strategy", a.strategy] if a.strategy else [])], rss, mpi=mpiexec(a.ranks))
        reads = [ln for ln in text.splitlines() if "reads per trace" in ln]
        from seis_hpc.io.volume import read_volume

        res["image_peak"] = float(np.abs(read_volume(img, "image").data).max())
        res.update(pstm_s=round(wall, 2), pstm_rss_mb=[round(k / 1024, 1) for k in kb],
                   pstm_traces_per_s=round(n / wall, 1),
                   pstm_reads=reads[-1].split(": ", 1)[-1] if reads else "")
        print(f"pstm on {a.ranks} ranks {wall:.1f} s ({n / wall:,.0f} traces/s), peak RSS "
              f"per rank {', '.join(f'{k / 1024:.0f}' for k in kb)} MB, image peak "
              f"{res['image_peak']:.3g}", flush=True)
    finally:
        if not a.keep and not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    print(f"| {res['traces']:,} | {res['segy_bytes'] / 1e9:.2f} GB | {res['index_s']} s / "
          f"{res['index_rss_mb']:.0f} MB | {res['plan_s']} s / {res['plan_rss_mb']:.0f} MB | "
          f"{res['pstm_s']} s / {max(res['pstm_rss_mb']):.0f} MB | "
          f"{res['pstm_traces_per_s']:,.0f} |")
    return res


if __name__ == "__main__":
    main()
