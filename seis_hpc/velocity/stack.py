"""The stack before migration: NMO correction with a stretch mute and a CMP stack normalised by
the live fold, over a whole survey, written as an HDF5 ``image`` volume and optionally SEG-Y.

Each bin's traces are NMO-corrected with the bin's Vrms(t0) (the ``vrms`` volume or CSV
function read by :func:`seis_hpc.velocity.model.open_vrms`, as ``seis-hpc pstm`` reads it) by
:func:`seis_hpc.velocity.nmo.nmo_correct`, and each sample's sum is divided by the number of traces
live there (not stretch-muted, not zero), as :func:`seis_hpc.velocity.nmo.nmo_stack` does for one
gather, so mute zones and dead traces do not dim the stack.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from seis_hpc.errors import SeisError

if TYPE_CHECKING:
    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.index import TraceIndex
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.model import VrmsFunction, VrmsVolume

TRACE_BLOCK = 4096  # most traces per NMO call
TRACE_BYTES = 16 << 20  # ... and most bytes of their velocities (2,097 traces of 1,000 samples)
BLOCK_BYTES = 32 << 20  # the sum, live fold and result of one block of bins (20 B a sample)


def bin_blocks(grid: BinGrid, ns: int, block_bytes: int = BLOCK_BYTES
               ) -> list[tuple[int, int, int, int]]:
    """Blocks of consecutive bins whose stack fits ``block_bytes``, in output order.

    Whole inlines (several per block where they fit), else pieces of one inline (a 2D line
    is one inline of CMPs).

    Parameters
    ----------
    grid : BinGrid
        Output grid.
    ns : int
        Samples per trace.
    block_bytes : int
        Memory of a block's sum, live fold and result (20 bytes per bin and sample).

    Returns
    -------
    list of (i0, i1, j0, j1)
        Inline rows ``i0:i1`` and crossline columns ``j0:j1`` (grid indices from 0).
    """
    ni, nj = grid.n_inline, grid.n_crossline
    per = max(1, int(block_bytes) // (20 * max(int(ns), 1)))  # bins per block
    if per >= nj:
        k = per // nj
        return [(i, min(ni, i + k), 0, nj) for i in range(0, ni, k)]
    return [(i, i + 1, j, min(nj, j + per)) for i in range(ni) for j in range(0, nj, per)]


GROUP_BYTES = 64 << 20  # trace lists of a group of blocks: 28 B a trace (see iter_stack_blocks)


def column_slices(source, names: Sequence[str], starts, chunk: int
                  ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(first row, columns)`` of the chunks of ``chunk`` rows starting at ``starts``.

    An index file whose columns are not in memory is read slice by slice (memory: one
    chunk); columns in memory (or an in-memory source) are sliced.
    """
    from seis_hpc.io.columns import columns_on_file, n_rows

    if columns_on_file(source, names):
        import h5py

        n = n_rows(source)
        with h5py.File(source.path, "r") as f:
            for a in starts:
                yield int(a), {k: f[k][a:min(n, a + chunk)] for k in names}
        return
    full = {k: source[k] for k in names}
    for a in starts:
        yield int(a), {k: v[a:a + chunk] for k, v in full.items()}


def _serial(grid: BinGrid, inline: np.ndarray, crossline: np.ndarray, own: bool
            ) -> np.ndarray:
    """``Survey.bin_serial`` of a chunk's bin numbers (int64, -1 outside the grid), computed
    in place in ``inline`` when the arrays are this chunk's own (read from file): 8 B a row
    and three flags, not the four 8 B temporaries of the plain expression."""
    il = np.array(inline, dtype=np.int64, copy=not own or None)
    xl = np.array(crossline, dtype=np.int64, copy=not own or None)
    il -= grid.inline0
    xl -= grid.crossline0
    ok = (il >= 0) & (il < grid.n_inline)
    ok &= xl >= 0
    ok &= xl < grid.n_crossline
    il *= grid.n_crossline
    il += xl
    il[~ok] = -1
    return il


