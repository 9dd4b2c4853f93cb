"""Observability: where each rank's time goes (the progress line is
:class:`seis_hpc.progress.Progress`, see :func:`seis_hpc.engine.pstm_run.execute`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

PHASES = ("compute", "io", "comm", "idle")


class Timers:
    """Wall-clock seconds per phase (compute, io, comm, idle) of one rank."""

    def __init__(self):
        self.t = dict.fromkeys(PHASES, 0.0)
        self.start = time.perf_counter()
        self.units = 0
        self.traces = 0  # traces migrated (a trace counts once per unit)
        self.reads = 0  # traces read from the file (less than traces with a trace cache)

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.t[phase] += time.perf_counter() - t0

    def summary(self) -> dict:
        """Seconds per phase, the total wall time, units and traces done, traces read."""
        out = {k: round(v, 3) for k, v in self.t.items()}
        out["total"] = round(time.perf_counter() - self.start, 3)
        out["units"] = self.units
        out["traces"] = self.traces
        out["reads"] = self.reads
        return out


def timing_table(per_rank: list[dict]) -> str:
    """The per-rank summary as an aligned text table (seconds)."""
    head = f"{'rank':>4} {'compute':>9} {'io':>8} {'comm':>8} {'idle':>8} {'total':>8} " \
           f"{'units':>6} {'traces':>8} {'reads':>8}"
    lines = [head]
    for r, s in enumerate(per_rank):
        lines.append(f"{r:>4} {s['compute']:>9.2f} {s['io']:>8.2f} {s['comm']:>8.2f} "
                     f"{s['idle']:>8.2f} {s['total']:>8.2f} {s['units']:>6} {s['traces']:>8} "
                     f"{s.get('reads', s['traces']):>8}")
    return "\n".join(lines)
