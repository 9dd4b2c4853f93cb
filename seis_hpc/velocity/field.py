"""Velocity picks to a smooth RMS-velocity field on the image grid, and back to tables.

* In time, each location's picks become a function on the output time axis by linear
  interpolation of ``V^2 t`` (so the interval velocity is constant between picks, the Dix
  model), holding Vrms constant above the first pick and below the last.
* Laterally, the functions are interpolated linearly between locations: along the line in
  2D; on the Delaunay triangles of the locations in 3D (nearest location outside them).
* The field is then smoothed by a running mean applied twice (a triangle) of length
  ``smooth_m`` (m) along each lateral axis and ``smooth_s`` (s) in time.

The result is written as the ``vrms`` volume of the seis_hpc HDF5 format
(:mod:`seis_hpc.io.volume`), which ``seis-hpc pstm``/``stack`` read, or exported as a Seismic
Unix par file.
"""

from __future__ import annotations

import os

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.velocity.picks import vrms_function


def _lateral(pos: np.ndarray, f: np.ndarray):
    """The interpolant of functions ``f`` (nloc, nt) given at points ``pos`` (nloc, 2) m:
    a callable taking query points ``q`` (nq, 2) m to (nq, nt), each point on its own (so
    the bins of a block get what they get in the whole grid).

    Collinear points (a 2D line, one row of 3D locations): linear along the line, constant
    beyond its ends. Otherwise linear on the Delaunay triangles, nearest point outside them.
    """
    if len(pos) == 1:
        return lambda q: np.repeat(f, q.shape[0], axis=0)
    c = pos.mean(axis=0)
    _, sv, vt = np.linalg.svd(pos - c, full_matrices=False)
    if sv.size < 2 or sv[1] <= 1e-6 * max(sv[0], 1e-12):
        s = (pos - c) @ vt[0]
        order = np.argsort(s, kind="stable")
        s, fs = s[order], f[order]

        def along(q):
            sq = (q - c) @ vt[0]
            k = np.clip(np.searchsorted(s, sq, side="right") - 1, 0, len(s) - 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                w = np.clip((sq - s[k]) / (s[k + 1] - s[k]), 0.0, 1.0)
            w = np.nan_to_num(w)[:, None]
            return (1 - w) * fs[k] + w * fs[k + 1]

        return along
    from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

    lin, near = LinearNDInterpolator(pos, f), NearestNDInterpolator(pos, f)

    def triangles(q):
        a = lin(q)
        return np.where(np.isnan(a), near(q), a)

    return triangles


def _smooth(a: np.ndarray, axis: int, n: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    if n <= 1 or a.shape[axis] < 2:
        return a
    for _ in range(2):
        a = uniform_filter1d(a, n, axis=axis, mode="nearest")
    return a


def _odd(length: float, step: float) -> int:
    n = int(round(length / step)) if step > 0 else 1
    return max(1, n + (n + 1) % 2)


def bound_dix(vrms, time, vint_min: float = 1400.0, vint_max: float = 6000.0
              ) -> np.ndarray:
    """Make a Vrms field physical: every Dix interval velocity within the bounds.

    Walking down each trace, the increment of ``V^2 t`` between consecutive samples (the
    interval velocity squared times the sample interval) is clamped to
    ``[vint_min^2, vint_max^2] * dt``; samples already physical are unchanged. Because every
    sample step is bounded, so is every longer interval (e.g. the 20 ms Dix steps of QC).

    Parameters
    ----------
    vrms : numpy.ndarray, shape (..., nt)
        RMS velocity (m/s).
    time : array_like, shape (nt,)
        Two-way times (s), increasing.
    vint_min, vint_max : float
        Interval-velocity bounds (m/s).

    Returns
    -------
    numpy.ndarray
        The bounded field, same shape, float64.
    """
    t = np.asarray(time, dtype=np.float64)
    v = np.array(vrms, dtype=np.float64)
    if t.size < 2:
        return v
    # A hair inside the bounds so resampling and float32 storage keep them.
    lo, hi = (1.002 * vint_min) ** 2, (0.998 * vint_max) ** 2
    start = int(np.searchsorted(t, 0.0, side="right"))  # V^2 t is 0 at t = 0
    flat = v.reshape(-1, t.size)
    w = flat[:, start] ** 2 * t[start] if start < t.size else None
    for k in range(start + 1, t.size):
        dtk = t[k] - t[k - 1]
        w = w + np.clip(flat[:, k] ** 2 * t[k] - w, lo * dtk, hi * dtk)
        flat[:, k] = np.sqrt(w / t[k])
    return flat.reshape(v.shape)


def field_from_picks(picks, grid, time, *, smooth_m: float = 0.0, smooth_s: float = 0.0,
                     interp: str = "v2t", vint_bounds: tuple[float, float] | None = None
                     ) -> np.ndarray:
    """Interpolate picks to a smooth Vrms field on ``grid`` x ``time``.

    Parameters
    ----------
    picks : seis_hpc.velocity.picks.Picks
        Picks at analysis locations (bins of ``grid``).
    grid : BinGrid
        Image grid.
    time : array_like, shape (nt,)
        Output two-way times (s), regular.
    smooth_m : float
        Lateral smoothing length (m): running mean of this length, applied twice.
    smooth_s : float
        Smoothing length in time (s), likewise.
    interp : {"v2t", "linear"}
        Interpolation in time (see :func:`vrms_function`).
    vint_bounds : (float, float), optional
        Interval-velocity bounds (m/s) applied after smoothing (:func:`bound_dix`), so the
        field is physical everywhere.

    Returns
    -------
    numpy.ndarray, float32, shape ``grid.shape + (nt,)``
        Vrms (m/s).
    """
    prep = _FieldPrep(picks, grid, time, smooth_m, smooth_s, interp, vint_bounds)
    n = grid.n_crossline if grid.is_2d else grid.n_inline
    return prep.rows(0, n).reshape(grid.shape + (prep.t.size,))


BLOCK_BYTES = 256 << 20  # a block of the field and its smoothing copies (48 B a sample)


class _FieldPrep:
    """What every block of a field shares: the picks' functions in time and, per pattern of
    valid locations, the lateral interpolant; :meth:`rows` makes the field of a range of
    rows along the block axis (2D: CMPs; 3D: inlines, each whole)."""

    def __init__(self, picks, grid, time, smooth_m, smooth_s, interp, vint_bounds):
        if smooth_m < 0 or smooth_s < 0:
            raise SeisError(f"smoothing lengths must be >= 0 (got {smooth_m:g} m, "
                            f"{smooth_s:g} s)")
        t = np.asarray(time, dtype=np.float64)
        locs = picks.locations
        if not locs:
            raise SeisError("no velocity picks to interpolate")
        if interp not in ("v2t", "linear"):
            raise SeisError(f"interp must be 'v2t' or 'linear' (got {interp!r})")
        funcs = np.array([vrms_function(p.time, p.vrms, t, interp) for p in locs])
        # A location speaks for the times between its first and last pick; at each time the
        # lateral interpolation uses the locations that picked around it (all where none
        # did).
        valid = np.array([(t >= p.time[0]) & (t <= p.time[-1]) for p in locs])
        # Above every first pick, the locations picked shallowest speak (their first value
        # held): a low-fold edge whose first pick is deep says nothing about the shallow
        # section.
        first = np.array([p.time[0] for p in locs])
        none = ~valid.any(axis=0)
        valid[:, none] = (first <= first.min() + 0.05)[:, None]
        valid[:, ~valid.any(axis=0)] = True
        il = np.array([p.inline for p in locs], dtype=np.float64)
        xl = np.array([p.crossline for p in locs], dtype=np.float64)
        # Positions in metres, so rectangular bins do not skew the interpolation.
        pos = np.column_stack([il * grid.bin_crossline, xl * grid.bin_inline])
        patterns, which = np.unique(valid.T, axis=0, return_inverse=True)
        self.parts = []  # (time columns, interpolant)
        for n, pat in enumerate(patterns):
            cols = np.flatnonzero(which.ravel() == n)
            self.parts.append((cols, _lateral(pos[pat], funcs[pat][:, cols])))
        self.grid, self.t, self.vint_bounds = grid, t, vint_bounds
        dt = float(t[1] - t[0]) if t.size > 1 else 1.0
        if grid.is_2d:
            self.n_block = _odd(smooth_m, grid.bin_inline)  # along the block axis
            self.n_other = 1
        else:
            self.n_block = _odd(smooth_m, grid.bin_crossline)
            self.n_other = _odd(smooth_m, grid.bin_inline)
        self.n_time = _odd(smooth_s, dt)
        # A running mean of n applied twice reaches 2 (n // 2) rows on each side.
        self.halo = 2 * (self.n_block // 2)

    def rows(self, r0: int, r1: int, halo: int = 0) -> np.ndarray:
        """The field of rows ``r0:r1`` (float32; 2D ``(r1 - r0, nt)``, 3D ``(r1 - r0, nj,
        nt)``), smoothed with ``halo`` rows on each side (clipped at the grid's edges)."""
        g, t = self.grid, self.t
        n = g.n_crossline if g.is_2d else g.n_inline
        h0, h1 = max(0, r0 - halo), min(n, r1 + halo)
        if g.is_2d:
            inl, xl = g.inlines(), g.crosslines()[h0:h1]
        else:
            inl, xl = g.inlines()[h0:h1], g.crosslines()
        gi, gx = np.meshgrid(inl * g.bin_crossline, xl * g.bin_inline, indexing="ij")
        q = np.column_stack([gi.ravel(), gx.ravel()])
        out = np.empty((q.shape[0], t.size))
        for cols, fn in self.parts:
            out[:, cols] = fn(q)
        if g.is_2d:
            out = _smooth(out, 0, self.n_block)
            out = _smooth(out, 1, self.n_time)
        else:
            out = out.reshape(h1 - h0, g.n_crossline, t.size)
            out = _smooth(out, 0, self.n_block)
            out = _smooth(out, 1, self.n_other)
            out = _smooth(out, 2, self.n_time)
        out = out[r0 - h0:r1 - h0]
        if self.vint_bounds is not None:
            out = bound_dix(out, t, *self.vint_bounds)
        return np.ascontiguousarray(out, dtype=np.float32)


def _block_rows(grid, nt: int, halo: int, block_bytes: int) -> int:
    """Rows (2D: CMPs; 3D: inlines) of a block of the field, less its halo."""
    line = nt * (1 if grid.is_2d else grid.n_crossline)  # samples per row
    return max(1, int(block_bytes) // (48 * line) - 2 * halo)


def field_block_bins(grid, nt: int, smooth_m: float = 0.0, block_bytes: int = BLOCK_BYTES
                     ) -> int:
    """Bins of the largest block of :func:`field_blocks` with its halo (its memory is 48
    bytes per bin and sample)."""
    n_block = _odd(smooth_m, grid.bin_inline if grid.is_2d else grid.bin_crossline)
    halo = 2 * (n_block // 2)
    n = grid.n_crossline if grid.is_2d else grid.n_inline
    rows = min(n, _block_rows(grid, nt, halo, block_bytes) + 2 * halo)
    return rows * (1 if grid.is_2d else grid.n_crossline)


def field_blocks(picks, grid, time, *, smooth_m: float = 0.0, smooth_s: float = 0.0,
                 interp: str = "v2t", vint_bounds: tuple[float, float] | None = None,
                 block_bytes: int = BLOCK_BYTES):
    """The field of :func:`field_from_picks`, one block of rows at a time.

    A block is a range of CMPs (2D) or of whole inlines (3D), made with the rows within
    reach of the lateral smoothing on each side, so memory holds one block, not the field.
    The values equal the whole field's to float32 rounding (the smoothing's running sums
    start at the block's edge, which moves float64 rounding at 1e-12 relative).

    Parameters are those of :func:`field_from_picks`, with
    block_bytes : int
        Memory of one block with its halo and smoothing copies (48 bytes per sample).

    Yields
    ------
    (i0, i1, j0, j1), numpy.ndarray
        The block's grid rows and columns and its Vrms (m/s), float32, shape
        ``(i1 - i0, j1 - j0, nt)``.
    """
    prep = _FieldPrep(picks, grid, time, smooth_m, smooth_s, interp, vint_bounds)
    per = _block_rows(grid, prep.t.size, prep.halo, block_bytes)
    n = grid.n_crossline if grid.is_2d else grid.n_inline
    for r0 in range(0, n, per):
        r1 = min(n, r0 + per)
        blk = prep.rows(r0, r1, prep.halo)
        if grid.is_2d:
            yield (0, 1, r0, r1), blk[None]
        else:
            yield (r0, r1, 0, grid.n_crossline), blk


def write_vrms(path: str | os.PathLike, vrms: np.ndarray, grid, time, *, config: str = "",
               history=(), attrs: dict | None = None) -> None:
    """Write a Vrms field as the ``vrms`` volume of the seis_hpc HDF5 format (atomically).

    Parameters
    ----------
    path : path-like
        Output file (``seis-hpc pstm --velocity`` and ``seis-hpc stack --velocity`` read it).
    vrms : numpy.ndarray, shape ``grid.shape + (nt,)``
        RMS velocity (m/s), finite and > 0.
    grid : BinGrid
        Its grid.
    time : array_like, shape (nt,)
        Two-way times (s).
    config, history, attrs
        Provenance written with the volume.
    """
    from seis_hpc.io.volume import Volume, write_volume

    v = np.asarray(vrms, dtype=np.float32)
    if not np.all(np.isfinite(v)) or (v.size and v.min() <= 0):
        raise SeisError("vrms field must be finite and > 0 m/s", path)
    write_volume(path, Volume(v, grid, np.asarray(time, dtype=np.float64), "vrms",
                              config=config, history=list(history), attrs=dict(attrs or {})))


def table_from_field(vrms: np.ndarray, grid, time, *, every: int = 10, dt_table: float = 0.1):
    """Sample a Vrms field into picks (every ``every`` bins, every ``dt_table`` s) for export.

    ``vrms`` is the field (``grid.shape + (nt,)``) or its HDF5 data set, of which only the
    sampled bins are read.

    Returns
    -------
    seis_hpc.velocity.picks.Picks
    """
    from seis_hpc.velocity.picks import PickLocation, Picks, cdp_number

    if int(every) != every or every < 1:
        raise SeisError(f"every must be a whole number >= 1 (got {every})")
    if not dt_table > 0:
        raise SeisError(f"dt_table must be > 0 s (got {dt_table})")
    t = np.asarray(time, dtype=np.float64)
    ei = 1 if grid.is_2d else int(every)
    if isinstance(vrms, np.ndarray):
        v = vrms.reshape(grid.n_inline, grid.n_crossline, t.size)[::ei, ::int(every)]
    else:  # an HDF5 data set: read only the bins sampled
        v = vrms[::int(every)][None] if grid.is_2d else vrms[::ei, ::int(every)]
    step = max(1, int(round(dt_table / (t[1] - t[0])))) if t.size > 1 else 1
    it = np.arange(0, t.size, step)
    if it[-1] != t.size - 1:
        it = np.append(it, t.size - 1)
    tt = np.maximum(t[it], 0.0)
    locs = []
    for i in range(0, grid.n_inline, ei):
        for j in range(0, grid.n_crossline, int(every)):
            il, xl = grid.inline0 + i, grid.crossline0 + j
            x, y = grid.grid_to_world(il, xl)
            locs.append(PickLocation(il, xl, cdp_number(grid, il, xl), float(x), float(y), tt,
                                     v[i // ei, j // int(every), it].astype(np.float64)))
    return Picks(locs, grid.is_2d)
