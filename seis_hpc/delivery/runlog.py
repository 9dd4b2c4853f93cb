"""The run record: one JSON line per processing step in ``RUNDIR/steps.jsonl``.

``seis-hpc report RUNDIR`` reads it to build the processing report and the manifest of
deliverables. Every step appends one line when it finishes (or fails)::

    {"step": "pstm", "argv": ["seis-hpc", "pstm", ...], "params": {...},
     "inputs": ["survey/shots.sgy", ...], "outputs": ["image.h5"],
     "start": "2024-05-01T10:00:00+00:00", "end": "...", "seconds": 812.4,
     "traces_in": 1536, "traces_out": null, "edits": {"killed": 12},
     "metrics": {"units": 366}, "qc": ["qc/image_inline_5.png"], "status": "ok",
     "host": "node12", "ranks": 4, "software": "seis_hpc 0.1.0"}

Paths are stored relative to RUNDIR when they lie under it, absolute otherwise.

Where the record goes (:func:`resolve_rundir`): the ``rundir`` argument, else
``$SEIS_HPC_RUNDIR``, else the folder of the first output. Only MPI rank 0 writes; every other
rank's call returns without writing, so steps can call it unconditionally.

Two ways to record a step::

    runlog.record_step("index", argv=sys.argv, params=runlog.params_from_args(args),
                       inputs=[args.file], outputs=[out], start=t0, traces_in=n)

    with runlog.step("pstm", args, inputs=[args.input], outputs=[args.out]) as rec:
        ...                     # the step's work
        rec.traces_in = n       # anything known only at the end
        rec.metrics["units"] = 366
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from seis_hpc import __version__
from seis_hpc.errors import SeisError

STEPS_FILE = "steps.jsonl"
RUNDIR_ENV = "SEIS_HPC_RUNDIR"

PathLike = str | os.PathLike


def _world():
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        return mpi.COMM_WORLD
    return None


def _iso(t: float | _dt.datetime | None) -> str | None:
    if t is None:
        return None
    if isinstance(t, _dt.datetime):
        return t.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds")
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds")


def _seconds(t: float | _dt.datetime) -> float:
    return t.timestamp() if isinstance(t, _dt.datetime) else float(t)


def _command_line() -> list[str]:
    """``sys.argv`` with the program shown as ``seis-hpc`` when run as ``python -m seis_hpc``."""
    if sys.argv and Path(sys.argv[0]).name in ("__main__.py", "seis-hpc"):
        return ["seis-hpc", *sys.argv[1:]]
    return list(sys.argv)


def resolve_rundir(rundir: PathLike | None = None, outputs: Iterable[PathLike] = ()) -> Path:
    """The run folder a step records into.

    Parameters
    ----------
    rundir : path-like, optional
        Explicit run folder (e.g. a ``--rundir`` option).
    outputs : iterable of path-like
        The step's outputs; the folder of the first one is the fallback (a folder output
        counts as its parent's).

    Raises
    ------
    SeisError
        No rundir, no ``$SEIS_HPC_RUNDIR`` and no output to place the record beside.
    """
    if rundir is not None:
        return Path(rundir)
    env = os.environ.get(RUNDIR_ENV)
    if env:
        return Path(env)
    for out in outputs:
        p = Path(out)
        return p.resolve().parent
    raise SeisError(f"no run folder: give one, set ${RUNDIR_ENV}, or name an output")


def _rel(path: PathLike, rundir: Path) -> str:
    p = Path(path)
    absolute = p if p.is_absolute() else Path.cwd() / p
    try:
        return str(Path(os.path.normpath(absolute)).relative_to(
            Path(os.path.normpath(rundir.resolve()))))
    except ValueError:
        return os.path.normpath(str(absolute))


def _jsonable(v):
    """Parameters as JSON: paths and other objects as text, NaN/Inf as text."""
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return v if v == v and abs(v) != float("inf") else str(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:  # numpy scalar
        return _jsonable(v.item())
    if hasattr(v, "tolist"):
        return _jsonable(v.tolist())
    return str(v)


def params_from_args(args: argparse.Namespace | dict) -> dict:
    """A command's parameters from its parsed arguments, without the CLI's private entries
    (``_module``, ``_parser``, ``command``), as JSON-ready values."""
    d = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    return {k: _jsonable(v) for k, v in d.items() if not k.startswith("_") and k != "command"}


def record_step(step: str, *, rundir: PathLike | None = None, argv: list[str] | None = None,
                params: dict | None = None, inputs: Iterable[PathLike] = (),
                outputs: Iterable[PathLike] = (), start: float | _dt.datetime | None = None,
                end: float | _dt.datetime | None = None, traces_in: int | None = None,
                traces_out: int | None = None, edits: dict | None = None,
                metrics: dict | None = None, qc: Iterable[PathLike] = (),
                status: str = "ok", message: str = "") -> dict | None:
    """Append one step to ``RUNDIR/steps.jsonl``; on MPI ranks other than 0 do nothing.

    Parameters
    ----------
    step : str
        Name of the step (the subcommand: ``"index"``, ``"pstm"``).
    rundir : path-like, optional
        Run folder (see :func:`resolve_rundir`).
    argv : list of str, optional
        The command line; default ``sys.argv``.
    params : dict, optional
        The step's parameters (e.g. :func:`params_from_args`), SI units.
    inputs, outputs : iterable of path-like
        Files read and written; outputs are the deliverables the manifest covers.
    start, end : float (UNIX time, s) or datetime, optional
        When the step started and ended; ``end`` defaults to now, ``start`` to ``end``.
    traces_in, traces_out : int, optional
        Traces read and written.
    edits : dict, optional
        Trace edits by kind, e.g. ``{"killed": 12, "despiked": 40}``.
    metrics : dict, optional
        Any further figures (units, rates, RMS, timings per phase).
    qc : iterable of path-like
        QC pictures (PNG) the step drew.
    status : {"ok", "failed", "stopped"}
        Outcome of the step.
    message : str
        Error or stop message when ``status`` is not ``"ok"``.

    Returns
    -------
    dict or None
        The record written, or None on ranks other than 0.
    """
    comm = _world()
    if comm is not None and comm.Get_rank() != 0:
        return None
    outputs, inputs, qc = list(outputs), list(inputs), list(qc)
    folder = resolve_rundir(rundir, outputs)
    end = time.time() if end is None else end
    start = end if start is None else start
    rec = {
        "step": str(step),
        "argv": [str(a) for a in (_command_line() if argv is None else argv)],
        "params": _jsonable(params or {}),
        "inputs": [_rel(p, folder) for p in inputs],
        "outputs": [_rel(p, folder) for p in outputs],
        "start": _iso(start),
        "end": _iso(end),
        "seconds": round(_seconds(end) - _seconds(start), 3),
        "traces_in": None if traces_in is None else int(traces_in),
        "traces_out": None if traces_out is None else int(traces_out),
        "edits": _jsonable(edits or {}),
        "metrics": _jsonable(metrics or {}),
        "qc": [_rel(p, folder) for p in qc],
        "status": status,
        "message": message,
        "host": socket.gethostname(),
        "ranks": comm.Get_size() if comm is not None else 1,
        "cwd": os.getcwd(),
        "software": f"seis_hpc {__version__}",
    }
    append_record(folder, rec)
    return rec


def append_record(rundir: PathLike, rec: dict) -> None:
    """Append ``rec`` as one line to ``RUNDIR/steps.jsonl`` (created with its folder).

    One ``write`` of the whole line under an exclusive lock, so steps finishing at the same
    moment do not interleave their lines.
    """
    folder = Path(rundir)
    folder.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(rec, allow_nan=False) + "\n").encode()
    fd = os.open(folder / STEPS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)  # closing releases the lock


def read_steps(rundir: PathLike) -> list[dict]:
    """The steps recorded in ``RUNDIR/steps.jsonl``, in order.

    Raises
    ------
    SeisError
        No record, or a line that is not a JSON object with a ``step`` name.
    """
    path = Path(rundir) / STEPS_FILE
    if not path.is_file():
        raise SeisError(f"no run record ({STEPS_FILE}): no step has recorded into this folder",
                        rundir)
    steps = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SeisError(f"line {n}: not JSON ({exc.msg})", path) from None
            if not isinstance(rec, dict) or "step" not in rec:
                raise SeisError(f"line {n}: not a step record (no 'step')", path)
            steps.append(rec)
    return steps


@dataclass
class StepRecord:
    """What :func:`step` records; fill in the fields known only as the step runs."""

    name: str
    params: dict
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    traces_in: int | None = None
    traces_out: int | None = None
    edits: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    qc: list = field(default_factory=list)
    status: str | None = None  # set by the step to override "ok" (e.g. "stopped" on exit 75)


@contextlib.contextmanager
def step(name: str, args: argparse.Namespace | dict | None = None, *,
         rundir: PathLike | None = None, inputs: Iterable[PathLike] = (),
         outputs: Iterable[PathLike] = (), argv: list[str] | None = None
         ) -> Iterator[StepRecord]:
    """Time a step and record it when the block ends.

    A block that raises is recorded with ``status="failed"`` (``"stopped"`` for
    ``KeyboardInterrupt`` or ``SystemExit``) and its message, then the exception propagates.

    Parameters
    ----------
    name : str
        Step name.
    args : argparse.Namespace or dict, optional
        Parsed arguments, recorded as the parameters (see :func:`params_from_args`).
    rundir, inputs, outputs, argv
        As in :func:`record_step`.
    """
    rec = StepRecord(name, params_from_args(args) if args is not None else {},
                     list(inputs), list(outputs))
    t0 = time.time()
    status, message = "ok", ""
    try:
        yield rec
    except (KeyboardInterrupt, SystemExit) as exc:
        status, message = "stopped", f"{exc.__class__.__name__}: {exc}"
        raise
    except BaseException as exc:
        status, message = "failed", str(exc) or exc.__class__.__name__
        raise
    finally:
        # A failure to record must not hide the step's own exception.
        guard = contextlib.suppress(Exception) if status != "ok" else contextlib.nullcontext()
        with guard:
            record_step(rec.name, rundir=rundir, argv=argv, params=rec.params,
                        inputs=rec.inputs, outputs=rec.outputs, start=t0, end=time.time(),
                        traces_in=rec.traces_in, traces_out=rec.traces_out, edits=rec.edits,
                        metrics=rec.metrics, qc=rec.qc,
                        status=rec.status if status == "ok" and rec.status else status,
                        message=message)
