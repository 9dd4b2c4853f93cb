"""Adding the images of a PSTM job split by input traces (``seis-hpc image sum``).

A survey can be cut in space or time by its *input*: each part migrates some of the traces
(``seis-hpc pstm --traces A:B`` or ``--ffid LO:HI``, or one SEG-Y file per sail line) into
the whole output grid, and the part images add up to the image of the whole job, because
Kirchhoff migration is a sum over traces. (Output tiles, ``--grid`` parts, are assembled
instead by ``seis-hpc slurm merge``.)

What the parts must agree on, else the sum is refused naming the part and the attribute:
the bin grid (every ``grid_*`` attribute), the time axis, the offset classes and whether
there are gathers, every migration parameter (``pstm_*``), the velocity, and for parts of
one input file the file itself (same size and time). Parts of one input must not share a
trace (each records its traces as runs in ``part_traces``; a part without it is the whole
file), no part may be given twice, and no sample may be NaN/Inf.

Parts hold raw sums. An image that is *normalised* (attribute ``normalised`` true) cannot
be added; the data sets named in the JSON list attribute ``summed_datasets`` (e.g.
normalisation weights, of any shape) are raw sums too and are added with ``image`` and
``gathers``; normalise the sum, not the parts.

A 2D line's ``shotpoint`` (the SP of each CMP, a geometry attribute computed from every
shot of the input, so the same in every part of one job) is copied from the first part when
every part has the same; parts that disagree (e.g. parts of different input files) give a
sum without it.

The output is written under a temporary name and renamed when complete (all or nothing);
it records every part and its SHA-256 in ``parts`` and the union of the parts' traces.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from seis_hpc.errors import SeisError

# Summed in slabs of about this many bytes per part read (bounds the memory used).
SLAB_BYTES = 32 << 20
# Data sets that are raw sums in every image with them.
SUMMED = ("image", "gathers")
# Attributes that describe one run of one part, not the job: never compared.
_PER_RUN = {"created", "software", "config", "history", "timing", "plan", "strategy",
            "n_ranks", "writer", "reads_per_trace", "traces_selected", "trace_selection",
            "parts", "n_parts", "input", "n_traces_input",  # input: checked per file
            "pstm_backend", "pstm_threads",  # change float32 rounding only
            "normalise_requested"}  # what the whole job will be scaled by, not the sums


def sha256_file(path: str | os.PathLike, block: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Part:
    """What :func:`sum_images` knows of one part before adding it."""

    path: str
    attrs: dict
    axes: dict
    shapes: dict
    runs: np.ndarray | None
    sha256: str
    summed: list = field(default_factory=list)
    shotpoint: tuple = (None, {})  # 2D: (SP of each CMP, its attributes)

    @property
    def input_path(self) -> str | None:
        """The input file of the part (None: not recorded)."""
        raw = self.attrs.get("input")
        if raw is None:
            return None
        return json.loads(raw).get("path") if isinstance(raw, str) and raw.startswith("{") \
            else str(raw)


def _plain(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _open_part(path: str) -> Part:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", path) from None
        raise SeisError(f"not an HDF5 file ({exc.__class__.__name__})", path) from None
    with f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        if attrs.get("kind") != "image" or "image" not in f:
            raise SeisError(f"not a seis_hpc image (kind {attrs.get('kind')!r}, data sets "
                            f"{', '.join(sorted(f)) or 'none'})", path)
        norm = attrs.get("normalised", attrs.get("normalized"))
        if norm not in (None, 0, False, "none", "no", "false"):
            raise SeisError(f"the image is normalised (normalised = {norm!r}): image sum adds "
                            "raw sums only; write the parts without normalisation and "
                            "normalise the sum", path)
        try:
            extra = json.loads(attrs.get("summed_datasets", "[]"))
        except (TypeError, ValueError):
            raise SeisError("attribute summed_datasets is not a JSON list", path) from None
        summed = [n for n in SUMMED if n in f] + [str(n) for n in extra if n not in SUMMED]
        for n in summed:
            if n not in f:
                raise SeisError(f"summed_datasets names {n!r}, which is not in the file", path)
        axes = {n: f[n][...] for n in ("time", "offset", "inline", "crossline", "cmp")
                if n in f}
        shapes = {n: tuple(f[n].shape) for n in summed}
        runs = f["part_traces"][...].reshape(-1, 2).astype(np.int64) \
            if "part_traces" in f else None
        from seis_hpc.io.volume import read_shotpoint

        sp = read_shotpoint(f)
    return Part(path, attrs, axes, shapes, runs, sha256_file(path), summed, sp)


def _common_shotpoint(parts: list[Part]) -> tuple:
    """The parts' ``shotpoint`` when every part has the same one, else (None, {})."""
    sp, attrs = parts[0].shotpoint
    if sp is None:
        return None, {}
    for p in parts[1:]:
        other, other_attrs = p.shotpoint
        if other is None or not np.array_equal(other, sp) or \
                other_attrs.get("source") != attrs.get("source"):
            return None, {}
    return sp, attrs


