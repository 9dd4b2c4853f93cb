"""PSTM of a whole survey into an HDF5 image: :func:`migrate`, the library call behind
``seis-hpc pstm`` (and the job scripts that run it), MPI-aware.

A notebook migrates a survey with::

    import seis_hpc
    seis_hpc.migrate("line.sgy", "vrms.csv", "image.h5", aperture=2000.0)

and under ``mpiexec -n N python script.py`` (with ``from mpi4py import MPI`` in the script) the
same call runs on every rank. The array-level kernel is :func:`seis_hpc.migration.pstm.pstm`;
this module plans the job, checks every input once on rank 0 and runs the MPI engine
(:mod:`seis_hpc.engine.pstm_run`), so it sits above the engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid
from seis_hpc.migration.pstm import PstmParams

if TYPE_CHECKING:
    from mpi4py import MPI

    from seis_hpc.engine.pstm_run import VelocityModel
    from seis_hpc.io.index import TraceIndex
    from seis_hpc.survey import Survey


@dataclass
class Migration:
    """What :func:`migrate` did.

    Attributes
    ----------
    status : int
        0 when the image is written; 75 (``EXIT_CHECKPOINTED``) when a signal stopped the job
        after a clean checkpoint (run the same call again to resume).
    out : str
        The image file.
    strategy : str
        ``"shard"`` or ``"tile"``.
    units : int
        Work units of the job.
    ranks : int
        MPI ranks that ran it.
    traces_in : int
        Traces of the input survey.
    traces_selected : int
        Traces this job migrates (all, or the ``traces``/``ffid`` selection).
    reads_per_trace : float
        Planned trace reads per trace read (1 in shard mode; > 1 when tiles re-read).
    """

    status: int
    out: str
    strategy: str
    units: int
    ranks: int
    traces_in: int
    traces_selected: int = 0
    reads_per_trace: float = 0.0


def select_grid(grid: BinGrid, sel: Sequence[int] | None) -> BinGrid:
    """The part of ``grid`` in ``sel``: ``(il0, il1, xl0, xl1)``, 2D ``(cmp0, cmp1)``
    (inclusive bin numbers); None for the whole grid. A range outside the grid is refused."""
    if sel is None:
        return grid
    if grid.is_2d:
        if len(sel) != 2:
            raise SeisError(f"--grid for a 2D line is CMP0,CMP1 (got {sel})")
        i0 = i1 = grid.inline0
        j0, j1 = sel
    else:
        if len(sel) != 4:
            raise SeisError(f"--grid is IL0,IL1,XL0,XL1 (got {sel})")
        i0, i1, j0, j1 = sel
    lo_i, hi_i = grid.inline0, grid.inline0 + grid.n_inline - 1
    lo_j, hi_j = grid.crossline0, grid.crossline0 + grid.n_crossline - 1
    if not (lo_i <= i0 <= i1 <= hi_i and lo_j <= j0 <= j1 <= hi_j):
        what = f"CMP {lo_j}..{hi_j}" if grid.is_2d else \
            f"inline {lo_i}..{hi_i}, crossline {lo_j}..{hi_j}"
        raise SeisError(f"--grid {','.join(map(str, sel))} is outside the survey ({what})")
    x0, y0 = grid.grid_to_world(i0, j0)
    return BinGrid(float(x0), float(y0), grid.azimuth, grid.bin_inline, grid.bin_crossline,
                   int(i0), int(j0), int(i1 - i0 + 1), int(j1 - j0 + 1), grid.handedness,
                   grid.is_2d)


def output_times(idx: TraceIndex, tmax: float | None = None, dt: float | None = None, *,
                 n_bins: int | None = None, n_classes: int = 0,
                 mem_per_rank: str | int | None = None,
                 out: str | os.PathLike | None = None) -> np.ndarray:
    """The output time axis 0..tmax step dt (s), refused before it is allocated when a value
    is impossible or when the image would not fit the memory of a rank or the output disk.

    Parameters
    ----------
    idx : TraceIndex
        The input (its last sample and interval are the defaults).
    tmax, dt : float or None
        ``--tmax`` and ``--dt`` (s).
    n_bins, n_classes : int
        Image points and offset classes, for the size check (no check when ``n_bins`` is None).
    mem_per_rank : str or int
        ``--mem-per-rank``: one image point (its trace, time axis, velocity and kernel output)
        must fit it.
    out : path-like
        The output image, whose file system must hold the image.

    Returns
    -------
    numpy.ndarray
        Output two-way times (s).
    """
    import shutil

    from seis_hpc.engine.decomposition import format_size, image_bytes, parse_size
    from seis_hpc.limits import check_output_axis

    dt = float(idx.dt) if dt is None else float(dt)
    last = float(idx.t_start + (idx.ns - 1) * idx.dt)
    tmax = last if tmax is None else float(tmax)
    n = check_output_axis(dt, tmax)
    if n_bins is not None:
        image = image_bytes(n_bins, n, n_classes)
        what = (f"--tmax {tmax:g} s at --dt {dt:g} s gives {n:,} output samples: the image "
                f"would need {format_size(image)} ({n_bins:,} points x {n:,} samples"
                + (f" x {1 + n_classes} (image + {n_classes} offset classes)" if n_classes
                   else "") + " x 4 bytes)")
        # per rank, at least one image point: its trace and gathers, the kernel's output
        # and the velocity (float32), and the time axis (float64)
        one = image_bytes(1, n, n_classes + 2) + 8 * n
        budget = parse_size(mem_per_rank) if mem_per_rank is not None else None
        if budget is not None and one > budget:
            raise SeisError(f"{what}; one image point alone needs {format_size(one)} per "
                            f"rank, more than --mem-per-rank {format_size(budget)}: lower "
                            "--tmax or raise --dt")
        if out is not None:
            folder = os.path.dirname(os.path.abspath(out))
            free = shutil.disk_usage(folder).free if os.path.isdir(folder) else None
            if free is not None and image > free:
                raise SeisError(f"{what}; only {format_size(free)} free in {folder}: lower "
                                "--tmax or raise --dt")
    return np.arange(n) * dt


def offset_edges(spec: str | int | Sequence[float] | None, offset: np.ndarray) -> np.ndarray:
    """Offset-class edges (m) of the image gathers: ``spec`` a number of equal classes up to
    the largest ``|offset|`` (m), or the edges themselves (text ``"0,500,1000"`` or numbers)."""
    text = spec if isinstance(spec, str) else ",".join(map(str, np.atleast_1d(spec)))
    if isinstance(spec, str):
        try:
            vals = [float(v) for v in spec.split(",") if v.strip()]
        except ValueError:
            raise SeisError(f"--offset-classes: numbers wanted, got {spec!r}") from None
    else:
        vals = [float(v) for v in np.atleast_1d(spec)]
    if len(vals) == 1:
        n = int(vals[0])
        if n < 1 or n != vals[0]:
            raise SeisError(f"--offset-classes: a number of classes must be a positive "
                            f"integer (got {text})")
        top = float(np.abs(offset).max()) * (1 + 1e-6) + 1e-3
        return np.linspace(0.0, top, n + 1)
    e = np.asarray(vals)
    if np.any(np.diff(e) <= 0) or e[0] < 0:
        raise SeisError(f"--offset-classes: edges must be >= 0 and increasing (got {text})")
    return e


def _ranges(text: str, what: str) -> list[tuple[int, int]]:
    """``"A:B,C:D"`` as integer pairs (``"A"`` alone is ``A:A+1``)."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        a, sep, b = part.partition(":")
        try:
            lo = int(a)
            hi = int(b) if sep else lo + 1
        except ValueError:
            raise SeisError(f"{what} {text!r}: ranges A:B of integers wanted "
                            "(e.g. 0:50000,80000:90000)") from None
        out.append((lo, hi))
    if not out:
        raise SeisError(f"{what} {text!r}: no range given")
    return out


