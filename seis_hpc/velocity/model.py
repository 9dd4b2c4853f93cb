"""RMS velocity for the image grid, from a seis_hpc ``vrms`` volume or a CSV function.

Two sources are understood:

* an HDF5 volume in the seis_hpc format with a ``vrms`` data set (m/s), on any bin grid: it is
  interpolated bilinearly to the image bins (clamped at its edges) and linearly in time;
* a CSV file with the columns ``time_s`` and ``vrms_mps`` (header line, any column order,
  ``#`` comments): one function of two-way time for the whole survey.

Outside the given times the first or last value holds. :func:`open_vrms` gives a lazy model
that returns the velocity of a block of bins, so a rank working on a tile reads only that
tile's velocities.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid
from seis_hpc.limits import VRMS_MAX, VRMS_MIN, check_vrms, read_text


def _time_weights(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left index and weight of linear interpolation from times ``src`` to ``dst`` (clamped)."""
    if len(src) == 1:
        return np.zeros(len(dst), np.int64), np.zeros(len(dst))
    k = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, len(src) - 2)
    w = np.clip((dst - src[k]) / (src[k + 1] - src[k]), 0.0, 1.0)
    return k, w


def read_vrms_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``time_s,vrms_mps`` CSV file.

    Returns
    -------
    time : numpy.ndarray
        Two-way times (s), strictly increasing.
    vrms : numpy.ndarray
        RMS velocities (m/s), all within :data:`~seis_hpc.limits.VRMS_MIN` ..
        :data:`~seis_hpc.limits.VRMS_MAX` (300..10,000 m/s).

    Raises
    ------
    SeisError
        Not UTF-8 text, missing columns, a value that is not a number, NaN, v <= 0, v outside
        the physical range or times not increasing, naming the file and the line.
    """
    path = Path(path)
    text = read_text(path, "velocity CSV (columns time_s,vrms_mps)")
    rows = [(n, r) for n, r in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
            if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    if not rows:
        raise SeisError("empty velocity file (expected columns time_s,vrms_mps)", path)
    line0, head = rows[0]
    names = [c.strip().lower() for c in head]
    missing = [c for c in ("time_s", "vrms_mps") if c not in names]
    if missing:
        raise SeisError(f"line {line0}: missing column(s) {', '.join(missing)} (header has "
                        f"{', '.join(names)}; expected time_s,vrms_mps)", path)
    it, iv = names.index("time_s"), names.index("vrms_mps")
    t, v = [], []
    for n, r in rows[1:]:
        try:
            tt, vv = float(r[it]), float(r[iv])
        except (ValueError, IndexError):
            raise SeisError(f"line {n}: time_s and vrms_mps must be numbers (got "
                            f"{','.join(r)!r})", path) from None
        if math.isnan(tt) or math.isnan(vv) or math.isinf(tt) or math.isinf(vv):
            raise SeisError(f"line {n}: time_s/vrms_mps is NaN or infinite", path)
        if vv <= 0:
            raise SeisError(f"line {n}: vrms_mps must be > 0 m/s (got {vv:g})", path)
        check_vrms(vv, f"line {n}", path)
        if t and tt <= t[-1]:
            raise SeisError(f"line {n}: time_s must increase (got {tt:g} s after "
                            f"{t[-1]:g} s)", path)
        t.append(tt)
        v.append(vv)
    if not t:
        raise SeisError(f"no velocity rows after the header on line {line0}", path)
    return np.asarray(t), np.asarray(v)


class VrmsFunction:
    """One v_rms(t) function for every bin (from a CSV file)."""

    def __init__(self, path, time: np.ndarray):
        self.path = os.fspath(path)
        t, v = read_vrms_csv(path)
        k, w = _time_weights(t, np.asarray(time, dtype=np.float64))
        vv = v[k] * (1 - w) + v[np.minimum(k + 1, len(v) - 1)] * w
        self.trace = vv.astype(np.float32)

    def window(self, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
        """Velocities (m/s) of the bins ``[i0:i1, j0:j1]``, float32 ``(n_bins, nt)``."""
        n = (i1 - i0) * (j1 - j0)
        return np.broadcast_to(self.trace, (n, len(self.trace))).copy()


class VrmsVolume:
    """A ``vrms`` HDF5 volume interpolated to an image grid, read block by block."""

    def __init__(self, path, grid: BinGrid, time: np.ndarray, validate: bool = True):
        import h5py

        self.path = os.fspath(path)
        self.grid = grid
        self.time = np.asarray(time, dtype=np.float64)
        try:
            f = h5py.File(self.path, "r")
        except OSError as exc:
            if not os.path.exists(self.path):
                raise FileNotFoundError(2, "No such file or directory", self.path) from None
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            raise SeisError(f"not a readable HDF5 velocity volume ({reason})",
                            self.path) from None
        with f:
            if "vrms" not in f:
                raise SeisError("no 'vrms' data set (is this a seis_hpc velocity volume?)",
                                self.path)
            try:
                self.vgrid = BinGrid.from_attrs(f.attrs)
            except SeisError as exc:
                raise SeisError(f"{exc} (a seis_hpc vrms volume carries its bin grid as "
                                "grid_* attributes)", self.path) from None
            if "time" not in f:
                raise SeisError("no 'time' data set (two-way times of the vrms samples)",
                                self.path)
            self.vtime = f["time"][...].astype(np.float64)
            shape = f["vrms"].shape
            if shape != self.vgrid.shape + (len(self.vtime),):
                raise SeisError(f"vrms shape {shape} does not match its grid and time axes",
                                self.path)
            if len(self.vtime) > 1 and np.any(np.diff(self.vtime) <= 0):
                raise SeisError("time axis of the velocity must increase", self.path)
            if validate:
                self._validate(f["vrms"])
        self._k, self._w = _time_weights(self.vtime, self.time)

    def _validate(self, ds) -> None:
        step = max(1, (64 << 20) // max(1, ds[0:1].nbytes))
        for a in range(0, ds.shape[0], step):
            block = ds[a:a + step]
            bad = ~np.isfinite(block)
            if bad.any():
                pos = tuple(int(p) for p in np.argwhere(bad)[0])
                pos = (pos[0] + a,) + pos[1:]
                raise SeisError(f"{self._where(pos)}: vrms is NaN or infinite", self.path)
            out = (block < VRMS_MIN) | (block > VRMS_MAX)
            if out.any():
                first = np.argwhere(out)[0]
                pos = (int(first[0]) + a,) + tuple(int(p) for p in first[1:])
                check_vrms(float(block[tuple(first)]), self._where(pos), self.path)

    def _where(self, pos: tuple) -> str:
        """``pos`` (an index into the vrms data set) as inline/crossline (or CMP) and time."""
        vg = self.vgrid
        if vg.is_2d:
            where = f"CMP {vg.crossline0 + pos[0]}"
        else:
            where = f"inline {vg.inline0 + pos[0]}, crossline {vg.crossline0 + pos[1]}"
        return f"vrms[{', '.join(map(str, pos))}] ({where}, t = {self.vtime[pos[-1]]:g} s)"

    def window(self, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
        """Velocities (m/s) of the image bins ``[i0:i1, j0:j1]``, float32 ``(n_bins, nt)``."""
        import h5py

        g = self.grid
        il, xl = np.meshgrid(g.inline0 + np.arange(i0, i1), g.crossline0 + np.arange(j0, j1),
                             indexing="ij")
        x, y = g.grid_to_world(il.ravel(), xl.ravel())
        vg = self.vgrid
        fi, fj = vg.world_to_grid(x, y)
        fi = np.clip(fi - vg.inline0, 0, vg.n_inline - 1)
        fj = np.clip(fj - vg.crossline0, 0, vg.n_crossline - 1)
        a0 = np.minimum(np.floor(fi).astype(np.int64), max(vg.n_inline - 2, 0))
        b0 = np.minimum(np.floor(fj).astype(np.int64), max(vg.n_crossline - 2, 0))
        wa = np.clip(fi - a0, 0, 1) if vg.n_inline > 1 else np.zeros_like(fi)
        wb = np.clip(fj - b0, 0, 1) if vg.n_crossline > 1 else np.zeros_like(fj)
        a1 = np.minimum(a0 + 1, vg.n_inline - 1)
        b1 = np.minimum(b0 + 1, vg.n_crossline - 1)
        ra, rb = (int(a0.min()), int(a1.max()) + 1), (int(b0.min()), int(b1.max()) + 1)
        with h5py.File(self.path, "r") as f:
            ds = f["vrms"]
            if vg.is_2d:
                block = ds[rb[0]:rb[1]][None].astype(np.float64)
            else:
                block = ds[ra[0]:ra[1], rb[0]:rb[1]].astype(np.float64)
        a0, a1, b0, b1 = a0 - ra[0], a1 - ra[0], b0 - rb[0], b1 - rb[0]
        wa, wb = wa[:, None], wb[:, None]
        lat = ((1 - wa) * (1 - wb) * block[a0, b0] + (1 - wa) * wb * block[a0, b1]
               + wa * (1 - wb) * block[a1, b0] + wa * wb * block[a1, b1])
        k, w = self._k, self._w
        k1 = np.minimum(k + 1, len(self.vtime) - 1)
        return (lat[:, k] * (1 - w) + lat[:, k1] * w).astype(np.float32)


def open_vrms(path: str | os.PathLike, grid: BinGrid, time, validate: bool = True
              ) -> VrmsFunction | VrmsVolume:
    """A lazy velocity model for ``grid`` and the output ``time`` axis (s).

    ``.csv`` files (or any file whose first bytes are text) are read as a ``time_s,vrms_mps``
    function; anything else as a seis_hpc ``vrms`` HDF5 volume. A SEG-Y or SU file given
    as the velocity is refused as such. All values are checked here (``validate=False`` skips
    the scan of a volume for NaN and values outside 300..10,000 m/s, for ranks other than the
    one that already checked it).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    if p.is_dir():
        raise SeisError("is a directory, not a velocity file", p)
    with open(p, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"\x89HDF"):
        return VrmsVolume(p, grid, time, validate=validate)
    _refuse_seismic(p, head)
    return VrmsFunction(p, np.asarray(time, dtype=np.float64))


