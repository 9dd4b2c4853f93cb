"""SEG-Y export of seis_hpc volumes (stacks, images, Vrms fields, image gathers).

One trace per bin (and per offset class for gathers), inline-major, crosslines increasing,
offset classes fastest. Headers (SEG-Y rev 1 byte positions):

* 3D: ``INLINE_3D`` (189), ``CROSSLINE_3D`` (193), ``CDP`` (21) = bin serial number from 1,
  ``CDP_X``/``CDP_Y`` (181/185) = bin centre (m, scalar -100) -- ``segyio.open(path)`` reads the
  geometry back (``ilines``, ``xlines``, ``offsets``), as interpretation software does;
* 2D: ``CDP`` = CMP number, ``CDP_X``/``CDP_Y``, ``TRACE_SEQUENCE_LINE``, and ``ShotPoint``
  (197) = the CMP's shot-point number when the volume has one (:mod:`seis_hpc.io.shotpoint`;
  the textual header says which input header it comes from); where the input numbers the
  line (one non-zero inline header on every trace) ``INLINE_3D`` = that line number and
  ``CROSSLINE_3D`` = the CMP;
* gathers: ``offset`` (37) = class centre (m, rounded).

The delay (109) carries the first time; samples are IEEE float32 unless ``fmt`` says otherwise.
"""

from __future__ import annotations

import os

import numpy as np

from seis_hpc.errors import SeisError


