"""Observability: where each rank's time goes, and the progress line of rank 0."""

from __future__ import annotations

import contextlib
import sys
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


def _hms(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Units done / total, traces per second and ETA on rank 0.

    A tqdm bar when ``stream`` is a terminal; otherwise one plain line every ``period``
    seconds (no control characters, for batch logs).
    """

    def __init__(self, total_units: int, total_traces: int, done_before: int = 0,
                 stream=None, period: float = 10.0, label: str = "pstm"):
        self.stream = stream or sys.stderr
        self.total_units = total_units
        self.total_traces = max(total_traces, 1)
        self.before = done_before
        self.period = period
        self.label = label
        self.t0 = time.perf_counter()
        self.last = self.t0
        self.bar = None
        self._shown = -1
        if getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total_units, initial=done_before, unit="unit",
                            desc=label, file=self.stream, dynamic_ncols=True)

    def update(self, units_done: int, traces_done: int, force: bool = False) -> None:
        """Report ``units_done`` (this run) and ``traces_done`` (this run) so far."""
        now = time.perf_counter()
        el = now - self.t0
        rate = traces_done / el if el > 0 else 0.0
        left = self.total_traces - traces_done
        eta = left / rate if rate > 0 else float("nan")
        done = self.before + units_done
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(f"{rate:,.0f} traces/s", refresh=True)
            return
        if (force or now - self.last >= self.period) and done != self._shown:
            self.last = now
            self._shown = done
            eta_s = _hms(eta) if eta == eta else "?"
            print(f"{self.label}: {done}/{self.total_units} units, {traces_done} traces, "
                  f"{rate:,.0f} traces/s, elapsed {_hms(el)}, ETA {eta_s}",
                  file=self.stream, flush=True)

    def close(self) -> None:
        """Close the bar (terminal) or do nothing."""
        if self.bar is not None:
            self.bar.close()
