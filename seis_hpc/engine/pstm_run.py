"""Executing a planned PSTM job on any number of ranks.

Each rank runs :func:`execute` with the same :class:`PstmJob`, its own trace source (reading
its traces by byte position) and velocity model. Units come from the dynamic queue
(:mod:`seis_hpc.engine.schedule`); results go either into a full-size partial image that is
reduced at the end (``shard``) or into one file per finished tile (``tile``) that rank 0
streams into the output. Both kinds of partial result live in the checkpoint directory
(:mod:`seis_hpc.engine.checkpoint`), so a killed job resumes where it stopped.

Output: one HDF5 file in the seis_hpc volume format with the stacked image in ``image``
(inline, crossline, time) and, with offset classes, the image gathers in ``gathers``
(offset, inline, crossline, time) of the same file; the file's ``kind`` is ``image``.
"""

from __future__ import annotations

import json
import os
import signal
import time as _time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from seis_hpc.engine import faults
from seis_hpc.engine.checkpoint import Checkpoint
from seis_hpc.engine.comm import (
    EXIT_CHECKPOINTED,
    abort_on_error,
    rank_size,
)
from seis_hpc.engine.decomposition import TRACE_CHUNK
from seis_hpc.engine.job import PstmJob, compact_plan
from seis_hpc.engine.outputs import (
    PARALLEL_HDF5,
    PARALLEL_HDF5_MISSING,
    ImageOutput,
    h5py_has_mpi,
)
from seis_hpc.engine.schedule import make_queue
from seis_hpc.engine.stream_plan import take_columns
from seis_hpc.engine.timers import Timers, timing_table
from seis_hpc.errors import SeisError
from seis_hpc.geometry import offset_classes
from seis_hpc.progress import Progress, hms

if TYPE_CHECKING:
    from mpi4py import MPI

    from seis_hpc.geometry import BinGrid

__all__ = ["PstmJob", "TraceSource", "VelocityModel", "execute", "h5py_has_mpi", "job_response",
           "make_job"]


class TraceSource(Protocol):
    """What the engine needs from a survey (``seis_hpc.survey.TraceIndex`` provides it)."""

    ns: int
    dt: float
    t_start: float

    def __getitem__(self, name: str) -> np.ndarray: ...

    def read_traces(self, ids: np.ndarray) -> np.ndarray: ...