def volume_headers(vol, fold: np.ndarray | None = None,
                   shotpoint: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Trace headers for the traces of ``vol`` in export order (see the module doc).

    ``fold`` (traces stacked per bin, shape ``grid.shape`` or (n_bins,)) goes to
    ``NStackedTraces`` (33; 1 where not given); ``shotpoint`` (per bin; default the volume's
    own, 2D) to ``ShotPoint`` (197). Coordinate units (89) are 1: metres.
    """
    g = vol.grid
    il, xl = np.meshgrid(g.inlines(), g.crosslines(), indexing="ij")
    il, xl = il.ravel(), xl.ravel()
    x, y = g.grid_to_world(il, xl)
    serial = (il - g.inline0) * g.n_crossline + (xl - g.crossline0) + 1
    h = {"CDP": xl if g.is_2d else serial, "CDP_X": x, "CDP_Y": y,
         "CoordinateUnits": np.ones(g.n_bins, dtype=np.int64)}
    nst = np.ones(g.n_bins, dtype=np.int64)
    if fold is not None:
        f = np.asarray(fold).reshape(g.n_bins)
        # 2-byte field: clip a huge fold instead of wrapping it to a negative number
        nst = np.clip(np.rint(f), 0, 32767).astype(np.int64)
    h["NStackedTraces"] = nst
    if shotpoint is None and g.is_2d:
        shotpoint = getattr(vol, "shotpoint", None)
    if shotpoint is not None:
        h["ShotPoint"] = np.rint(np.asarray(shotpoint, dtype=np.float64).reshape(g.n_bins))
    if not g.is_2d:
        h["INLINE_3D"], h["CROSSLINE_3D"] = il, xl
    elif getattr(vol, "shotpoint_attrs", {}).get("line_number") is not None:
        # a 2D line with a number: inline = the line, crossline = the CMP (as in 3D)
        h["INLINE_3D"] = np.full(g.n_bins, int(vol.shotpoint_attrs["line_number"]))
        h["CROSSLINE_3D"] = xl
    if vol.name == "gathers":
        n_off = len(vol.offset)
        h = {k: np.repeat(v, n_off) for k, v in h.items()}
        h["offset"] = np.tile(np.rint(np.asarray(vol.offset, dtype=np.float64)), g.n_bins)
        h["CDP_TRACE"] = np.tile(np.arange(1, n_off + 1), g.n_bins)
    else:
        h["CDP_TRACE"] = np.ones(g.n_bins, dtype=np.int64)
    return h


def volume_traces(vol) -> np.ndarray:
    """The samples of ``vol`` as (n_traces, nt) in export order."""
    data = np.asarray(vol.data, dtype=np.float32)
    nt = len(vol.time)
    if vol.name == "gathers":
        # (offset, bins..., t) -> (bins..., offset, t): offsets fastest within a bin.
        data = np.moveaxis(data.reshape(len(vol.offset), vol.grid.n_bins, nt), 0, 1)
    return np.ascontiguousarray(data.reshape(-1, nt))


class _DatasetTraces:
    """The traces of an ``image``/``vrms`` volume whose data is an HDF5 data set, in export
    order, read a slab of whole lines at a time (``[a:b]``), so writing SEG-Y does not hold
    the volume in memory."""

    def __init__(self, vol):
        self.ds, self.nj = vol.data, vol.grid.n_crossline
        self.shape = (vol.grid.n_bins, len(vol.time))
        self.ndim = 2

    def __getitem__(self, rows: slice) -> np.ndarray:
        a, b, _ = rows.indices(self.shape[0])
        if len(self.ds.shape) == 2:  # 2D: (cmp, time)
            return np.asarray(self.ds[a:b], dtype=np.float32)
        i0, i1 = a // self.nj, (b - 1) // self.nj + 1
        lines = np.asarray(self.ds[i0:i1], dtype=np.float32).reshape(-1, self.shape[1])
        return lines[a - i0 * self.nj:b - i0 * self.nj]


def volume_text(vol, dt: float, t0: float) -> str:
    """The textual header of ``vol``: what it is, line, CRS/units, sampling, software, history.

    Wrapped by :func:`seis_hpc.io.segy.write_segy` to 40 lines of 80 characters (the end of a
    long history or configuration is cut there).
    """
    import seis_hpc

    g = vol.grid
    what = {"image": "stack/image (amplitude)", "vrms": "RMS velocity (m/s)",
            "gathers": "offset-class image gathers"}.get(vol.name, vol.name)
    line = vol.attrs.get("line") or vol.attrs.get("survey") or vol.attrs.get("input")
    crs = vol.attrs.get("crs", "local (not given)")
    lines = [f"seis_hpc {seis_hpc.__version__} export: {what}",
             f"line: {line}" if line else f"line: {'2D' if g.is_2d else '3D'} {g.describe()}",
             f"CRS: {crs}; coordinates and offsets in metres (units 89 = 1)",
             f"sample interval {dt * 1e3:g} ms, two-way time from {t0:g} s, "
             f"{len(vol.time)} samples",
             ("2D: CDP (21) = CMP number. " if g.is_2d else
              "INLINE_3D (189), CROSSLINE_3D (193), CDP (21) = bin serial. ")
             + "CDP_X/CDP_Y (181/185) = bin centre, m, scalar -100. "
             + "NStackedTraces (33) = fold. "
             + ("offset (37) = class centre, m." if vol.name == "gathers" else ""),
             *_shotpoint_text(vol),
             "history:"]
    lines += [str(h) for h in vol.history]
    if vol.config:
        lines.append("config: " + " ".join(str(vol.config).split()))
    text = "\n".join(lines)
    # Square brackets have no one EBCDIC code (cp037 and segyio's table differ): readers
    # would show other letters; other non-ASCII characters have none at all.
    text = text.translate({ord("["): "(", ord("]"): ")"})
    return text.encode("ascii", "replace").decode("ascii")


def _shotpoint_text(vol) -> list[str]:
    """The textual-header line on ``ShotPoint`` (197) of a 2D volume with shot points."""
    if not vol.grid.is_2d or getattr(vol, "shotpoint", None) is None:
        return []
    sp = np.asarray(vol.shotpoint)
    src = vol.shotpoint_attrs.get("source", "the input")
    lines = [f"ShotPoint (197) = SP {sp[0]}..{sp[-1]} from {src}, "
             "interpolated between shots by position along the line."]
    number = vol.shotpoint_attrs.get("line_number")
    if number is not None:
        lines.append(f"Line number {int(number)} (the input's inline header): INLINE_3D (189); "
                     "CROSSLINE_3D (193) = CDP.")
    return lines


def write_volume_segy(path: str | os.PathLike, vol, *, fmt: int = 5, endian: str = "big",
                      revision: int = 1, fold: np.ndarray | None = None,
                      shotpoint: np.ndarray | None = None) -> None:
    """Write a :class:`~seis_hpc.io.volume.Volume` as SEG-Y rev 1 or 2.0 (atomically).

    Parameters
    ----------
    path : path-like
        Output SEG-Y file.
    vol : Volume
        ``image`` (a stack), ``vrms`` (m/s) or ``gathers``; the data of an image or vrms
        volume may be an HDF5 data set, read a slab at a time.
    fmt : int
        Sample format code (5 IEEE float, 1 IBM float, ...).
    endian : {"big", "little"}
        Byte order.
    revision : {1, 2}
        SEG-Y revision of the file (see :func:`seis_hpc.io.segy.write_segy`).
    fold : numpy.ndarray, optional
        Traces stacked into each bin (shape ``grid.shape``), written to ``NStackedTraces``
        (bytes 33-34); 1 when not given.
    shotpoint : numpy.ndarray, optional
        Shot point number of each bin (``ShotPoint``, bytes 197-200); default the volume's
        ``shotpoint`` (2D), none when it has none.

    Raises
    ------
    SeisError
        A time axis that is not regular or does not fit SEG-Y.
    """
    from seis_hpc.io.segy import write_segy

    t = np.asarray(vol.time, dtype=np.float64)
    if t.size < 2:
        raise SeisError("a volume needs at least two time samples for SEG-Y", path)
    dt = float(t[1] - t[0])
    if np.any(np.abs(np.diff(t) - dt) > 1e-6 * max(dt, 1e-12)):
        raise SeisError("time axis is not regular: SEG-Y needs one sample interval", path)
    if t[0] < 0:
        raise SeisError(f"first time {t[0]:g} s is negative: SEG-Y delay must be >= 0", path)
    traces = volume_traces(vol) if isinstance(vol.data, np.ndarray) or vol.name == "gathers" \
        else _DatasetTraces(vol)
    write_segy(path, traces, volume_headers(vol, fold, shotpoint), round(dt, 9),
               t_start=float(t[0]), fmt=fmt, endian=endian, text=volume_text(vol, dt, t[0]),
               revision=revision)
