"""Velocity picks: tables of (time, Vrms) per analysis location, their files (TOML and
Seismic Unix par), CDP numbering, Dix interval velocities and the Vrms function of one
location's picks.

Times are two-way (s), velocities m/s.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seis_hpc.errors import SeisError

try:  # tomllib is 3.11+; tomli is its backport (a dependency on older Pythons)
    import tomllib as _toml
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as _toml


@dataclass
class PickLocation:
    """The picks of one analysis location.

    Attributes
    ----------
    inline, crossline : int
        Bin of the location (2D: inline 0 and crossline = CMP number).
    cdp : int
        CDP number (2D: the CMP number; 3D: bin serial number from 1, inline-major).
    x, y : float
        Bin centre (m).
    time : numpy.ndarray
        Pick times, two-way (s), strictly increasing.
    vrms : numpy.ndarray
        Picked RMS (stacking) velocities (m/s).
    semblance : numpy.ndarray
        Coherence at each pick (NaN for imported picks).
    """

    inline: int
    crossline: int
    cdp: int
    x: float
    y: float
    time: np.ndarray
    vrms: np.ndarray
    semblance: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self):
        self.time = np.asarray(self.time, dtype=np.float64)
        self.vrms = np.asarray(self.vrms, dtype=np.float64)
        if self.semblance is None or len(self.semblance) != len(self.time):
            self.semblance = np.full(len(self.time), np.nan)
        self.semblance = np.asarray(self.semblance, dtype=np.float64)


@dataclass
class Picks:
    """Velocity picks of a survey: one :class:`PickLocation` per analysis location.

    Attributes
    ----------
    locations : list of PickLocation
        Ordered by inline, then crossline.
    is_2d : bool
        True for a 2D line (locations are CMPs).
    params : dict
        How the picks were made (scan and picking parameters), written to the table.
    """

    locations: list[PickLocation]
    is_2d: bool = True
    params: dict = field(default_factory=dict)

    def check(self, path=None, vint_min: float | None = None,
              vint_max: float | None = None) -> None:
        """Check every location: increasing times, positive velocities, sane Dix intervals.

        Raises
        ------
        SeisError
            Naming the location (CDP) and the offending pick.
        """
        if not self.locations:
            raise SeisError("no velocity picks", path)
        for loc in self.locations:
            where = f"cdp {loc.cdp}"
            if loc.time.size == 0:
                raise SeisError(f"{where}: no picks", path)
            if loc.time.shape != loc.vrms.shape:
                raise SeisError(f"{where}: {loc.time.size} times but {loc.vrms.size} "
                                "velocities", path)
            dix(loc.time, loc.vrms, vint_min=vint_min, vint_max=vint_max,
                where=where, path=path)


def dix(time, vrms, *, vint_min: float | None = None, vint_max: float | None = None,
        where: str = "picks", path=None) -> np.ndarray:
    """Dix interval velocities between consecutive picks, with checks.

    ``vint_k^2 = (V_k^2 t_k - V_{k-1}^2 t_{k-1}) / (t_k - t_{k-1})``; the first interval runs
    from t = 0 (its interval velocity is the first Vrms).

    Parameters
    ----------
    time : array_like, shape (n,)
        Two-way times (s), strictly increasing, >= 0.
    vrms : array_like, shape (n,)
        RMS velocities (m/s), > 0.
    vint_min, vint_max : float, optional
        Bounds (m/s) for every interval after the first; None: only "real and > 0" is
        checked.
    where : str
        Prefix of the error message (e.g. ``"cdp 120"``).
    path : path-like, optional
        The file the picks came from, for the message.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Interval velocity (m/s) of the layer ending at each pick.

    Raises
    ------
    SeisError
        Times not increasing or negative, velocities not finite and > 0, a negative squared
        interval velocity (V^2 t decreasing: physically impossible), or an interval velocity
        outside the bounds (absurd) -- naming the pick.
    """
    t = np.asarray(time, dtype=np.float64).ravel()
    v = np.asarray(vrms, dtype=np.float64).ravel()
    if t.shape != v.shape or t.size == 0:
        raise SeisError(f"{where}: need as many times as velocities (got {t.size} and "
                        f"{v.size})", path)
    if not (np.isfinite(t).all() and np.isfinite(v).all()):
        raise SeisError(f"{where}: pick times and velocities must be finite", path)
    if t[0] < 0 or np.any(np.diff(t) <= 0):
        k = 0 if t[0] < 0 else int(np.argmax(np.diff(t) <= 0)) + 1
        raise SeisError(f"{where}: pick times must be >= 0 s and increase (pick {k + 1} at "
                        f"{t[k]:g} s)", path)
    if np.any(v <= 0):
        k = int(np.argmax(v <= 0))
        raise SeisError(f"{where}: vrms must be > 0 m/s (pick {k + 1}: {v[k]:g})", path)
    v2t = v * v * t
    vint = np.empty_like(v)
    vint[0] = v[0]
    if t.size > 1:
        d = np.diff(v2t) / np.diff(t)
        if np.any(d <= 0):
            k = int(np.argmax(d <= 0)) + 1
            raise SeisError(f"{where}: Dix interval velocity between {t[k - 1]:g} s and "
                            f"{t[k]:g} s is imaginary (vrms {v[k - 1]:g} -> {v[k]:g} m/s "
                            "falls too fast)", path)
        vint[1:] = np.sqrt(d)
    for k in range(1, t.size):
        lo_bad = vint_min is not None and vint[k] < vint_min
        hi_bad = vint_max is not None and vint[k] > vint_max
        if lo_bad or hi_bad:
            raise SeisError(f"{where}: Dix interval velocity {vint[k]:.0f} m/s between "
                            f"{t[k - 1]:g} s and {t[k]:g} s is outside "
                            f"{vint_min or 0:g}..{vint_max or np.inf:g} m/s", path)
    return vint


def cdp_number(grid, il, xl) -> int:
    """CDP number of a bin: 2D the CMP number; 3D the bin serial number from 1, inline-major
    (as :class:`~seis_hpc.survey.Survey` numbers the ``cmp`` column)."""
    if grid.is_2d:
        return int(xl)
    return int((il - grid.inline0) * grid.n_crossline + (xl - grid.crossline0) + 1)


def bin_of_cdp(grid, cdp: int) -> tuple[int, int]:
    """Inverse of :func:`cdp_number`; raises when the CDP is outside the grid."""
    cdp = int(cdp)
    if grid.is_2d:
        if not grid.crossline0 <= cdp < grid.crossline0 + grid.n_crossline:
            raise SeisError(f"cdp {cdp} is outside the line (CMP {grid.crossline0}.."
                            f"{grid.crossline0 + grid.n_crossline - 1})")
        return grid.inline0, cdp
    if not 1 <= cdp <= grid.n_bins:
        raise SeisError(f"cdp {cdp} is outside the grid (1..{grid.n_bins})")
    i, j = divmod(cdp - 1, grid.n_crossline)
    return grid.inline0 + i, grid.crossline0 + j


def _fmt_list(values, fmt: str) -> str:
    return "[" + ", ".join(format(float(v), fmt) for v in values) + "]"


def write_picks(path: str | os.PathLike, picks: Picks) -> None:
    """Write picks as an editable TOML table (atomically).

    One ``[[location]]`` table per analysis location with ``cdp``, ``inline``, ``crossline``,
    ``x``, ``y`` (m), ``time`` (s), ``vrms`` (m/s) and ``semblance``; the scan parameters in
    ``[params]``. Edit the times and velocities and give the file back to ``seis-hpc velan
    --use-picks``.
    """
    from seis_hpc.io.atomic import atomic_output

    lines = ["# seis_hpc velocity picks: two-way time (s), RMS velocity (m/s).",
             "# Edit time/vrms freely (same length, times increasing); delete a [[location]]",
             "# to drop it. Read back with: seis-hpc velan GATHERS --use-picks THIS_FILE ...",
             f"is_2d = {'true' if picks.is_2d else 'false'}", ""]
    if picks.params:
        lines.append("[params]")
        for k, v in picks.params.items():
            if v is None:
                continue
            lines.append(f"{k} = {v!r}" if isinstance(v, (int, float)) else f'{k} = "{v}"')
        lines.append("")
    for loc in picks.locations:
        lines += ["[[location]]", f"cdp = {loc.cdp}", f"inline = {loc.inline}",
                  f"crossline = {loc.crossline}", f"x = {loc.x:.2f}", f"y = {loc.y:.2f}",
                  f"time = {_fmt_list(loc.time, '.4f')}", f"vrms = {_fmt_list(loc.vrms, '.1f')}"]
        if np.isfinite(loc.semblance).all():
            lines.append(f"semblance = {_fmt_list(loc.semblance, '.3f')}")
        lines.append("")
    with atomic_output(path) as tmp:
        Path(tmp).write_text("\n".join(lines))


def read_picks(path: str | os.PathLike, grid=None) -> Picks:
    """Read a picks table: TOML (:func:`write_picks`) or an SU par file (by content).

    Parameters
    ----------
    path : path-like
        The table.
    grid : BinGrid, optional
        Needed for SU files (to place CDP numbers) and used to fill missing bins/coordinates.

    Raises
    ------
    SeisError
        Unreadable file, missing or mismatched fields, bad picks (see :func:`dix`), naming the
        file and the location.
    """
    from seis_hpc.limits import read_text

    text = read_text(path, "picks table (TOML or SU par file)")
    if re.search(r"^\s*(cdp|tnmo|vnmo)\s*=", text, flags=re.MULTILINE) and \
            "[[location]]" not in text:
        if grid is None:
            raise SeisError("an SU par file needs the survey grid to place its CDPs", path)
        return read_su_picks(path, grid)
    try:
        doc = _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        raise SeisError(f"not a valid TOML picks table ({exc})", path) from None
    locs = doc.get("location")
    if not isinstance(locs, list) or not locs:
        raise SeisError("no [[location]] tables in the picks file", path)
    out = []
    for n, d in enumerate(locs, start=1):
        where = f"location {n}"
        for key in ("time", "vrms"):
            if key not in d:
                raise SeisError(f"{where}: missing '{key}'", path)
        try:
            t = np.asarray(d["time"], dtype=np.float64)
            v = np.asarray(d["vrms"], dtype=np.float64)
        except (TypeError, ValueError):
            raise SeisError(f"{where}: time and vrms must be lists of numbers", path) from None
        if t.ndim != 1 or t.shape != v.shape:
            raise SeisError(f"{where}: time and vrms must be lists of the same length "
                            f"(got {t.size} and {v.size})", path)
        if "cdp" in d and grid is not None and not ("inline" in d and "crossline" in d):
            il, xl = bin_of_cdp(grid, d["cdp"])
        elif "inline" in d and "crossline" in d:
            il, xl = int(d["inline"]), int(d["crossline"])
        elif "cdp" in d and doc.get("is_2d", True):
            il, xl = 0, int(d["cdp"])
        else:
            raise SeisError(f"{where}: give cdp, or inline and crossline", path)
        cdp = int(d.get("cdp", cdp_number(grid, il, xl) if grid is not None else xl))
        if grid is not None and ("x" not in d or "y" not in d):
            x, y = (float(a) for a in grid.grid_to_world(il, xl))
        else:
            x, y = float(d.get("x", 0.0)), float(d.get("y", 0.0))
        out.append(PickLocation(il, xl, cdp, x, y, t, v, d.get("semblance")))
    picks = Picks(sorted(out, key=lambda p: (p.inline, p.crossline)),
                  bool(doc.get("is_2d", grid.is_2d if grid is not None else True)),
                  params=dict(doc.get("params", {})))
    picks.check(path)
    return picks


def _su_values(value: str, key: str, line: int, path) -> list[float]:
    try:
        return [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise SeisError(f"line {line}: {key}= must be comma-separated numbers (got "
                        f"{value!r})", path) from None


def read_su_picks(path: str | os.PathLike, grid) -> Picks:
    """Read a Seismic Unix velocity par file (as ``sunmo par=`` takes and ``velan`` writes).

    Two layouts are accepted: SU's own, ``cdp=c1,c2,...`` followed by one ``tnmo=``/``vnmo=``
    pair per CDP in order; and one location per line, ``cdp=c tnmo=t1,t2 vnmo=v1,v2``. Times
    in s, velocities in m/s; ``#`` starts a comment.

    Parameters
    ----------
    path : path-like
        The par file.
    grid : BinGrid
        Survey grid: CDP numbers are placed with :func:`bin_of_cdp`.
    """
    cdps: list[int] = []
    tn: list[list[float]] = []
    vn: list[list[float]] = []
    from seis_hpc.limits import read_text

    for n, raw in enumerate(read_text(path, "SU par file").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        for tok in line.split():
            if "=" not in tok:
                raise SeisError(f"line {n}: expected key=value, got {tok!r}", path)
            key, val = tok.split("=", 1)
            key = key.strip().lower()
            if key == "cdp":
                vals = _su_values(val, key, n, path)
                if any(c != int(c) for c in vals):
                    raise SeisError(f"line {n}: cdp numbers must be whole numbers", path)
                cdps += [int(c) for c in vals]
            elif key == "tnmo":
                tn.append(_su_values(val, key, n, path))
            elif key == "vnmo":
                vn.append(_su_values(val, key, n, path))
            else:
                raise SeisError(f"line {n}: unknown key {key!r} (expected cdp, tnmo, vnmo)",
                                path)
    if not cdps:
        cdps = [grid.crossline0 if grid.is_2d else 1]  # one function for the whole survey
    if len(tn) != len(cdps) or len(vn) != len(cdps):
        raise SeisError(f"{len(cdps)} cdp numbers but {len(tn)} tnmo= and {len(vn)} vnmo= "
                        "lines (need one pair per cdp)", path)
    out = []
    for c, t, v in zip(cdps, tn, vn, strict=True):
        if len(t) != len(v):
            raise SeisError(f"cdp {c}: {len(t)} tnmo values but {len(v)} vnmo values", path)
        try:
            il, xl = bin_of_cdp(grid, c)
        except SeisError as exc:
            raise SeisError(exc.detail, path) from None
        x, y = grid.grid_to_world(il, xl)
        out.append(PickLocation(il, xl, c, float(x), float(y), t, v))
    picks = Picks(sorted(out, key=lambda p: (p.inline, p.crossline)), grid.is_2d)
    picks.check(path)
    return picks


def write_su_picks(path: str | os.PathLike, picks: Picks) -> None:
    """Write picks as a Seismic Unix par file (``cdp=`` list, then ``tnmo=``/``vnmo=`` per
    CDP), readable by ``sunmo par=`` and by :func:`read_su_picks`."""
    from seis_hpc.io.atomic import atomic_output

    lines = ["cdp=" + ",".join(str(p.cdp) for p in picks.locations)]
    for p in picks.locations:
        lines.append("tnmo=" + ",".join(f"{t:.4f}" for t in p.time))
        lines.append("vnmo=" + ",".join(f"{v:.1f}" for v in p.vrms))
    with atomic_output(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


def vrms_function(t_picks, v_picks, time, interp: str = "v2t") -> np.ndarray:
    """One location's picks on a time axis (linear in ``V^2 t``; constant Vrms outside).

    Parameters
    ----------
    t_picks : array_like, shape (n,)
        Pick times (s), increasing.
    v_picks : array_like, shape (n,)
        RMS velocities (m/s).
    time : array_like, shape (nt,)
        Output two-way times (s).
    interp : {"v2t", "linear"}
        Linear in ``V^2 t`` (constant interval velocity between picks), or plain linear (for
        quantities that are not velocities, such as update ratios).

    Returns
    -------
    numpy.ndarray, float64, shape (nt,)
        Vrms (m/s) at each output time.
    """
    tp = np.asarray(t_picks, dtype=np.float64)
    vp = np.asarray(v_picks, dtype=np.float64)
    t = np.asarray(time, dtype=np.float64)
    if tp.size == 1:
        return np.full(t.shape, vp[0])
    out = np.empty(t.shape)
    above, below = t <= tp[0], t >= tp[-1]
    out[above], out[below] = vp[0], vp[-1]
    mid = ~(above | below)
    if interp == "linear":
        out[mid] = np.interp(t[mid], tp, vp)
    else:
        out[mid] = np.sqrt(np.interp(t[mid], tp, vp * vp * tp) / t[mid])
    return out