def _refuse_seismic(path: Path, head: bytes) -> None:
    """Refuse a SEG-Y or SU file given where a velocity is expected (a common slip: the survey
    named twice); text files pass."""
    seismic = path.suffix.lower() in (".sgy", ".segy", ".su", ".seg")
    if not seismic:
        try:
            head.decode("utf-8")
            return
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":  # a character cut by the 4 KiB read
                return
    from seis_hpc.io.segy import probe

    try:
        layout = probe(path)
    except SeisError:
        return  # not seismic either: the CSV reader says what is wrong
    raise SeisError(f"is a {'SU' if layout.kind == 'su' else 'SEG-Y'} file ({layout.n_traces} "
                    f"traces of {layout.ns} samples), not a velocity: give a vrms HDF5 volume "
                    "(e.g. from seis-hpc velan) or a time_s,vrms_mps CSV", path)


def load_vrms(path: str | os.PathLike, grid: BinGrid, time) -> np.ndarray:
    """RMS velocity (m/s) of every bin of ``grid`` at every ``time`` (s).

    Returns
    -------
    numpy.ndarray
        float32 ``(grid.n_bins, len(time))``, bins in inline-major order (as ``grid.points()``).
    """
    return open_vrms(path, grid, time).window(0, grid.n_inline, 0, grid.n_crossline)


