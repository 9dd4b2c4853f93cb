"""The run record: one JSON line per processing step in ``RUNDIR/steps.jsonl``.

``seis-hpc report RUNDIR`` reads it to build the processing report and the manifest of
deliverables. Every step appends one line when it finishes (or fails)::

    {"step": "pstm", "argv": ["seis-hpc", "pstm", ...], "params": {...},
     "inputs": ["survey/shots.sgy", ...], "outputs": ["image.h5"],
     "start": "2024-05-01T10:00:00+00:00", "end": "...", "seconds": 812.4,
     "traces_in": 1536, "traces_out": null, "edits": {"killed": 12},
     "edit_table": [{"flow_step": 1, "step": "edit", "output": "work/01_edit.sgy",
                     "edit": "killed", "traces": 12, "report": "work/01_edit.sgy.edits.csv"}],
     "read": [{"path": "survey/shots.sgy", "bytes": 1914384, "sha256": "a663...",
               "mtime_ns": 1764768000123456789}],
     "written": [{"path": "image.h5", "bytes": 871816, "sha256": "46a8...",
                  "mtime_ns": 1764768812345678901, "of": "image.h5"}],
     "metrics": {"units": 366}, "qc": ["qc/image_inline_5.png"], "status": "ok",
     "host": "node12", "ranks": 4, "software": "seis_hpc 0.1.0"}

Paths are stored relative to RUNDIR when they lie under it, absolute otherwise.

File hashes are taken when the step ends, not when the report is built (a later re-run of a
step must not change what an earlier step is said to have written):

* ``written``: every file the step wrote, with its size (bytes), SHA-256 and modification
  time (ns); ``of`` names the recorded output it belongs to. A folder output is expanded to
  the files created or changed under it while the step ran (a snapshot of the folder is taken
  when :func:`step` starts), so ``synth --out .`` records its three files, not the folder.
  The trace index a step makes beside an input in the run folder (``IN.index.h5``) is
  recorded as an output too.
* ``read``: every input file as the step found it (size, SHA-256, modification time); an
  input whose size and modification time match an earlier record's entry for the same path
  reuses that entry's SHA-256 instead of reading the file again.
* ``edit_table`` and ``edits``: the trace edits of the step, read from the QC summaries
  (``OUT.qc.json``, ``summary.traces_<action>``) that the step wrote, one row per flow step
  and action; ``edits`` holds the totals by action.

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
_QC_SUFFIX = ".qc.json"  # as seis_hpc.engine.gather_run.qc_path
_INDEX_SUFFIX = ".index.h5"  # as seis_hpc.io.index.INDEX_SUFFIX
# summary.traces_<x> keys of a QC summary that count edits, and their names in the report;
# any other traces_<x> key except these counts is an edit too, named <x>.
_NOT_EDITS = frozenset({"traces", "traces_in", "traces_out"})
EDIT_NAMES = {"killed": "killed", "despiked": "despiked", "flipped": "flipped",
              "swell": "swell (flagged, left for the swell step)"}

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


# resolved path -> (size, mtime_ns, inode) of each file; None for each folder (or absent
# path) looked at, so that a file under it missing from the snapshot is new
Snapshot = dict


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


def _folder_files(folder: Path) -> list[Path]:
    """Files under ``folder`` (symbolic links not followed), without hidden files and the
    temporaries of :mod:`seis_hpc.io.atomic`."""
    out = []
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if not name.startswith(".") and ".tmp-" not in name:
                out.append(Path(base) / name)
    return out


def snapshot(paths: Iterable[PathLike]) -> Snapshot:
    """What a step may overwrite, before it runs: size, modification time and inode of every
    file under each existing folder of ``paths`` and of each existing file of ``paths``.

    :func:`record_step` compares the folders against it to find the files the step wrote."""
    snap: Snapshot = {}
    for p in paths:
        q = Path(p)
        try:
            if not q.is_file():
                snap[str(q.resolve())] = None
            if q.is_dir():
                for f in _folder_files(q):
                    snap[str(f.resolve())] = _stat_key(f.stat())
            elif q.is_file():
                snap[str(q.resolve())] = _stat_key(q.stat())
        except OSError:
            continue  # vanished while we looked: nothing to compare against
    return snap


def _index_candidates(inputs: Iterable[PathLike], rundir: Path) -> list[Path]:
    """``IN.index.h5`` beside each input file lying in the run folder: the trace index a step
    makes when it reads an input that has none."""
    from seis_hpc.delivery.manifest import is_inside

    out = []
    for p in inputs:
        q = Path(p)
        if q.is_file() and not q.name.endswith(_INDEX_SUFFIX) and is_inside(q, rundir):
            out.append(q.with_name(q.name + _INDEX_SUFFIX))
    return out


def _entry(f: Path, rundir: Path, known: dict[str, dict] | None = None) -> dict:
    """Size, SHA-256 and modification time of ``f``; the SHA-256 of ``known[rel]`` is reused
    when its size and modification time match (the file was not touched since)."""
    from seis_hpc.delivery.manifest import sha256_file

    rel = _rel(f, rundir)
    st = f.stat()
    old = (known or {}).get(rel)
    if old and old.get("bytes") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns \
            and old.get("sha256"):
        digest = old["sha256"]
    else:
        _, digest = sha256_file(f)
        st = f.stat()
    return {"path": rel, "bytes": st.st_size, "sha256": digest, "mtime_ns": st.st_mtime_ns}


def _known_entries(rundir: Path) -> dict[str, dict]:
    """The latest ``read``/``written`` entry of every path in the run record (for reuse)."""
    known: dict[str, dict] = {}
    try:
        steps = read_steps(rundir) if (rundir / STEPS_FILE).is_file() else []
    except (SeisError, OSError, UnicodeError):
        return known
    for st in steps:
        for key in ("read", "written"):
            for e in st.get(key) or []:
                if isinstance(e, dict) and isinstance(e.get("path"), str):
                    known[e["path"]] = e
    return known


def file_entries(inputs: Iterable[PathLike], outputs: Iterable[PathLike], rundir: Path,
                 before: Snapshot | None = None, start: float | None = None
                 ) -> tuple[list[dict], list[dict]]:
    """The ``read`` and ``written`` entries of a step (see module help).

    Parameters
    ----------
    inputs, outputs : iterable of path-like
        The step's recorded inputs and outputs (files or folders).
    rundir : Path
        Run folder (entry paths are relative to it when inside).
    before : dict, optional
        :func:`snapshot` of the outputs taken when the step started: a folder output looked
        at there contributes the files that are new or changed since. Any other folder
        output (one named only as the step ended) contributes the files modified at or after
        ``start`` (less 1 s for coarse file-system clocks).
    start : float, optional
        When the step started (UNIX time, s).
    """
    known = _known_entries(rundir)
    read, seen = [], set()
    for p in inputs:
        q = Path(p)
        files = _folder_files(q) if q.is_dir() else [q] if q.is_file() else []
        for f in files:
            key = str(f.resolve())
            if key not in seen:
                seen.add(key)
                with contextlib.suppress(OSError):
                    read.append(_entry(f, rundir, known))
    written, seen = [], set()
    for p in outputs:
        q = Path(p)
        if q.is_dir():
            files = []
            looked = before is not None and str(q.resolve()) in before
            for f in _folder_files(q):
                try:
                    st = f.stat()
                except OSError:
                    continue
                if looked:
                    if before.get(str(f.resolve())) != _stat_key(st):
                        files.append(f)
                elif start is None or st.st_mtime >= start - 1.0:
                    files.append(f)
        else:
            files = [q] if q.is_file() else []
        for f in files:
            key = str(f.resolve())
            if key not in seen:
                seen.add(key)
                with contextlib.suppress(OSError):
                    written.append({**_entry(f, rundir), "of": _rel(q, rundir)})
    return read, written


def edits_from_qc(written: Iterable[dict], rundir: Path) -> tuple[list[dict], dict]:
    """The edit table of a step from the QC summaries (``OUT.qc.json``) it wrote.

    Returns
    -------
    table : list of dict
        One row per QC summary and edit kind: ``flow_step`` (1-based position among the
        summaries), ``step``, ``output``, ``edit``, ``traces`` and ``report`` (the edit
        report file, or None); a step that keeps fewer traces than it read (``select``)
        gets a ``removed`` row.
    counts : dict
        ``traces_in`` of the first summary and ``traces_out`` of the last (None without one).
    """
    table: list[dict] = []
    first_in = last_out = None
    n = 0
    for e in written:
        path = e.get("path", "")
        if not path.endswith(_QC_SUFFIX):
            continue
        q = Path(path) if Path(path).is_absolute() else rundir / path
        try:
            summary = json.loads(q.read_text(encoding="utf-8")).get("summary")
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(summary, dict):
            continue
        n += 1
        out = path[: -len(_QC_SUFFIX)]
        traces = summary.get("traces")
        t_in = summary.get("traces_in", traces)
        if first_in is None and isinstance(t_in, int):
            first_in = t_in
        if isinstance(traces, int):
            last_out = traces
        report = summary.get("edit_report")
        report = _rel(report, rundir) if isinstance(report, str) else None
        row = {"flow_step": n, "step": str(summary.get("step", "")), "output": out,
               "report": report}
        for k, v in summary.items():
            if k.startswith("traces_") and k not in _NOT_EDITS and isinstance(v, int) \
                    and not isinstance(v, bool):
                table.append({**row, "edit": k[len("traces_"):], "traces": v})
        if isinstance(t_in, int) and isinstance(traces, int) and traces < t_in:
            table.append({**row, "edit": "removed", "traces": t_in - traces})
    return table, {"traces_in": first_in, "traces_out": last_out}


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
                status: str = "ok", message: str = "", before: Snapshot | None = None
                ) -> dict | None:
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
    before : dict, optional
        :func:`snapshot` of the outputs when the step started (see :func:`file_entries`).

    Notes
    -----
    Every input and output file is hashed here (SHA-256, see the module help), so the
    record says what the step read and wrote even after a later step overwrites a file. The
    trace edits and trace counts of the QC summaries it wrote fill ``edits`` and
    ``edit_table`` (and ``traces_in``/``traces_out`` when not given).

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
    read, written = file_entries(inputs, outputs, folder, before, _seconds(start))
    written += [{**e, "kind": "qc"} for e in file_entries((), qc, folder)[1]]
    table, counts = edits_from_qc(written, folder)
    edits = dict(edits or {})
    for row in table:  # totals by kind, next to what the step recorded itself
        edits[row["edit"]] = edits.get(row["edit"], 0) + row["traces"]
    traces_in = counts["traces_in"] if traces_in is None else traces_in
    traces_out = counts["traces_out"] if traces_out is None else traces_out
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
        "edits": _jsonable(edits),
        "edit_table": _jsonable(table),
        "metrics": _jsonable(metrics or {}),
        "qc": [_rel(p, folder) for p in qc],
        "read": read,
        "written": written,
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
    comm = _world()
    before: Snapshot | None = None
    indexes: list[Path] = []
    if comm is None or comm.Get_rank() == 0:
        # What the outputs (and the indexes beside inputs) were before the step, so that a
        # folder output records only the files this step wrote into it.
        with contextlib.suppress(SeisError, OSError):
            indexes = _index_candidates(rec.inputs, resolve_rundir(rundir, rec.outputs))
        before = snapshot([*rec.outputs, *indexes])
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
            for f in indexes:  # a trace index the step made beside one of its inputs
                with contextlib.suppress(OSError):
                    if f.is_file() and before.get(str(f.resolve())) != _stat_key(f.stat()) \
                            and f.resolve() not in {Path(o).resolve() for o in rec.outputs}:
                        rec.outputs.append(f)
            record_step(rec.name, rundir=rundir, argv=argv, params=rec.params,
                        inputs=rec.inputs, outputs=rec.outputs, start=t0, end=time.time(),
                        traces_in=rec.traces_in, traces_out=rec.traces_out, edits=rec.edits,
                        metrics=rec.metrics, qc=rec.qc,
                        status=rec.status if status == "ok" and rec.status else status,
                        message=message, before=before)
