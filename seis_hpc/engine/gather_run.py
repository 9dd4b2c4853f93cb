"""Gathers of a SEG-Y/SU file and the MPI driver that runs one flow step over them.

The driver (:func:`run_step`) groups the input's traces into shot (``source_id``), CMP
(``cmp``) or whole-line gathers and hands whole gathers to ranks (static longest-first
assignment by their numbers of traces; a step never knows how many ranks there are). No
rank holds the survey's gathers: the traces of each gather label are counted in one pass
over the index's label column, streamed, and each rank then collects only its own gathers
(:func:`rank_gathers`, :class:`RankGathers`). Each rank writes
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


# Traces of a rank's gathers whose trace numbers are collected (and sorted) at once: one
# streamed pass over the label column per group of gathers, ~26 B a trace while sorting.
GROUP_TRACES = 1 << 22
# Rows of the index's label column read at a time (the counting and collecting passes).
LABEL_CHUNK = 1 << 16


def _key_columns(key: str) -> tuple[str, str]:
    """(label column, order column) of a gather key other than ``"line"``."""
    if key == "shot":
        return "source_id", "channel"
    if key == "cmp":
        return "cmp", "offset"
    raise SeisError(f"unknown gather key {key!r} (choose from {', '.join(KEYS)})")


def group_traces(index: TraceIndex, key: str) -> list[np.ndarray]:
    """Trace numbers of every gather of the survey, each sorted for processing, in memory.

    The driver does not use it (it holds every trace, ~50 B a trace while sorting, on every
    rank): :func:`rank_gathers` gives a rank its own gathers, the same arrays, in bounded
    memory. Kept for tools and tests that want the whole survey's gathers of a small file.

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
    name, order_name = _key_columns(key)
    label, order = np.asarray(index[name]), np.asarray(index[order_name])
    srt = np.lexsort((np.arange(n), order, label))
    cuts = np.flatnonzero(np.diff(label[srt])) + 1
    return np.split(srt, cuts)


