"""One amplitude scale for the PSTM image: division by the operator's flat-reflector response.

The Kirchhoff sum of :func:`seis_hpc.migration.pstm.pstm` is a plain sum over traces. For a
flat reflector of amplitude A (constant along the line) the sum is, by stationary phase around
the output point,

    I(x, t0) = A R(x, t0) * (F w)(t - t0),
    R ~ (traces per m^2 of midpoint area) 2 pi / |det H|^(1/2)   (2D: per m, (2 pi / t'')^(1/2))

with H the Hessian (2D: the curvature t'') of the DSR traveltime in the midpoint coordinates
at the stationary point (zero offset: t'' = 4 / (v^2 t0), so R grows like fold v sqrt(t0) /
dx in 2D and fold v^2 t0 / (dx dy) in 3D), w the wavelet and F the half-integration (2D) or
integration (3D) ``(-i omega)^-((dims-1)/2)`` that the rho filter undoes (migstack filters
the traces; pstm does not, so that diffractors modelled by the adjoint focus on their sample).
The NMO stack, a mean over the live fold, has amplitude A. The deliverable image is therefore
divided by R, measured for the job's own data band:

    R(x, t0) = RMS of the image of unit flat reflectors / RMS of their wavelet,

the response of the *same* kernel (weights, aperture and angle tapers, anti-aliasing, stretch
mute, backend), on the survey's own traces (fold, offsets, gaps, line ends, aperture
truncation) with the velocity at the output point, to a Ricker wavelet of the data's band
(:func:`peak_frequency`: the spectral centroid of up to :data:`SPECTRUM_TRACES` traces spread
over the survey). R is measured rather than written out, so that it follows the kernel as it is
(angle limits, weights) and the real acquisition: at a coarse set of output points (about every
:data:`STEP_M` m, at most :data:`MAX_AXIS_2D` along a 2D line or :data:`MAX_AXIS_3D` x
:data:`MAX_AXIS_3D` in 3D) the traces within the aperture are replaced by flat reflectors every
:data:`SPACING_S` s of two-way time, each of unit amplitude at the NMO time
``sqrt(t0^2 + h^2 / vrms(x, t0)^2)`` (h the trace's offset), filtered as the data are (rho
filter or not), and migrated into that one point. R at each reflector time is the RMS of the
image over +-:data:`HALF_WINDOW_S` s (longer for low frequencies, :func:`windows`) over
that of the input wavelet; between the reflectors R
is linear in t0 (constant beyond the first and the last), between the coarse points bilinear.
Offset-class gathers are divided by the response of their own class. Where R is small against
the largest R at that time (line ends, angle-muted classes) the division is damped:
``I R / (R^2 + (EPS R_max(t0))^2)`` with :data:`EPS`.

The scaling is a diagonal operator applied when the image is written: the kernel, the
checkpoints (raw sums) and the adjoint pair stay the raw operator. R is the same for any
number of ranks (each coarse point is computed by one rank, the same way, and the points are
gathered in order), for shard and tile plans and for a resumed job (recomputed; it costs about
``n_coarse / n_bins`` of the migration). A rank reads the coordinates of the traces within the
aperture of its own points only (:func:`traces_near`: the blocks near each point of a
spatially blocked index, or the index streamed in chunks), never every trace's.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mpi4py import MPI

NORMALISE = ("reflector", "none")
SPECTRUM_TRACES = 256
SPACING_S = 0.15
HALF_WINDOW_S = 0.05
STEP_M = 100.0
MAX_AXIS_2D = 64
MAX_AXIS_3D = 24
EPS = 0.05


class RhoFiltered:
    """A trace source whose traces come out rho-filtered (zero-phase reflector images).

    Parameters
    ----------
    source : TraceSource
        The traces (headers by name, ``read_traces(ids)``, ``ns``, ``dt`` in s, ``t_start``).
    dims : {2, 3}
        Dimensionality of the migration.
    """

    def __init__(self, source, dims: int):
        self.src, self.dims = source, dims
        self.ns, self.dt, self.t_start = source.ns, source.dt, source.t_start

    def __getitem__(self, name: str) -> np.ndarray:
        return self.src[name]

    def take(self, names, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Columns of the traces ``ids`` only (the engine's reads: never a whole column)."""
        from seis_hpc.engine.stream_plan import take_columns

        return take_columns(self.src, names, ids)

    def read_traces(self, ids: np.ndarray) -> np.ndarray:
        from seis_hpc.migration.pstm import rho_filter

        return rho_filter(self.src.read_traces(ids), self.dt, dims=self.dims)


