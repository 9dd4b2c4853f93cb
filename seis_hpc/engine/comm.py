"""The MPI side of the engine: the world, fail-fast error handling, checked broadcasts and the
slab-wise reduction of partial images. Everything here works without MPI (``comm`` None).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from seis_hpc.engine.decomposition import REDUCE_SLAB_BYTES
from seis_hpc.errors import EXIT_USAGE, SeisError, describe_oserror

if TYPE_CHECKING:
    from mpi4py import MPI

# Exit status of a job that stopped on SIGTERM/SIGUSR1 after a clean checkpoint (BSD
# EX_TEMPFAIL: "try again later"); run the same command again to resume.
EXIT_CHECKPOINTED = 75
# Exit status of a job that failed inside the computation on some rank.
EXIT_FAILED = 1


def world() -> MPI.Comm | None:
    """``MPI.COMM_WORLD`` of a parallel command, or None when mpi4py is not installed.

    Collective: every rank of a command calls it once, at the start. It refuses a launch
    that split one SLURM step into separate MPI jobs (:func:`check_launch`) and, with
    several ranks, rank 0 logs which rank runs on which node (:func:`placement`).
    """
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    comm = MPI.COMM_WORLD
    check_launch(comm.Get_size())
    global _PLACED
    if comm.Get_size() > 1 and not _PLACED:
        _PLACED = True
        line = placement(comm)
        if comm.Get_rank() == 0:
            print(f"seis-hpc: {line}", file=sys.stderr, flush=True)
    return comm


_PLACED = False


def node_name() -> str:
    """The name of the node this process runs on: SLURM's (``SLURMD_NODENAME``, right even
    where several nodes share a host name), else the host name."""
    import socket

    return os.environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


def placement(comm: MPI.Comm | None) -> str:
    """Which rank runs on which node, as one log line (collective over ``comm``).

    Returns
    -------
    str
        ``"4 ranks on 2 nodes: n1 (ranks 0-1), n2 (ranks 2-3)"``; ranks listed as ranges.
    """
    rank, size = rank_size(comm)
    names = [node_name()] if comm is None or size == 1 else comm.allgather(node_name())
    where: dict[str, list[int]] = {}
    for r, n in enumerate(names):
        where.setdefault(n, []).append(r)

    def ranges(rs: list[int]) -> str:
        out, a = [], rs[0]
        for prev, cur in zip(rs, rs[1:] + [None], strict=True):
            if cur is None or cur != prev + 1:  # the end of a run of ranks
                out.append(f"{a}" if a == prev else f"{a}-{prev}")
                a = cur
        return ",".join(out)

    nodes = ", ".join(f"{n} (rank{'s' if len(rs) > 1 else ''} {ranges(rs)})"
                      for n, rs in where.items())
    return (f"{size} rank{'s' if size > 1 else ''} on {len(where)} "
            f"node{'s' if len(where) > 1 else ''}: {nodes}")


def check_launch(size: int) -> None:
    """Refuse an MPI world smaller than the SLURM job step that started it.

    ``srun`` without the MPI plugin the library speaks (``--mpi=pmi2`` for the MPICH wheel;
    ``--mpi=none``, or a cluster whose ``MpiDefault`` is another) starts every task as its own
    one-rank MPI job: N copies of the whole job writing the same files. srun sets
    ``SLURM_STEP_NUM_TASKS`` in each task; a world of fewer ranks than that is such a launch.
    (mpiexec inside an allocation starts one srun task per node and more ranks than tasks,
    which passes.) Task 0 says so in one line; every task exits with status 2.
    """
    want = os.environ.get("SLURM_STEP_NUM_TASKS", "")
    if not want.isdigit() or int(want) <= size:
        return
    if os.environ.get("SLURM_PROCID", "0") != "0":
        raise SystemExit(EXIT_USAGE)
    raise SeisError(f"SLURM started {want} tasks but MPI sees {size} rank"
                    f"{'s' if size > 1 else ''}: srun did not start one MPI job (use srun "
                    "--mpi=pmi2 for the MPICH wheel, pmix for Open MPI; or SEIS_HPC_SRUN_MPI)")


def default_comm(comm: MPI.Comm | None | str = "auto") -> MPI.Comm | None:
    """The communicator of a library call: ``comm`` itself, or for ``"auto"``
    ``MPI.COMM_WORLD`` when mpi4py is imported and MPI initialised (a script run under
    mpiexec that imported mpi4py), else None (serial; a notebook does not start MPI)."""
    if not isinstance(comm, str):
        return comm
    if comm != "auto":
        raise SeisError(f"comm: an mpi4py communicator, None or 'auto' (got {comm!r})")
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        return mpi.COMM_WORLD
    return None


def rank_size(comm: MPI.Comm | None) -> tuple[int, int]:
    """(rank, size); (0, 1) without MPI."""
    return (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())


def one_line(exc: BaseException) -> str:
    """An exception as the one line the user sees."""
    if isinstance(exc, SeisError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):  # SIGINT (Ctrl-C)
        return "interrupted"
    if isinstance(exc, OSError) and exc.filename:
        return describe_oserror(exc)
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")


# Seconds between a rank's error line and its abort of every rank (see :func:`fail`).
ABORT_GRACE = 0.3


def fail(comm: MPI.Comm | None, message: str, status: int = EXIT_FAILED) -> int:
    """Print ``message`` as this rank's one-line error; with several ranks abort them all.

    Returns ``status`` on a single rank (the caller returns it as the exit status).
    """
    rank, size = rank_size(comm)
    prefix = f"rank {rank}: " if size > 1 else ""
    print(f"seis-hpc: error: {prefix}{message}", file=sys.stderr, flush=True)
    if size > 1:
        from seis_hpc.io.atomic import remove_temporaries

        remove_temporaries()  # the ranks the abort kills cannot remove a shared temporary
        # Let mpiexec forward the line first: MPICH's hydra can drop a rank's last output
        # when the abort follows the write at once (seen ~1 run in 12 on a loaded machine).
        time.sleep(ABORT_GRACE)
        comm.Abort(status)
    return status


@contextlib.contextmanager
def abort_on_error(comm: MPI.Comm | None) -> Iterator[None]:
    """Turn any exception on this rank into a one-line message and an abort of every rank.

    A :class:`SeisError` or an :class:`OSError` (a file that cannot be read or written: the
    user's to fix, as in :func:`seis_hpc.cli.main`) aborts with status 2, anything else with
    :data:`EXIT_FAILED`. On a
    single rank the exception is re-raised as :class:`SystemExit` with that status, so the
    process ends the same way without MPI.
    """
    try:
        yield
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - every error must stop all ranks
        status = EXIT_USAGE if isinstance(exc, SeisError | OSError) else EXIT_FAILED
        if isinstance(exc, KeyboardInterrupt):
            status = 130
        raise SystemExit(fail(comm, one_line(exc), status)) from None


def checked_on_root(comm: MPI.Comm | None, fn: Callable[[], object]) -> tuple[object, str | None]:
    """Run ``fn`` on rank 0 only; broadcast ``(result, None)`` or ``(None, error line)``.

    Input errors (:class:`SeisError`, missing files) are found once, on rank 0, before any
    work; every rank learns the outcome and can exit 2 without an abort.
    """
    rank, size = rank_size(comm)
    result, err = None, None
    if rank == 0:
        try:
            result = fn()
        except SeisError as exc:
            err = str(exc)
        except OSError as exc:
            err = describe_oserror(exc)
    if size > 1:
        result, err = comm.bcast((result, err), root=0)
    return result, err


class CheckedInputError(SeisError):
    """An input error found once on rank 0 by :func:`checked_on_root`, raised on every rank by
    :func:`on_root` (a library call raises it; a command reports it with :func:`input_error`:
    one line from rank 0, exit status 2 on every rank, no abort)."""


def on_root(comm: MPI.Comm | None, fn: Callable[[], object]) -> object:
    """:func:`checked_on_root` for the library: the result on every rank, or
    :class:`CheckedInputError` raised on every rank."""
    result, err = checked_on_root(comm, fn)
    if err is not None:
        raise CheckedInputError(err)
    return result


def input_error(comm: MPI.Comm | None, err: str) -> int:
    """Report an input error found by :func:`checked_on_root` once (on rank 0); every rank
    returns exit status 2 without an abort."""
    if rank_size(comm)[0] == 0:
        print(f"seis-hpc: error: {err}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def reduce_slabs(comm: MPI.Comm | None, acc: np.ndarray,
                 sink: Callable[[slice, np.ndarray], None] | None,
                 slab_bytes: int = REDUCE_SLAB_BYTES) -> None:
    """Sum ``acc`` over all ranks slab by slab along axis 0 and hand each sum to ``sink``.

    ``sink(rows, summed)`` is called on rank 0 only, in row order, so rank 0 can stream the
    image to the file without a second full-size buffer. ``acc`` is overwritten on rank 0.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm or None
        The ranks summing; None (or one rank) hands ``acc`` to ``sink`` as it is.
    acc : numpy.ndarray
        This rank's partial result (any shape, same on every rank; amplitude units).
    sink : callable or None
        ``sink(rows, summed)`` on rank 0; ``rows`` is a slice of axis 0. None on other ranks.
    slab_bytes : int
        Size of one slab (bytes): bounds the extra memory of the reduction.
    """
    rank, size = rank_size(comm)
    n = acc.shape[0]
    row = max(1, acc[0:1].nbytes)
    step = max(1, slab_bytes // row)
    for a in range(0, n, step):
        rows = slice(a, min(n, a + step))
        slab = acc[rows]
        if size > 1:
            from mpi4py import MPI

            if rank == 0:
                comm.Reduce(MPI.IN_PLACE, slab, op=MPI.SUM, root=0)
            else:
                comm.Reduce(slab, None, op=MPI.SUM, root=0)
        if rank == 0 and sink is not None:
            sink(rows, slab)


def share_rows(n: int, size: int) -> list[slice]:
    """Split ``n`` rows into ``size`` contiguous shares, the first ``n % size`` one row longer.

    Returns one ``slice`` per rank (empty for the last ranks when ``n < size``).
    """
    base, extra = divmod(n, size)
    out, a = [], 0
    for r in range(size):
        b = a + base + (1 if r < extra else 0)
        out.append(slice(a, b))
        a = b
    return out


def reduce_scatter_slabs(comm: MPI.Comm | None, acc: np.ndarray,
                         sink: Callable[[slice, np.ndarray], None],
                         slab_bytes: int = REDUCE_SLAB_BYTES) -> None:
    """Sum ``acc`` over all ranks slab by slab along axis 0, each slab's rows split among ranks.

    Every rank calls ``sink(rows, summed)`` with its own share of each slab (rows of ``acc``,
    in order; skipped where a share is empty), so all ranks write at once instead of rank 0
    alone. Slabs are as large as in :func:`reduce_slabs` (the same memory bound); the extra
    buffer per rank is one share of a slab. ``acc`` is left unchanged.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm or None
        The ranks summing; None runs on one process.
    acc : numpy.ndarray
        This rank's partial result (any shape, same on every rank; amplitude units).
    sink : callable
        ``sink(rows, summed)``: this rank's rows (a slice of axis 0) and their sum.
    slab_bytes : int
        Size of one slab (bytes).
    """
    rank, size = rank_size(comm)
    n = acc.shape[0]
    row = max(1, acc[0:1].nbytes)
    per_row = int(np.prod(acc.shape[1:], dtype=np.int64))
    step = max(1, slab_bytes // row)
    for a in range(0, n, step):
        b = min(n, a + step)
        shares = share_rows(b - a, size)
        mine = shares[rank]
        out = np.empty((mine.stop - mine.start,) + acc.shape[1:], acc.dtype)
        if size > 1:
            from mpi4py import MPI

            counts = [(s.stop - s.start) * per_row for s in shares]
            comm.Reduce_scatter(np.ascontiguousarray(acc[a:b]), out, counts, op=MPI.SUM)
        else:
            out[...] = acc[a:b]
        if len(out):
            sink(slice(a + mine.start, a + mine.stop), out)