def gather_counts(index: TraceIndex, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The gathers' labels (increasing) and their numbers of traces, from one pass over the
    label column read :data:`LABEL_CHUNK` rows at a time: memory per gather, not per trace.

    Parameters
    ----------
    index : TraceIndex
        The input's index (with survey bins for ``key="cmp"``).
    key : {"shot", "cmp"}
        Shot gathers (label ``source_id``) or CMP gathers (label ``cmp``).

    Returns
    -------
    labels, counts : numpy.ndarray
        Every gather's label, increasing, and its traces (int64).
    """
    from seis_hpc.engine.stream_plan import column_chunks

    name, _ = _key_columns(key)
    labels = counts = None
    pend_u: list[np.ndarray] = []
    pend_c: list[np.ndarray] = []
    pending = 0

    def merge():
        nonlocal labels, counts, pend_u, pend_c, pending
        u = np.concatenate(([labels] if labels is not None else []) + pend_u)
        c = np.concatenate(([counts] if counts is not None else []) + pend_c)
        labels, inv = np.unique(u, return_inverse=True)
        counts = np.zeros(labels.size, np.int64)
        np.add.at(counts, inv.ravel(), c)
        pend_u, pend_c, pending = [], [], 0

    for _, cols in column_chunks(index, [name], LABEL_CHUNK):
        u, c = np.unique(np.asarray(cols[name]), return_counts=True)
        pend_u.append(u)
        pend_c.append(c.astype(np.int64))
        pending += u.size
        # merged when the chunks' labels outgrow those known: amortised, memory per gather
        if pending > max(LABEL_CHUNK, labels.size if labels is not None else 0):
            merge()
    if pend_u or labels is None:
        if not pend_u:
            pend_u, pend_c = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        merge()
    return labels, counts


def rank_gathers(index: TraceIndex, key: str, rank: int = 0, size: int = 1
                 ) -> tuple[RankGathers | list[np.ndarray], int]:
    """This rank's gathers, each sorted for processing, and the number of gathers of the
    survey, without holding the survey's trace numbers.

    The gathers are those of the label order (shots by ``source_id``, CMPs by ``cmp``),
    assigned to ranks longest first by their numbers of traces
    (:func:`~seis_hpc.engine.decomposition.assign_longest_first`); the rank's are in label
    order, each with its traces ordered by channel (shots) or offset (CMPs), ties by trace
    number. Memory: the gathers' labels and counts (one streamed pass), then the rank's own
    gathers (:class:`RankGathers`), collected :data:`GROUP_TRACES` traces at a time.

    Parameters
    ----------
    index : TraceIndex
        The input's index (with survey bins for ``key="cmp"``).
    key : {"shot", "cmp", "line"}
        Shot gathers, CMP gathers or the whole line (file order, one gather, rank 0).
    rank, size : int
        This rank and the number of ranks.
    """
    if key == "line":
        return ([np.arange(index.n_traces)] if rank == 0 else []), 1
    labels, counts = gather_counts(index, key)
    mine = assigned_gathers(counts, size, rank)
    return RankGathers(index, key, labels, counts, mine), int(labels.size)


def assigned_gathers(counts: np.ndarray, size: int, rank: int) -> np.ndarray:
    """Positions (increasing) of the gathers that
    :func:`~seis_hpc.engine.decomposition.assign_longest_first` gives ``rank`` for these
    numbers of traces, the same ones, in memory per gather of a few bytes (not Python
    objects per gather, ~150 B each: 0.4 GB for the 2.7e6 CMPs of a 1.6e8-trace survey).

    The largest gather goes to the least loaded rank (ties: the lowest rank), equal sizes in
    gather order; loads are summed in float64 in that order, as there.
    """
    import heapq

    counts = np.asarray(counts, np.int64)
    n = counts.size
    if size == 1:
        return np.arange(n, dtype=np.int64)
    order = np.lexsort((np.arange(n), -counts))  # largest first, ties in gather order
    heap = [(0.0, r) for r in range(size)]
    mine: list[np.ndarray] = []
    for a in range(0, n, LABEL_CHUNK):
        pos = order[a:a + LABEL_CHUNK]
        got = np.zeros(pos.size, bool)
        for j, w in enumerate(counts[pos].tolist()):
            load, r = heap[0]
            heapq.heapreplace(heap, (load + w, r))
            got[j] = r == rank
        mine.append(pos[got])
    return np.sort(np.concatenate(mine)) if mine else np.zeros(0, np.int64)


def _joined(parts: list[np.ndarray], empty) -> np.ndarray:
    """The pieces joined, the list emptied (so that they are freed as soon as joined)."""
    out = np.concatenate(parts) if parts else np.zeros(0, empty)
    parts.clear()
    return out


class RankGathers:
    """A rank's gathers (trace numbers, each in processing order), in label order, as a
    sequence collected from the index on demand.

    The gathers are taken in groups of consecutive ones holding at most
    :data:`GROUP_TRACES` traces (a larger gather alone); each group is one streamed pass
    over the label column (:data:`LABEL_CHUNK` rows at a time) that reads the order column
    of the matching rows only, then a sort of the group's traces. When every gather fits one
    group it is kept after the first pass (the rank's share: 8 B a trace); otherwise each
    iteration collects the groups again, so memory stays one group.

    Parameters
    ----------
    index : TraceIndex
        The input's index.
    key : {"shot", "cmp"}
        The gathers' key.
    labels, counts : numpy.ndarray
        Every gather's label (increasing) and traces (:func:`gather_counts`).
    mine : numpy.ndarray
        Positions in ``labels`` of this rank's gathers, increasing.
    """

    def __init__(self, index: TraceIndex, key: str, labels: np.ndarray, counts: np.ndarray,
                 mine: np.ndarray):
        self.index, self.key = index, key
        self.labels = labels
        self.mine = np.asarray(mine, np.int64)
        self.sizes = np.asarray(counts, np.int64)[self.mine]
        self.bounds = self._group_bounds(self.sizes, GROUP_TRACES)
        self._kept: list[np.ndarray] | None = None

    @staticmethod
    def _group_bounds(sizes: np.ndarray, budget: int) -> list[int]:
        """Where consecutive gathers are cut into groups of at most ``budget`` traces."""
        bounds, total = [0], 0
        for i, s in enumerate(sizes.tolist()):
            if total and total + s > budget:
                bounds.append(i)
                total = 0
            total += s
        if bounds[-1] != len(sizes):
            bounds.append(len(sizes))
        return bounds

    def __len__(self) -> int:
        return int(self.mine.size)

    def __iter__(self):
        for a, b in zip(self.bounds[:-1], self.bounds[1:], strict=True):
            yield from self._group(a, b)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self.bounds, i, side="right")) - 1
        a, b = self.bounds[k], self.bounds[k + 1]
        return self._group(a, b)[i - a]

    def _group(self, a: int, b: int) -> list[np.ndarray]:
        """Gathers ``a:b`` of this rank (one streamed pass)."""
        if self._kept is not None:
            return self._kept[a:b]
        got = self._collect(a, b)
        if len(self.bounds) == 2:  # one group: the rank's whole share, kept
            self._kept = got
        return got

    def _collect(self, a: int, b: int) -> list[np.ndarray]:
        from seis_hpc.engine.stream_plan import column_chunks, take_rows

        name, order_name = _key_columns(self.key)
        want = self.mine[a:b]
        if not want.size:
            return []
        # position in the group of each gather (-1: not in it); memory per gather
        where = np.full(self.labels.size, -1, np.int32 if want.size < 2**31 else np.int64)
        where[want] = np.arange(want.size)
        ids_parts, ord_parts, pos_parts = [], [], []
        for start, cols in column_chunks(self.index, [name], LABEL_CHUNK):
            lab = np.asarray(cols[name])
            pos = where[np.searchsorted(self.labels, lab)]
            hit = np.flatnonzero(pos >= 0)
            if not hit.size:
                continue
            ids = hit.astype(np.int64) + start
            ids_parts.append(ids)
            pos_parts.append(pos[hit])
            ord_parts.append(np.asarray(take_rows(self.index, [order_name], ids)[order_name]))
        # each list freed once joined: ~20 B a trace of the group at most, then the sort's
        ids = _joined(ids_parts, np.int64)
        pos = _joined(pos_parts, np.int64)
        order = _joined(ord_parts, np.float64)
        sizes = self.sizes[a:b]
        if not np.array_equal(np.bincount(pos, minlength=want.size), sizes):
            raise SeisError("the index changed while its gathers were collected",
                            getattr(self.index, "path", None))
        # by gather, then the order key, then trace number (increasing along the stream):
        # each gather exactly as the in-memory lexsort of (label, order, trace) orders it
        srt = np.lexsort((ids, order, pos))
        del order, pos
        ids = ids[srt]
        del srt
        return np.split(ids, np.cumsum(sizes)[:-1])


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
            impl = step.build(params)
            # Steps that select or reorder traces (select, sort) give the input trace of every
            # output position; the output then has len(order) traces. The order is made on
            # disk in the scratch file (every rank calls it) and read a slice at a time.
            order = impl.order(reader, scratch, comm)
            # This rank's gathers only (counted in one streamed pass, collected a group at a
            # time): no rank holds every trace's gather. A step with an order has none.
            mine = [] if order is not None else \
                rank_gathers(reader.index, step.gather_key(params), rank, size)[0]
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
                    qc = _process(step, impl, reader, mine, fd, comm, scratch)
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


def _process(step: StepSpec, impl: GatherStep, reader: TraceReader,
             mine: RankGathers | list[np.ndarray], fd: int, comm: MPI.Comm | None,
             scratch: str) -> dict:
    """Every gather of this rank (``mine``: their trace numbers, :func:`rank_gathers`):
    read, apply, write; returns this rank's QC sums (``scratch``: a file name beside the
    output for a two-pass step's own use)."""
    lay = reader.layout
    qc = {"traces": 0, "gathers": 0, "sumsq_in": 0.0, "sumsq_out": 0.0}
    if impl.two_pass:
        # Two passes (editing): the step's line-wide pass over every rank's gathers, its
        # per-trace results kept in the scratch file (shared by the ranks), not in memory.
        impl.survey_pass(reader, mine, comm, scratch)
    impl.prepare(reader, mine)
    from seis_hpc.progress import track

    # Rank 0 reports its own share: with balanced gathers that is the job's pace.
    for ids, cols in track(_gather_columns(reader, mine), step.name, "gather",
                           total=len(mine), rank=comm.Get_rank() if comm else 0):
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


def _copy_ordered(step: StepSpec, impl: GatherStep, reader: TraceReader, order,
                  fd: int, comm: MPI.Comm | None, block_bytes: int = 64 << 20) -> dict:
    """Copy the input traces ``order`` (an array, or an order file read a block's slice at a
    time) to output positions 0, 1, ... in large blocks (the blocks dealt to ranks in turn);
    headers through ``impl.headers`` when the step has it."""
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


def _gather_columns(reader: TraceReader, gathers, batch: int | None = None):
    """``(trace numbers, index columns)`` for each gather of ``gathers`` (an iterable of
    trace numbers). The columns are the gathers' rows only (never whole columns: they would
    grow with the survey on every rank), read for up to ``batch`` traces of gathers at once
    (one read of the index per gather costs more than a light step's work on it)."""
    from seis_hpc.io.traces import COLUMNS

    batch = batch or CONTEXT_BATCH
    part: list[np.ndarray] = []
    total = 0

    def flush():
        cols = reader.index.take(COLUMNS, np.concatenate(part))
        a = 0
        for ids in part:
            b = a + len(ids)
            yield ids, {c: v[a:b] for c, v in cols.items()}
            a = b

    for ids in gathers:
        if part and total + len(ids) > batch:
            yield from flush()
            part, total = [], 0
        part.append(ids)
        total += len(ids)
    if part:
        yield from flush()


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