def select_traces(idx: TraceIndex, traces: str | Sequence | None = None,
                  ffid: str | Sequence | None = None) -> np.ndarray | None:
    """The trace numbers a part of a split job migrates (None: every trace).

    Parameters
    ----------
    idx : TraceIndex
        The input survey.
    traces : str or sequence of (int, int), optional
        Trace-number ranges ``A:B`` (from 0, B excluded), comma-separated, e.g.
        ``"0:50000,80000:90000"``.
    ffid : str or sequence of (int, int), optional
        FFID (field record) ranges ``LO:HI``, both included, e.g. a sail line's shots.
        With ``traces`` too, the traces in both.

    Returns
    -------
    numpy.ndarray or None
        Increasing int64 trace numbers.

    Raises
    ------
    SeisError
        A malformed or reversed range, trace numbers past the end of the file, or a
        selection without traces.
    """
    if traces is None and ffid is None:
        return None
    from seis_hpc.engine.job import from_runs
    from seis_hpc.engine.stream_plan import column_chunks

    n = idx.n_traces
    runs = None  # the --traces ranges joined: increasing, not overlapping [start, stop)
    if traces is not None:
        pairs = _ranges(traces, "--traces") if isinstance(traces, str) else \
            [(int(a), int(b)) for a, b in traces]
        for a, b in pairs:
            if not 0 <= a < b:
                raise SeisError(f"--traces {a}:{b}: trace numbers count from 0 and A < B")
            if b > n:
                raise SeisError(f"--traces {a}:{b}: the file has {n} traces (0:{n})",
                                idx.segy_path)
        r = np.array(pairs, np.int64).reshape(-1, 2)
        r = r[np.argsort(r[:, 0], kind="stable")]
        runs = r
        if len(r):
            reach = np.maximum.accumulate(r[:, 1])
            first = np.flatnonzero(np.r_[True, r[1:, 0] > reach[:-1]])
            last = np.r_[first[1:] - 1, len(r) - 1]
            runs = np.column_stack([r[first, 0], reach[last]])
    if ffid is None:
        sel = from_runs(runs)
    else:
        pairs = _ranges(ffid, "--ffid") if isinstance(ffid, str) else \
            [(int(a), int(b)) for a, b in ffid]
        for a, b in pairs:
            if b < a:
                raise SeisError(f"--ffid {a}:{b}: LO <= HI wanted (both included)")
        # the FFID column streamed in chunks (issue 19): memory one chunk and the traces
        # selected, not a column or a flag per trace of the survey
        found = []
        for a0, cols in column_chunks(idx, ["ffid"]):
            f = np.asarray(cols["ffid"])
            mask = np.zeros(f.size, bool)
            for a, b in pairs:
                mask |= (f >= a) & (f <= b)
            hit = a0 + np.flatnonzero(mask)
            if runs is not None and hit.size:
                k = np.searchsorted(runs[:, 0], hit, side="right") - 1
                hit = hit[(k >= 0) & (hit < runs[np.maximum(k, 0), 1])]
            found.append(hit)
        sel = np.concatenate(found) if found else np.zeros(0, np.int64)
    if sel.size == 0:
        raise SeisError("the trace selection (--traces/--ffid) holds no trace", idx.segy_path)
    return sel


