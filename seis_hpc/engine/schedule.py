"""Dynamic scheduling: units handed out as ranks become free, with no idle master.

Rank 0 exposes a small MPI RMA window of int64 counters::

    [0] next unit to hand out    [1] units done    [2] traces done

Every rank, rank 0 included, takes its next unit with one atomic ``Fetch_and_op`` on [0]. A
rank that must stop (SIGTERM/SIGUSR1) adds :data:`STOP` to [0]: every later fetch returns a
value >= STOP, so all ranks leave their loop after the unit they are working on.

Passive-target RMA only progresses when the target process enters the MPI library; rank 0
spends its time in the kernel, so a helper thread on rank 0 pokes the progress engine every
few milliseconds (``Iprobe``) and also reports progress. Without MPI (one process) the queue is
a plain counter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mpi4py import MPI

STOP = 1 << 40


class LocalQueue:
    """The single-process queue: a counter and a stop flag."""

    def __init__(self, n_units: int):
        self.n_units = n_units
        self._c = np.zeros(3, np.int64)
        self.stopped = False

    def next(self) -> int | None:
        """Next unit index, or None when all are taken or a stop was requested."""
        i = int(self._c[0])
        self._c[0] += 1
        if i >= STOP:
            self.stopped = True
            return None
        return i if i < self.n_units else None

    def done(self, n_traces: int) -> None:
        """Count one finished unit of ``n_traces`` traces."""
        self._c[1] += 1
        self._c[2] += n_traces

    def request_stop(self) -> None:
        """Make every later :meth:`next` return None and set :attr:`stopped`."""
        self._c[0] += STOP

    def counters(self) -> tuple[int, int]:
        """(units done, traces done) so far."""
        return int(self._c[1]), int(self._c[2])

    def start_helper(self, tick: Callable[[], None] | None = None, period: float = 1.0) -> None:
        """Nothing to progress with one process; ``tick`` is called from :meth:`poll`."""
        self._tick = tick

    def poll(self) -> None:
        """Report progress (single process: called between units)."""
        if getattr(self, "_tick", None) is not None:
            self._tick()

    def close(self) -> None:
        """Nothing to free."""


class RmaQueue:
    """The MPI queue: an RMA window of counters on rank 0 (see the module text).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The job's communicator (duplicated internally).
    n_units : int
        Number of units to hand out.
    """

    def __init__(self, comm: MPI.Comm, n_units: int):
        from mpi4py import MPI

        self._MPI = MPI
        self.comm = comm.Dup()
        self.rank = self.comm.Get_rank()
        self.n_units = n_units
        self.stopped = False
        self.win = MPI.Win.Allocate(3 * 8 if self.rank == 0 else 0, 8, comm=self.comm)
        if self.rank == 0:
            self._local = np.frombuffer(self.win.tomemory(), dtype=np.int64)
            self._local[:] = 0
        self._one = np.ones(1, np.int64)
        self._res = np.zeros(1, np.int64)
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.comm.Barrier()

    def _fetch_add(self, disp: int, value: int) -> int:
        MPI = self._MPI
        self._one[0] = value
        self.win.Lock(0, MPI.LOCK_SHARED)
        self.win.Fetch_and_op([self._one, MPI.INT64_T], [self._res, MPI.INT64_T], 0, disp,
                             MPI.SUM)
        self.win.Unlock(0)
        return int(self._res[0])

    def next(self) -> int | None:
        """Next unit index, or None when all are taken or a stop was requested."""
        i = self._fetch_add(0, 1)
        if i >= STOP:
            self.stopped = True
            return None
        return i if i < self.n_units else None

    def done(self, n_traces: int) -> None:
        """Count one finished unit of ``n_traces`` traces (for the progress report)."""
        MPI = self._MPI
        buf = np.array([1, n_traces], np.int64)
        self.win.Lock(0, MPI.LOCK_SHARED)
        self.win.Accumulate([buf, MPI.INT64_T], 0, target=(1, 2, MPI.INT64_T), op=MPI.SUM)
        self.win.Unlock(0)

    def request_stop(self) -> None:
        """Make every later :meth:`next` on every rank return None."""
        self._fetch_add(0, STOP)

    def counters(self) -> tuple[int, int]:
        """(units done, traces done); exact on rank 0 only (read without a lock, for display)."""
        if self.rank != 0:
            return 0, 0
        return int(self._local[1]), int(self._local[2])

    def start_helper(self, tick: Callable[[], None] | None = None, period: float = 1.0) -> None:
        """On rank 0: start the thread that drives MPI progress and calls ``tick`` periodically."""
        if self.rank != 0:
            return
        MPI = self._MPI
        poke = self.comm

        def loop():
            n = 0
            every = max(1, int(period / 0.005))
            while not self._halt.wait(0.005):
                poke.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG)
                n += 1
                if tick is not None and n % every == 0:
                    tick()

        if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
            return  # the MPI library cannot take a second thread: rely on its own progress
        self._thread = threading.Thread(target=loop, name="seis-hpc-progress", daemon=True)
        self._thread.start()

    def poll(self) -> None:
        """Nothing: rank 0's helper thread reports progress."""

    def close(self) -> None:
        """Stop the helper thread and free the window (collective)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
        self.comm.Barrier()
        self.win.Free()
        self.comm.Free()


def make_queue(comm: MPI.Comm | None, n_units: int) -> LocalQueue | RmaQueue:
    """An :class:`RmaQueue` on several ranks, a :class:`LocalQueue` without MPI or on one rank."""
    if comm is None or comm.Get_size() == 1:
        return LocalQueue(n_units)
    return RmaQueue(comm, n_units)
