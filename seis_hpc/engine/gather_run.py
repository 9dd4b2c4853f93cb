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

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.io.segy import TRACE_HEADER_BYTES, decode_samples, encode_samples, probe

KEYS = ("shot", "cmp", "line")
# Test hook: seconds to sleep after writing each gather, so that a test can interrupt a step
# while its temporary output exists (as the engine's SEIS_HPC_UNIT_DELAY does for a job).
SLOW_ENV = "SEIS_HPC_GATHER_DELAY"


class GatherReader:
    """Samples and header bytes of a SEG-Y/SU file by trace number, plus its trace index.

    Unlike :meth:`~seis_hpc.io.index.TraceIndex.read_traces`, :meth:`read` returns NaN/Inf
    samples as they are (``allow_bad=True``), so bad-trace editing can see them.
    """

    def __init__(self, path: str | os.PathLike, need_cmp: bool = False):
        from seis_hpc.io.index import TraceIndex

        self.path = os.fspath(path)
        self.layout = probe(self.path)
        if need_cmp:
            from seis_hpc.survey import Survey

            self.index = Survey.open(self.path, save=False).index
        else:
            self.index = TraceIndex.for_file(self.path, save=False)
        self._mm = np.memmap(self.path, dtype=np.uint8, mode="r",
                             offset=self.layout.data_offset,
                             shape=(self.layout.n_traces, self.layout.trace_bytes))

    @property
    def dt(self) -> float:
        """Sample interval (s)."""
        return self.layout.dt

    @property
    def t_start(self) -> float:
        """Time of the first sample (s)."""
        return self.layout.t_start

    def read(self, ids, allow_bad: bool = False) -> np.ndarray:
        """float32 samples ``(len(ids), ns)`` of the traces ``ids`` (file order, from 0)."""
        ids = np.asarray(ids, np.int64)
        raw = self._mm[ids, TRACE_HEADER_BYTES:]
        data = decode_samples(raw, self.layout.format, self.layout.endian, self.layout.ns)
        if not allow_bad:
            bad = ~np.isfinite(data).all(axis=1)
            if bad.any():
                i = int(ids[np.argmax(bad)])
                raise SeisError(f"trace {i} (FFID {int(self.index['ffid'][i])}, channel "
                                f"{int(self.index['channel'][i])}): NaN/Inf samples (run "
                                "seis-hpc edit first)", self.path)
        return data

    def header_bytes(self, ids) -> np.ndarray:
        """The 240-byte trace headers of ``ids``, verbatim (uint8 ``(n, 240)``)."""
        return np.ascontiguousarray(self._mm[np.asarray(ids, np.int64), :TRACE_HEADER_BYTES])

    def file_header(self) -> bytes:
        """Everything before the first trace (textual, binary and extended headers)."""
        with open(self.path, "rb") as f:
            return f.read(self.layout.data_offset)

    def columns(self, ids) -> dict[str, np.ndarray]:
        """Index columns of the traces ``ids`` (offset m, ffid, channel, cmp, positions m)."""
        ids = np.asarray(ids, np.int64)
        names = ("ffid", "channel", "cmp", "offset", "sx", "sy", "rx", "ry", "source_id")
        return {k: np.asarray(self.index[k])[ids] for k in names}


def group_traces(index, key: str) -> list[np.ndarray]:
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


def assign(groups: list[np.ndarray], n_ranks: int) -> list[list[int]]:
    """Longest-first static assignment of gathers to ranks (by trace count)."""
    load = np.zeros(n_ranks)
    out: list[list[int]] = [[] for _ in range(n_ranks)]
    for g in sorted(range(len(groups)), key=lambda i: (-len(groups[i]), i)):
        r = int(np.argmin(load))
        out[r].append(g)
        load[r] += len(groups[g])
    return [sorted(o) for o in out]


def _runs(ids: np.ndarray) -> list[tuple[int, int]]:
    """(start position in ids, length) of runs of consecutive trace numbers."""
    if len(ids) == 0:
        return []
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    starts = np.r_[0, breaks]
    ends = np.r_[breaks, len(ids)]
    return list(zip(starts.tolist(), (ends - starts).tolist(), strict=True))


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


