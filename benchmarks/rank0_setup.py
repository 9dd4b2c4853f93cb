"""Rank 0's setup of a real ``pstm`` and one rank's share of the flat-reflector calibration,
without computing: time and peak RSS (the figures of docs/cluster.md, "Rank 0's setup and the
amplitude calibration stream as well").

    python benchmarks/rank0_setup.py open INDEX.h5 [--mem-per-rank 4G]
    python benchmarks/rank0_setup.py normalise INDEX.h5 [--ranks 64]

``open``: ``Survey.open`` on the index's own grid, the largest offset, the fold and
``make_job`` (tiles, ``--normalise reflector``, rho filter, aperture 3,000 m, 60 degrees,
5 s at 2 ms). ``normalise``: rank 0 of ``--ranks`` computes its coarse response points with
the kernel left out (the traces' coordinates are read as the kernel reads them), so that the
figure is the calibration's geometry alone. A headers-only index (``synth --headers-only``)
must be copied with its ``headers_only`` attribute removed first (``Survey.open`` refuses it
by design). Run under ``/usr/bin/time -v``; the peak RSS from getrusage is printed too.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from types import SimpleNamespace

import numpy as np


def _open(index: str, mem: str) -> None:
    from seis_hpc.engine.pstm_run import make_job
    from seis_hpc.engine.stream_plan import column_abs_max
    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.index import TraceIndex
    from seis_hpc.survey import Survey

    t0 = time.perf_counter()
    grid = BinGrid.from_attrs(TraceIndex.open(index).attrs)
    times = np.arange(0.0, 5.0 + 0.001, 0.002)
    sv = Survey.open(index, grid=grid)
    idx = sv.index
    t1 = time.perf_counter()
    top = column_abs_max(idx, "offset")
    fold = sv.fold()
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        job = make_job(idx, grid, times, f"{tmp}/image.h5",
                       kernel_args={"aperture": 3000.0, "max_angle": 60.0},
                       mem_per_rank=mem, checkpoint_dir=f"{tmp}/ckpt", restart="fresh",
                       normalise="reflector", rho_filter=True)
    t3 = time.perf_counter()
    print(f"traces {idx.n_traces}, largest offset {top:.1f} m, fold sum {int(fold.sum())}, "
          f"strategy {job.plan.strategy}, tile {job.plan.tile}, units {len(job.plan.units)}")
    print(f"open {t1 - t0:.1f} s, offsets and fold {t2 - t1:.1f} s, make_job {t3 - t2:.1f} s")


def _normalise(index: str, ranks: int) -> None:
    from seis_hpc.engine import normalise
    from seis_hpc.engine.stream_plan import take_columns
    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.index import TraceIndex

    t0 = time.perf_counter()
    idx = TraceIndex.open(index)
    grid = BinGrid.from_attrs(idx.attrs)
    times = np.arange(0.0, 5.0 + 0.001, 0.002)
    normalise.peak_frequency = lambda source: 25.0  # no samples in a headers-only index
    job = SimpleNamespace(plan=SimpleNamespace(grid=grid, n_classes=0), time=times,
                          kernel_args={"aperture": 3000.0}, rho_filter=True,
                          log_prefix="pstm")
    rows = normalise.coarse_axis(grid.n_inline, grid.bin_crossline, normalise.MAX_AXIS_3D)
    cols = normalise.coarse_axis(grid.n_crossline, grid.bin_inline, normalise.MAX_AXIS_3D)
    npts = rows.size * cols.size
    n_read = [0]

    class Comm:  # rank 0 of `ranks`: the other ranks' points arrive as zeros
        def Get_rank(self):
            return 0

        def Get_size(self):
            return ranks

        def allgather(self, mine):
            z = np.zeros_like(next(iter(mine.values())))
            return [{p: z for p in range(npts)}, mine]

    class Velocity:
        def window(self, i0, i1, j0, j1):
            return np.full(((i1 - i0) * (j1 - j0), times.size), 2000.0, np.float32)

    class Geometry:  # the kernel's reads, without the kernel
        def __init__(self, src):
            self.src = src

        def migrate(self, ids, window, image, gathers, r0, c0):
            for k in range(0, len(ids), 4096):
                take_columns(self.src, ("sx", "sy", "rx", "ry"), ids[k:k + 4096])
            n_read[0] += len(ids)
            image[0, 0] += 1.0

    normalise.reflector_response(job, idx, Velocity(), Geometry, Comm())
    print(f"rank 0 of {ranks}: {-(-npts // ranks)} of {npts} points, {n_read[0]} trace "
          f"geometries read, {time.perf_counter() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("open", "normalise"))
    ap.add_argument("index")
    ap.add_argument("--ranks", type=int, default=64)
    ap.add_argument("--mem-per-rank", default="4G")
    a = ap.parse_args()
    if a.mode == "open":
        _open(a.index, a.mem_per_rank)
    else:
        _normalise(a.index, a.ranks)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