def write_vrms_table_csv(path: str | os.PathLike, picks) -> None:
    """Write velocity functions as CSV: columns ``cdp,time_s,vrms_mps`` (atomically).

    One row per (location, time), locations in order. A file holding one location reads back
    with :func:`read_vrms_csv` (the ``cdp`` column is ignored there); several locations are
    for other tools (spreadsheets, SU ``sunmo`` scripts).

    Parameters
    ----------
    path : path-like
        Output CSV.
    picks : seis_hpc.velocity.picks.Picks
        Functions per location (e.g. :func:`seis_hpc.velocity.field.table_from_field`).
    """
    from seis_hpc.io.atomic import atomic_output

    lines = ["cdp,time_s,vrms_mps"]
    for p in picks.locations:
        lines += [f"{p.cdp},{t:.4f},{v:.1f}" for t, v in zip(p.time, p.vrms, strict=True)]
    with atomic_output(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


def read_velocity_function(path: str | os.PathLike, cdp: int | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """One Vrms(t) function from any velocity file ``seis-hpc`` writes or reads.

    * a ``time_s,vrms_mps`` CSV function (:func:`read_vrms_csv`);
    * ``velan --csv`` tables (``cdp,time_s,vrms_mps``): the location nearest ``cdp`` (the
      middle one without it);
    * a ``vrms`` HDF5 volume (``velan --out``): the function at CDP ``cdp`` (2D: CMP number;
      3D: bin serial number from 1), or the median over all bins without it.

    Every ``--velocity`` that needs one function for a whole survey (``gain``, ``radon``,
    ``qc``) reads it here.

    Returns
    -------
    time : numpy.ndarray
        Two-way times (s), increasing.
    vrms : numpy.ndarray
        RMS velocities (m/s), > 0.

    Raises
    ------
    SeisError
        Not a velocity file, or bad values, naming the file.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    if p.is_dir():
        raise SeisError("is a directory, not a velocity file (CSV or vrms HDF5)", p)
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\x89HDF"):
        import h5py

        with h5py.File(p, "r") as f:
            if "vrms" not in f or "time" not in f:
                raise SeisError("no 'vrms' data set (is this a seis_hpc velocity volume?)", p)
            grid = BinGrid.from_attrs(f.attrs)
            t = f["time"][...].astype(np.float64)
            v = f["vrms"][...].reshape(grid.n_bins, t.size).astype(np.float64)
        if cdp is None:
            out = np.median(v, axis=0)
        else:
            from seis_hpc.velocity.picks import bin_of_cdp

            c = int(cdp)
            if grid.is_2d:
                c = int(np.clip(c, grid.crossline0, grid.crossline0 + grid.n_crossline - 1))
            il, xl = bin_of_cdp(grid, c)
            out = v[(il - grid.inline0) * grid.n_crossline + (xl - grid.crossline0)]
        if not (np.all(np.isfinite(out)) and out.min() > 0):
            raise SeisError("vrms must be finite and > 0 m/s", p)
        return t, out
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SeisError("not a velocity file: neither a time_s,vrms_mps CSV nor a vrms HDF5 "
                        "volume", p) from None
    del text
    first = ""
    with open(p, errors="replace") as fh:
        for line in fh:
            if line.strip() and not line.lstrip().startswith("#"):
                first = line
                break
    if "cdp" not in [c.strip().lower() for c in first.split(",")]:
        return read_vrms_csv(p)
    names = [c.strip().lower() for c in first.split(",")]
    try:
        rows = np.loadtxt(p, delimiter=",", comments="#", skiprows=1, ndmin=2)
    except ValueError as exc:
        raise SeisError(f"cdp,time_s,vrms_mps table: {exc}", p) from None
    if "time_s" not in names or "vrms_mps" not in names or rows.shape[1] < len(names):
        raise SeisError("a velocity table needs the columns cdp,time_s,vrms_mps", p)
    cd = rows[:, names.index("cdp")]
    cdps = np.unique(cd)
    pick = cdps[len(cdps) // 2] if cdp is None else cdps[np.argmin(np.abs(cdps - cdp))]
    sel = rows[cd == pick]
    t, v = sel[:, names.index("time_s")], sel[:, names.index("vrms_mps")]
    if np.any(np.diff(t) <= 0) or not np.all(v > 0):
        raise SeisError(f"cdp {pick:g}: time_s must increase and vrms_mps be > 0", p)
    return t, v