def file_stamp(path: str | os.PathLike) -> dict:
    """Absolute path, size and modification time of a file (a job's hash includes them, so
    that a changed input refuses the old checkpoint)."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime": int(st.st_mtime)}


class ArrayVelocity:
    """Vrms (m/s) in memory on the output grid: shape (n_inline, n_crossline, nt) or (nt,)
    (one function everywhere); the :class:`~seis_hpc.engine.pstm_run.VelocityModel` of an
    array given to :func:`migrate`."""

    def __init__(self, values: np.ndarray, grid: BinGrid, time: np.ndarray):
        v = np.asarray(values, dtype=np.float32)
        if v.shape == (time.size,):
            v = np.broadcast_to(v, grid.shape + (time.size,))
        if v.shape != grid.shape + (time.size,):
            raise SeisError(f"velocity: expected shape {grid.shape + (time.size,)} or "
                            f"({time.size},), got {v.shape}")
        if not np.all(np.isfinite(v) & (v > 0)):
            raise SeisError("velocity: every value must be finite and > 0 m/s")
        self.values = v

    def window(self, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
        """Vrms of bins [i0, i1) x [j0, j1), shape (n_bins, nt), float32 (m/s)."""
        w = self.values[i0:i1, j0:j1]
        return np.ascontiguousarray(w.reshape(-1, w.shape[-1]))


def _velocity_model(velocity: Any, grid: BinGrid, time: np.ndarray, validate: bool):
    """``velocity`` as a model on (grid, time): a file opened, an array wrapped, a model kept."""
    if isinstance(velocity, (str, os.PathLike)):
        from seis_hpc.velocity.model import open_vrms

        return open_vrms(velocity, grid, time, validate=validate)
    if isinstance(velocity, np.ndarray):
        return ArrayVelocity(velocity, grid, time)
    if not callable(getattr(velocity, "window", None)):
        raise SeisError("velocity: a vrms file, an array or a model with window(i0, i1, j0, j1)")
    return velocity


def _velocity_stamp(velocity: Any, model: Any, grid: BinGrid) -> dict | str:
    """What identifies the velocity in the job's hash: the file's stamp, else a digest of the
    model's values on the grid (read once, on rank 0)."""
    if isinstance(velocity, (str, os.PathLike)):
        return file_stamp(velocity)
    v = np.asarray(model.window(0, grid.n_inline, 0, grid.n_crossline), dtype=np.float32)
    return "sha1:" + hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest()


