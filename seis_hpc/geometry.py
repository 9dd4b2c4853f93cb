"""Bin grids: the rotated 3D inline/crossline grid and the 2D CMP line, as plain objects.

Conventions (all distances in m, angles in degrees):

* ``azimuth`` is the direction of the inline (the direction of increasing crossline number
  along one inline), clockwise from grid north (+y).
* ``bin_inline`` is the bin size along the inline, the distance between consecutive crossline
  numbers; ``bin_crossline`` the bin size across, between consecutive inline numbers.
* Inline numbers increase toward ``azimuth + 90`` degrees (``handedness=+1``) or toward
  ``azimuth - 90`` degrees (``handedness=-1``).
* A 2D line is a grid with one inline (``is_2d``); its crossline numbers are CMP numbers and
  ``bin_inline`` is the CMP interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from seis_hpc.errors import SeisError


@dataclass(frozen=True)
class BinGrid:
    """A regular, rotated bin grid.

    Parameters
    ----------
    x0, y0 : float
        World coordinates (m) of the centre of bin (``inline0``, ``crossline0``).
    azimuth : float
        Inline direction, degrees clockwise from north.
    bin_inline, bin_crossline : float
        Bin sizes (m) along and across the inline. For 2D, ``bin_inline`` is the CMP interval.
    inline0, crossline0 : int
        Number of the first inline and first crossline (2D: first CMP).
    n_inline, n_crossline : int
        Number of inlines and crosslines (2D: ``n_inline == 1``, ``n_crossline`` CMPs).
    handedness : int
        +1 when inline numbers increase toward ``azimuth + 90``, -1 otherwise.
    is_2d : bool
        True for a 2D line: volumes use the dimension ``cmp`` instead of inline/crossline.
    """

    x0: float
    y0: float
    azimuth: float
    bin_inline: float
    bin_crossline: float
    inline0: int
    crossline0: int
    n_inline: int
    n_crossline: int
    handedness: int = 1
    is_2d: bool = False

    def __post_init__(self):
        if not (self.bin_inline > 0 and self.bin_crossline > 0):
            raise SeisError(
                f"bin sizes must be > 0 m (got inline {self.bin_inline}, "
                f"crossline {self.bin_crossline})"
            )
        if self.n_inline < 1 or self.n_crossline < 1:
            raise SeisError(f"grid must have >= 1 bin each way (got {self.n_inline} x "
                            f"{self.n_crossline})")
        if self.handedness not in (1, -1):
            raise SeisError(f"handedness must be +1 or -1 (got {self.handedness})")
        if self.is_2d and self.n_inline != 1:
            raise SeisError("a 2D line grid has exactly one inline")

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def line(cls, x0: float, y0: float, azimuth: float, cmp_interval: float, cmp0: int,
             n_cmp: int) -> BinGrid:
        """A straight 2D CMP line: CMP ``cmp0`` at (x0, y0) m, CMPs every ``cmp_interval`` m."""
        return cls(x0, y0, azimuth, cmp_interval, cmp_interval, 0, cmp0, 1, n_cmp, 1, True)

    @classmethod
    def from_attrs(cls, attrs) -> BinGrid:
        """Rebuild a grid from the attributes written by :meth:`to_attrs` (HDF5 or dict)."""
        kw = {}
        for name in cls.__dataclass_fields__:
            key = f"grid_{name}"
            if key not in attrs:
                raise SeisError(f"grid attribute {key!r} missing")
            kw[name] = attrs[key]
        return cls(
            float(kw["x0"]), float(kw["y0"]), float(kw["azimuth"]), float(kw["bin_inline"]),
            float(kw["bin_crossline"]), int(kw["inline0"]), int(kw["crossline0"]),
            int(kw["n_inline"]), int(kw["n_crossline"]), int(kw["handedness"]),
            bool(kw["is_2d"]),
        )

    def to_attrs(self) -> dict:
        """The grid as flat ``grid_*`` attributes for HDF5."""
        return {f"grid_{k}": (int(v) if isinstance(v, bool) else v)
                for k, v in asdict(self).items()}

    # -- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """(n_inline, n_crossline) in 3D; (n_cmp,) in 2D."""
        return (self.n_crossline,) if self.is_2d else (self.n_inline, self.n_crossline)

    @property
    def n_bins(self) -> int:
        """Number of bins (2D: CMPs)."""
        return self.n_inline * self.n_crossline

    def unit_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors (x, y) along the inline and toward increasing inline number."""
        a = math.radians(self.azimuth)
        along = np.array([math.sin(a), math.cos(a)])
        across = self.handedness * np.array([math.cos(a), -math.sin(a)])
        return along, across

    def inlines(self) -> np.ndarray:
        """Inline numbers (3D); ``[inline0]`` for a 2D line."""
        return self.inline0 + np.arange(self.n_inline)

    def crosslines(self) -> np.ndarray:
        """Crossline numbers (2D: CMP numbers)."""
        return self.crossline0 + np.arange(self.n_crossline)

    def grid_to_world(self, inline, crossline) -> tuple[np.ndarray, np.ndarray]:
        """World x, y (m) of (fractional) inline/crossline numbers."""
        along, across = self.unit_vectors()
        s = (np.asarray(crossline, dtype=np.float64) - self.crossline0) * self.bin_inline
        c = (np.asarray(inline, dtype=np.float64) - self.inline0) * self.bin_crossline
        return (self.x0 + s * along[0] + c * across[0], self.y0 + s * along[1] + c * across[1])

    def world_to_grid(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (inline, crossline) numbers of world points x, y (m)."""
        along, across = self.unit_vectors()
        dx = np.asarray(x, dtype=np.float64) - self.x0
        dy = np.asarray(y, dtype=np.float64) - self.y0
        s = dx * along[0] + dy * along[1]
        c = dx * across[0] + dy * across[1]
        return self.inline0 + c / self.bin_crossline, self.crossline0 + s / self.bin_inline

    def bin_of(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Nearest (inline, crossline) bin numbers of world points; may lie outside the grid."""
        il, xl = self.world_to_grid(x, y)
        return np.rint(il).astype(np.int64), np.rint(xl).astype(np.int64)

    def cdp_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin-centre coordinates (m), each shaped like :attr:`shape`."""
        il, xl = np.meshgrid(self.inlines(), self.crosslines(), indexing="ij")
        x, y = self.grid_to_world(il, xl)
        return x.reshape(self.shape), y.reshape(self.shape)

    def points(self) -> np.ndarray:
        """Bin centres as an (n_bins, 2) float64 array of x, y (m), inline-major order."""
        x, y = self.cdp_xy()
        return np.column_stack([x.ravel(), y.ravel()])

    def describe(self) -> str:
        """One line for logs and ``seis-hpc info``."""
        if self.is_2d:
            return (f"2D line: CMP {self.crossline0}..{self.crossline0 + self.n_crossline - 1} "
                    f"every {self.bin_inline:g} m, azimuth {self.azimuth:.2f} deg, "
                    f"origin ({self.x0:.1f}, {self.y0:.1f}) m")
        return (f"3D grid: inline {self.inline0}..{self.inline0 + self.n_inline - 1} x "
                f"crossline {self.crossline0}..{self.crossline0 + self.n_crossline - 1}, "
                f"bins {self.bin_inline:g} x {self.bin_crossline:g} m, azimuth "
                f"{self.azimuth:.2f} deg, origin ({self.x0:.1f}, {self.y0:.1f}) m")


GRID_KEYS = ("x0", "y0", "azimuth", "bin_inline", "bin_crossline", "inline0", "crossline0",
             "n_inline", "n_crossline")


def load_bin_grid(path) -> BinGrid:
    """Read a bin grid a processor was given from a TOML file.

    Either the grid itself (distances in m, azimuth in degrees clockwise from north)::

        x0 = 500000.0          # centre of bin (inline0, crossline0)
        y0 = 3650000.0
        azimuth = 30.0         # inline direction (crossline numbers increase along it)
        bin_inline = 6.25      # bin size along the inline (between crosslines)
        bin_crossline = 25.0   # bin size across (between inlines)
        inline0 = 1001
        crossline0 = 2001
        n_inline = 200
        n_crossline = 800
        handedness = 1         # optional: +1 inlines increase toward azimuth + 90

    or three corner bin centres and the numbering (``[corners]``: ``first`` = bin (inline0,
    crossline0), ``last_crossline`` = (inline0, last crossline), ``last_inline`` = (last
    inline, crossline0), each ``[x, y]``) with ``inline0``, ``crossline0``, ``n_inline``,
    ``n_crossline``. A 2D line: ``is_2d = true`` with ``n_inline = 1``.

    Raises
    ------
    SeisError
        Unreadable TOML, a missing or unknown key, corners that are not a rectangle.
    """
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise SeisError(f"bin grid is not valid TOML ({exc})", path) from None
    d = dict(d.get("grid", d))
    known = set(GRID_KEYS) | {"handedness", "is_2d", "corners"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise SeisError(f"unknown bin grid key(s) {', '.join(unknown)} (known: "
                        f"{', '.join(sorted(known))})", path)
    if "corners" in d:
        d.update(_from_corners(d.pop("corners"), d, path))
    missing = [k for k in GRID_KEYS if k not in d]
    if missing:
        raise SeisError(f"bin grid lacks {', '.join(missing)}", path)
    try:
        return BinGrid(float(d["x0"]), float(d["y0"]), float(d["azimuth"]) % 360.0,
                       float(d["bin_inline"]), float(d["bin_crossline"]), int(d["inline0"]),
                       int(d["crossline0"]), int(d["n_inline"]), int(d["n_crossline"]),
                       int(d.get("handedness", 1)), bool(d.get("is_2d", False)))
    except SeisError as exc:
        raise SeisError(exc.detail, path) from None
    except (TypeError, ValueError) as exc:
        raise SeisError(f"bad bin grid value ({exc})", path) from None


def _from_corners(c, d: dict, path) -> dict:
    """Grid fields from three corner bin centres (see :func:`load_bin_grid`)."""
    try:
        p0, pc, pi = (np.asarray(c[k], dtype=np.float64) for k in
                      ("first", "last_crossline", "last_inline"))
        n_il, n_xl = int(d["n_inline"]), int(d["n_crossline"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SeisError(f"corners need first, last_crossline, last_inline = [x, y] and "
                        f"n_inline, n_crossline ({exc})", path) from None
    if n_xl < 2:
        raise SeisError("corners need n_crossline >= 2", path)
    along = (pc - p0) / (n_xl - 1)
    b_in = float(np.hypot(*along))
    az = math.degrees(math.atan2(along[0], along[1])) % 360.0
    out = {"x0": float(p0[0]), "y0": float(p0[1]), "azimuth": az, "bin_inline": b_in}
    if n_il > 1:
        across = (pi - p0) / (n_il - 1)
        b_cr = float(np.hypot(*across))
        cosang = abs(float(along @ across)) / (b_in * b_cr)
        if cosang > 0.01:
            raise SeisError(f"corners are not a rectangle (angle "
                            f"{math.degrees(math.acos(min(cosang, 1.0))):.2f} deg)", path)
        ref = np.array([math.cos(math.radians(az)), -math.sin(math.radians(az))])
        out.update(bin_crossline=b_cr, handedness=1 if float(across @ ref) >= 0 else -1)
    else:
        out["bin_crossline"] = d.get("bin_crossline", b_in)
    return out


def offset_classes(offset, edges) -> np.ndarray:
    """Offset class of each trace, for image gathers: ``k`` where
    ``edges[k] <= offset < edges[k+1]``, else -1.

    The one definition used by the migration kernel (:func:`seis_hpc.migration.pstm.
    pstm_gathers`), the PSTM engine's decomposition and residual-moveout analysis.

    Parameters
    ----------
    offset : array_like, shape (ntr,)
        Source-receiver offsets (m), distances (>= 0); a negative value is in no class.
    edges : array_like, shape (n_class + 1,)
        Strictly increasing class edges (m).

    Returns
    -------
    numpy.ndarray of int64, shape (ntr,)
        Class index per trace, -1 outside ``[edges[0], edges[-1])``.

    Raises
    ------
    SeisError
        Fewer than two edges, edges not strictly increasing, or a non-finite value.
    """
    off = np.atleast_1d(np.asarray(offset, dtype=np.float64))
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0):
        raise SeisError("offset_edges: need at least two strictly increasing edges (m) "
                        f"(got {np.ravel(e).tolist()})")
    if off.ndim != 1:
        raise SeisError(f"offset: expected shape 1-D, got {off.shape}")
    if not np.all(np.isfinite(off)):
        bad = int(np.flatnonzero(~np.isfinite(off))[0])
        raise SeisError(f"offset: trace {bad}: value is not finite")
    k = np.searchsorted(e, off, side="right") - 1
    k[(off < e[0]) | (off >= e[-1])] = -1
    return k.astype(np.int64)
