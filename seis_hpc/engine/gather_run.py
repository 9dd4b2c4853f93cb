"""Gathers of a SEG-Y/SU file and the MPI driver that runs one flow step over them.

The driver (:func:`run_step`) reads the input's trace index, groups the traces into shot
(``source_id``), CMP (``cmp``) or whole-line gathers, hands whole gathers to ranks (static
longest-first assignment; a step never knows how many ranks there are), and each rank writes
its output traces into one preallocated temporary SEG-Y at their own byte positions
(``os.pwrite``): same file header, trace headers copied verbatim from the input, samples in the
input's format and byte order. Rank 0 renames the file when every rank is done and writes the
QC summary ``OUT.qc.json`` (history, parameters, RMS before/after, step counts) beside it.

Bad input (missing file, unreadable headers, bad parameters) is found on rank 0 before any
work and reported once (exit 2, nothing written); a failure on a rank during the work aborts
every rank and leaves no output.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seis_hpc.engine import faults
from seis_hpc.engine.decomposition import assign_longest_first
from seis_hpc.errors import SeisError
from seis_hpc.io.segy import TRACE_HEADER_BYTES, decode_samples, preallocate, pwrite_traces

if TYPE_CHECKING:
    from mpi4py import MPI

    from seis_hpc.flows.steps import GatherStep, StepSpec
    from seis_hpc.io.index import TraceIndex
    from seis_hpc.io.traces import TraceReader

KEYS = ("shot", "cmp", "line")
# Traces of gathers whose index rows are read at once (9 columns: 1.2 MB).
CONTEXT_BATCH = 1 << 14


def group_traces(index: TraceIndex, key: str) -> list[np.ndarray]:
    """Trace numbers of every gather, each sorted for processing.

    Parameters
    ----------
    index : TraceIndex
        The input's index (with survey bins for ``key="cmp"``).
    key : {"shot", "cmp", "line"}
        Shot gathers (one source position and FFID; traces by channel), CMP gathers (traces by
        offset) or the whole line (file order).
    """
    n = index.n_traces
    if key == "line":
        return [np.arange(n)]
    if key == "shot":
        label, order = np.asarray(index["source_id"]), np.asarray(index["channel"])
    elif key == "cmp":
        label, order = np.asarray(index["cmp"]), np.asarray(index["offset"])
    else:
        raise SeisError(f"unknown gather key {key!r} (choose from {', '.join(KEYS)})")
    srt = np.lexsort((np.arange(n), order, label))
    cuts = np.flatnonzero(np.diff(label[srt])) + 1
    return np.split(srt, cuts)


def _history_header(head: bytes, line: str) -> bytes:
    """The file header with ``line`` put in the first empty textual-header line (or the last)."""
    if len(head) < 3200:
        return head  # SU: no textual header
    text = head[:3200]
    printable = sum(32 <= b < 127 for b in text)
    codec = "ascii" if printable > 0.9 * len(text) else "cp037"
    lines = [text[i:i + 80].decode(codec, "replace") for i in range(0, 3200, 80)]
    blank = [i for i, t in enumerate(lines) if not t[3:].strip()]
    k = blank[0] if blank else 39
    lines[k] = f"C{k + 1:2d} {line}"[:80].ljust(80)
    return "".join(lines).encode(codec, "replace") + head[3200:]


def qc_path(output: str | os.PathLike) -> Path:
    """The QC summary beside an output file: ``OUT.qc.json``."""
    p = Path(output)
    return p.with_name(p.name + ".qc.json")


def previous_history(path: str | os.PathLike) -> list:
    """History recorded beside an input by an earlier step (empty when none)."""
    q = qc_path(path)
    try:
        return list(json.loads(q.read_text()).get("history", []))
    except (OSError, ValueError, AttributeError):
        return []


def run_step(step: StepSpec, params: dict, input_path: str | os.PathLike,
             output_path: str | os.PathLike, *, comm: MPI.Comm | None = None,
             flow: dict | None = None, quiet: bool = False) -> dict | None:
    """Run one step over every gather of ``input_path`` and write ``output_path``.

    Parameters
    ----------
    step : seis_hpc.flows.steps.StepSpec
        The step (its gather key and implementation, a
        :class:`~seis_hpc.flows.steps.GatherStep`).
    params : dict
        Resolved parameters (SI units).
    input_path, output_path : path-like
        SEG-Y/SU in and out (the output takes the input's layout and headers).
    comm : mpi4py.MPI.Comm, optional
        Ranks sharing the work; None runs on one process.
    flow : dict, optional
        The flow this step belongs to, recorded in the history.
    quiet : bool
        Do not print the QC lines.

    Returns
    -------
    dict or None
        The QC summary on rank 0 (None on other ranks).
    """
    from seis_hpc.engine.comm import abort_on_error, checked_on_root, rank_size
    from seis_hpc.io.atomic import registered, temporary_name
    from seis_hpc.survey import open_traces

    rank, size = rank_size(comm)
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)

    def check():
        if os.path.isdir(input_path):
            raise SeisError("is a directory, not a SEG-Y or SU file", input_path)
        with open(input_path, "rb"):
            pass
        if Path(output_path).absolute() == Path(input_path).absolute():
            raise SeisError("output would overwrite the input; choose another --out",
                            output_path)
        if Path(output_path).is_dir():
            raise SeisError("output is a directory", output_path)
        reader = open_traces(input_path, bin_cmps=step.gather_key(params) == "cmp")
        step.validate(params, reader)
        return str(temporary_name(output_path))

    tmp, err = checked_on_root(comm, check)
    if err:
        raise SeisError(err)
    faults.before_listing_shared(rank)
    # Every rank lists the shared temporary file, so that whichever rank fails removes it
    # before the abort (the ranks the abort kills run no handler), and so does SIGTERM/SIGINT;
    # one rank alone removes it on any exception.
    scratch = tmp + ".pass"  # a two-pass step's per-trace results (removed by rank 0)
    with registered(tmp, remove_on_error=size == 1), \
            registered(scratch, remove_on_error=size == 1):
        if size > 1:
            # Rank 0 creates the file only once every rank lists it: a signal to a rank that
            # lagged behind, while rank 0 waits in a collective and cannot run its handler,
            # would otherwise abort the job with the file on no rank's list.
            comm.Barrier()
        with abort_on_error(comm):
            reader = open_traces(input_path, bin_cmps=step.gather_key(params) == "cmp")
            groups = group_traces(reader.index, step.gather_key(params))
            mine = sorted(assign_longest_first([len(g) for g in groups], size)[rank])
            impl = step.build(params)
            # Steps that select or reorder traces (select, sort) give the input trace of every
            # output position; the output then has len(order) traces.
            order = impl.order(reader)
            out_size = reader.layout.file_size if order is None else \
                reader.layout.data_offset + len(order) * reader.layout.trace_bytes
            entry = {"step": step.name, "parameters": params, "input": input_path,
                     "output": output_path, "ranks": size,
                     "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            if flow:
                entry["flow"] = flow
            if rank == 0:
                Path(output_path).parent.mkdir(parents=True, exist_ok=True)
                head = _history_header(reader.file_header(), "seis-hpc " + step.name + " "
                                       + " ".join(f"{k}={v}" for k, v in params.items()
                                                  if v is not None))
                preallocate(tmp, head, out_size)
        if size > 1:
            comm.Barrier()
        with abort_on_error(comm):
            fd = os.open(tmp, os.O_WRONLY)
        if size > 1:
            # Every rank holds the file open before any can fail and remove it, so no rank
            # meets a missing file (a second error) in the moment before the abort ends it.
            comm.Barrier()
        with abort_on_error(comm):
            try:
                if order is None:
                    qc = _process(step, impl, reader, groups, mine, fd, comm, scratch)
                else:
                    qc = _copy_ordered(step, impl, reader, order, fd, comm)
                os.fsync(fd)
            finally:
                os.close(fd)
            summary = _finish(step, impl, qc, entry, reader, tmp, output_path, input_path,
                              comm, quiet)
            if rank == 0 and os.path.exists(scratch):
                os.unlink(scratch)
            return summary


def _process(step: StepSpec, impl: GatherStep, reader: TraceReader, groups: list[np.ndarray],
             mine: list[int], fd: int, comm: MPI.Comm | None, scratch: str) -> dict:
    """Every gather of this rank: read, apply, write; returns this rank's QC sums
    (``scratch``: a file name beside the output for a two-pass step's own use)."""
    lay = reader.layout
    qc = {"traces": 0, "gathers": 0, "sumsq_in": 0.0, "sumsq_out": 0.0}
    if impl.two_pass:
        # Two passes (editing): the step's line-wide pass over every rank's gathers, its
        # per-trace results kept in the scratch file (shared by the ranks), not in memory.
        impl.survey_pass(reader, [groups[g] for g in mine], comm, scratch)
    impl.prepare(reader, [groups[g] for g in mine])
    from seis_hpc.progress import track

    # Rank 0 reports its own share: with balanced gathers that is the job's pace.
    for g, cols in track(_gather_columns(reader, groups, mine), step.name, "gather",
                         total=len(mine), rank=comm.Get_rank() if comm else 0):
        ids = groups[g]
        data = reader.read(ids, allow_bad=step.allow_bad)
        out = impl.apply(data, {"dt": reader.dt, "t_start": reader.t_start, "ids": ids, **cols})
        if out.shape != data.shape:
            raise RuntimeError(f"step {step.name} changed the gather shape")
        finite_in = np.where(np.isfinite(data), data, 0.0)
        qc["sumsq_in"] += float(np.sum(finite_in.astype(np.float64) ** 2))
        qc["sumsq_out"] += float(np.sum(out.astype(np.float64) ** 2))
        qc["traces"] += len(ids)
        qc["gathers"] += 1
        pwrite_traces(fd, lay, ids, impl.headers(reader.header_bytes(ids), ids), out)
        faults.after_gather()
    return qc


def _copy_ordered(step: StepSpec, impl: GatherStep, reader: TraceReader, order: np.ndarray,
                  fd: int, comm: MPI.Comm | None, block_bytes: int = 64 << 20) -> dict:
    """Copy the input traces ``order`` to output positions 0, 1, ... in large blocks (the
    blocks dealt to ranks in turn); headers through ``impl.headers`` when the step has it."""
    from seis_hpc.engine.comm import rank_size
    from seis_hpc.progress import track

    rank, size = rank_size(comm)
    lay = reader.layout
    qc = {"traces": 0, "gathers": 0, "sumsq_in": 0.0, "sumsq_out": 0.0}
    per = max(1, block_bytes // lay.trace_bytes)
    starts = list(range(0, len(order), per))[rank::size]
    for a in track(starts, step.name, "block", rank=rank):
        ids = np.asarray(order[a:a + per], np.int64)
        raw = reader.raw(ids)
        raw[:, :TRACE_HEADER_BYTES] = impl.headers(raw[:, :TRACE_HEADER_BYTES], ids)
        data = decode_samples(raw[:, lay.header_bytes:], lay.format, lay.endian, lay.ns)
        ss = float(np.sum(np.where(np.isfinite(data), data, 0.0).astype(np.float64) ** 2))
        qc["sumsq_in"] += ss
        qc["sumsq_out"] += ss
        qc["traces"] += len(ids)
        qc["gathers"] += 1
        os.pwrite(fd, raw.tobytes(), lay.data_offset + a * lay.trace_bytes)
    return qc


def _gather_columns(reader: TraceReader, groups: list[np.ndarray], mine: list[int],
                    batch: int | None = None):
    """``(gather, its index columns)`` for each of this rank's gathers. The columns are the
    gathers' rows only (never whole columns: they would grow with the survey on every rank),
    read for up to ``batch`` traces of gathers at once (one read of the index per gather
    costs more than a light step's work on it)."""
    from seis_hpc.io.traces import COLUMNS

    batch = batch or CONTEXT_BATCH
    k = 0
    while k < len(mine):
        j, total = k, 0
        while j < len(mine) and (j == k or total + len(groups[mine[j]]) <= batch):
            total += len(groups[mine[j]])
            j += 1
        part = mine[k:j]
        cols = reader.index.take(COLUMNS, np.concatenate([groups[g] for g in part]))
        a = 0
        for g in part:
            b = a + len(groups[g])
            yield g, {c: v[a:b] for c, v in cols.items()}
            a = b
        k = j


def _finish(step: StepSpec, impl: GatherStep, qc: dict, entry: dict, reader: TraceReader,
            tmp: str, output_path: str, input_path: str, comm: MPI.Comm | None,
            quiet: bool) -> dict | None:
    from seis_hpc.engine.comm import rank_size
    from seis_hpc.io.atomic import atomic_outputs

    rank, size = rank_size(comm)
    extra = impl.qc()
    if size > 1:
        qcs = comm.gather((qc, extra), root=0)
    else:
        qcs = [(qc, extra)]
    if rank != 0:
        comm.Barrier()
        return None
    total = {k: sum(q[k] for q, _ in qcs) for k in qc}
    merged: dict = {}
    for _, e in qcs:
        for k, v in e.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                merged[k] = merged.get(k, 0) + v
            elif isinstance(v, list):
                merged.setdefault(k, []).extend(v)
            else:
                merged[k] = v
    ns = reader.layout.ns
    n = max(1, total["traces"] * ns)
    summary = {
        "step": step.name, "input": input_path, "output": output_path,
        "traces": int(total["traces"]), "gathers": int(total["gathers"]),
        "rms_in": float(np.sqrt(total["sumsq_in"] / n)),
        "rms_out": float(np.sqrt(total["sumsq_out"] / n)),
        **{k: v for k, v in merged.items() if not isinstance(v, list)},
    }
    impl.finish(merged, reader, summary)
    history = previous_history(input_path) + [entry]
    # OUT and OUT.qc.json appear together or not at all.
    with atomic_outputs(output_path, qc_path(output_path)) as (out_t, qc_t):
        qc_t.write_text(json.dumps({"summary": summary, "history": history}, indent=1,
                                   default=_jsonable))
        os.replace(tmp, out_t)
    if not quiet:
        print(f"{output_path}: {step.name}: {summary['traces']} traces in "
              f"{summary['gathers']} gathers, RMS {summary['rms_in']:.4g} -> "
              f"{summary['rms_out']:.4g}")
        for k, v in summary.items():
            if k not in ("step", "input", "output", "traces", "gathers", "rms_in", "rms_out"):
                print(f"  {k}: {v}")
        print(f"  QC and history: {qc_path(output_path)}")
    if size > 1:
        comm.Barrier()
    return summary


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