def _bin_chunks(source, bins, grid: BinGrid, starts, chunk: int, extra: Sequence[str] = ()
                ) -> Iterator[tuple[int, np.ndarray, Callable[[str], np.ndarray]]]:
    """``(first row, bins, column)`` of the chunks of ``chunk`` rows starting at ``starts``:
    each row's bin (``bins``, or that of its ``inline``/``crossline`` columns in ``grid``,
    -1 outside) and a function reading the chunk's slice of a column ``extra`` when asked.

    An index file whose columns are not in memory is read slice by slice (memory: one
    chunk); columns in memory (or an in-memory source) are sliced.
    """
    from seis_hpc.io.columns import columns_on_file, n_rows

    need = [*extra] + ([] if bins is not None else ["inline", "crossline"])
    if need and columns_on_file(source, need):
        import h5py

        n = n_rows(source)
        with h5py.File(source.path, "r") as f:
            for a in starts:
                a, b = int(a), min(n, int(a) + chunk)
                bb = np.asarray(bins[a:b], dtype=np.int64) if bins is not None else \
                    _serial(grid, f["inline"][a:b], f["crossline"][a:b], own=True)
                yield a, bb, lambda k, a=a, b=b: f[k][a:b]
        return
    full = {k: source[k] for k in need}
    for a in starts:
        a = int(a)
        bb = np.asarray(bins[a:a + chunk], dtype=np.int64) if bins is not None else \
            _serial(grid, full["inline"][a:a + chunk], full["crossline"][a:a + chunk],
                    own=False)
        yield a, bb, lambda k, a=a: full[k][a:a + chunk]