def _write_image_segy(out, segy, revision: int, fold: np.ndarray, line: str) -> None:
    """Rank 0: the written image as SEG-Y, atomically; on failure remove the image as well."""
    from seis_hpc.io.atomic import atomic_output
    from seis_hpc.io.export import write_volume_segy
    from seis_hpc.io.volume import read_volume

    try:
        vol = read_volume(out, "image")
        vol.attrs.setdefault("input", line)  # the line the text header names
        with atomic_output(segy) as tmp:
            write_volume_segy(tmp, vol, revision=revision, fold=fold)
    except BaseException:
        # all or none, as stack --segy: no image without its SEG-Y
        with contextlib.suppress(OSError):
            os.remove(out)
        raise


def migrate(survey: str | os.PathLike | Survey, velocity: str | os.PathLike | VelocityModel,
            out: str | os.PathLike, *, index: str | os.PathLike | None = None,
            bin_grid: BinGrid | str | os.PathLike | None = None,
            grid: Sequence[int] | None = None, tmax: float | None = None,
            dt: float | None = None, gathers: bool = False,
            offset_classes: str | int | Sequence[float] | None = None,
            aperture: float = float("inf"), max_angle: float = 60.0, taper: float = 0.1,
            antialias: bool = True, weights: str = "spreading+obliquity",
            interp: str = "linear", stretch_mute: float | None = 0.5, rho: bool = True,
            threads: int | None = None, backend: str = "cython", mem_per_rank: str | int = "2G",
            strategy: str = "auto", tile: int | None = None, units: int = 256,
            checkpoint_dir: str | os.PathLike | None = None,
            checkpoint_interval: float = 120.0, restart: str = "auto",
            keep_checkpoint: bool = False, progress_every: float = 10.0,
            parallel_hdf5: str = "auto", comm: MPI.Comm | None | str = "auto",
            config: str | None = None, history: list[str] | None = None,
            segy: str | os.PathLike | None = None, segy_revision: int = 1,
            traces: str | Sequence | None = None,
            ffid: str | Sequence | None = None,
            normalise: str = "reflector",
            scratch: str | os.PathLike | None = None) -> Migration:
    """Kirchhoff prestack time migration of a survey into one HDF5 image (collective).

    Every input is checked once, on rank 0, before any work; then each rank reads only its
    own traces. Checkpoints make a rerun of the same call resume (see ``seis-hpc pstm
    --help``).

    Parameters
    ----------
    survey : path-like or Survey
        SEG-Y/SU file (or its trace index), or an open :class:`~seis_hpc.survey.Survey`.
    velocity : path-like, VelocityModel or numpy.ndarray
        Vrms (m/s): an HDF5 'vrms' volume on any bin grid or a ``time_s,vrms_mps`` CSV; a
        model with ``window(i0, i1, j0, j1) -> (n_bins, nt)`` on the output grid and times;
        or an array on them, shape (n_inline, n_crossline, nt) or (nt,).
    out : path-like
        Output image: 'image' (inline, crossline, time) or (cmp, time); with gathers also
        'gathers' (offset class, inline, crossline, time).
    index : path-like, optional
        Trace index of a survey given by path (default beside the input or in the cache).
    bin_grid : BinGrid or path-like, optional
        Bin a survey given by path by this grid (or bin grid TOML file) instead of finding
        one; traces outside it are reported and not used.
    grid : sequence of int, optional
        Image range ``(il0, il1, xl0, xl1)`` (2D ``(cmp0, cmp1)``), inclusive; default all.
    tmax, dt : float, optional
        Last output time and output sample interval (s); default the input's.
    gathers : bool
        Also write offset-class image gathers (8 classes unless ``offset_classes``).
    offset_classes : str, int or sequence of float, optional
        Number of equal classes or class edges (m); implies gathers.
    aperture : float
        Maximum distance output point - trace midpoint (m).
    max_angle : float
        Maximum dip (operator) angle (degrees from vertical): ``tan = |midpoint - output
        point| / (v t0 / 2)``, a time-dependent aperture; offsets are limited by
        ``stretch_mute``.
    taper : float
        Taper fraction of aperture, dip angle and stretch mute (its angle acos(c)).
    antialias : bool
        Triangle anti-aliasing filter.
    weights : {"none", "spreading", "obliquity", "spreading+obliquity"}
        Amplitude weights.
    interp : {"linear", "cubic"}
        Interpolation of the data at the traveltime.
    stretch_mute : float, optional
        Mute where the wavelet stretch fraction ``1/c - 1`` exceeds this (> 0; None or 0: no
        mute). It limits the offsets: a flat reflector uses every offset whose NMO stretch
        is below it (default 0.5).
    rho : bool
        Rho-filter the traces before migrating (``(-i omega)^((dims-1)/2)``), so that a
        zero-phase reflection images zero-phase at its time.
    threads : int, optional
        OpenMP threads per rank (default ``OMP_NUM_THREADS``).
    backend : {"cython", "gpu"}
        Kernel (gpu: CUDA through CuPy, one GPU per rank).
    mem_per_rank : str or int
        Memory budget per rank (bytes, or text such as ``"2G"``).
    strategy : {"auto", "shard", "tile"}
        Input sharding or output tiles (auto: by memory).
    tile : int, optional
        Tile edge (bins) of the tile strategy.
    units : int
        Target number of work units of the shard strategy.
    checkpoint_dir : path-like, optional
        Checkpoint folder (default ``<out>.ckpt``).
    checkpoint_interval : float
        Seconds between flushes of partial images.
    restart : {"auto", "fresh"}
        Resume a checkpoint of this job, or discard it.
    keep_checkpoint : bool
        Keep the checkpoint folder after success.
    progress_every : float
        Seconds between progress lines when not on a terminal.
    parallel_hdf5 : {"auto", "on", "off"}
        Output writer (see :class:`~seis_hpc.engine.job.PstmJob`).
    comm : mpi4py.MPI.Comm, None or "auto"
        Communicator; None runs in this process; "auto" is ``COMM_WORLD`` when mpi4py has
        initialised MPI, else None.
    config : str, optional
        Configuration text stored in the image (default: these parameters as JSON).
    history : list of str, optional
        History lines stored in the image.
    segy : path-like, optional
        Also write the (stacked) image as SEG-Y
        (:func:`seis_hpc.io.export.write_volume_segy`), on rank 0 after the image;
        ``NStackedTraces`` is the number of input traces binned into each image bin. If it
        fails, the image is removed too (all or none) and the error raised on every rank;
        the checkpoint is kept, so that the same call again only writes the outputs.
    segy_revision : {1, 2}
        SEG-Y revision of that file.
    traces, ffid : str or sequence of (int, int), optional
        Migrate only a part of the input (:func:`select_traces`): trace-number ranges
        ``"A:B,..."`` (from 0, B excluded) and/or FFID ranges ``"LO:HI,..."`` (included).
        The image holds that part's raw sums; ``seis-hpc image sum`` adds the parts of a
        job split this way (each part records its traces in ``part_traces``).
    normalise : {"reflector", "none"}
        Amplitude scale of the image (:mod:`seis_hpc.engine.normalise`). ``reflector``
        (default): the image (and each offset class) is divided by the kernel's measured
        response to a flat reflector of unit amplitude, so that a flat reflector has the
        amplitude of its NMO stack. ``none``: the plain Kirchhoff sum over the traces (the
        raw operator of :func:`~seis_hpc.migration.pstm.pstm`). A part (``traces``/``ffid``)
        always holds raw sums: the response of a part's own traces is not that of the
        survey, and ``seis-hpc image sum`` adds raw sums only.
    scratch : path-like, optional
        Folder for each rank's temporary files, ideally on node-local disk (``%n`` is
        replaced by the node's name); default none: they are written in the checkpoint
        folder, beside the output. The checkpoint is always in ``checkpoint_dir``, on the
        shared filesystem, so a requeued job resumes on any nodes.

    Returns
    -------
    Migration
        Status (0 written, 75 stopped by a signal after a checkpoint), strategy, units, ranks.

    Raises
    ------
    seis_hpc.engine.comm.CheckedInputError
        Bad input (a :class:`~seis_hpc.errors.SeisError`), found on rank 0 and raised on every
        rank; nothing is written.
    """
    from seis_hpc.engine.comm import default_comm, on_root, rank_size
    from seis_hpc.engine.pstm_run import execute, make_job
    from seis_hpc.survey import Survey

    comm = default_comm(comm)
    rank, size = rank_size(comm)
    if stretch_mute == 0:
        stretch_mute = None  # 0: no mute (as for the stack)
    params = PstmParams(aperture=aperture, max_angle=max_angle, taper=taper,
                        antialias=antialias, weights=weights, interp=interp,
                        stretch_mute=stretch_mute, backend=backend, threads=threads, rho=rho)
    if config is None:
        config = json.dumps({"survey": str(survey), "velocity": str(velocity), "out": str(out),
                             "grid": grid, "tmax": tmax, "dt": dt, "gathers": gathers,
                             "offset_classes": offset_classes, **dataclasses.asdict(params),
                             "mem_per_rank": mem_per_rank, "strategy": strategy,
                             "tile": tile, "units": units, "normalise": normalise},
                            default=str, indent=1)
    held = {}

    def setup():
        paths = [p for p in (survey, velocity, bin_grid) if isinstance(p, (str, os.PathLike))]
        for p in paths:
            if not os.path.exists(p):
                raise FileNotFoundError(2, "No such file or directory", os.fspath(p))
        path = os.path.abspath(out)
        if segy is not None:
            from seis_hpc.io.atomic import prepare_outputs

            prepare_outputs(out, segy)  # a bad SEG-Y name fails before any work
            if segy_revision not in (1, 2):
                raise SeisError(f"SEG-Y revision must be 1 or 2 (got {segy_revision})")
        if os.path.isdir(path):
            raise SeisError("output is a directory", path)
        if not os.access(os.path.dirname(path) or ".", os.W_OK):
            raise SeisError("cannot write to the output directory", os.path.dirname(path))
        sv = survey if isinstance(survey, Survey) else Survey.open(survey, index, grid=bin_grid)
        sv.check_for("pstm")  # prestack, lengths (issue 15)
        idx = sv.index
        g = select_grid(sv.grid, grid)
        # the classes' top edge needs only the largest |offset|: streamed, not the column
        from seis_hpc.engine.stream_plan import column_abs_max

        edges = (offset_edges(offset_classes or "8", np.array([column_abs_max(idx, "offset")]))
                 if gathers or offset_classes else None)
        time = output_times(idx, tmax, dt, n_bins=g.n_bins,
                            n_classes=0 if edges is None else len(edges) - 1,
                            mem_per_rank=mem_per_rank, out=path)
        vel = _velocity_model(velocity, g, time, validate=True)
        if backend != "cython":
            from seis_hpc.gpu import get_runtime

            get_runtime()  # no CuPy or no GPU: say so once, before any work
        # The kernel parameters, checked once here instead of failing on every rank later.
        n = min(2, g.n_crossline)
        dataclasses.replace(params, stretch_mute=None).check(
            g.points()[:n], time, vel.window(0, 1, 0, n), idx.dt, idx.t_start)
        if stretch_mute is not None and not stretch_mute > 0:
            raise SeisError(f"--stretch-mute must be > 0 (got {stretch_mute})")
        source_id = file_stamp(survey) if not isinstance(survey, Survey) else \
            file_stamp(idx.attrs["segy_path"])
        vstamp = _velocity_stamp(velocity, vel, g)
        hash_params = {"input": source_id, "velocity": vstamp, "out": path}
        sel = select_traces(idx, traces, ffid)
        # a part holds raw sums: the parts of a split job are added as they are
        scale = normalise if sel is None else "none"
        job = make_job(idx, g, time, path, kernel_args=params.kernel_args(),
                       mem_per_rank=mem_per_rank, strategy=strategy, tile=tile,
                       n_units=units, offset_edges=edges, checkpoint_dir=checkpoint_dir,
                       restart=restart, checkpoint_interval=checkpoint_interval,
                       hash_params=hash_params, config=config, history=list(history or []),
                       progress_period=progress_every, parallel_hdf5=parallel_hdf5,
                       traces=sel, normalise=scale)
        job.keep_checkpoint = bool(keep_checkpoint)
        # Other ranks open the index file and read only their units' rows from it.
        job.index_path = str(idx.path) if idx.path is not None else ""
        # What seis-hpc image sum checks before adding the images of a split job's parts.
        job.image_attrs = {
            "input": json.dumps(file_stamp(idx.attrs["segy_path"]), sort_keys=True),
            "velocity": json.dumps(vstamp, sort_keys=True, default=str),
            "n_traces_input": int(idx.n_traces),
            "traces_selected": int(idx.n_traces if sel is None else sel.size),
            "trace_selection": "all" if sel is None else json.dumps(
                {"traces": traces if traces is None or isinstance(traces, str)
                 else [list(map(int, p)) for p in traces],
                 "ffid": ffid if ffid is None or isinstance(ffid, str)
                 else [list(map(int, p)) for p in ffid]}),
        }
        from seis_hpc.io.shotpoint import line_shotpoints

        # from every shot of the input, whatever part is migrated: the same for every part
        job.shotpoint = line_shotpoints(idx, g)
        if sel is not None:
            from seis_hpc.engine.job import to_runs

            job.part_runs = to_runs(sel)
            job.image_attrs["normalise_requested"] = normalise
        job.scratch = None if scratch is None else os.fspath(scratch)
        held.update(idx=idx, vel=vel)
        if segy is not None:
            # input traces per image bin (the SEG-Y fold); the image may be a part of the grid
            # (a part's image: the fold of its own traces); streamed from the index
            f = sv.fold(sel).reshape(sv.grid.n_inline, sv.grid.n_crossline)
            i0, j0 = g.inline0 - sv.grid.inline0, g.crossline0 - sv.grid.crossline0
            held["fold"] = f[i0:i0 + g.n_inline, j0:j0 + g.n_crossline]
            held["line"] = str(idx.attrs.get("segy_path", survey))
        return job

    job = on_root(comm, setup)
    if rank == 0:
        idx, vel = held["idx"], held["vel"]
    else:
        from seis_hpc.engine import faults
        from seis_hpc.engine.comm import abort_on_error

        # An error here (a file this node cannot read) must stop every rank: rank 0 is
        # already waiting for work requests and would wait for this rank forever.
        with abort_on_error(comm):
            faults.before_rank_setup(rank)
            if isinstance(survey, Survey):
                idx = survey.index
            elif job.index_path:
                from seis_hpc.io.index import TraceIndex

                # Columns are read lazily: a rank reads the rows of the units it takes, when
                # it takes them (TraceIndex.take), so its memory does not follow the survey.
                idx = TraceIndex.open(job.index_path)
            else:
                idx = Survey.open(survey, index, save=False, grid=bin_grid).index
            vel = _velocity_model(velocity, job.plan.grid, job.time, validate=False)
    keep = job.keep_checkpoint
    if segy is not None:
        job.keep_checkpoint = True  # until the SEG-Y is written: a rerun then only rewrites
    status = execute(job, idx, vel, comm)
    if status == 0 and segy is not None:
        def write_segy_then_drop_checkpoint():
            _write_image_segy(out, segy, segy_revision, held["fold"], held["line"])
            if not keep:
                from seis_hpc.engine.checkpoint import Checkpoint

                Checkpoint(job.checkpoint_dir, job.phash).remove()

        on_root(comm, write_segy_then_drop_checkpoint)
    from seis_hpc.engine.pstm_run import reads_per_trace

    return Migration(status=int(status), out=os.fspath(out), strategy=job.plan.strategy,
                     units=len(job.plan.units), ranks=size, traces_in=int(idx.n_traces),
                     traces_selected=int(job.image_attrs.get("traces_selected",
                                                             idx.n_traces)),
                     reads_per_trace=round(reads_per_trace(job), 4))
