"""Trace-header ingest speed: index a generated SEG-Y file and print headers per minute.

Usage: python benchmarks/bench_ingest.py [--traces 200000] [--ns 250] [--dir DIR]

Writes a synthetic 2D-line SEG-Y file (IEEE float, rev 1) once, then times
``TraceIndex.scan`` (header read + derived columns, in memory), ``TraceIndex.build`` (the same
plus the HDF5 write) and ``Survey.open`` (reusing the fresh index, 2D binning), one core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from seis_hpc.io.index import TraceIndex
from seis_hpc.io.segy import write_segy
from seis_hpc.survey import Survey


def make_file(path: Path, n_traces: int, ns: int, n_ch: int = 240) -> None:
    n_shots = -(-n_traces // n_ch)
    s_pos = np.repeat(np.arange(n_shots) * 25.0, n_ch)[:n_traces]
    ch = np.tile(np.arange(1, n_ch + 1), n_shots)[:n_traces]
    r_pos = s_pos - 150.0 - (ch - 1) * 12.5
    h = {"FieldRecord": 1 + np.repeat(np.arange(n_shots), n_ch)[:n_traces], "TraceNumber": ch,
         "SourceX": 400000.0 + s_pos, "SourceY": np.full(n_traces, 6500000.0),
         "GroupX": 400000.0 + r_pos, "GroupY": np.full(n_traces, 6500000.0),
         "offset": r_pos - s_pos}
    data = np.zeros((n_traces, ns), dtype=np.float32)
    write_segy(path, data, h, 0.004)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=200_000)
    ap.add_argument("--ns", type=int, default=250)
    ap.add_argument("--dir", default=None, help="folder for the test file (default: temp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = Path(d) / "bench.sgy"
        t = time.perf_counter()
        make_file(path, args.traces, args.ns)
        print(f"wrote {args.traces} traces x {args.ns} samples "
              f"({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.2f} s")
        TraceIndex.scan(path)  # warm the page cache: measure parsing, not the disk
        for name, fn in (("scan (headers -> columns)", lambda: TraceIndex.scan(path)),
                         ("build (scan + HDF5 write)", lambda: TraceIndex.build(path)),
                         ("Survey.open (reuse index, 2D bins)",
                          lambda: Survey.open(path, save=False))):
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            print(f"{name:34s} {dt:6.2f} s  {args.traces / dt * 60 / 1e6:6.1f} M headers/min")
        idx = TraceIndex.open(Path(d) / "bench.sgy.index.h5")
        ids = np.random.default_rng(0).choice(args.traces, 1000, replace=False)
        t = time.perf_counter()
        idx.read_traces(ids)
        print(f"read_traces (1000 random traces)   {time.perf_counter() - t:6.3f} s")


if __name__ == "__main__":
    main()
