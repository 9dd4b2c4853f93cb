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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from seis_hpc.engine import faults
from seis_hpc.engine.checkpoint import Checkpoint
from seis_hpc.engine.comm import (
    EXIT_CHECKPOINTED,
    abort_on_error,
    rank_size,
    reduce_scatter_slabs,
    reduce_slabs,
)
from seis_hpc.engine.decomposition import TRACE_CHUNK, Plan
from seis_hpc.engine.schedule import make_queue
from seis_hpc.engine.timers import Timers, timing_table
from seis_hpc.errors import SeisError
from seis_hpc.progress import Progress, hms

PARALLEL_HDF5 = ("auto", "on", "off")
# The output's ``writer`` attribute: which path wrote it.
PARALLEL_WRITER = "parallel-hdf5"
RANK0_WRITER = "rank0-assembly"
PARALLEL_HDF5_MISSING = ("--parallel-hdf5 on: this h5py is not built with MPI "
                         "(h5py.get_config().mpi is False); use auto or off, or install an MPI "
                         "h5py (docs/cluster.md)")


def h5py_has_mpi() -> bool:
    """True when the h5py in use is built against parallel HDF5 (the ``mpio`` driver)."""
    import h5py

    return bool(h5py.get_config().mpi)


class TraceSource(Protocol):
    """What the engine needs from a survey (``seis_hpc.survey.TraceIndex`` provides it)."""

    ns: int
    dt: float
    t_start: float

    def __getitem__(self, name: str) -> np.ndarray: ...

    def read_traces(self, ids: np.ndarray) -> np.ndarray: ...


@dataclass
class PstmJob:
    """Everything a rank needs to run its share of a PSTM job (picklable, broadcast by rank 0).

    Attributes
    ----------
    plan : Plan
        Decomposition (strategy, units, grid, classes).
    time : numpy.ndarray
        Output two-way times (s).
    out : str
        Output HDF5 path.
    kernel_args : dict
        Keyword arguments of ``seis_hpc.migration.pstm`` (aperture, max_angle, ...).
    checkpoint_dir : str
        Checkpoint directory.
    phash : str
        Parameter hash (the checkpoint refuses another job's files).
    offset_edges : numpy.ndarray or None
        Offset-class edges (m) with gathers.
    pending : list of int
        Units still to do, in hand-out order (set by rank 0 after reading the checkpoint).
    partial_files : dict
        Shard mode: checkpoint partials to absorb, by file index.
    checkpoint_interval : float
        Seconds between flushes of the partial image (shard mode); 0 flushes after each unit.
    config : str
        The job's configuration text (written to the output).
    history : list of str
        History lines for the output.
    progress_period : float
        Seconds between plain progress lines.
    keep_checkpoint : bool
        Keep the checkpoint directory after success.
    parallel_hdf5 : {"auto", "on", "off"}
        Output writer: ``on`` every rank writes its share through parallel HDF5 (h5py built
        with MPI); ``off`` rank 0 assembles the file; ``auto`` parallel when h5py has MPI and
        there is more than one rank.
    """

    plan: Plan
    time: np.ndarray
    out: str
    kernel_args: dict
    checkpoint_dir: str
    phash: str
    offset_edges: np.ndarray | None = None
    pending: list[int] = field(default_factory=list)
    partial_files: dict = field(default_factory=dict)
    checkpoint_interval: float = 120.0
    config: str = ""
    history: list[str] = field(default_factory=list)
    progress_period: float = 10.0
    keep_checkpoint: bool = False
    log_prefix: str = "pstm"
    parallel_hdf5: str = "auto"


def default_kernel():
    """``seis_hpc.migration.pstm``, imported when first needed."""
    from seis_hpc.migration.pstm import pstm

    return pstm


class _Signals:
    """SIGTERM/SIGUSR1 set a flag; the unit loop turns it into a clean stop of all ranks."""

    def __init__(self):
        self.flag = False
        self.old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self.old[s] = signal.signal(s, self._on)
            except ValueError:  # not the main thread (embedded use): no signal handling
                pass
        return self

    def _on(self, signum, frame):
        self.flag = True

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