def plan_stack_groups(source, bins, grid: BinGrid, blocks, *, chunk: int | None = None,
                      group_bytes: int | None = None):
    """One streamed pass over the bins: the traces of each block, each chunk's bin range,
    and groups of consecutive blocks whose trace lists fit ``group_bytes``.

    Parameters
    ----------
    source, bins, grid
        As :func:`iter_stack_blocks`.
    blocks : list of (i0, i1, j0, j1)
        :func:`bin_blocks`.
    chunk : int, optional
        Rows read at a time (default ``stream_plan.PLAN_CHUNK``, 65,536).
    group_bytes : int, optional
        Most bytes of a group's trace lists (28 B a trace; default :data:`GROUP_BYTES`,
        64 MB); a block with more traces is a group of its own.

    Returns
    -------
    counts : numpy.ndarray
        Traces of each block (int64).
    chunk_lo, chunk_hi : numpy.ndarray
        Smallest and largest bin of the traces inside the grid of each chunk (an empty
        range, lo > hi, for a chunk without any).
    groups : list of (int, int)
        Blocks ``k0:k1`` of each group.
    """
    from seis_hpc.engine import stream_plan
    from seis_hpc.io.columns import n_rows

    chunk = max(1, int(chunk or stream_plan.PLAN_CHUNK))
    nj = grid.n_crossline
    first = np.array([i0 * nj + j0 for i0, _, j0, _ in blocks], dtype=np.int64)
    n = len(bins) if bins is not None else n_rows(source)
    starts = range(0, n, chunk)
    counts = np.zeros(len(blocks), dtype=np.int64)
    lo = np.full(len(starts), np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(len(starts), -1, dtype=np.int64)
    for c, (_, b, _) in enumerate(_bin_chunks(source, bins, grid, starts, chunk)):
        b = b[b >= 0]
        if b.size:
            lo[c], hi[c] = b.min(), b.max()
            counts += np.bincount(np.searchsorted(first, b, side="right") - 1,
                                  minlength=len(blocks))
        del b
    cap = max(1, int(group_bytes or GROUP_BYTES) // 28)
    groups, k0, held = [], 0, 0
    for k, m in enumerate(counts):
        if k > k0 and held + m > cap:
            groups.append((k0, k))
            k0, held = k, 0
        held += int(m)
    if len(blocks):
        groups.append((k0, len(blocks)))
    return counts, lo, hi, groups


def iter_stack_blocks(source: TraceIndex, bins: np.ndarray | None, grid: BinGrid,
                      velocity: VrmsVolume | VrmsFunction, *, stretch_mute: float | None = 0.3,
                      interp: str = "linear", block_bytes: int = BLOCK_BYTES,
                      progress: Callable[[int, int], None] | None = None,
                      chunk: int | None = None, group_bytes: int | None = None
                      ) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]]:
    """NMO stack of a survey, one block of consecutive bins at a time (:func:`bin_blocks`).

    Nothing is held per trace of the survey. One streamed pass over the bins (``chunk``
    rows at a time: the ``inline`` and ``crossline`` columns of an index file, 16 B a trace
    read) counts each block's traces and notes each chunk's range of bins
    (:func:`plan_stack_groups`); consecutive blocks are grouped so that a group's trace
    lists (trace number, bin, offset and their order by block: 28 B a trace) fit
    ``group_bytes``. Each group then takes one more pass over the bins and offsets (24 B a
    trace read), reading only the chunks whose range of bins meets the group's: with an
    index in bin order (a spatially blocked one, a CMP-sorted file) the groups' passes
    together read each chunk about once; with a shot-ordered survey, the chunks of the
    shots that reach the group's bins. On the spec's survey (1.6e8 traces of 1,000 or more
    samples) the default 64 MB groups are ~2.4e6 traces, so a shot-ordered survey is read
    at worst (1 + 1.6e8 / 2.4e6) x 24 B = 1.6 kB a trace in index columns, against the 4 kB
    a trace of samples read once; in bin order, 40 B a trace. Memory: one block's sum,
    live fold and result, one group's trace lists (at most ``group_bytes``, or one block's
    traces when they are more), one chunk of rows (about 30 B a row), 16 B per chunk of
    rows and 8 B per block.

    Each bin sums its traces in file order whatever the blocks, groups and chunks, so the
    stack is the same bit for bit for any ``block_bytes``, ``chunk`` and ``group_bytes``.

    Parameters are those of :func:`nmo_stack_survey`, with
    bins : numpy.ndarray of int or None
        None: each trace's bin is that of its ``inline``/``crossline`` columns in ``grid``
        (as ``Survey.bin_serial()`` gives), read chunk by chunk.
    block_bytes : int
        Memory of one block's sum, live fold and result (20 bytes per bin and sample).
    chunk : int, optional
        Rows of the index read at a time by the passes (default
        ``stream_plan.PLAN_CHUNK``, 65,536).
    group_bytes : int, optional
        Most memory of a group's trace lists (28 B a trace; default :data:`GROUP_BYTES`).

    Yields
    ------
    (i0, i1, j0, j1), stack, fold
        The block's grid rows and columns, its stack (float32, shape
        ``(i1 - i0, j1 - j0, ns)``; 0 in empty bins and where no trace is live) and its
        fold (int64, shape ``(i1 - i0, j1 - j0)``: the largest live fold over each bin's
        samples).
    """
    from seis_hpc.engine import stream_plan
    from seis_hpc.io.columns import n_rows
    from seis_hpc.velocity.nmo import nmo_correct

    chunk = max(1, int(chunk or stream_plan.PLAN_CHUNK))
    if bins is not None:
        bins = np.asarray(bins)
        if bins.shape != (n_rows(source),):
            raise SeisError(f"bins: need one bin per trace ({n_rows(source)}), got "
                            f"{bins.shape}")
    ns, dt, t0 = int(source.ns), float(source.dt), float(source.t_start)
    nj = grid.n_crossline
    blocks = bin_blocks(grid, ns, block_bytes)
    first = np.array([i0 * nj + j0 for i0, _, j0, _ in blocks], dtype=np.int64)
    counts, c_lo, c_hi, groups = plan_stack_groups(source, bins, grid, blocks, chunk=chunk,
                                                   group_bytes=group_bytes)
    n = 0
    for k0, k1 in groups:
        s0 = int(first[k0])
        s1 = int(first[k1]) if k1 < len(blocks) else grid.n_bins
        # The group's traces in file order: their numbers, bins and offsets (20 B a
        # trace), filled chunk by chunk; then their order by block (8 B a trace).
        m = int(counts[k0:k1].sum())
        ids_g = np.zeros(m, np.int64)
        bin_g = np.zeros(m, np.int32 if grid.n_bins < 2 ** 31 else np.int64)
        off_g = np.zeros(0, np.float64)  # in the offset column's type, once it is read
        order = None
        if m:
            hit = np.flatnonzero((c_hi >= s0) & (c_lo < s1))
            at = 0
            for a, b, column in _bin_chunks(source, bins, grid, hit * chunk, chunk,
                                            ["offset"]):
                sel = np.flatnonzero((b >= s0) & (b < s1))
                if sel.size:
                    off = column("offset")
                    if at == 0:
                        off_g = np.zeros(m, np.asarray(off).dtype)
                    z = at + sel.size
                    ids_g[at:z] = sel
                    ids_g[at:z] += a
                    bin_g[at:z] = b[sel]
                    off_g[at:z] = off[sel]
                    del off
                    at = z
                del b, sel
            if k1 - k0 > 1:  # by block, file order within each block (stable)
                order = np.argsort(np.searchsorted(first, bin_g, side="right") - 1,
                                   kind="stable")
        ends = np.cumsum(counts[k0:k1])
        for k in range(k0, k1):
            i0, i1, j0, j1 = blocks[k]
            ri, rj = i1 - i0, j1 - j0
            total = np.zeros((ri * rj, ns))
            fold = np.zeros((ri * rj, ns), dtype=np.int64)
            e = int(ends[k - k0])
            a0 = e - int(counts[k])
            rows = slice(a0, e) if order is None else order[a0:e]
            ids, bb = ids_g[rows], bin_g[rows].astype(np.int64)
            offset = np.asarray(off_g[rows], dtype=np.float64)
            if ids.size:
                v_blk = np.asarray(velocity.window(i0, i1, j0, j1), dtype=np.float64)
                if v_blk.shape != (ri * rj, ns):
                    raise SeisError(f"velocity model gives shape {v_blk.shape} for inlines "
                                    f"{grid.inline0 + i0}..{grid.inline0 + i1 - 1}, expected "
                                    f"({ri * rj}, {ns})")
                local = (bb // nj - i0) * rj + (bb % nj - j0)
                # Many gathers per kernel call (one velocity row per trace): the kernel's
                # threads pay off on thousands of traces, not on the 24 of one CMP.
                per = max(64, min(TRACE_BLOCK, TRACE_BYTES // (8 * ns)))
                for a in range(0, ids.size, per):
                    blk, col = ids[a:a + per], local[a:a + per]
                    out = nmo_correct(source.read_traces(blk), offset[a:a + per], dt,
                                      v_blk[col], t_start=t0, stretch_mute=stretch_mute,
                                      interp=interp)
                    # float32 into the float64 sum and bool into the int64 fold convert
                    # each value exactly, as the copies (astype) that are not made would
                    np.add.at(total, col, out)
                    np.add.at(fold, col, out != 0.0)
            # Normalised by the live fold of each sample (as nmo_stack and SU sustack count).
            stack = np.where(fold > 0, total / np.maximum(fold, 1), 0.0).astype(np.float32)
            yield ((i0, i1, j0, j1), stack.reshape(ri, rj, ns),
                   fold.max(axis=1).reshape(ri, rj))
            n += 1
            if progress is not None:
                progress(n, len(blocks))


def nmo_stack_survey(source: TraceIndex, bins: np.ndarray | None, grid: BinGrid,
                     velocity: VrmsVolume | VrmsFunction, *, stretch_mute: float | None = 0.3,
                     interp: str = "linear",
                     progress: Callable[[int, int], None] | None = None,
                     return_fold: bool = False, block_bytes: int = BLOCK_BYTES,
                     chunk: int | None = None, group_bytes: int | None = None) -> np.ndarray:
    """NMO stack of every bin of a survey, in memory (blocks of :func:`iter_stack_blocks`).

    With ``return_fold`` also return the fold of each bin, shape ``grid.shape`` (int64): the
    largest live fold over its samples, i.e. the number of live traces stacked into it where
    no mute removes any.

    Parameters
    ----------
    source : object
        Trace source: ``read_traces(ids)``, ``dt`` (s), ``t_start`` (s), ``ns`` and
        ``["offset"]`` (m) -- a :class:`~seis_hpc.io.index.TraceIndex` or an in-memory source.
    bins : numpy.ndarray of int or None
        Each trace's bin as a flat index into ``grid.shape`` (``Survey.bin_serial()``); -1
        for traces outside the grid (ignored). None: read from the source's ``inline`` and
        ``crossline`` columns chunk by chunk (nothing held per trace).
    grid : BinGrid
        Output grid.
    velocity : object
        Velocity model with ``window(i0, i1, j0, j1) -> (n_bins, ns)`` Vrms (m/s) on the
        input time axis (:func:`seis_hpc.velocity.model.open_vrms`).
    stretch_mute : float or None
        NMO stretch limit (fraction; None for none).
    interp : {"linear", "cubic"}
        Interpolation of the NMO correction.
    progress : callable, optional
        Called with (done, total) blocks of bins.
    return_fold : bool
        Also return the fold of each bin (see above).
    block_bytes : int
        Memory of one block's sum and live fold (:func:`bin_blocks`); the result is the
        same for any value.
    chunk, group_bytes : int
        Rows read at a time, and most memory of a group's trace lists
        (:func:`iter_stack_blocks`); the result is the same for any values.

    Returns
    -------
    numpy.ndarray, float32, shape ``grid.shape + (ns,)``
        The stack; 0 in empty bins and where no trace is live.
    """
    ns = int(source.ns)
    stack = np.zeros(grid.shape + (ns,), dtype=np.float32)
    fold = np.zeros(grid.shape, dtype=np.int64)
    st3, fo3 = stack.reshape(grid.n_inline, grid.n_crossline, ns), fold.reshape(
        grid.n_inline, grid.n_crossline)
    for (i0, i1, j0, j1), blk, fb in iter_stack_blocks(
            source, bins, grid, velocity, stretch_mute=stretch_mute, interp=interp,
            block_bytes=block_bytes, progress=progress, chunk=chunk,
            group_bytes=group_bytes):
        st3[i0:i1, j0:j1], fo3[i0:i1, j0:j1] = blk, fb
    if return_fold:
        return stack, fold
    return stack


def _input_path(survey, idx) -> str:
    """The input file of a survey (the line the SEG-Y text header names)."""
    if isinstance(survey, (str, os.PathLike)):
        return os.path.abspath(survey)
    return str(getattr(idx, "attrs", {}).get("segy_path", ""))


def write_stack(path: str | os.PathLike, stack: np.ndarray, grid: BinGrid, time: np.ndarray, *,
                segy: str | os.PathLike | None = None, segy_revision: int = 1,
                config: str = "", history: Sequence[str] = (),
                attrs: dict | None = None, fold: np.ndarray | None = None,
                shotpoint=None) -> None:
    """Write a stack as an HDF5 ``image`` volume and, optionally, SEG-Y.

    Parameters
    ----------
    path : path-like
        HDF5 output (seis_hpc volume format).
    stack : numpy.ndarray, shape ``grid.shape + (nt,)``
        The section or cube.
    grid : BinGrid
        Its grid.
    time : array_like
        Two-way times (s).
    segy : path-like, optional
        Also write SEG-Y (:func:`seis_hpc.io.export.write_volume_segy`).
    segy_revision : {1, 2}
        SEG-Y revision of that file.
    config, history, attrs
        Provenance.
    fold : numpy.ndarray, optional
        Live traces stacked per bin (``grid.shape``), written to the SEG-Y ``NStackedTraces``.
    shotpoint : ShotPoints, optional
        2D: the shot point of each CMP (:func:`seis_hpc.io.shotpoint.line_shotpoints`),
        stored in the volume's ``shotpoint`` and written to the SEG-Y ``ShotPoint``.
    """
    from seis_hpc.io.export import write_volume_segy
    from seis_hpc.io.volume import Volume, write_volume

    vol = Volume(np.asarray(stack, dtype=np.float32), grid, np.asarray(time, dtype=np.float64),
                 "image", config=config, history=list(history), attrs=dict(attrs or {}))
    if shotpoint is not None:
        vol.shotpoint, vol.shotpoint_attrs = shotpoint.values, shotpoint.attrs()
    write_volume(path, vol)
    if segy is not None:
        write_volume_segy(segy, vol, revision=segy_revision, fold=fold)


def stack(survey: str | os.PathLike | Survey, velocity: str | os.PathLike,
          out: str | os.PathLike, *, segy: str | os.PathLike | None = None,
          segy_revision: int = 1, stretch_mute: float = 0.3, interp: str = "linear",
          index: str | os.PathLike | None = None,
          bin_grid: BinGrid | str | os.PathLike | None = None, config: str = "",
          history: Sequence[str] = (), progress: bool = True,
          block_bytes: int = BLOCK_BYTES, return_stack: bool = True) -> np.ndarray | None:
    """NMO stack of a survey normalised by the live fold, written to HDF5 (and SEG-Y).

    Both outputs or neither: each goes to a temporary name, renamed when both are written.
    The stack is computed and written one block of consecutive bins at a time
    (:func:`iter_stack_blocks`), so its memory is that of one block, not of the survey:
    nothing is held per trace (the blocks' traces and a 2D line's shot points are found
    by passes over the index in chunks of rows), 8 B per bin for the fold of the SEG-Y
    headers (and, in 2D, the shot point of each CMP).

    Parameters
    ----------
    survey : path-like or Survey
        SEG-Y/SU prestack file (or its trace index), or an open
        :class:`~seis_hpc.survey.Survey`.
    velocity : path-like
        Vrms (m/s): an HDF5 'vrms' volume on any bin grid or a ``time_s,vrms_mps`` CSV.
    out : path-like
        HDF5 'image' volume: (cmp, time) or (inline, crossline, time).
    segy : path-like, optional
        Also write SEG-Y (INLINE_3D/CROSSLINE_3D/CDP/CDP_X/CDP_Y headers).
    segy_revision : {1, 2}
        SEG-Y revision of that file.
    stretch_mute : float
        NMO stretch limit (fraction, >= 0; 0 for none).
    interp : {"linear", "cubic"}
        Interpolation of the NMO correction.
    index : path-like, optional
        Trace index of a survey given by path.
    bin_grid : BinGrid or path-like, optional
        Bin a survey given by path by this grid (or bin grid TOML file) instead of finding
        one; traces outside it are reported and not used.
    config : str
        Configuration text stored in the output.
    history : sequence of str
        History lines stored in the output.
    progress : bool
        Show the progress line on stderr.
    block_bytes : int
        Memory of one block of bins (sum, live fold and result: 20 bytes per bin and
        sample); the output is the same for any value.
    return_stack : bool
        Read the stack back from ``out`` and return it (the whole section or cube in
        memory); ``seis-hpc stack`` does not.

    Returns
    -------
    numpy.ndarray, shape ``grid.shape + (nt,)``, or None
        The stack, as written (None without ``return_stack``).
    """
    import h5py

    from seis_hpc.io.atomic import atomic_outputs, prepare_outputs
    from seis_hpc.io.export import write_volume_segy
    from seis_hpc.io.shotpoint import line_shotpoints
    from seis_hpc.io.volume import Volume, VolumeWriter
    from seis_hpc.limits import check_in_memory
    from seis_hpc.progress import Progress
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.model import open_vrms

    for p in (survey, velocity):
        if isinstance(p, (str, os.PathLike)) and not os.path.exists(p):
            raise FileNotFoundError(2, "No such file or directory", os.fspath(p))
    prepare_outputs(out, segy)  # a bad output name fails before any work
    if stretch_mute < 0:
        raise SeisError(f"--stretch-mute must be >= 0 (got {stretch_mute})")
    sv = survey if isinstance(survey, Survey) else Survey.open(survey, index, grid=bin_grid)
    sv.check_for("stack")  # prestack, lengths (issue 15)
    idx, grid = sv.index, sv.grid
    time = idx.times()
    # the float64 sum and int64 live fold of a block of bins and samples, and its result
    n_blk = max((i1 - i0) * (j1 - j0) for i0, i1, j0, j1 in bin_blocks(grid, time.size,
                                                                      block_bytes))
    check_in_memory(20 * n_blk * time.size, "the stack",
                    f"{n_blk:,} bins x {time.size:,} samples x 20 bytes (sum, fold, result "
                    "of a block)")
    vel = open_vrms(velocity, grid, time)
    sp = line_shotpoints(idx, grid)
    attrs = {"velocity": os.path.abspath(velocity), "input": _input_path(survey, idx)}
    fold = np.zeros(grid.shape, dtype=np.int64)  # 8 bytes a bin, for the SEG-Y headers
    fold3 = fold.reshape(grid.n_inline, grid.n_crossline)
    # Block by block into the temporary file: only one block of bins is ever in memory
    # (iter_stack_blocks), whatever the size of the survey.
    with atomic_outputs(out, segy) as (out_tmp, segy_tmp), \
            Progress(None, "stack", "block", mode="auto" if progress else "off") as prog:
        with h5py.File(out_tmp, "w") as f:
            w = VolumeWriter(f, grid, time, "image", config=config, history=list(history),
                             attrs=attrs, shotpoint=None if sp is None else sp.values,
                             shotpoint_attrs=None if sp is None else sp.attrs())
            for (i0, i1, j0, j1), blk, fb in iter_stack_blocks(
                    idx, None, grid, vel, stretch_mute=stretch_mute or None,
                    interp=interp, block_bytes=block_bytes,
                    progress=lambda done, total: (setattr(prog, "total", total),
                                                  prog.set(done))):
                w.put("image", blk, slice(i0, i1), slice(j0, j1))
                fold3[i0:i1, j0:j1] = fb
            if segy_tmp is not None:
                # SEG-Y from the HDF5 data set, read back a slab of bins at a time.
                vol = Volume(f["image"], grid, time, "image", config=config,
                             history=list(history), attrs=attrs)
                if sp is not None:
                    vol.shotpoint, vol.shotpoint_attrs = sp.values, sp.attrs()
                write_volume_segy(segy_tmp, vol, revision=segy_revision, fold=fold)
    if not return_stack:
        return None
    from seis_hpc.io.volume import read_volume

    return read_volume(out, "image").data