def run_step(step, params: dict, input_path, output_path, *, comm=None, flow: dict | None = None,
             quiet: bool = False) -> dict | None:
    """Run one step over every gather of ``input_path`` and write ``output_path``.

    Parameters
    ----------
    step : seis_hpc.flows.steps.StepSpec
        The step (its gather key and implementation).
    params : dict
        Resolved parameters (SI units).
    input_path, output_path : path-like
        SEG-Y/SU in and out (the output takes the input's layout and headers).
    comm : mpi4py communicator, optional
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
        reader = GatherReader(input_path, need_cmp=step.gather_key(params) == "cmp")
        step.validate(params, reader)
        return str(temporary_name(output_path))

    tmp, err = checked_on_root(comm, check)
    if err:
        raise SeisError(err)
    # Every rank lists the shared temporary file, so that whichever rank fails removes it
    # before the abort (the ranks the abort kills run no handler), and so does SIGTERM/SIGINT;
    # one rank alone removes it on any exception.
    with registered(tmp, remove_on_error=size == 1):
        with abort_on_error(comm):
            reader = GatherReader(input_path, need_cmp=step.gather_key(params) == "cmp")
            groups = group_traces(reader.index, step.gather_key(params))
            mine = assign(groups, size)[rank]
            impl = step.build(params)
            # Steps that select or reorder traces (select, sort) give the input trace of every
            # output position; the output then has len(order) traces.
            order = impl.order(reader) if hasattr(impl, "order") else None
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
                with open(tmp, "wb") as f:
                    f.write(head)
                    f.truncate(out_size)
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
                    qc = _process(step, impl, reader, groups, mine, fd, comm)
                else:
                    qc = _copy_ordered(step, impl, reader, order, fd, comm)
                os.fsync(fd)
            finally:
                os.close(fd)
            return _finish(step, impl, qc, entry, reader, tmp, output_path, input_path, comm,
                           quiet)


def _process(step, impl, reader, groups, mine, fd, comm) -> dict:
    """Every gather of this rank: read, apply, write; returns this rank's QC sums."""
    lay = reader.layout
    qc = {"traces": 0, "gathers": 0, "sumsq_in": 0.0, "sumsq_out": 0.0}
    if hasattr(impl, "attributes"):
        # Two passes (editing): per-trace attributes of every gather, shared, then decisions.
        part = {}
        for g in mine:
            ids = groups[g]
            data = reader.read(ids, allow_bad=True)
            for k, v in impl.attributes(data, _ctx(reader, ids)).items():
                part.setdefault(k, []).append((ids, v))
        full = _share_attributes(part, reader.index.n_traces, comm)
        impl.decide(full, reader.columns(np.arange(reader.index.n_traces)))
    if hasattr(impl, "prepare"):
        impl.prepare(reader, [groups[g] for g in mine])
    from seis_hpc.progress import track

    delay = float(os.environ.get(SLOW_ENV, "0") or 0)
    # Rank 0 reports its own share: with balanced gathers that is the job's pace.
    for g in track(mine, step.name, "gather", rank=comm.Get_rank() if comm else 0):
        ids = groups[g]
        data = reader.read(ids, allow_bad=step.allow_bad)
        out = impl.apply(data, _ctx(reader, ids))
        if out.shape != data.shape:
            raise RuntimeError(f"step {step.name} changed the gather shape")
        finite_in = np.where(np.isfinite(data), data, 0.0)
        qc["sumsq_in"] += float(np.sum(finite_in.astype(np.float64) ** 2))
        qc["sumsq_out"] += float(np.sum(out.astype(np.float64) ** 2))
        qc["traces"] += len(ids)
        qc["gathers"] += 1
        # Write in file order, one pwrite per run of consecutive traces.
        order = np.argsort(ids, kind="stable")
        ids_sorted = ids[order]
        hdr = reader.header_bytes(ids_sorted)
        if hasattr(impl, "headers"):
            hdr = impl.headers(hdr, ids_sorted)
        samples = encode_samples(out[order], lay.format, lay.endian)
        block = np.concatenate([hdr, samples], axis=1)
        for a, n in _runs(ids_sorted):
            pos = lay.data_offset + int(ids_sorted[a]) * lay.trace_bytes
            os.pwrite(fd, block[a:a + n].tobytes(), pos)
        if delay:
            import time

            time.sleep(delay)
    return qc


def _copy_ordered(step, impl, reader, order, fd, comm, block_bytes: int = 64 << 20) -> dict:
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
        srt = np.argsort(ids, kind="stable")
        raw = np.empty((len(ids), lay.trace_bytes), np.uint8)
        raw[srt] = reader._mm[ids[srt]]  # read in file order, place in output order
        if hasattr(impl, "headers"):
            raw[:, :TRACE_HEADER_BYTES] = impl.headers(raw[:, :TRACE_HEADER_BYTES], ids)
        data = decode_samples(raw[:, TRACE_HEADER_BYTES:], lay.format, lay.endian, lay.ns)
        ss = float(np.sum(np.where(np.isfinite(data), data, 0.0).astype(np.float64) ** 2))
        qc["sumsq_in"] += ss
        qc["sumsq_out"] += ss
        qc["traces"] += len(ids)
        qc["gathers"] += 1
        os.pwrite(fd, raw.tobytes(), lay.data_offset + a * lay.trace_bytes)
    return qc


def _ctx(reader: GatherReader, ids: np.ndarray) -> dict:
    return {"dt": reader.dt, "t_start": reader.t_start, "ids": ids, **reader.columns(ids)}


def _share_attributes(part: dict, n: int, comm) -> dict[str, np.ndarray]:
    """Per-trace attribute arrays of all ranks, assembled in trace order on every rank."""
    from seis_hpc.engine.comm import rank_size

    _, size = rank_size(comm)
    pieces = {k: (np.concatenate([i for i, _ in v]), np.concatenate([a for _, a in v]))
              for k, v in part.items()}
    if size > 1:
        allp = comm.allgather(pieces)
    else:
        allp = [pieces]
    out = {}
    for p in allp:
        for k, (ids, vals) in p.items():
            if k not in out:
                out[k] = np.zeros(n, dtype=vals.dtype)
            out[k][ids] = vals
    return out


def _finish(step, impl, qc, entry, reader, tmp, output_path, input_path, comm, quiet):
    from seis_hpc.engine.comm import rank_size
    from seis_hpc.io.atomic import atomic_output

    rank, size = rank_size(comm)
    extra = impl.qc() if hasattr(impl, "qc") else {}
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
    if hasattr(impl, "finish"):
        impl.finish(merged, reader, summary)
    os.replace(tmp, output_path)
    history = previous_history(input_path) + [entry]
    with atomic_output(qc_path(output_path)) as t:
        t.write_text(json.dumps({"summary": summary, "history": history}, indent=1,
                                default=_jsonable))
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
