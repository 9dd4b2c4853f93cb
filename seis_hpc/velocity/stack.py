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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from seis_hpc.errors import SeisError

if TYPE_CHECKING:
    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.index import TraceIndex
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.model import VrmsFunction, VrmsVolume

TRACE_BLOCK = 4096  # traces per NMO call (4096 x 1000 samples x 8 bytes of velocity: 33 MB)


def nmo_stack_survey(source: TraceIndex, bins: np.ndarray, grid: BinGrid,
                     velocity: VrmsVolume | VrmsFunction, *, stretch_mute: float | None = 0.3,
                     interp: str = "linear",
                     progress: Callable[[int, int], None] | None = None,
                     return_fold: bool = False) -> np.ndarray:
    """NMO stack of every bin of a survey.

    With ``return_fold`` also return the fold of each bin, shape ``grid.shape`` (int64): the
    largest live fold over its samples, i.e. the number of live traces stacked into it where
    no mute removes any.

    Parameters
    ----------
    source : object
        Trace source: ``read_traces(ids)``, ``dt`` (s), ``t_start`` (s), ``ns`` and
        ``["offset"]`` (m) -- a :class:`~seis_hpc.io.index.TraceIndex` or an in-memory source.
    bins : numpy.ndarray of int
        Each trace's bin as a flat index into ``grid.shape`` (``Survey.bin_serial()``); -1
        for traces outside the grid (ignored).
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
        Called with (done, total) inlines.

    Returns
    -------
    numpy.ndarray, float32, shape ``grid.shape + (ns,)``
        The stack; 0 in empty bins and where no trace is live.
    """
    from seis_hpc.velocity.nmo import nmo_correct

    b = np.asarray(bins, dtype=np.int64)
    offset = np.asarray(source["offset"], dtype=np.float64)
    if b.shape != offset.shape:
        raise SeisError(f"bins: need one bin per trace ({offset.size}), got {b.shape}")
    ns, dt, t0 = int(source.ns), float(source.dt), float(source.t_start)
    ni, nj = grid.n_inline, grid.n_crossline
    total = np.zeros((ni * nj, ns))
    fold = np.zeros((ni * nj, ns), dtype=np.int64)
    for i in range(ni):
        ids = np.flatnonzero((b >= i * nj) & (b < (i + 1) * nj))
        if ids.size:
            v_row = np.asarray(velocity.window(i, i + 1, 0, nj), dtype=np.float64)
            if v_row.shape != (nj, ns):
                raise SeisError(f"velocity model gives shape {v_row.shape} for inline "
                                f"{grid.inline0 + i}, expected ({nj}, {ns})")
            # Many gathers per kernel call (one velocity row per trace): the kernel's threads
            # pay off on thousands of traces, not on the 24 of one CMP.
            for a in range(0, ids.size, TRACE_BLOCK):
                blk = ids[a:a + TRACE_BLOCK]
                col = b[blk] - i * nj
                out = nmo_correct(source.read_traces(blk), offset[blk], dt, v_row[col],
                                  t_start=t0, stretch_mute=stretch_mute, interp=interp)
                np.add.at(total, b[blk], out.astype(np.float64))
                np.add.at(fold, b[blk], (out != 0.0).astype(np.int64))
        if progress is not None:
            progress(i + 1, ni)
    # Normalised by the live fold of each sample (as nmo_stack and SU sustack count it).
    stack = np.where(fold > 0, total / np.maximum(fold, 1), 0.0).astype(np.float32)
    if return_fold:
        return stack.reshape(grid.shape + (ns,)), fold.max(axis=1).reshape(grid.shape)
    return stack.reshape(grid.shape + (ns,))


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
          history: Sequence[str] = (), progress: bool = True) -> np.ndarray:
    """NMO stack of a survey normalised by the live fold, written to HDF5 (and SEG-Y).

    Both outputs or neither: each goes to a temporary name, renamed when both are written.

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

    Returns
    -------
    numpy.ndarray, shape ``grid.shape + (nt,)``
        The stack, as written.
    """
    from seis_hpc.io.atomic import atomic_outputs, prepare_outputs
    from seis_hpc.io.shotpoint import line_shotpoints
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
    idx = sv.index
    time = idx.times()
    # the float64 sum and int64 live fold of every bin and sample, and the float32 result
    n_bins = sv.grid.n_bins
    check_in_memory(20 * n_bins * time.size, "the stack",
                    f"{n_bins:,} bins x {time.size:,} samples x 20 bytes (sum, fold, result)")
    vel = open_vrms(velocity, sv.grid, time)
    with Progress(None, "stack", "inline", mode="auto" if progress else "off") as prog:
        result, fold = nmo_stack_survey(
            idx, sv.bin_serial(), sv.grid, vel, return_fold=True,
            stretch_mute=stretch_mute or None, interp=interp,
            progress=lambda done, total: (setattr(prog, "total", total), prog.set(done)))
    with atomic_outputs(out, segy) as (out_tmp, segy_tmp):
        write_stack(out_tmp, result, sv.grid, time, segy=segy_tmp,
                    segy_revision=segy_revision, config=config,
                    history=history, fold=fold, shotpoint=line_shotpoints(idx, sv.grid),
                    attrs={"velocity": os.path.abspath(velocity),
                           "input": _input_path(survey, idx)})
    return result