def _same(a, b) -> bool:
    if isinstance(a, list | np.ndarray) or isinstance(b, list | np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_parts(parts: list[Part]) -> None:
    """Refuse parts that cannot be added (see the module documentation).

    Raises
    ------
    SeisError
        One line naming the part and the attribute (or the other part) in question.
    """
    if not parts:
        raise SeisError("no part images to add")
    first = parts[0]
    seen: dict[str, str] = {}
    for p in parts:
        real = os.path.realpath(p.path)
        if real in seen or p.sha256 in seen:
            other = seen.get(real, seen.get(p.sha256))
            raise SeisError(f"part given twice (same file or the same bytes as {other})",
                            p.path)
        seen[real] = seen[p.sha256] = p.path
    for p in parts[1:]:
        keys = (set(first.attrs) | set(p.attrs)) - _PER_RUN
        for k in sorted(keys):
            if not _same(first.attrs.get(k), p.attrs.get(k)):
                raise SeisError(f"attribute {k} is {_short(p.attrs.get(k))} here but "
                                f"{_short(first.attrs.get(k))} in {first.path}: not a part "
                                "of the same job", p.path)
        for k in sorted(set(first.axes) | set(p.axes)):
            if k not in p.axes or k not in first.axes or not _same(first.axes[k], p.axes[k]):
                what = {"time": "time axis (samples, dt, start)", "offset": "offset classes"}
                raise SeisError(f"{what.get(k, k + ' axis')} differs from {first.path}", p.path)
        if p.summed != first.summed or p.shapes != first.shapes:
            raise SeisError(f"data sets {p.summed} {list(p.shapes.values())} differ from "
                            f"{first.summed} {list(first.shapes.values())} in {first.path} "
                            "(gathers in one part only?)", p.path)
    # Parts of one input file: the same file, and no trace in two parts.
    by_input: dict[str, list[Part]] = {}
    for p in parts:
        by_input.setdefault(p.input_path or "", []).append(p)
    for path, group in by_input.items():
        stamp0 = str(group[0].attrs.get("input"))
        for q in group[1:]:
            if str(q.attrs.get("input")) != stamp0:
                raise SeisError(f"attribute input: the input file {path} is not the same "
                                f"(size or time) as for {group[0].path}", q.path)
        if len(group) < 2:
            continue
        rows = []
        for i, p in enumerate(group):
            r = p.runs
            if r is None:  # the whole file
                n = int(p.attrs.get("n_traces_input", 0)) or np.iinfo(np.int64).max // 2
                r = np.array([[0, n]], np.int64)
            rows.append(np.column_stack([r, np.full(len(r), i)]))
        allr = np.concatenate(rows)
        allr = allr[np.lexsort((allr[:, 1], allr[:, 0]))]
        end = np.maximum.accumulate(allr[:, 1])
        clash = np.flatnonzero(allr[1:, 0] < end[:-1])
        if clash.size:
            k = int(clash[0]) + 1
            a = group[int(allr[k, 2])]
            # the part whose run reaches furthest among those before k
            prev = group[int(allr[int(np.argmax(allr[:k, 1])), 2])]
            if prev is a:
                prev = next(q for q in group if q is not a)
            lo = int(allr[k, 0])
            raise SeisError(f"part shares input traces with {prev.path} (trace {lo} of "
                            f"{path or 'the input'} is in both): each trace must be in one "
                            "part only", a.path)


def _union_runs(parts: list[Part]) -> np.ndarray | None:
    """The traces of all parts as runs (None: together they are every trace of the input,
    or the parts read different files)."""
    if len({p.input_path for p in parts}) != 1 or any(p.runs is None for p in parts):
        return None
    r = np.concatenate([p.runs for p in parts])
    r = r[np.argsort(r[:, 0], kind="stable")]
    merged = [list(r[0])]
    for a, b in r[1:]:
        if a == merged[-1][1]:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    out = np.asarray(merged, np.int64)
    n = int(parts[0].attrs.get("n_traces_input", -1))
    if len(out) == 1 and out[0, 0] == 0 and out[0, 1] == n:
        return None
    return out


def _add(parts: list[Part], name: str, dst: h5py.Dataset) -> None:
    """Add data set ``name`` of every part into ``dst`` in slabs along its first lateral
    axis (float64 sums, stored float32); NaN/Inf refused naming the part and bin."""
    shape = parts[0].shapes[name]
    lead = 1 if name == "gathers" else 0  # gathers: (offset, lines, ...)
    if len(shape) <= lead:
        lead = 0
    per_line = int(np.prod(shape[lead + 1:], dtype=np.int64)) * max(
        1, int(np.prod(shape[:lead], dtype=np.int64))) * 8
    step = max(1, SLAB_BYTES // max(per_line, 1))
    n = shape[lead]
    for a in range(0, n, step):
        b = min(n, a + step)
        idx = (slice(None),) * lead + (slice(a, b),)
        acc = None
        for p in parts:
            with h5py.File(p.path, "r") as f:
                block = np.asarray(f[name][idx])
            bad = ~np.isfinite(block)
            if bad.any():
                where = np.unravel_index(int(np.flatnonzero(bad)[0]), block.shape)
                pos = [int(i) for i in where]
                pos[lead] += a
                raise SeisError(f"{name} has a NaN/Inf sample at index {tuple(pos)}", p.path)
            acc = block.astype(np.float64) if acc is None else acc + block
        dst[idx] = acc.astype(dst.dtype)


def sum_images(paths: list[str], out: str | os.PathLike, history_line: str = "") -> dict:
    """Add the part images ``paths`` of a job split by input traces into ``out``.

    Parameters
    ----------
    paths : list of path-like
        Part images (``seis-hpc pstm --traces``/``--ffid`` outputs, or images of the same
        grid and parameters from different input files); any order.
    out : path-like
        The summed image, written atomically.
    history_line : str
        Added to the history of the output.

    Returns
    -------
    dict
        ``parts``, ``traces_selected`` (sum over the parts), ``complete`` (True when the
        parts of one input file cover all its traces; None when they come from several
        files) and ``shape``.

    Raises
    ------
    SeisError
        Parts that do not belong together (see :func:`check_parts`), NaN/Inf samples.
    """
    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.atomic import atomic_output
    from seis_hpc.io.volume import VolumeWriter

    parts = [_open_part(os.fspath(p)) for p in paths]
    check_parts(parts)
    first = parts[0]
    grid = BinGrid.from_attrs(first.attrs)
    time = first.axes["time"]
    offset = first.axes.get("offset")
    history: list[str] = []
    for p in parts:
        try:
            history += list(json.loads(p.attrs.get("history", "[]")))
        except ValueError:
            pass
    if history_line:
        history.append(history_line)
    selected = sum(int(p.attrs.get("traces_selected", 0)) for p in parts)
    inputs = sorted({str(p.attrs.get("input")) for p in parts if p.attrs.get("input")})
    union = _union_runs(parts)
    one_input = len({p.input_path for p in parts}) == 1
    complete = None  # parts of several input files: unknown
    if one_input:
        complete = union is None
    keep = {k: v for k, v in first.attrs.items()
            if k.startswith("pstm_") or k in ("velocity", "summed_datasets", "units")
            # the scale of the sum (raw sums) and the one its job asked for
            or k in ("normalise", "normalised", "rho_filter", "normalise_requested")
            or (k == "n_traces_input" and one_input)}
    keep.update(
        strategy="sum of parts",
        input=inputs[0] if len(inputs) == 1 else json.dumps(inputs),
        traces_selected=selected,
        n_parts=len(parts),
        parts=json.dumps([{"path": os.path.abspath(p.path), "sha256": p.sha256,
                           "traces_selected": int(p.attrs.get("traces_selected", 0)),
                           "trace_selection": p.attrs.get("trace_selection", "all")}
                          for p in parts]),
    )
    sp, sp_attrs = _common_shotpoint(parts) if grid.is_2d else (None, {})
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as f:
        VolumeWriter(f, grid, time, "image", offset=offset,
                     with_gathers="gathers" in first.summed,
                     config=str(first.attrs.get("config", "")), history=history, attrs=keep,
                     shotpoint=sp, shotpoint_attrs=sp_attrs)
        for name in first.summed:
            if name not in f:
                with h5py.File(first.path, "r") as src:
                    f.create_dataset(name, shape=src[name].shape, dtype=src[name].dtype)
                    for k, v in src[name].attrs.items():
                        if k not in ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME"):
                            f[name].attrs[k] = v
            _add(parts, name, f[name])
        if union is not None:
            ds = f.create_dataset("part_traces", data=union)
            ds.attrs["units"] = "trace number [start, stop)"
    return {"parts": len(parts), "traces_selected": selected, "complete": complete,
            "shape": parts[0].shapes["image"]}
