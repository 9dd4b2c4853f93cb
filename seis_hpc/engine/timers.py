"""Observability: where each rank's time goes, and the progress line of rank 0."""

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
        self.traces = 0

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.t[phase] += time.perf_counter() - t0

    def summary(self) -> dict:
        """Seconds per phase, the total wall time, units and traces done."""
        out = {k: round(v, 3) for k, v in self.t.items()}
        out["total"] = round(time.perf_counter() - self.start, 3)
        out["units"] = self.units
        out["traces"] = self.traces
        return out


def timing_table(per_rank: list[dict]) -> str:
    """The per-rank summary as an aligned text table (seconds)."""
    head = f"{'rank':>4} {'compute':>9} {'io':>8} {'comm':>8} {'idle':>8} {'total':>8} " \
           f"{'units':>6} {'traces':>8}"
    lines = [head]
    for r, s in enumerate(per_rank):
        lines.append(f"{r:>4} {s['compute']:>9.2f} {s['io']:>8.2f} {s['comm']:>8.2f} "
                     f"{s['idle']:>8.2f} {s['total']:>8.2f} {s['units']:>6} {s['traces']:>8}")
    return "\n".join(lines)


class Progress:
    """Rank 0's progress line for the engine: units done / total, traces per second, ETA.

    A thin layer over :class:`seis_hpc.progress.Progress` (tqdm bar in a terminal, plain
    periodic lines in batch jobs, no control characters), counting traces so that the rate
    and ETA follow the work, and naming the work units in the label.
    """

    def __init__(self, total_units: int, total_traces: int, done_before: int = 0,
                 stream=None, period: float = 10.0, label: str = "pstm"):
        from seis_hpc.progress import Progress as _Progress

        self.total_units = total_units
        self.before = done_before
        self.label = label
        self._p = _Progress(max(total_traces, 1), label, "trace", stream=stream,
                            period=period, rank=0, quiet=0.0)
        self._p.line = self._line  # the engine's line also names units

    def _line(self) -> str:
        from seis_hpc.progress import hms

        p = self._p
        return (f"{self.label}: {self.before + self._units}/{self.total_units} units, "
                f"{p.done} traces, {p.rate():,.0f} traces/s, elapsed {hms(p.elapsed)}, "
                f"ETA {hms(p.eta())}")

    _units = 0

    def update(self, units_done: int, traces_done: int, force: bool = False) -> None:
        """Report ``units_done`` and ``traces_done`` so far in this run."""
        self._units = units_done
        self._p.set(traces_done)
        if force and self._p.mode == "log" and self._p._shown != self._p.done:
            self._p._emit()

    def close(self) -> None:
        """Close the bar, or print the last line."""
        self._p.close()