def ricker(t: np.ndarray, peak_hz: float) -> np.ndarray:
    """Zero-phase Ricker wavelet of peak frequency ``peak_hz`` (Hz) at times ``t`` (s); peak 1."""
    a = (math.pi * peak_hz * np.asarray(t, dtype=np.float64)) ** 2
    return (1.0 - 2.0 * a) * np.exp(-a)


class FlatReflectors:
    """The survey's traces replaced by unit flat reflectors at two-way times ``t0`` (s), each
    at the NMO time ``sqrt(t0^2 + h^2 / v^2)`` with ``v`` the Vrms (m/s) at ``t0``: a trace
    source (headers from ``source``) for the calibration of :func:`reflector_response`.
    The offsets ``h`` (m) are those of the source and receiver coordinates of the traces
    read, taken from ``source`` for those traces only."""

    def __init__(self, source, t0: np.ndarray, v: np.ndarray, peak_hz: float, near=None):
        self.src, self.t0, self.v = source, t0, v
        self.near = near  # (trace numbers, increasing; their columns) read with them
        self.peak_hz = float(peak_hz)
        self.ns, self.dt, self.t_start = int(source.ns), float(source.dt), float(source.t_start)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.src[name]

    def take(self, names, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Columns of the traces ``ids`` only: from those read with the point's traces
        (:func:`traces_near`), else from the source."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.near is not None and self.near[1] is not None and set(names) <= set(
                self.near[1]):
            have, cols = self.near
            pos = np.minimum(np.searchsorted(have, ids), max(have.size - 1, 0))
            if have.size and np.array_equal(have[pos], ids):
                return {k: cols[k][pos] for k in names}
        from seis_hpc.engine.stream_plan import take_columns

        return take_columns(self.src, names, ids)

    def read_traces(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        g = self.take(("sx", "sy", "rx", "ry"), ids)
        h = np.hypot(g["rx"] - g["sx"], g["ry"] - g["sy"])
        out = np.zeros((len(ids), self.ns), np.float32)
        # the Ricker is below 1e-4 of its peak beyond pi f |t| = 3.5
        half = int(math.ceil(3.5 / (math.pi * self.peak_hz) / self.dt)) + 1
        lag = np.arange(-half, half + 1)
        rows = np.broadcast_to(np.arange(len(ids))[:, None], (len(ids), lag.size))
        for t0, v in zip(self.t0, self.v, strict=True):
            t = np.sqrt(t0 * t0 + (h / v) ** 2)
            idx = np.floor((t - self.t_start) / self.dt).astype(np.int64)[:, None] + lag
            ok = (idx >= 0) & (idx < self.ns)
            val = ricker(self.t_start + idx * self.dt - t[:, None], self.peak_hz)
            # (row, sample) pairs are unique within one reflector, so += is a plain sum
            out[rows[ok], idx[ok]] += val[ok].astype(np.float32)
        return out


def peak_frequency(source) -> float:
    """Peak frequency (Hz) of the Ricker wavelet with the data's spectral centroid.

    The centroid of the mean amplitude spectrum of up to :data:`SPECTRUM_TRACES` traces
    evenly spread over ``source`` (the same traces on every rank), between 2 Hz and Nyquist,
    times sqrt(pi) / 2 (a Ricker's amplitude spectrum f^2 exp(-f^2 / fp^2) has its centroid at
    2 fp / sqrt(pi)); kept within 5 Hz .. a quarter of the sampling frequency. A centroid,
    not the peak of the spectrum: it does not jump for flat or ragged spectra.
    """
    n = _n_traces(source)
    ids = np.unique(np.linspace(0, n - 1, min(n, SPECTRUM_TRACES)).round().astype(np.int64))
    d = np.asarray(source.read_traces(_rows_of_file_traces(source, ids)), dtype=np.float64)
    dt = float(source.dt)
    amp = np.abs(np.fft.rfft(d, 2 * d.shape[1], axis=1)).mean(axis=0)
    f = np.fft.rfftfreq(2 * d.shape[1], dt)
    band = f >= 2.0
    top = 0.25 / dt
    if not np.any(amp[band] > 0):
        return min(25.0, top)  # no signal: a wavelet the sampling carries
    centroid = float(np.sum(f[band] * amp[band]) / np.sum(amp[band]))
    return float(np.clip(centroid * math.sqrt(math.pi) / 2.0, min(5.0, top), top))


def _rows_of_file_traces(source, ids: np.ndarray) -> np.ndarray:
    """The rows of ``source`` holding the data file's traces ``ids`` (increasing), in that
    order: ``ids`` themselves, unless the index under ``source`` is spatially blocked, whose
    rows are not in file order (its ``trace`` column says which trace a row is), so that the
    spectrum is taken from the same traces whichever index of the file is given. Streamed:
    one chunk of the ``trace`` column at a time."""
    from seis_hpc.engine.stream_plan import column_chunks
    from seis_hpc.io.blocked import is_blocked

    base = source
    while not hasattr(base, "attrs") and hasattr(base, "src"):  # through the wrappers
        base = base.src
    if not is_blocked(getattr(base, "attrs", {})):
        return ids
    rows = np.full(ids.size, -1, np.int64)
    for a, cols in column_chunks(base, ("trace",)):
        t = np.asarray(cols["trace"], np.int64)
        hit = np.flatnonzero(np.isin(t, ids))
        rows[np.searchsorted(ids, t[hit])] = a + hit
    if np.any(rows < 0):
        from seis_hpc.errors import SeisError

        raise SeisError("the spatially blocked index lacks some of the file's traces (its "
                        "trace column)", getattr(base, "path", None))
    return rows


def _n_traces(source) -> int:
    """Traces of a source (an index says so without loading a column)."""
    n = getattr(source, "n_traces", None)
    return int(n) if n is not None else len(source["sx"])


# coarse points whose nearby traces one streamed pass over an index collects at a time
# (memory: their traces' numbers; an index blocked in space reads each point's own blocks)
NEAR_BATCH = 8


def traces_near(source, xy: list[tuple[float, float]], aperture: float, extra=()):
    """The traces whose midpoint ``0.5 (s + r)`` is within ``aperture`` m of each point of
    ``xy`` (m), as increasing trace numbers with their columns, point by point (a generator).

    The coordinates are never held for every trace: a spatially blocked index
    (:mod:`seis_hpc.io.blocked`) reads the blocks near each point; another source is
    streamed (:func:`~seis_hpc.engine.stream_plan.column_chunks`) once for every
    :data:`NEAR_BATCH` points. The traces are those the whole columns would give, bit for
    bit (the same float64 arithmetic, trace by trace).

    Parameters
    ----------
    source : TraceSource
        The survey's traces (headers by name).
    xy : list of (float, float)
        The points (m).
    aperture : float
        Radius (m), ``inf`` for every trace.
    extra : sequence of str
        Columns to keep beside ``sx``, ``sy``, ``rx``, ``ry`` (e.g. ``"offset"``).

    Yields
    ------
    (numpy.ndarray, dict or None)
        int64 trace numbers of each point, in the order of ``xy``, and their columns (float64
        coordinates in m; None for an infinite aperture, whose traces are every trace).
    """
    from seis_hpc.engine import stream_plan
    from seis_hpc.engine.stream_plan import column_chunks

    n = _n_traces(source)
    if not np.isfinite(aperture):
        for _ in xy:
            yield np.arange(n), None
        return
    reach = aperture * (1 + 1e-9) + 1e-6
    coords = ("sx", "sy", "rx", "ry")
    names = coords + tuple(k for k in extra if k not in coords)

    def joined(ids: list, cols: list) -> tuple[np.ndarray, dict]:
        if not ids:
            return np.zeros(0, np.int64), {k: np.zeros(0) for k in names}
        return np.concatenate(ids), {k: np.concatenate([c[k] for c in cols]) for k in names}

    table = _block_table(source)
    if table is not None:
        import h5py

        with h5py.File(source.path, "r") as f:
            for x, y in xy:
                # the blocks' boxes are those of the index's midpoints: 1 m covers their
                # rounding against 0.5 (s + r)
                ids, cols = [], []
                for a0, b0 in table.ranges(table.near(float(x), float(y), reach + 1.0)):
                    for a in range(a0, b0, stream_plan.PLAN_CHUNK):  # one chunk at a time
                        b = min(b0, a + stream_plan.PLAN_CHUNK)
                        c = {k: np.asarray(f[k][a:b], np.float64) for k in names}
                        d = np.hypot(0.5 * (c["sx"] + c["rx"]) - x,
                                     0.5 * (c["sy"] + c["ry"]) - y)
                        hit = np.flatnonzero(d <= reach)
                        ids.append(a + hit)
                        cols.append({k: v[hit] for k, v in c.items()})
                out = joined(ids, cols)
                ids = cols = c = None  # one copy of a point's traces while it is used
                yield out
                out = None
        return
    for k0 in range(0, len(xy), NEAR_BATCH):
        batch = xy[k0:k0 + NEAR_BATCH]
        found: list[tuple[list, list]] = [([], []) for _ in batch]
        for a, c in column_chunks(source, names):
            c = {k: np.asarray(v, np.float64) for k, v in c.items()}
            if not c["sx"].size:
                continue
            mx, my = 0.5 * (c["sx"] + c["rx"]), 0.5 * (c["sy"] + c["ry"])
            lo_x, hi_x, lo_y, hi_y = mx.min(), mx.max(), my.min(), my.max()
            for k, (x, y) in enumerate(batch):
                if max(lo_x - x, x - hi_x, 0.0) ** 2 + max(lo_y - y, y - hi_y, 0.0) ** 2 \
                        > (reach + 1e-6) ** 2:
                    continue  # the chunk's box is out of reach (1 um: rounding of the box)
                d = np.hypot(mx - x, my - y)
                hit = np.flatnonzero(d <= reach)
                if hit.size:
                    found[k][0].append(a + hit)
                    found[k][1].append({n: v[hit] for n, v in c.items()})
        for k in range(len(found)):
            out = joined(*found[k])
            found[k] = None
            yield out
            out = None


def _block_table(source):
    """The block table of a spatially blocked index file whose coordinates are not in
    memory; None otherwise."""
    from seis_hpc.io.blocked import BlockTable, is_blocked
    from seis_hpc.io.columns import columns_on_file

    if not (columns_on_file(source, ("sx", "sy", "rx", "ry"))
            and is_blocked(getattr(source, "attrs", {}))):
        return None
    return BlockTable.read(source.path)


def coarse_axis(n: int, bin_m: float, cap: int) -> np.ndarray:
    """Coarse indices 0..n-1 (both ends included) about every :data:`STEP_M` m, at most ``cap``."""
    if n <= 1:
        return np.zeros(1, np.int64)
    m = int(min(n, cap, max(2, math.ceil((n - 1) * bin_m / STEP_M) + 1)))
    return np.unique(np.round(np.linspace(0, n - 1, m)).astype(np.int64))


def windows(peak_hz: float) -> tuple[float, float]:
    """Half-window and spacing (s) of the calibration reflectors for a ``peak_hz`` Ricker:
    :data:`HALF_WINDOW_S` and :data:`SPACING_S`, longer for low frequencies (the wavelet is
    below 2 % of its peak beyond 1.2 / peak_hz)."""
    half = max(HALF_WINDOW_S, 1.2 / peak_hz)
    return half, max(SPACING_S, 3.0 * half)


def reflector_times(time: np.ndarray, half: float = HALF_WINDOW_S,
                    spacing: float = SPACING_S) -> np.ndarray:
    """Two-way times (s) of the calibration reflectors on the output axis ``time``."""
    lo, hi = float(time[0]) + half, float(time[-1]) - half
    lo = max(lo, 2 * half)  # t0 = 0 is not imaged
    if hi < lo:
        return np.array([0.5 * (float(time[0]) + float(time[-1]))])
    n = int(math.floor((hi - lo) / spacing + 1e-9)) + 1
    return lo + spacing * np.arange(n)


def _interp_matrix(idx: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Linear interpolation weights (len(idx), len(knots)) from ``knots`` to ``idx``; constant
    beyond the ends."""
    idx = np.asarray(idx, dtype=np.float64)
    m = np.zeros((idx.size, knots.size))
    if knots.size == 1:
        m[:, 0] = 1.0
        return m
    k = np.clip(np.searchsorted(knots, idx, side="right") - 1, 0, knots.size - 2)
    w = np.clip((idx - knots[k]) / (knots[k + 1] - knots[k]), 0.0, 1.0)
    r = np.arange(idx.size)
    m[r, k] = 1.0 - w
    m[r, k + 1] += w
    return m


class Response:
    """The flat-reflector response R of a job on its coarse points, and the division by it.

    Attributes
    ----------
    rows, cols : numpy.ndarray
        Grid rows (inline index) and columns of the coarse points.
    image : numpy.ndarray
        R of the stacked image, (len(rows), len(cols), nt) (image amplitude per unit input
        amplitude).
    gathers : numpy.ndarray or None
        R of each offset class, (n_classes, len(rows), len(cols), nt).
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, image: np.ndarray,
                 gathers: np.ndarray | None, info: dict):
        self.rows, self.cols, self.image, self.gathers, self.info = rows, cols, image, gathers, info
        # the damping scale per time sample: the largest R of that data set at that time
        self.ref = {"image": image.max(axis=(0, 1))}
        if gathers is not None:
            self.ref["gathers"] = gathers.max(axis=(0, 1, 2))

    def response(self, name: str, rows: np.ndarray, cols: np.ndarray,
                 lead: tuple = ()) -> np.ndarray:
        """R (bilinear between the coarse points) at grid ``rows`` x ``cols``, (r, c, nt)."""
        coarse = self.image if name == "image" else self.gathers[lead[0]]
        mi = _interp_matrix(rows, self.rows)
        mj = _interp_matrix(cols, self.cols)
        return np.einsum("ia,jb,abt->ijt", mi, mj, coarse)

    def apply(self, name: str, block: np.ndarray, rows: np.ndarray, cols: np.ndarray,
              lead: tuple = ()) -> np.ndarray:
        """``block`` (r, c, nt) of data set ``name`` divided by R, damped where R is small."""
        r = self.response(name, rows, cols, lead)
        damp = (EPS * self.ref[name]) ** 2
        den = r * r + damp
        scale = np.divide(r, den, out=np.zeros_like(r), where=den > 0)
        return (block * scale).astype(np.float32)

    def attrs(self) -> str:
        """What was done, as JSON text for the image file."""
        return json.dumps(self.info)


class ScaledWriter:
    """A :class:`~seis_hpc.io.volume.VolumeWriter` that divides every block by the response
    before writing it (the same calls as the writer; 2D lines are CMPs)."""

    def __init__(self, writer, response: Response, grid):
        self.w, self.resp, self.grid = writer, response, grid

    def put(self, name: str, block: np.ndarray, rows: slice, cols: slice,
            lead: tuple = ()) -> None:
        ri = np.arange(rows.start or 0, rows.stop)
        cj = np.arange(cols.start or 0, cols.stop)
        self.w.put(name, self.resp.apply(name, block, ri, cj, lead), rows, cols, lead)

    def put_lines(self, name: str, lines: slice, block: np.ndarray, lead: tuple = ()) -> None:
        n = np.arange(lines.start or 0, lines.stop)
        if self.grid.is_2d:  # (cmp, nt): one grid row
            scaled = self.resp.apply(name, block[None], np.zeros(1, np.int64), n, lead)[0]
        else:
            scaled = self.resp.apply(name, block, n, np.arange(self.grid.n_crossline), lead)
        self.w.put_lines(name, lines, scaled, lead)


def describe(job) -> str:
    """The history line of an image's amplitude scale."""
    rho = "rho-filtered " if job.rho_filter else ""
    if job.normalise == "reflector":
        return (f"amplitude: PSTM of {rho}traces divided by the operator's flat-reflector "
                "response (normalise=reflector): a flat reflector has its NMO-stack amplitude")
    return f"amplitude: plain Kirchhoff sum over {rho}traces, not normalised (normalise=none)"


def reflector_response(job, source, velocity, make_compute, comm: MPI.Comm | None = None,
                       log=None) -> Response:
    """Measure R (see the module doc) on the coarse points of ``job``'s grid (collective).

    Parameters
    ----------
    job : PstmJob
        The job (grid, times, kernel arguments, offset classes, rho filter).
    source : TraceSource
        The survey's (unfiltered) traces: only the headers are read.
    velocity : VelocityModel
        Vrms (m/s) on the job's grid.
    make_compute : callable
        ``make_compute(trace_source)``: the job's kernel on those traces, an object with
        ``migrate(ids, window, image, gathers, r0, c0)`` as the engine's (the same kernel,
        kernel arguments, spreading law and anti-aliasing spacing as the job's units).
    comm : mpi4py.MPI.Comm, optional
        Coarse point ``p`` is computed on rank ``p % size``; every rank gets all of them.
    log : callable, optional
        Rank 0's log.

    Returns
    -------
    Response
    """
    import time as _time

    from seis_hpc.engine.comm import rank_size

    rank, size = rank_size(comm)
    t_begin = _time.perf_counter()
    grid = job.plan.grid
    time = np.asarray(job.time, dtype=np.float64)
    nt = time.size
    ncls = job.plan.n_classes
    cap = MAX_AXIS_2D if grid.is_2d else MAX_AXIS_3D
    rows = coarse_axis(grid.n_inline, grid.bin_crossline, cap)
    cols = coarse_axis(grid.n_crossline, grid.bin_inline, cap)
    if grid.is_2d:
        rows = np.zeros(1, np.int64)
    peak_hz = peak_frequency(source)
    half, spacing = windows(peak_hz)
    t0 = reflector_times(time, half, spacing)
    aperture = float(job.kernel_args.get("aperture", np.inf))
    pts = grid.points().reshape(grid.n_inline, grid.n_crossline, 2)
    # The input wavelet's RMS in each window, on the output samples.
    win = [np.abs(time - t) <= half + 1e-9 for t in t0]
    ref_rms = np.array([math.sqrt(float(np.mean(ricker(time[w] - t, peak_hz) ** 2)))
                        if w.any() else 0.0 for w, t in zip(win, t0, strict=True)])
    dims = 2 if grid.is_2d else 3
    points = [(i, j) for i in rows for j in cols]
    mine = {}
    # this rank's points and, one at a time, the traces within the aperture of each: read
    # from the index for these points only, never every trace's coordinates (issue 19)
    own = list(range(rank, len(points), size))
    extra = ("offset",) if getattr(job, "offset_edges", None) is not None else ()
    near = traces_near(source, [tuple(pts[points[p][0], points[p][1]]) for p in own],
                       aperture, extra)
    for p, (ids, near_cols) in zip(own, near, strict=True):
        i, j = (int(v) for v in points[p])
        v = np.asarray(velocity.window(i, i + 1, j, j + 1), dtype=np.float64)[0]
        synth = FlatReflectors(source, t0, np.interp(t0, time, v), peak_hz, (ids, near_cols))
        src = RhoFiltered(synth, dims) if job.rho_filter else synth
        compute = make_compute(src)
        img = np.zeros((1, 1, nt), np.float32)
        gat = np.zeros((ncls, 1, 1, nt), np.float32) if ncls else None
        compute.migrate(ids, (i, i + 1, j, j + 1), img, gat, i, j)
        tr = [img[0, 0]] + ([gat[k, 0, 0] for k in range(ncls)] if ncls else [])
        resp = []
        for trace in tr:
            rk = np.array([math.sqrt(float(np.mean(trace[w].astype(np.float64) ** 2))) / r
                           if r > 0 else 0.0 for w, r in zip(win, ref_rms, strict=True)])
            resp.append(np.interp(time, t0, rk))
        mine[p] = np.asarray(resp)
        # this point's traces go before the next point's are read
        ids = near_cols = synth = src = compute = None
    if comm is not None and size > 1:
        allp = {}
        for part in comm.allgather(mine):
            allp.update(part)
    else:
        allp = mine
    full = np.stack([allp[p] for p in range(len(points))])  # (npts, 1 + ncls, nt)
    full = full.reshape(rows.size, cols.size, 1 + ncls, nt)
    image = np.ascontiguousarray(full[:, :, 0])
    gathers = np.ascontiguousarray(np.moveaxis(full[:, :, 1:], 2, 0)) if ncls else None
    info = {"normalise": "reflector", "method": "flat-reflector response of the kernel",
            "coarse_rows": rows.tolist(), "coarse_cols": cols.tolist(),
            "reflector_t0_s": [round(float(t), 6) for t in t0], "ricker_hz": round(peak_hz, 3),
            "half_window_s": round(half, 6), "eps": EPS, "rho_filter": bool(job.rho_filter)}
    if rank == 0 and log is not None:
        log(f"{job.log_prefix}: amplitude calibration: flat-reflector response at "
            f"{len(points)} points x {t0.size} times in {_time.perf_counter() - t_begin:.2f} s "
            f"({size} ranks)")
    return Response(rows, cols, image, gathers, info)
