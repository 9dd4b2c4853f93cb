"""The PSTM engine's output: one image file, written through parallel HDF5 or by rank 0.

The file is laid out and written by :class:`seis_hpc.io.volume.VolumeWriter` (the one writer
of the volume format): the stacked image in ``image`` (inline, crossline, time; 2D: cmp, time)
and, with offset classes, the image gathers in ``gathers`` (offset first). Two writers fill it:

``rank0-assembly``
    Rank 0 writes everything: shard images are reduced to it slab by slab, tile results are
    read back from the checkpoint.
``parallel-hdf5``
    Every rank writes its share (shard: a reduce-scatter of row slabs; tile: its tiles) into
    one file opened with the ``mpio`` driver (h5py built with MPI).

The file's ``writer`` attribute says which; everything else in it is the same either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import time as _time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from seis_hpc.engine import faults
from seis_hpc.engine.comm import rank_size, reduce_scatter_slabs, reduce_slabs
from seis_hpc.engine.job import PstmJob
from seis_hpc.errors import SeisError

if TYPE_CHECKING:
    import h5py
    from mpi4py import MPI

    from seis_hpc.engine.checkpoint import Checkpoint
    from seis_hpc.engine.normalise import Response
    from seis_hpc.engine.timers import Timers
    from seis_hpc.io.volume import VolumeWriter

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


class ImageOutput:
    """Writes one job's image file from every rank's results (collective over ``comm``).

    Parameters
    ----------
    job : PstmJob
        The job (plan, output path, time axis, offset classes, writer choice, provenance).
    comm : mpi4py.MPI.Comm or None
        Communicator; None for one process.
    tm : Timers
        This rank's phase timers (``io`` and ``comm`` time is booked here).
    ckpt : Checkpoint
        Where tile results are read back from (tile mode).
    log : callable
        Rank 0's log, one string per call.
    response : Response, optional
        The flat-reflector response (``normalise="reflector"``): every block is divided by it
        as it is written (:mod:`seis_hpc.engine.normalise`); None writes the sums as they are.
    """

    def __init__(self, job: PstmJob, comm: MPI.Comm | None, tm: Timers, ckpt: Checkpoint,
                 log: Callable[[str], None], response: Response | None = None):
        self.job, self.comm, self.tm, self.ckpt, self.log = job, comm, tm, ckpt, log
        self.response = response
        self.plan = job.plan
        self.grid = job.plan.grid
        self.ncls = job.plan.n_classes
        self.rank, self.size = rank_size(comm)

    def write(self, image: np.ndarray | None, gathers: np.ndarray | None,
              timings_cb: Callable[[], list[dict]]) -> list[dict] | None:
        """Write the image file, through parallel HDF5 or assembled by rank 0.

        Parameters
        ----------
        image, gathers : numpy.ndarray or None
            Shard mode: this rank's partial image ``grid.shape + (nt,)`` and gathers
            ``(n_classes,) + grid.shape + (nt,)`` (amplitude); None in tile mode.
        timings_cb : callable
            Collective: every rank's timing summary, gathered to rank 0.

        Returns
        -------
        list of dict or None
            The per-rank timings on rank 0 (None elsewhere). Rank 0 also logs the writer and
            the wall time of this phase (reductions, tile reads and writes).
        """
        t0 = _time.perf_counter()
        if self._parallel_hdf5():
            writer = PARALLEL_WRITER
            per_rank = self._write_parallel(image, gathers, timings_cb)
        else:
            writer = RANK0_WRITER
            per_rank = self._write_rank0(image, gathers, timings_cb)
        if self.rank == 0:
            self.log(f"{self.job.log_prefix}: output phase {_time.perf_counter() - t0:.2f} s "
                     f"({writer}, {self.size} ranks)")
        return per_rank

    # -- layout and attributes ----------------------------------------------------------------
    def _layout(self, f: h5py.File) -> VolumeWriter:
        """Lay out the image file (data sets unfilled) in the open file ``f``."""
        from seis_hpc.engine.normalise import describe
        from seis_hpc.io.volume import VolumeWriter

        centres = None
        if self.ncls:
            centres = 0.5 * (self.job.offset_edges[1:] + self.job.offset_edges[:-1])
        sp = self.job.shotpoint
        return self._scaled(VolumeWriter(f, self.grid, self.job.time, "image", offset=centres,
                                         with_gathers=bool(self.ncls), config=self.job.config,
                                         history=[*self.job.history, describe(self.job)],
                                         shotpoint=None if sp is None else sp.values,
                                         shotpoint_attrs=None if sp is None else sp.attrs()))

    def _scaled(self, writer: VolumeWriter):
        """``writer``, dividing by the response first when there is one."""
        if self.response is None:
            return writer
        from seis_hpc.engine.normalise import ScaledWriter

        return ScaledWriter(writer, self.response, self.grid)

    def _parallel_hdf5(self) -> bool:
        """Whether this job's output goes through parallel HDF5 (the same answer on all ranks).

        ``auto``: when h5py is built with MPI on every rank and there is more than one rank.
        """
        choice = self.job.parallel_hdf5
        if choice == "off":
            return False
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

    def _final_attrs(self, f: h5py.File, per_rank: list[dict], writer: str) -> None:
        """The attributes known only once every rank is done (both writers, same order)."""
        f.attrs["timing"] = json.dumps(per_rank)
        f.attrs["strategy"] = self.plan.strategy
        f.attrs["plan"] = self.plan.describe(self.size)
        f.attrs["n_ranks"] = self.size
        for k, v in self.job.kernel_args.items():
            f.attrs[f"pstm_{k}"] = v if v is not None else "none"
        f.attrs["writer"] = writer
        # trace reads per trace read at all: 1 in shard mode; tiles re-read the traces
        # whose aperture reaches several tiles (planned over the whole job)
        if self.job.traces_distinct:
            f.attrs["reads_per_trace"] = self.plan.n_traces_total / self.job.traces_distinct
        for k, v in self.job.image_attrs.items():
            f.attrs[k] = v
        if self.job.part_runs is not None:
            # the part's traces as [start, stop) runs: image sum refuses overlapping parts
            ds = f.create_dataset("part_traces", data=np.asarray(self.job.part_runs, np.int64))
            ds.attrs["units"] = "trace number [start, stop)"
        # the amplitude scale (normalise=none: the plain sum over traces)
        f.attrs["normalise"] = self.job.normalise
        f.attrs["normalised"] = self.job.normalise != "none"  # False: raw sums (addable)
        f.attrs["rho_filter"] = bool(self.job.rho_filter)
        if self.response is not None:
            f.attrs["normalise_response"] = self.response.attrs()

    def _write_tiles(self, w: VolumeWriter, uids: Iterable[int]) -> None:
        """Copy the finished tiles ``uids`` from the checkpoint into the output."""
        for uid in uids:
            i0, i1, j0, j1 = self.plan.units[uid].window
            rows, cols = slice(i0, i1), slice(j0, j1)
            img, g = self.ckpt.load_tile(uid)
            w.put("image", img, rows, cols)
            if g is not None:
                for k in range(self.ncls):
                    w.put("gathers", g[k], rows, cols, (k,))

    # -- rank 0 assembles ---------------------------------------------------------------------
    def _write_rank0(self, image: np.ndarray | None, gathers: np.ndarray | None,
                     timings_cb: Callable[[], list[dict]]) -> list[dict] | None:
        """Rank 0 writes everything: shard images reduced to it, or every tile file read."""
        import h5py

        from seis_hpc.io.atomic import atomic_output

        shard = self.plan.strategy == "shard"
        if self.rank != 0:
            if shard:
                with self.tm("comm"):
                    reduce_slabs(self.comm, image, None)
                    if gathers is not None:
                        for k in range(self.ncls):
                            reduce_slabs(self.comm, gathers[k], None)
            timings_cb()
            return None
        all_cols = slice(0, self.grid.n_crossline)
        with atomic_output(self.job.out) as tmp, h5py.File(tmp, "w") as f:
            w = self._layout(f)
            if shard:
                def sink(rows, slab, name="image", lead=()):
                    with self.tm("io"):
                        w.put(name, slab, rows, all_cols, lead)

                with self.tm("comm"):
                    reduce_slabs(self.comm, image, sink)
                    if gathers is not None:
                        for k in range(self.ncls):
                            reduce_slabs(self.comm, gathers[k],
                                         lambda r, s, k=k: sink(r, s, "gathers", (k,)))
            else:
                # Every tile file is complete: all ranks agreed they left the unit loop.
                with self.tm("io"):
                    self._write_tiles(w, range(len(self.plan.units)))
            per_rank = timings_cb()
            self._final_attrs(f, per_rank, RANK0_WRITER)
        return per_rank

    # -- every rank writes its share ----------------------------------------------------------
    def _write_parallel(self, image: np.ndarray | None, gathers: np.ndarray | None,
                        timings_cb: Callable[[], list[dict]]) -> list[dict] | None:
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
        import h5py

        from seis_hpc.io.atomic import atomic_output
        from seis_hpc.io.volume import VolumeWriter

        with contextlib.ExitStack() as stack:
            tmp = None
            if self.rank == 0:
                tmp = stack.enter_context(atomic_output(self.job.out))
                with h5py.File(tmp, "w") as f:
                    self._layout(f)
            if self.size > 1:
                tmp = self.comm.bcast(tmp, root=0)
            try:
                f = h5py.File(tmp, "r+", driver="mpio", comm=self.comm)
                self._write_share(self._scaled(VolumeWriter.attach(f, self.grid)), image,
                                  gathers)
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
                return per_rank
        return None

    def _write_share(self, w: VolumeWriter, image: np.ndarray | None,
                     gathers: np.ndarray | None) -> None:
        """This rank's part of the image (and gathers) into the open parallel file."""
        faults.before_parallel_write(self.rank)
        if self.plan.strategy == "shard":
            # 2D: the data sets are (cmp, time), so the lines to share out are the CMPs.
            def lines_of(a):
                return a[0] if self.grid.is_2d else a

            def sink(rows, summed, name, lead=()):
                with self.tm("io"):
                    w.put_lines(name, rows, summed, lead)

            with self.tm("comm"):
                reduce_scatter_slabs(self.comm, lines_of(image),
                                     lambda r, s: sink(r, s, "image"))
                for k in range(self.ncls if gathers is not None else 0):
                    reduce_scatter_slabs(self.comm, lines_of(gathers[k]),
                                         lambda r, s, k=k: sink(r, s, "gathers", (k,)))
        else:
            with self.tm("io"):
                self._write_tiles(w, range(self.rank, len(self.plan.units), self.size))
