"""Interleaved A/B of PSTM kernel builds in one process, for changes smaller than the load noise.

Separate ``seis-hpc bench`` runs on a shared machine vary by 20-40 % between runs (other jobs take
the cores and the caches), more than most single changes to the kernel gain. This loads several
builds of ``seis_hpc.kernels.pstm`` (``.so`` files) into one process and times them in turn,
round after round, on the problem of ``bench_kernels.py`` (a subset of its points); each build
keeps its minimum CPU time over the rounds, so a load spike costs every build alike. It prints
each build's rate, its speed relative to the first and the largest difference of its image from
the first build's (relative to the image's maximum). Give the first build twice (a copy under
another name) to see the noise left: under a load of ~4 on 2 cores a build against its own copy
still came out 0.85x-1.05x.

    cp seis_hpc/kernels/pstm.cpython-*.so /tmp/pstm_new.so     # after each build
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ab_kernels.py /tmp/pstm_main.so \\
        /tmp/pstm_new.so --variant full --rounds 7 --points 60
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_kernels as bk  # noqa: E402

FULL = {"aperture": bk.APERTURE, "taper": 0.1, "weights": "spreading+obliquity",
        "antialias": True}
BASE = {"aperture": bk.APERTURE, "taper": 0.0, "weights": "none", "antialias": False}
VARIANTS = {
    "full": FULL,
    "sparse": {**FULL, "sparse_t0": "auto"},
    "noaa": BASE,
    "noaa-sparse": {**BASE, "sparse_t0": "auto"},
    # the command line's defaults for a shallow-water line: dip limit and stretch mute
    "mute": {**FULL, "stretch_mute": 0.5, "max_angle": 60.0},
}


def _load(path: str):
    spec = importlib.util.spec_from_file_location("seis_hpc.kernels.pstm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", help="pstm kernel .so files; the first is the reference")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="full")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--points", type=int, default=60, help="output points of the 400 timed")
    args = ap.parse_args(argv)

    import seis_hpc.kernels
    from seis_hpc.migration.pstm import pstm

    mods = [_load(b) for b in args.builds]
    data, sx, sy, rx, ry, pts, t, vr = bk.problem()
    pts, vr = pts[:args.points], vr[:args.points]
    n_eval = bk.evaluations(sx, sy, rx, ry, pts, t)
    best = [np.inf] * len(mods)
    images = [None] * len(mods)
    for _ in range(args.rounds):
        for i, mod in enumerate(mods):
            # pstm() imports the kernel at call time: point it at this build
            sys.modules["seis_hpc.kernels.pstm"] = mod
            seis_hpc.kernels.pstm = mod
            c = time.process_time()
            images[i] = pstm(data, bk.DT, sx, sy, rx, ry, pts, t, vr, threads=1,
                             **VARIANTS[args.variant])
            best[i] = min(best[i], time.process_time() - c)
    ref = images[0]
    scale = float(np.abs(ref).max())
    for b, tb, img in zip(args.builds, best, images, strict=True):
        diff = float(np.abs(img - ref).max()) / scale
        print(f"{args.variant}: {b}: {n_eval / tb:.3g} evaluations/s, "
              f"x{best[0] / tb:.3f} of the first, max difference {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
