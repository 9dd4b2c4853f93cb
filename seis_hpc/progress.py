"""The one progress helper every long step uses: a bar in a terminal, plain lines in batch jobs.

* **Terminal** (stderr is a TTY and no batch scheduler): a tqdm bar with count, rate and ETA.
* **Batch** (``SLURM_JOB_ID``, ``PBS_JOBID`` or ``LSB_JOBID`` set, or the stream is not a TTY):
  one plain line every ``period`` seconds and a last one at the end, e.g.
  ``pstm: 1200/4800 traces (25.0%), 310 traces/s, elapsed 0:00:04, ETA 0:00:11`` —
  printable ASCII only, so SLURM output files hold no carriage returns or escape codes.
* **Off**: nothing.

Only rank 0 reports (the rank is taken from mpi4py when MPI is initialised). The environment
variable ``SEIS_HPC_PROGRESS`` (``bar``, ``log`` or ``off``) overrides the choice.

Usage::

    with Progress(n_traces, label="nmo", unit="trace") as prog:
        for block in blocks:
            ...
            prog.update(len(block))

    for gather in track(gathers, label="semblance", unit="CMP"):
        ...
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

BATCH_ENV = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID")
MODES = ("auto", "bar", "log", "off")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def _mpi_rank() -> int:
    """This process's rank in MPI_COMM_WORLD, 0 when MPI is not in use."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        return mpi.COMM_WORLD.Get_rank()
    return 0


def in_batch_job() -> bool:
    """True when running under a batch scheduler (SLURM, PBS, LSF)."""
    return any(os.environ.get(k) for k in BATCH_ENV)


def choose_mode(stream: TextIO, mode: str = "auto") -> str:
    """``"bar"``, ``"log"`` or ``"off"`` for ``stream``.

    ``mode`` other than ``"auto"`` wins; then ``$SEIS_HPC_PROGRESS``; then ``"log"`` in a batch
    job or when ``stream`` is not a terminal, else ``"bar"``.
    """
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)} (got {mode!r})")
    if mode != "auto":
        return mode
    env = os.environ.get("SEIS_HPC_PROGRESS", "").strip().lower()
    if env in ("bar", "log", "off"):
        return env
    isatty = getattr(stream, "isatty", None)
    tty = bool(isatty()) if callable(isatty) else False
    return "log" if in_batch_job() or not tty else "bar"


def hms(seconds: float) -> str:
    """``H:MM:SS`` of a duration (s); ``?`` when unknown."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "?"
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _plain(text: str) -> str:
    return _UNPRINTABLE.sub("?", text)


class Progress:
    """Progress of one step: ``done`` of ``total`` items, the rate and the ETA.

    Parameters
    ----------
    total : int or None
        Number of items the step will do (None: unknown; no percentage or ETA).
    label : str
        Name of the step, printed first (``"pstm"``, ``"ingest"``).
    unit : str
        What an item is (``"trace"``, ``"CMP"``, ``"byte"``); rates are per unit per second.
    stream : file-like, optional
        Where to report; default ``sys.stderr``.
    period : float
        Seconds between two plain lines in batch mode (default 30 s).
    mode : {"auto", "bar", "log", "off"}
        See the module help.
    rank : int, optional
        MPI rank of the caller; only rank 0 reports. Default: from mpi4py, else 0.
    initial : int
        Items already done before this run (a resumed job); counted in ``done``, not in the rate.
    quiet : float
        Batch mode: a step that ends within this many seconds without a periodic line prints
        no final line either (default 2 s), so short steps do not clutter the log.
    clock : callable
        Monotonic clock in seconds (tests pass a fake one).
    describe : callable, optional
        ``describe(progress) -> str``: the plain line instead of the default :meth:`line`
        (e.g. the PSTM engine names work units beside the traces it counts); it may use
        :meth:`rate`, :meth:`eta`, :attr:`done` and :attr:`elapsed`.
    """

    def __init__(self, total: int | None, label: str, unit: str = "item", *,
                 stream: TextIO | None = None, period: float = 30.0, mode: str = "auto",
                 rank: int | None = None, initial: int = 0, quiet: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 describe: Callable[[Progress], str] | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.total = None if total is None else int(total)
        self.label = _plain(label)
        self.unit = _plain(unit)
        self.period = float(period)
        self.quiet = float(quiet)
        self.initial = int(initial)
        self.done = int(initial)
        self.clock = clock
        self.describe = describe
        self.t0 = clock()
        self._last = self.t0
        self._closed = False
        self._lines = 0
        self._shown: int | None = None
        rank = _mpi_rank() if rank is None else rank
        self.mode = "off" if rank != 0 else choose_mode(self.stream, mode)
        self.bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            # tqdm shows count, rate (unit/s) and ETA in its default format.
            self.bar = tqdm(total=self.total, initial=self.initial, desc=label, unit=unit,
                            unit_scale=unit == "byte", file=self.stream, dynamic_ncols=True,
                            mininterval=0.5, leave=True)

    # -- reporting ------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return self.clock() - self.t0

    def rate(self) -> float:
        """Items per second in this run (excluding ``initial``)."""
        el = self.elapsed
        return (self.done - self.initial) / el if el > 0 else 0.0

    def eta(self) -> float:
        """Seconds left at the current rate (NaN when unknown)."""
        r = self.rate()
        if self.total is None or r <= 0:
            return float("nan")
        return max(self.total - self.done, 0) / r

    def line(self) -> str:
        """The plain progress line (printable ASCII, no newline)."""
        if self.describe is not None:
            return _plain(self.describe(self))
        if self.unit == "byte":
            mib = 1024.0 * 1024.0
            total = "" if self.total is None else f"/{self.total / mib:.1f}"
            head = f"{self.label}: {self.done / mib:.1f}{total} MiB"
            rate = f"{self.rate() / mib:,.1f} MiB/s"
        else:
            units = f"{self.unit}s" if not self.unit.endswith("s") else self.unit
            total = "" if self.total is None else f"/{self.total}"
            head = f"{self.label}: {self.done}{total} {units}"
            rate = f"{self.rate():,.0f} {self.unit}/s"
        if self.total:
            head += f" ({100.0 * self.done / self.total:.1f}%)"
        return f"{head}, {rate}, elapsed {hms(self.elapsed)}, ETA {hms(self.eta())}"

    def _emit(self) -> None:
        self._last = self.clock()
        self._lines += 1
        self._shown = self.done
        print(self.line(), file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self.set(self.done + int(n))

    def set(self, done: int) -> None:
        """Set the number of items done so far (including ``initial``)."""
        delta = int(done) - self.done
        self.done = int(done)
        if self.mode == "bar":
            self.bar.update(delta)  # tqdm redraws at most every mininterval
        elif self.mode == "log" and self.clock() - self._last >= self.period:
            self._emit()

    def flush(self) -> None:
        """Batch mode: print the line now if the count changed since the last one (say, at the
        end of a phase), whatever the period."""
        if self.mode == "log" and self._shown != self.done:
            self._emit()

    def close(self) -> None:
        """Finish: close the bar, or print the last plain line (see ``quiet``). Safe to call
        twice."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "bar":
            self.bar.n = self.done
            self.bar.close()
        elif self.mode == "log" and self._shown != self.done and (
                self._lines or self.elapsed >= self.quiet):
            self._emit()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable[T], label: str, unit: str = "item", total: int | None = None,
          **kw) -> Iterator[T]:
    """Iterate over ``items``, counting one unit per item (see :class:`Progress` for ``kw``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, label, unit, **kw) as prog:
        for item in items:
            yield item
            prog.update(1)
