"""SEG-Y export of seis_hpc volumes (stacks, images, Vrms fields, image gathers).

One trace per bin (and per offset class for gathers), inline-major, crosslines increasing,
offset classes fastest. Headers (SEG-Y rev 1 byte positions):

* 3D: ``INLINE_3D`` (189), ``CROSSLINE_3D`` (193), ``CDP`` (21) = bin serial number from 1,
  ``CDP_X``/``CDP_Y`` (181/185) = bin centre (m, scalar -100) -- ``segyio.open(path)`` reads the
  geometry back (``ilines``, ``xlines``, ``offsets``), as interpretation software does;
* 2D: ``CDP`` = CMP number, ``CDP_X``/``CDP_Y``, ``TRACE_SEQUENCE_LINE``;
* gathers: ``offset`` (37) = class centre (m, rounded).

The delay (109) carries the first time; samples are IEEE float32 unless ``fmt`` says otherwise.
"""

from __future__ import annotations

import os

import numpy as np

from seis_hpc.errors import SeisError


def volume_headers(vol) -> dict[str, np.ndarray]:
    """Trace headers for the traces of ``vol`` in export order (see the module doc)."""
    g = vol.grid
    il, xl = np.meshgrid(g.inlines(), g.crosslines(), indexing="ij")
    il, xl = il.ravel(), xl.ravel()
    x, y = g.grid_to_world(il, xl)
    serial = (il - g.inline0) * g.n_crossline + (xl - g.crossline0) + 1
    h = {"CDP": xl if g.is_2d else serial, "CDP_X": x, "CDP_Y": y}
    if not g.is_2d:
        h["INLINE_3D"], h["CROSSLINE_3D"] = il, xl
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


def write_volume_segy(path: str | os.PathLike, vol, *, fmt: int = 5, endian: str = "big",
                      revision: int = 1) -> None:
    """Write a :class:`~seis_hpc.io.volume.Volume` as SEG-Y rev 1 or 2.0 (atomically).

    Parameters
    ----------
    path : path-like
        Output SEG-Y file.
    vol : Volume
        ``image`` (a stack), ``vrms`` (m/s) or ``gathers``.
    fmt : int
        Sample format code (5 IEEE float, 1 IBM float, ...).
    endian : {"big", "little"}
        Byte order.
    revision : {1, 2}
        SEG-Y revision of the file (see :func:`seis_hpc.io.segy.write_segy`).

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
    g = vol.grid
    what = {"image": "stack/image (amplitude)", "vrms": "RMS velocity (m/s)",
            "gathers": "offset-class image gathers"}.get(vol.name, vol.name)
    text = (f"seis_hpc export: {what}. {g.describe()}. "
            + ("2D: CDP (21) = CMP number. " if g.is_2d else
               "INLINE_3D (189), CROSSLINE_3D (193), CDP (21) = bin serial. ")
            + "CDP_X/CDP_Y (181/185) = bin centre, m, scalar -100. "
            + ("offset (37) = class centre, m. " if vol.name == "gathers" else "")
            + f"Two-way time from {t[0]:g} s every {dt * 1e3:g} ms.")
    for line in vol.history[-4:]:
        text += "\n" + str(line)
    write_segy(path, volume_traces(vol), volume_headers(vol), round(dt, 9), t_start=float(t[0]),
               fmt=fmt, endian=endian, text=text, revision=revision)