class _Rank:
    """One rank's state while executing a job."""

    def __init__(self, job: PstmJob, source, velocity, comm, kernel, log):
        self.job, self.src, self.vel, self.comm = job, source, velocity, comm
        self.kernel = kernel
        self.log = log
        self.rank, self.size = rank_size(comm)
        self.plan = job.plan
        self.grid = job.plan.grid
        self.nt = len(job.time)
        self.ncls = job.plan.n_classes
        self.ckpt = Checkpoint(job.checkpoint_dir, job.phash)
        self.tm = Timers()
        self.units_done: list[int] = []
        self.absorbed: list[Path] = []
        self.dirty = False
        self.last_flush = _time.perf_counter()
        self.cls = None
        if job.offset_edges is not None:
            from seis_hpc.geometry import offset_classes

            self.cls = offset_classes(np.abs(source["offset"]), job.offset_edges)
        self.cols = {k: np.asarray(source[k], dtype=np.float64) for k in ("sx", "sy", "rx", "ry")}
        ni, nj = self.grid.n_inline, self.grid.n_crossline
        self.points = self.grid.points().reshape(ni, nj, 2)
        # A tile or shard must be migrated exactly as the whole grid would be: fix the
        # spreading law and the anti-aliasing bin spacing instead of letting the kernel
        # guess them from the (partial) set of points.
        self.kargs = {"dims": 2 if self.grid.is_2d else 3, "dx_aa": self.grid.bin_inline,
                      **job.kernel_args}

    # -- the kernel on a block of bins ------------------------------------------------------
    def _migrate(self, ids: np.ndarray, window, image: np.ndarray, gathers, r0: int, c0: int):
        """Migrate traces ``ids`` into the bins ``window``; add to image/gathers at (r0, c0)."""
        i0, i1, j0, j1 = window
        if len(ids) == 0 or i1 <= i0 or j1 <= j0:
            return
        pts = np.ascontiguousarray(self.points[i0:i1, j0:j1].reshape(-1, 2))
        with self.tm("io"):
            vrms = self.vel.window(i0, i1, j0, j1)
        for a in range(0, len(ids), TRACE_CHUNK):
            chunk = ids[a:a + TRACE_CHUNK]
            with self.tm("io"):
                data = np.asarray(self.src.read_traces(chunk), dtype=np.float32)
            groups = [(-1, np.arange(len(chunk)))]
            if self.cls is not None:
                c = self.cls[chunk]
                groups = [(int(k), np.flatnonzero(c == k)) for k in np.unique(c)]
            for k, sel in groups:
                tr = chunk[sel]
                with self.tm("compute"):
                    part = self.kernel(
                        np.ascontiguousarray(data[sel]), float(self.src.dt),
                        self.cols["sx"][tr], self.cols["sy"][tr], self.cols["rx"][tr],
                        self.cols["ry"][tr], pts, self.job.time, vrms,
                        t_start=float(self.src.t_start), **self.kargs)
                    part = np.asarray(part, dtype=np.float32).reshape(i1 - i0, j1 - j0, self.nt)
                    rows = slice(i0 - r0, i1 - r0)
                    cols = slice(j0 - c0, j1 - c0)
                    image[rows, cols] += part
                    if gathers is not None and k >= 0:
                        gathers[k, rows, cols] += part
            self.tm.traces += len(chunk)

    # -- shard mode ---------------------------------------------------------------------------
    def setup_shard(self):
        ni, nj = self.grid.n_inline, self.grid.n_crossline
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

    def flush(self):
        """Write this rank's partial image and journal (shard mode)."""
        with self.tm("io"):
            self.ckpt.save_partial(self.rank, self.image, self.gathers, self.units_done)
            self.ckpt.drop(self.absorbed)
        self.absorbed = []
        self.dirty = False
        self.last_flush = _time.perf_counter()

    def do_unit(self, uid: int):
        u = self.plan.units[uid]
        faults.before_unit(uid)
        if self.plan.strategy == "shard":
            self._migrate(u.traces, u.window, self.image, self.gathers, 0, 0)
            self.units_done.append(uid)
            self.dirty = True
            if _time.perf_counter() - self.last_flush >= self.job.checkpoint_interval:
                self.flush()
        else:
            i0, i1, j0, j1 = u.window
            img = np.zeros((i1 - i0, j1 - j0, self.nt), np.float32)
            g = np.zeros((self.ncls,) + img.shape, np.float32) if self.ncls else None
            self._migrate(u.traces, u.window, img, g, i0, j0)
            with self.tm("io"):
                self.ckpt.save_tile(uid, img, g)
            self.units_done.append(uid)
        self.tm.units += 1
        faults.after_unit()

    # -- output -------------------------------------------------------------------------------
    def _open_output(self, f):
        from seis_hpc.io.volume import Volume, write_into

        shape = self.grid.shape + (self.nt,)
        if self.ncls:
            centres = 0.5 * (self.job.offset_edges[1:] + self.job.offset_edges[:-1])
            gvol = Volume(np.broadcast_to(np.float32(0), (self.ncls,) + shape), self.grid,
                          self.job.time, "gathers", offset=centres)
            write_into(f, gvol, allocate_only=True)
            ds = f.create_dataset("image", shape=shape, dtype="f4",
                                  chunks=f["gathers"].chunks[1:])
            names = ("cmp",) if self.grid.is_2d else ("inline", "crossline")
            for i, d in enumerate(names + ("time",)):
                ds.dims[i].attach_scale(f[d])
            ds.attrs["units"] = "amplitude"
        else:
            vol = Volume(np.broadcast_to(np.float32(0), shape), self.grid, self.job.time)
            write_into(f, vol, allocate_only=True)
        f.attrs["kind"] = "image"
        f.attrs["config"] = self.job.config
        f.attrs["history"] = json.dumps(list(self.job.history))

    def _put(self, ds, rows: slice, cols: slice, block: np.ndarray, lead=()):
        """Write (rows, cols, nt) ``block`` into a data set with 2D/3D lateral dims."""
        if self.grid.is_2d:
            ds[lead + (cols,)] = block[0]
        else:
            ds[lead + (rows, cols)] = block

    def _parallel_hdf5(self) -> bool:
        """Whether this job's output goes through parallel HDF5 (the same answer on all ranks).

        ``auto``: when h5py is built with MPI on every rank and there is more than one rank.
        """
        choice = self.job.parallel_hdf5
        if choice == "off":
            return False
        from seis_hpc.errors import SeisError

        if self.comm is None:
            if choice == "on":
                raise SeisError("--parallel-hdf5 on needs MPI (mpi4py), and there is none")
            return False
        have = h5py_has_mpi()
        if self.size > 1:
            from mpi4py import MPI

            have = bool(self.comm.allreduce(int(have), op=MPI.MIN))
        if choice == "on" and not have:
            raise SeisError(PARALLEL_HDF5_MISSING)
        return have and (choice == "on" or self.size > 1)

    def _final_attrs(self, f, per_rank: list[dict], writer: str) -> None:
        """The attributes known only once every rank is done (both writers, same order)."""
        f.attrs["timing"] = json.dumps(per_rank)
        f.attrs["strategy"] = self.plan.strategy
        f.attrs["plan"] = self.plan.describe(self.size)
        f.attrs["n_ranks"] = self.size
        for k, v in self.job.kernel_args.items():
            f.attrs[f"pstm_{k}"] = v if v is not None else "none"
        f.attrs["writer"] = writer

    def write_output(self, timings_cb: Callable[[], list[dict]]):
        """Collective: write the image file, through parallel HDF5 or assembled by rank 0.

        The file's ``writer`` attribute says which: ``parallel-hdf5`` or ``rank0-assembly``;
        everything else in it is the same either way. Rank 0 logs the writer and the wall time
        of this phase (reductions, tile reads and writes).
        """
        t0 = _time.perf_counter()
        if self._parallel_hdf5():
            writer = PARALLEL_WRITER
            self._write_parallel(timings_cb)
        else:
            writer = RANK0_WRITER
            self._write_rank0(timings_cb)
        if self.rank == 0:
            self.log(f"{self.job.log_prefix}: output phase {_time.perf_counter() - t0:.2f} s "
                     f"({writer}, {self.size} ranks)")

    def _write_rank0(self, timings_cb: Callable[[], list[dict]]):
        """Rank 0 writes everything: shard images reduced to it, or every tile file read."""
        import h5py

        from seis_hpc.io.atomic import atomic_output

        nj = self.grid.n_crossline
        all_cols = slice(0, nj)
        if self.rank != 0:
            if self.plan.strategy == "shard":
                with self.tm("comm"):
                    reduce_slabs(self.comm, self.image, None)
                    if self.gathers is not None:
                        for k in range(self.ncls):
                            reduce_slabs(self.comm, self.gathers[k], None)
            timings_cb()
            return
        with atomic_output(self.job.out) as tmp, h5py.File(tmp, "w") as f:
            self._open_output(f)
            img_ds = f["image"]
            if self.plan.strategy == "shard":
                def sink(rows, slab, ds=img_ds, lead=()):
                    with self.tm("io"):
                        self._put(ds, rows, all_cols, slab, lead)

                with self.tm("comm"):
                    reduce_slabs(self.comm, self.image, sink)
                    if self.gathers is not None:
                        for k in range(self.ncls):
                            reduce_slabs(self.comm, self.gathers[k],
                                         lambda r, s, k=k: sink(r, s, f["gathers"], (k,)))
            else:
                # Every tile file is complete: all ranks agreed they left the unit loop.
                with self.tm("io"):
                    self._write_tiles(f, range(len(self.plan.units)))
            per_rank = timings_cb()
            self._final_attrs(f, per_rank, RANK0_WRITER)
        self.timings = per_rank

    def _write_tiles(self, f, uids) -> None:
        """Copy the finished tiles ``uids`` from the checkpoint into the open output ``f``."""
        img_ds = f["image"]
        for uid in uids:
            i0, i1, j0, j1 = self.plan.units[uid].window
            img, g = self.ckpt.load_tile(uid)
            self._put(img_ds, slice(i0, i1), slice(j0, j1), img)
            if g is not None:
                for k in range(self.ncls):
                    self._put(f["gathers"], slice(i0, i1), slice(j0, j1), g[k], (k,))

    def _write_parallel(self, timings_cb: Callable[[], list[dict]]):
        """Every rank writes its share of the image into one file through parallel HDF5.

        Rank 0 lays the file out alone (the same calls as the serial writer, so the layout is
        the same, down to the ``created`` stamp that a collective creation would have to
        agree on), under a temporary name it broadcasts; all ranks reopen it with the
        ``mpio`` driver and write their rows (shard: a reduce-scatter of row slabs) or their
        tiles (unit ``uid`` on rank ``uid % size``), independently, since the shares differ
        in shape. Rank 0 adds the final attributes and renames the file once every rank has
        closed it. A rank that fails removes the temporary file and aborts all ranks; a
        collective close is not attempted, so a failure cannot hang.
        """
        import contextlib

        import h5py

        from seis_hpc.io.atomic import atomic_output

        with contextlib.ExitStack() as stack:
            tmp = None
            if self.rank == 0:
                tmp = stack.enter_context(atomic_output(self.job.out))
                with h5py.File(tmp, "w") as f:
                    self._open_output(f)
            if self.size > 1:
                tmp = self.comm.bcast(tmp, root=0)
            try:
                f = h5py.File(tmp, "r+", driver="mpio", comm=self.comm)
                self._write_share(f)
                f.close()  # collective
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            # Gathering the timings also tells rank 0 that every rank has closed the file.
            per_rank = timings_cb()
            if self.rank == 0:
                with h5py.File(tmp, "r+") as f:
                    self._final_attrs(f, per_rank, PARALLEL_WRITER)
                self.timings = per_rank

    def _write_share(self, f) -> None:
        """This rank's part of the image (and gathers) into the open parallel file ``f``."""
        faults.before_parallel_write(self.rank)
        if self.plan.strategy == "shard":
            # 2D: the data sets are (cmp, time), so the rows to share out are the CMPs.
            def rows_of(a):
                return a[0] if self.grid.is_2d else a

            def sink(rows, summed, ds, lead=()):
                with self.tm("io"):
                    ds[lead + (rows,)] = summed

            with self.tm("comm"):
                reduce_scatter_slabs(self.comm, rows_of(self.image),
                                     lambda r, s: sink(r, s, f["image"]))
                for k in range(self.ncls if self.gathers is not None else 0):
                    reduce_scatter_slabs(self.comm, rows_of(self.gathers[k]),
                                         lambda r, s, k=k: sink(r, s, f["gathers"], (k,)))
        else:
            with self.tm("io"):
                self._write_tiles(f, range(self.rank, len(self.plan.units), self.size))