class VelocityModel(Protocol):
    """What the engine needs from a velocity model (``seis_hpc.velocity.model.VrmsVolume``,
    ``VrmsFunction``)."""

    def window(self, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
        """RMS velocities (m/s), float32 ``(n_bins, nt)``, of the grid block rows ``i0:i1``,
        columns ``j0:j1`` (bins in row-major order)."""
        ...


def default_kernel():
    """``seis_hpc.migration.pstm``, imported when first needed."""
    from seis_hpc.migration.pstm import pstm

    return pstm


class _Signals:
    """SIGTERM/SIGUSR1 set a flag; the unit loop turns it into a clean stop of all ranks."""

    def __init__(self):
        self.flag = False
        self.got: list[int] = []  # the signals this rank received, for its log line
        self.old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self.old[s] = signal.signal(s, self._on)
            except ValueError:  # not the main thread (embedded use): no signal handling
                pass
        return self

    def _on(self, signum: int, frame: object) -> None:
        self.flag = True
        self.got.append(signum)

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


class TraceCache:
    """This rank's most recently read traces (samples and geometry), at most ``capacity``.

    In tile mode a trace is migrated into every tile its aperture reaches; consecutive tiles
    of a rank share most of their traces (tiles are handed out along the grid's rows), so
    keeping the last traces read saves most re-reads. First in, first out; lookups by
    binary search in the sorted trace numbers (no per-trace table of the survey's size).
    The buffers grow with the traces read, up to ``capacity``: the memory follows this
    rank's units, within its budget.

    Parameters
    ----------
    capacity : int
        Most traces kept (bytes: ``capacity x (4 x ns + 8 x columns + 8)``).
    """

    def __init__(self, capacity: int):
        self.cap = int(capacity)
        self.ids = np.zeros(0, np.int64)
        self.data: np.ndarray | None = None
        self.geo: dict[str, np.ndarray] = {}
        self.next = 0  # where the next trace goes (the oldest once full)

    def _grow(self, need: int, like: np.ndarray, geo: dict[str, np.ndarray]) -> None:
        """Room for ``need`` more traces while below capacity (doubling the buffers)."""
        have = len(self.ids)
        if have >= self.cap or self.next + need <= have:
            return
        size = min(self.cap, max(2 * have, self.next + need, 1024))
        ids = np.full(size, -1, np.int64)
        ids[:have] = self.ids
        data = np.empty((size, like.shape[1]), like.dtype)
        if self.data is not None:
            data[:have] = self.data
        self.ids, self.data = ids, data
        for k, v in geo.items():
            g = np.empty(size, v.dtype)
            if k in self.geo:
                g[:have] = self.geo[k]
            self.geo[k] = g

    def get(self, ids: np.ndarray, read: Callable[[np.ndarray],
                                                  tuple[np.ndarray, dict[str, np.ndarray]]]
            ) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
        """Samples and geometry of ``ids`` (from the cache, the rest through ``read``) and
        the number of traces ``read`` had to read."""
        hit = np.zeros(len(ids), bool)
        if len(self.ids):
            order = np.argsort(self.ids, kind="stable")
            keys = self.ids[order]
            pos = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
            hit = keys[pos] == ids
            slots_hit = order[pos[hit]]
        miss = ~hit
        if not miss.any():
            return self.data[slots_hit], {k: v[slots_hit] for k, v in self.geo.items()}, 0
        fresh, fgeo = read(ids[miss])
        data = np.empty((len(ids), fresh.shape[1]), fresh.dtype)
        geo = {k: np.empty(len(ids), v.dtype) for k, v in fgeo.items()}
        if hit.any():
            data[hit] = self.data[slots_hit]
            for k in geo:
                geo[k][hit] = self.geo[k][slots_hit]
        data[miss] = fresh
        for k in geo:
            geo[k][miss] = fgeo[k]
        # keep the newest (at most capacity) of the traces just read
        keep = np.flatnonzero(miss)[-self.cap:]
        self._grow(len(keep), fresh, fgeo)
        src = slice(len(fresh) - len(keep), len(fresh))
        slots = (self.next + np.arange(len(keep))) % len(self.ids)
        self.ids[slots] = ids[keep]
        self.data[slots] = fresh[src]
        for k in geo:
            self.geo[k][slots] = fgeo[k][src]
        # wrap to the oldest only once the buffers are full (below capacity they grow)
        self.next = int((self.next + len(keep)) % self.cap)
        return data, geo, int(miss.sum())


class _Compute:
    """The kernel on blocks of bins: this rank's traces, velocities and grid points."""

    def __init__(self, job: PstmJob, source: TraceSource, velocity: VelocityModel,
                 kernel: Callable[..., np.ndarray], tm: Timers):
        self.job, self.src, self.vel, self.kernel, self.tm = job, source, velocity, kernel, tm
        grid = job.plan.grid
        self.nt = len(job.time)
        # The geometry of a chunk of traces is read with the chunk (take_columns), never
        # every trace's on every rank: a rank's memory follows its units, not the survey.
        self.names = ("sx", "sy", "rx", "ry") + (("offset",) if job.offset_edges is not None
                                                 else ())
        self.points = grid.points().reshape(grid.n_inline, grid.n_crossline, 2)
        # A tile or shard must be migrated exactly as the whole grid would be: fix the
        # spreading law and the anti-aliasing bin spacing instead of letting the kernel
        # guess them from the (partial) set of points.
        self.kargs = {"dims": 2 if grid.is_2d else 3, "dx_aa": grid.bin_inline,
                      **job.kernel_args}
        self.cache = TraceCache(job.cache_traces) if job.cache_traces > 0 else None

    def _read(self, ids: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Samples (float32) and geometry of the traces ``ids``, read from the source."""
        return (np.asarray(self.src.read_traces(ids), dtype=np.float32),
                take_columns(self.src, self.names, ids))

    def migrate(self, ids: np.ndarray, window: tuple[int, int, int, int], image: np.ndarray,
                gathers: np.ndarray | None, r0: int, c0: int) -> None:
        """Migrate traces ``ids`` into the bins ``window`` and add them to the arrays.

        Parameters
        ----------
        ids : numpy.ndarray
            Trace numbers (file order, from 0).
        window : tuple of int
            ``(i0, i1, j0, j1)``: grid rows (inline index) and columns, half open.
        image : numpy.ndarray
            float32 ``(rows, cols, nt)`` accumulator (amplitude) whose first bin is grid
            bin (``r0``, ``c0``).
        gathers : numpy.ndarray or None
            float32 ``(n_classes, rows, cols, nt)`` accumulator, or None.
        r0, c0 : int
            Grid row and column of ``image[0, 0]``.
        """
        i0, i1, j0, j1 = window
        if len(ids) == 0 or i1 <= i0 or j1 <= j0:
            return
        pts = np.ascontiguousarray(self.points[i0:i1, j0:j1].reshape(-1, 2))
        with self.tm("io"):
            vrms = self.vel.window(i0, i1, j0, j1)
        rows, cols = slice(i0 - r0, i1 - r0), slice(j0 - c0, j1 - c0)
        for a in range(0, len(ids), TRACE_CHUNK):
            chunk = ids[a:a + TRACE_CHUNK]
            with self.tm("io"):
                if self.cache is None:
                    data, geo = self._read(chunk)
                    self.tm.reads += len(chunk)
                else:
                    data, geo, n_read = self.cache.get(chunk, self._read)
                    self.tm.reads += n_read
            groups = [(-1, np.arange(len(chunk)))]
            if self.job.offset_edges is not None:
                c = offset_classes(np.abs(geo["offset"]), self.job.offset_edges)
                groups = [(int(k), np.flatnonzero(c == k)) for k in np.unique(c)]
            for k, sel in groups:
                # one group of every trace: the chunk itself, not a copy (16 MB a chunk)
                sub = data if len(groups) == 1 and sel.size == len(chunk) else \
                    np.ascontiguousarray(data[sel])
                with self.tm("compute"):
                    part = self.kernel(
                        np.ascontiguousarray(sub), float(self.src.dt),
                        geo["sx"][sel], geo["sy"][sel], geo["rx"][sel], geo["ry"][sel],
                        pts, self.job.time, vrms, t_start=float(self.src.t_start),
                        **self.kargs)
                    part = np.asarray(part, dtype=np.float32).reshape(i1 - i0, j1 - j0, self.nt)
                    image[rows, cols] += part
                    if gathers is not None and k >= 0:
                        gathers[k, rows, cols] += part
            self.tm.traces += len(chunk)


class _Results:
    """One rank's finished units and their checkpoint.

    Shard mode: the rank's full-size partial image (and gathers), absorbed from the
    checkpoint's partials at the start and flushed to it every ``checkpoint_interval`` s.
    Tile mode: each finished tile goes straight into its own checkpoint file.
    """

    def __init__(self, job: PstmJob, rank: int, size: int, tm: Timers):
        self.job, self.rank, self.size, self.tm = job, rank, size, tm
        self.plan = job.plan
        self.nt = len(job.time)
        self.ncls = job.plan.n_classes
        stage = None
        if job.scratch:  # this rank's folder on node-local scratch (made when writing)
            from seis_hpc.engine.checkpoint import scratch_folder

            stage = scratch_folder(job.scratch, job.phash, rank)
        self.ckpt = Checkpoint(job.checkpoint_dir, job.phash, stage)
        self.units_done: list[int] = []
        self.absorbed: list[Path] = []
        self.dirty = False
        self.last_flush = _time.perf_counter()
        self.image: np.ndarray | None = None
        self.gathers: np.ndarray | None = None

    def setup_shard(self) -> None:
        """Allocate the partial image and absorb this rank's share of the checkpoint."""
        grid = self.plan.grid
        ni, nj = grid.n_inline, grid.n_crossline
        self.image = np.zeros((ni, nj, self.nt), np.float32)
        self.gathers = (np.zeros((self.ncls, ni, nj, self.nt), np.float32)
                        if self.ncls else None)
        with self.tm("io"):
            for i, p in sorted(self.job.partial_files.items()):
                if i % self.size == self.rank:
                    self.units_done += self.ckpt.load_partial(p, self.image, self.gathers)
                    if Path(p) != self.ckpt.rank_file(self.rank):
                        self.absorbed.append(Path(p))
                        self.dirty = True

    def flush(self) -> None:
        """Write this rank's partial image and journal (shard mode)."""
        with self.tm("io"):
            self.ckpt.save_partial(self.rank, self.image, self.gathers, self.units_done)
            self.ckpt.drop(self.absorbed)
        self.absorbed = []
        self.dirty = False
        self.last_flush = _time.perf_counter()

    def run_unit(self, uid: int, compute: _Compute) -> None:
        """Compute unit ``uid`` and keep its result (shard: in the partial image, flushed
        when due; tile: in the tile's checkpoint file)."""
        u = self.plan.units[uid]
        faults.before_unit(uid)
        if self.plan.strategy == "shard":
            compute.migrate(u.traces, u.window, self.image, self.gathers, 0, 0)
            self.units_done.append(uid)
            self.dirty = True
            if _time.perf_counter() - self.last_flush >= self.job.checkpoint_interval:
                self.flush()
        else:
            i0, i1, j0, j1 = u.window
            img = np.zeros((i1 - i0, j1 - j0, self.nt), np.float32)
            g = np.zeros((self.ncls,) + img.shape, np.float32) if self.ncls else None
            compute.migrate(u.traces, u.window, img, g, i0, j0)
            with self.tm("io"):
                self.ckpt.save_tile(uid, img, g)
            self.units_done.append(uid)
        self.tm.units += 1
        faults.after_unit()


def tile_order(plan) -> list[int]:
    """Hand-out order of tiles: along each row of tiles (the grid's inline direction,
    usually along the sail lines), back and forth, so that consecutive tiles - and the tiles
    a rank takes one after the other - share most of their traces (:class:`TraceCache`);
    tiles without traces last."""
    units = sorted(plan.units, key=lambda u: (u.window[0], u.window[2]))
    rows: dict[int, list] = {}
    for u in units:
        rows.setdefault(u.window[0], []).append(u)
    out = []
    for r, i0 in enumerate(sorted(rows)):
        row = rows[i0] if r % 2 == 0 else rows[i0][::-1]
        out += [u.uid for u in row if u.n_traces]
    return out + [u.uid for u in units if not u.n_traces]


def reads_per_trace(job: PstmJob) -> float:
    """Planned trace reads per trace read at all (1 in shard mode; tiles re-read the traces
    whose aperture reaches several tiles)."""
    return job.plan.n_traces_total / job.traces_distinct if job.traces_distinct else 0.0


def reads_line(job: PstmJob) -> str:
    """The log line of the planned input reads."""
    return (f"input reads: {job.plan.n_traces_total} trace reads of {job.traces_distinct} "
            f"traces ({reads_per_trace(job):.2f} per trace; {job.n_input_traces} traces "
            "in the input)")


def _progress(job: PstmJob, queue) -> tuple[Progress, Callable[[], None]]:
    """Rank 0's progress line and the function that brings it up to date from the queue.

    Traces are counted (so rate and ETA follow the work); the line also names units.
    """
    plan = job.plan
    before = len(plan.units) - len(job.pending)
    units = {"done": 0}

    def describe(p: Progress) -> str:
        return (f"{job.log_prefix}: {before + units['done']}/{len(plan.units)} units, "
                f"{p.done} traces, {p.rate():,.0f} traces/s, elapsed {hms(p.elapsed)}, "
                f"ETA {hms(p.eta())}")

    total_tr = sum(plan.units[u].n_traces for u in job.pending)
    prog = Progress(max(total_tr, 1), job.log_prefix, "trace", period=job.progress_period,
                    rank=0, quiet=0.0, describe=describe)

    def tick() -> None:
        units["done"], traces = queue.counters()
        prog.set(traces)

    return prog, tick


def _unit_loop(job: PstmJob, queue, sig: _Signals, results: _Results, compute: _Compute,
               tm: Timers) -> None:
    """Take units from the queue and run them until it is empty or stopped (every rank)."""
    while True:
        if sig.flag:
            with tm("comm"):
                queue.request_stop()
            sig.flag = False
        with tm("comm"):
            k = queue.next()
        if k is None:
            return
        uid = job.pending[k]
        results.run_unit(uid, compute)
        with tm("comm"):
            queue.done(job.plan.units[uid].n_traces)
        queue.poll()


def execute(job: PstmJob, source: TraceSource, velocity: VelocityModel,
            comm: MPI.Comm | None = None, kernel: Callable[..., np.ndarray] | None = None,
            log: Callable[[str], None] | None = None) -> int:
    """Run this rank's share of ``job``; collective over ``comm`` (None: one process).

    Parameters
    ----------
    job : PstmJob
        The same job on every rank.
    source : TraceSource
        This rank's view of the input traces (reads by trace number).
    velocity : VelocityModel
        Velocity model with ``window(i0, i1, j0, j1) -> float32 (n_bins, nt)`` (m/s).
    comm : mpi4py.MPI.Comm, optional
        Communicator; None runs everything in this process.
    kernel : callable, optional
        Migration kernel with the signature of ``seis_hpc.migration.pstm``; default that.
    log : callable, optional
        Rank 0's log (one string per call); default print to stderr.

    Returns
    -------
    int
        0 when the image is written; :data:`EXIT_CHECKPOINTED` (75) when a signal stopped the
        job after a clean checkpoint. Any error on any rank aborts all ranks (non-zero status).
    """
    import sys

    if log is None:
        def log(text: str) -> None:
            print(text, file=sys.stderr, flush=True)

    with abort_on_error(comm), _Signals() as sig:
        rank, size = rank_size(comm)
        tm = Timers()
        kernel = kernel or default_kernel()
        raw_source = source
        if job.rho_filter:
            from seis_hpc.engine.normalise import RhoFiltered

            source = RhoFiltered(source, 2 if job.plan.grid.is_2d else 3)
        compute = _Compute(job, source, velocity, kernel, tm)
        results = _Results(job, rank, size, tm)
        plan = job.plan
        if rank == 0:
            log(plan.describe(size))
            log(f"{job.log_prefix}: {reads_line(job)}")
            done_before = len(plan.units) - len(job.pending)
            if done_before:
                log(f"{job.log_prefix}: resuming from {job.checkpoint_dir}: {done_before} of "
                    f"{len(plan.units)} units done")
            if job.scratch:
                log(f"{job.log_prefix}: per-rank temporary files in {job.scratch}; "
                    f"checkpoint in {job.checkpoint_dir}")
        if plan.strategy == "shard":
            results.setup_shard()
        queue = make_queue(comm, len(job.pending))
        prog = tick = None
        if rank == 0:
            prog, tick = _progress(job, queue)
            queue.start_helper(tick, period=min(1.0, job.progress_period))
        # -- the unit loop: every rank computes, rank 0 included
        try:
            _unit_loop(job, queue, sig, results, compute, tm)
        except SeisError:
            # Bad input found part-way (e.g. a NaN sample): the user fixes the file, which
            # changes its stamp and so the job's hash; a checkpoint left here would refuse
            # that corrected rerun. Drop it on the rank that found the error, before the
            # abort; with other ranks still running keep the marker, so that a file one of
            # them renames into place meanwhile is cleared by the next run.
            results.ckpt.discard(everything=size == 1)
            raise
        stopped = bool(queue.stopped or sig.flag)
        if comm is not None and size > 1:
            from mpi4py import MPI

            with tm("idle"):
                stopped = bool(comm.allreduce(int(stopped), op=MPI.MAX))
        if tick is not None:
            tick()  # the final counts, read before the queue closes
        queue.close()
        if prog is not None:
            prog.flush()
            prog.close()
        if stopped:
            if sig.got:
                # Each rank that got the signal says so, with its node: the warning before
                # the time limit must reach the ranks on every node, not only the batch host's.
                from seis_hpc.engine.comm import node_name

                print(f"{job.log_prefix}: rank {rank} on {node_name()} got "
                      f"{signal.Signals(sig.got[0]).name}", file=sys.stderr, flush=True)
            if plan.strategy == "shard" and (results.dirty or results.absorbed):
                results.flush()
            if comm is not None and size > 1:
                comm.Barrier()
            if rank == 0:
                log(f"{job.log_prefix}: stopped by signal; checkpoint in {job.checkpoint_dir}; "
                    f"run the same command again to resume (exit {EXIT_CHECKPOINTED})")
            return EXIT_CHECKPOINTED

        def timings() -> list[dict]:
            mine = tm.summary()
            if comm is not None and size > 1:
                return comm.gather(mine, root=0)
            return [mine]

        response = None
        if job.normalise == "reflector":
            with tm("compute"):
                response = job_response(job, raw_source, velocity, comm, kernel, log)
        per_rank = ImageOutput(job, comm, tm, results.ckpt, log, response).write(
            results.image, results.gathers, timings)
        ok = True
        if comm is not None and size > 1:
            ok = comm.bcast(True if rank == 0 else None, root=0)
        if rank == 0 and ok:
            log(f"{job.log_prefix}: wrote {job.out}")
            log(timing_table(per_rank))
            if job.traces_distinct:
                done = sum(int(r.get("reads", 0)) for r in per_rank or [])
                log(f"{job.log_prefix}: this run read {done} traces from the input, "
                    f"{done / job.traces_distinct:.2f} reads per trace"
                    + (f" (trace cache of {job.cache_traces} traces per rank)"
                       if job.cache_traces else ""))
            if not job.keep_checkpoint:
                results.ckpt.remove()
        return 0


def job_response(job: PstmJob, source: TraceSource, velocity: VelocityModel,
                 comm: MPI.Comm | None = None, kernel: Callable[..., np.ndarray] | None = None,
                 log: Callable[[str], None] | None = None):
    """The flat-reflector response of ``job``'s kernel on ``source``'s (unfiltered) traces
    (:func:`seis_hpc.engine.normalise.reflector_response`; collective over ``comm``), measured
    exactly as :func:`execute` migrates: the same kernel, arguments and rho filter.

    Returns
    -------
    seis_hpc.engine.normalise.Response
    """
    from seis_hpc.engine.normalise import reflector_response

    kernel = kernel or default_kernel()
    return reflector_response(job, source, velocity,
                              lambda src: _Compute(job, src, velocity, kernel, Timers()),
                              comm, log)


def make_job(source: TraceSource, grid: BinGrid, time: np.ndarray, out: str | os.PathLike, *,
             kernel_args: dict, mem_per_rank: str | int = "2G",
             strategy: str = "auto", tile: int | None = None, n_units: int = 256,
             offset_edges: np.ndarray | None = None,
             checkpoint_dir: str | os.PathLike | None = None, restart: str = "auto",
             checkpoint_interval: float = 120.0, hash_params: dict | None = None,
             config: str = "", history: list[str] | None = None,
             progress_period: float = 10.0, parallel_hdf5: str = "auto",
             traces: np.ndarray | None = None, normalise: str = "none",
             rho_filter: bool = False) -> PstmJob:
    """Plan a job and read its checkpoint (rank 0; broadcast the result to the others).

    Parameters
    ----------
    source : TraceSource
        Trace headers (``mx``, ``my``, ``source_id``, ``offset``, ``byte_offset``) and ``ns``.
    grid : BinGrid
        Image grid.
    time : numpy.ndarray
        Output two-way times (s).
    out : path-like
        Output HDF5 file.
    kernel_args : dict
        Keyword arguments for the kernel (``aperture`` in m is also used for planning).
    mem_per_rank, strategy, tile, n_units, offset_edges
        See :func:`seis_hpc.engine.decomposition.plan_job`.
    checkpoint_dir : path-like, optional
        Default ``<out>.ckpt``.
    restart : {"auto", "fresh"}
        ``auto`` resumes a checkpoint of the same job and refuses one of another job;
        ``fresh`` discards it.
    checkpoint_interval : float
        Seconds between flushes of partial images (shard mode).
    hash_params : dict, optional
        Parameters that define the job (input, velocity, grid, kernel arguments ...); their hash
        guards the checkpoint. The plan's layout is always included.
    config, history
        Text for the output's attributes.
    parallel_hdf5 : {"auto", "on", "off"}
        Output writer (see :class:`PstmJob`); ``on`` without an MPI h5py is refused here,
        before any work.
    traces : numpy.ndarray, optional
        Migrate only these traces (trace numbers from 0, increasing): one part of a job
        split by input traces, whose images ``seis-hpc image sum`` adds. Default all.
    normalise : {"none", "reflector"}
        Amplitude scale of the output (:mod:`seis_hpc.engine.normalise`).
    rho_filter : bool
        Rho-filter the traces before migrating them (zero-phase reflector images).
    """
    from seis_hpc.engine.checkpoint import parameter_hash
    from seis_hpc.engine.decomposition import plan_job
    from seis_hpc.engine.job import distinct_traces
    from seis_hpc.engine.normalise import NORMALISE
    from seis_hpc.engine.stream_plan import (
        midpoint_chunks,
        plan_shard_streamed,
        plan_tiles_streamed,
    )
    from seis_hpc.errors import SeisError
    from seis_hpc.io.columns import columns_on_file, n_rows

    if normalise not in NORMALISE:
        raise SeisError(f"--normalise must be one of {', '.join(NORMALISE)} "
                        f"(got {normalise!r})")
    rho = bool(rho_filter)
    if parallel_hdf5 not in PARALLEL_HDF5:
        raise SeisError(f"parallel_hdf5 must be one of {', '.join(PARALLEL_HDF5)} "
                        f"(got {parallel_hdf5!r})")
    if parallel_hdf5 == "on" and not h5py_has_mpi():
        raise SeisError(PARALLEL_HDF5_MISSING)
    aperture = float(kernel_args.get("aperture", np.inf))
    sel = slice(None) if traces is None else np.asarray(traces, dtype=np.int64)
    n_input = n_rows(source)
    # Tiles (the plan of large images) are planned from the midpoints streamed in chunks:
    # rank 0 holds the units' runs and one chunk, not the survey (issue 19).
    plan = plan_tiles_streamed(
        grid, len(time), int(source.ns), midpoint_chunks(source, traces=None if traces is None
                                                         else sel),
        n_input if traces is None else int(sel.size), aperture, mem_per_rank,
        n_classes=0 if offset_edges is None else len(offset_edges) - 1, strategy=strategy,
        tile=tile, n_units=n_units)
    if plan is None and columns_on_file(source, ("mx", "my", "source_id")):
        # shard might fit a rank: an index on file is planned streamed too (in shot order,
        # or put in shot order through temporary files: a spatially blocked index)
        plan = plan_shard_streamed(
            grid, len(time), int(source.ns), source, aperture, mem_per_rank,
            traces=None if traces is None else sel, offset_edges=offset_edges,
            strategy=strategy, tile=tile, n_units=n_units)
    if plan is None:  # the image is small and the columns in memory: plan in memory
        try:
            order = source["byte_offset"][sel]
        except (KeyError, IndexError, ValueError):
            order = None
        plan = plan_job(grid, len(time), int(source.ns), source["mx"][sel], source["my"][sel],
                        source["source_id"][sel], aperture, mem_per_rank,
                        offset=source["offset"][sel] if offset_edges is not None else None,
                        offset_edges=offset_edges, strategy=strategy, tile=tile,
                        n_units=n_units, trace_order=order)
        if traces is not None:
            for u in plan.units:  # positions in the selection -> trace numbers
                u.traces = sel[u.traces]
        compact_plan(plan)
    distinct = distinct_traces(plan.units)
    params = dict(hash_params or {})
    params.update(
        strategy=plan.strategy, tile=plan.tile, n_units=len(plan.units),
        grid=grid.to_attrs(), nt=len(time), t0=float(time[0]),
        dt_out=float(time[1] - time[0]) if len(time) > 1 else 0.0,
        offset_edges=None if offset_edges is None else [float(e) for e in offset_edges],
        # the backend changes float32 rounding only: a job may resume on the other one
        kernel={k: (v if not isinstance(v, float) or np.isfinite(v) else "inf")
                for k, v in kernel_args.items() if k != "backend"},
    )
    if traces is not None:  # a part of a split job: its traces define it
        import hashlib

        params["traces"] = hashlib.sha1(np.ascontiguousarray(sel).tobytes()).hexdigest()
    # the checkpoint holds raw sums, of rho-filtered traces or not; the division by the
    # response happens when the image is written, but a job is one output: say it too
    if rho:
        params["rho_filter"] = True
    if normalise != "none":
        params["normalise"] = normalise
    params = json.loads(json.dumps(params, default=str))
    phash = parameter_hash(params)
    ckdir = Path(checkpoint_dir) if checkpoint_dir else Path(f"{out}.ckpt")
    ck = Checkpoint(ckdir, phash)
    resume = ck.prepare(params, restart)
    order_all = plan.order()
    partials: dict = {}
    done: set[int] = set()
    if resume:
        if plan.strategy == "shard":
            partials, done = ck.partials()
        else:
            done = ck.tiles_done()
    if plan.strategy == "tile":
        order_all = tile_order(plan)
    pending = [u for u in order_all if u not in done]
    cache = 0
    if plan.strategy == "tile" and plan.units:
        # what the budget leaves beside one tile holds recently read traces (samples and
        # 4-5 float64 columns); no more than the traces of the whole job
        per_trace = 4 * int(source.ns) + 8 * (6 if offset_edges is not None else 5)
        cache = int(min(max(plan.budget - plan.bytes_tile, 0) // per_trace, distinct))
    return PstmJob(plan=plan, time=np.asarray(time, dtype=np.float64), out=str(out),
                   kernel_args=dict(kernel_args), checkpoint_dir=str(ckdir), phash=phash,
                   offset_edges=None if offset_edges is None else np.asarray(offset_edges, float),
                   pending=pending, partial_files={i: str(p) for i, p in partials.items()},
                   checkpoint_interval=checkpoint_interval, config=config,
                   history=list(history or []), progress_period=progress_period,
                   parallel_hdf5=parallel_hdf5, n_input_traces=n_input,
                   traces_distinct=distinct, cache_traces=cache, normalise=normalise,
                   rho_filter=rho)