def execute(job: PstmJob, source, velocity, comm=None, kernel=None,
            log: Callable[[str], None] | None = None) -> int:
    """Run this rank's share of ``job``; collective over ``comm`` (None: one process).

    Parameters
    ----------
    job : PstmJob
        The same job on every rank.
    source : TraceSource
        This rank's view of the input traces (reads by trace number).
    velocity : object
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
        r = _Rank(job, source, velocity, comm, kernel or default_kernel(), log)
        plan = job.plan
        if r.rank == 0:
            log(plan.describe(r.size))
            done_before = len(plan.units) - len(job.pending)
            if done_before:
                log(f"{job.log_prefix}: resuming from {job.checkpoint_dir}: {done_before} of "
                    f"{len(plan.units)} units done")
        if plan.strategy == "shard":
            r.setup_shard()
        queue = make_queue(comm, len(job.pending))
        prog = None
        if r.rank == 0:
            total_tr = sum(plan.units[u].n_traces for u in job.pending)
            units = {"done": 0}
            before = len(plan.units) - len(job.pending)

            def describe(p: Progress) -> str:
                # Traces are counted (so rate and ETA follow the work); the line names units.
                return (f"{job.log_prefix}: {before + units['done']}/{len(plan.units)} units, "
                        f"{p.done} traces, {p.rate():,.0f} traces/s, elapsed "
                        f"{hms(p.elapsed)}, ETA {hms(p.eta())}")

            prog = Progress(max(total_tr, 1), job.log_prefix, "trace", period=job.progress_period,
                            rank=0, quiet=0.0, describe=describe)

            def tick():
                units["done"], traces = queue.counters()
                prog.set(traces)

            queue.start_helper(tick, period=min(1.0, job.progress_period))
        # -- the unit loop: every rank computes, rank 0 included
        try:
            while True:
                if sig.flag:
                    with r.tm("comm"):
                        queue.request_stop()
                    sig.flag = False
                with r.tm("comm"):
                    k = queue.next()
                if k is None:
                    break
                uid = job.pending[k]
                n_tr = plan.units[uid].n_traces
                r.do_unit(uid)
                with r.tm("comm"):
                    queue.done(n_tr)
                queue.poll()
        except SeisError:
            # Bad input found part-way (e.g. a NaN sample): the user fixes the file, which
            # changes its stamp and so the job's hash; a checkpoint left here would refuse
            # that corrected rerun. Drop it on the rank that found the error, before the
            # abort; with other ranks still running keep the marker, so that a file one of
            # them renames into place meanwhile is cleared by the next run.
            r.ckpt.discard(everything=r.size == 1)
            raise
        stopped = bool(queue.stopped or sig.flag)
        if comm is not None and r.size > 1:
            from mpi4py import MPI

            with r.tm("idle"):
                stopped = bool(comm.allreduce(int(stopped), op=MPI.MAX))
        final_counts = queue.counters()
        queue.close()
        if prog is not None:
            units["done"] = final_counts[0]
            prog.set(final_counts[1])
            prog.flush()
            prog.close()
        if stopped:
            if plan.strategy == "shard" and (r.dirty or r.absorbed):
                r.flush()
            if comm is not None and r.size > 1:
                comm.Barrier()
            if r.rank == 0:
                log(f"{job.log_prefix}: stopped by signal; checkpoint in {job.checkpoint_dir}; "
                    f"run the same command again to resume (exit {EXIT_CHECKPOINTED})")
            return EXIT_CHECKPOINTED

        def timings() -> list[dict]:
            mine = r.tm.summary()
            if comm is not None and r.size > 1:
                return comm.gather(mine, root=0)
            return [mine]

        r.write_output(timings)
        ok = True
        if comm is not None and r.size > 1:
            ok = comm.bcast(True if r.rank == 0 else None, root=0)
        if r.rank == 0 and ok:
            log(f"{job.log_prefix}: wrote {job.out}")
            log(timing_table(r.timings))
            if not job.keep_checkpoint:
                r.ckpt.remove()
        return 0


def make_job(source, grid, time, out, *, kernel_args: dict, mem_per_rank="2G",
             strategy: str = "auto", tile: int | None = None, n_units: int = 256,
             offset_edges=None, checkpoint_dir=None, restart: str = "auto",
             checkpoint_interval: float = 120.0, hash_params: dict | None = None,
             config: str = "", history: list[str] | None = None,
             progress_period: float = 10.0, parallel_hdf5: str = "auto") -> PstmJob:
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
    """
    from seis_hpc.engine.checkpoint import parameter_hash
    from seis_hpc.engine.decomposition import plan_job
    from seis_hpc.errors import SeisError

    if parallel_hdf5 not in PARALLEL_HDF5:
        raise SeisError(f"parallel_hdf5 must be one of {', '.join(PARALLEL_HDF5)} "
                        f"(got {parallel_hdf5!r})")
    if parallel_hdf5 == "on" and not h5py_has_mpi():
        raise SeisError(PARALLEL_HDF5_MISSING)
    aperture = float(kernel_args.get("aperture", np.inf))
    try:
        order = source["byte_offset"]
    except (KeyError, IndexError, ValueError):
        order = None
    plan = plan_job(grid, len(time), int(source.ns), source["mx"], source["my"],
                    source["source_id"], aperture, mem_per_rank,
                    offset=source["offset"] if offset_edges is not None else None,
                    offset_edges=offset_edges, strategy=strategy, tile=tile, n_units=n_units,
                    trace_order=order)
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
    pending = [u for u in order_all if u not in done]
    return PstmJob(plan=plan, time=np.asarray(time, dtype=np.float64), out=str(out),
                   kernel_args=dict(kernel_args), checkpoint_dir=str(ckdir), phash=phash,
                   offset_edges=None if offset_edges is None else np.asarray(offset_edges, float),
                   pending=pending, partial_files={i: str(p) for i, p in partials.items()},
                   checkpoint_interval=checkpoint_interval, config=config,
                   history=list(history or []), progress_period=progress_period,
                   parallel_hdf5=parallel_hdf5)
