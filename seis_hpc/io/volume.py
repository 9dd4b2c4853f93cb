"""The HDF5 volume format every seis_hpc output uses (images, velocities, image gathers).

Layout of one file::

    /<name>            float32, chunked; name is "image", "vrms" or "gathers"
                       dims 3D (inline, crossline, time); 2D (cmp, time);
                       gathers prepend (offset, ...)
    /inline, /crossline (2D: /cmp), /time [s], /offset [m]
                       1-D dimension scales attached to the data set
    /cdp_x, /cdp_y     bin-centre world coordinates [m], dims (inline, crossline) or (cmp)
    /shotpoint         2D only, when known: int32 shot-point number of each CMP, dims (cmp);
                       attributes source (which input header), method
                       (:mod:`seis_hpc.io.shotpoint`)
    attributes         grid_* (see BinGrid.to_attrs), units, software, created,
                       config (the job's configuration text), history (one line per step)

xarray opens it with ``xr.open_dataset(path, engine="h5netcdf", phony_dims="access")``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np

from seis_hpc import __version__
from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid
from seis_hpc.io.atomic import atomic_output

UNITS = {"image": "amplitude", "gathers": "amplitude", "vrms": "m/s", "time": "s",
         "offset": "m", "cdp_x": "m", "cdp_y": "m", "inline": "", "crossline": "", "cmp": ""}


@dataclass
class Volume:
    """A volume in memory: data, its grid and time axis, and its provenance.

    Attributes
    ----------
    data : numpy.ndarray
        float32, shape ``grid.shape + (nt,)``, or ``(n_offset,) + grid.shape + (nt,)``
        for gathers.
    grid : BinGrid
        The bin grid of the lateral axes.
    time : numpy.ndarray
        Two-way time of each sample (s).
    name : str
        ``"image"``, ``"vrms"`` or ``"gathers"``.
    offset : numpy.ndarray or None
        Offset-class centres (m), gathers only.
    config : str
        The configuration text of the job that made it.
    history : list of str
        Processing history, one line per step.
    attrs : dict
        Further attributes (timings, parameters).
    shotpoint : numpy.ndarray or None
        2D: the shot-point number of each CMP (:mod:`seis_hpc.io.shotpoint`); None if unknown.
    shotpoint_attrs : dict
        Its attributes (``source``: the input header it comes from, ``method``).
    """

    data: np.ndarray
    grid: BinGrid
    time: np.ndarray
    name: str = "image"
    offset: np.ndarray | None = None
    config: str = ""
    history: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    shotpoint: np.ndarray | None = None
    shotpoint_attrs: dict = field(default_factory=dict)

    def dims(self) -> tuple[str, ...]:
        """Dimension names of :attr:`data`, outermost first."""
        lateral = ("cmp",) if self.grid.is_2d else ("inline", "crossline")
        pre = ("offset",) if self.name == "gathers" else ()
        return pre + lateral + ("time",)

    @property
    def dt(self) -> float:
        """Sample interval (s)."""
        return float(self.time[1] - self.time[0]) if len(self.time) > 1 else 0.0


def _check(vol: Volume) -> None:
    expect = vol.grid.shape + (len(vol.time),)
    if vol.name == "gathers":
        if vol.offset is None:
            raise SeisError("image gathers need offset-class centres")
        expect = (len(vol.offset),) + expect
    if vol.name not in ("image", "vrms", "gathers"):
        raise SeisError(f"unknown volume kind {vol.name!r}")
    if tuple(vol.data.shape) != expect:
        raise SeisError(f"{vol.name} shape {vol.data.shape} does not match grid and time "
                        f"axes {expect}")


def write_volume(path: str | os.PathLike, vol: Volume, chunks: tuple[int, ...] | None = None
                 ) -> None:
    """Write ``vol`` to ``path`` atomically (temporary name, then rename).

    Parameters
    ----------
    path : path-like
        Output HDF5 file.
    vol : Volume
        What to write; its shape must match its grid and time axis.
    chunks : tuple of int, optional
        HDF5 chunk shape; default about 1 MiB chunks spanning whole traces.
    """
    _check(vol)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        write_into(f, vol, chunks)


def _default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    nt = shape[-1]
    per = max(1, (1 << 18) // max(nt, 1))  # traces per ~1 MiB chunk
    lat = list(shape[:-1])
    out = []
    for n in reversed(lat):
        take = max(1, min(n, per))
        out.append(take)
        per = max(1, per // take)
    return tuple(reversed(out)) + (nt,)


def write_into(f: h5py.File, vol: Volume, chunks: tuple[int, ...] | None = None
               ) -> h5py.Dataset:
    """Write ``vol`` (data, axes, coordinates, attributes) into an open file.

    Returns
    -------
    h5py.Dataset
        The data set written.
    """
    w = VolumeWriter(f, vol.grid, vol.time, vol.name, offset=vol.offset, config=vol.config,
                     history=vol.history, attrs=vol.attrs, chunks=chunks,
                     shotpoint=vol.shotpoint, shotpoint_attrs=vol.shotpoint_attrs)
    w.put_all(vol.name, vol.data)
    return f[vol.name]


class VolumeWriter:
    """The one writer of the volume format: lay a file out, then write blocks into it.

    Every volume goes through it: :func:`write_volume` (images, velocities, image gathers in
    one piece), the PSTM engine's output (tiles and row slabs, written by rank 0 or by every
    rank through parallel HDF5) and the merge of an array job's part images. Creating one
    lays the file out (data sets unfilled, dimension scales, bin-centre coordinates,
    attributes); :meth:`attach` wraps a file already laid out (a parallel HDF5 reopen).

    Parameters
    ----------
    f : h5py.File
        Open for writing.
    grid : BinGrid
        Lateral axes.
    time : array_like
        Two-way time of each sample (s).
    name : {"image", "vrms", "gathers"}
        The file's ``kind`` and its data set.
    offset : array_like, optional
        Offset-class centres (m): gathers, or an image with its gathers (``with_gathers``).
    with_gathers : bool
        An image file that also holds the image gathers (``offset`` first) in ``gathers``.
    config : str
        Configuration text of the job that made it.
    history : sequence of str
        Processing history, one line per step.
    attrs : dict, optional
        Further file attributes.
    chunks : tuple of int, optional
        HDF5 chunk shape of the data set; default about 1 MiB chunks spanning whole traces
        (an image with gathers takes the gathers' chunks without the offset axis).
    shotpoint : array_like, optional
        2D: shot-point number of each CMP, written to ``shotpoint`` (int32, dims ``cmp``).
    shotpoint_attrs : dict, optional
        Attributes of that data set (``source``, ``method``).
    """

    def __init__(self, f: h5py.File, grid: BinGrid, time, name: str = "image", *,
                 offset=None, with_gathers: bool = False, config: str = "",
                 history: Sequence[str] = (), attrs: dict | None = None,
                 chunks: tuple[int, ...] | None = None, shotpoint=None,
                 shotpoint_attrs: dict | None = None):
        self.f, self.grid = f, grid
        if (name == "gathers" or with_gathers) and offset is None:
            raise SeisError("image gathers need offset-class centres")
        lateral = self.lateral_dims(grid)
        shape = grid.shape + (len(time),)
        axes = {"time": np.asarray(time, dtype=np.float64)}
        if grid.is_2d:
            axes["cmp"] = grid.crosslines().astype(np.int32)
        else:
            axes["inline"] = grid.inlines().astype(np.int32)
            axes["crossline"] = grid.crosslines().astype(np.int32)
        if offset is not None:
            axes["offset"] = np.asarray(offset, dtype=np.float64)
        sets: list[tuple[str, tuple[int, ...], tuple[str, ...]]] = []
        if name == "gathers" or with_gathers:
            sets.append(("gathers", (len(axes["offset"]),) + shape, ("offset",) + lateral
                         + ("time",)))
        if name != "gathers":
            sets.append((name, shape, lateral + ("time",)))
        for ds_name, ds_shape, _ in sets:
            ch = chunks or _default_chunks(ds_shape)
            if ds_name == "image" and with_gathers and chunks is None:
                ch = f["gathers"].chunks[1:]
            f.create_dataset(ds_name, shape=ds_shape, dtype="f4", chunks=ch)
        for ax, values in axes.items():
            f.create_dataset(ax, data=values)
            f[ax].make_scale(ax)
            f[ax].attrs["units"] = UNITS[ax]
        for ds_name, _, dims in sets:
            dset = f[ds_name]
            for i, d in enumerate(dims):
                dset.dims[i].label = d
                dset.dims[i].attach_scale(f[d])
            dset.attrs["units"] = UNITS[ds_name]
        cx, cy = grid.cdp_xy()
        for cname, values in (("cdp_x", cx), ("cdp_y", cy)):
            ds = f.create_dataset(cname, data=values.astype(np.float64))
            ds.attrs["units"] = "m"
            for i, d in enumerate(lateral):
                ds.dims[i].attach_scale(f[d])
        if shotpoint is not None:
            write_shotpoint(f, grid, shotpoint, shotpoint_attrs)
        meta = {**grid.to_attrs(), **(attrs or {})}
        meta.update(
            kind=name,
            software=f"seis_hpc {__version__}",
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            config=config,
            history=json.dumps(list(history)),
        )
        for k, v in meta.items():
            f.attrs[k] = v if not isinstance(v, dict) else json.dumps(v)

    @classmethod
    def attach(cls, f: h5py.File, grid: BinGrid) -> VolumeWriter:
        """A writer over a file already laid out by another writer (e.g. reopened by every
        rank with the ``mpio`` driver)."""
        w = cls.__new__(cls)
        w.f, w.grid = f, grid
        return w

    @staticmethod
    def lateral_dims(grid: BinGrid) -> tuple[str, ...]:
        """Names of the lateral axes: ``("inline", "crossline")``, or ``("cmp",)`` in 2D."""
        return ("cmp",) if grid.is_2d else ("inline", "crossline")

    def put_all(self, name: str, data: np.ndarray) -> None:
        """Fill data set ``name`` with ``data`` (its full shape; converted to float32)."""
        self.f[name][...] = np.asarray(data, dtype=np.float32)

    def put(self, name: str, block: np.ndarray, rows: slice, cols: slice,
            lead: tuple = ()) -> None:
        """Write a block of bins into data set ``name``.

        Parameters
        ----------
        name : str
            ``"image"``, ``"gathers"``...
        block : numpy.ndarray
            Shape ``(rows, cols, nt)`` (grid rows are inline indices, columns crossline
            indices; in 2D one row of CMPs).
        rows, cols : slice
            Where the block goes, in grid indices from 0.
        lead : tuple
            Index of the leading axes (``(k,)``: offset class ``k`` of the gathers).
        """
        if self.grid.is_2d:
            self.f[name][lead + (cols,)] = block[0]
        else:
            self.f[name][lead + (rows, cols)] = block

    def put_lines(self, name: str, lines: slice, block: np.ndarray, lead: tuple = ()) -> None:
        """Write whole lines along the data set's first lateral axis: inlines, shape
        ``(n, n_crossline, nt)``; in 2D CMPs, shape ``(n, nt)``. ``lead`` as in :meth:`put`."""
        self.f[name][lead + (lines,)] = block


def write_shotpoint(f: h5py.File, grid: BinGrid, values, attrs: dict | None = None) -> None:
    """Write the ``shotpoint`` data set (one SP number per CMP of a 2D line) into ``f``.

    Raises
    ------
    SeisError
        A 3D grid, or not one value per CMP.
    """
    if not grid.is_2d:
        raise SeisError("shot points are a 2D line's annotation; this grid is 3D")
    v = np.asarray(values)
    if v.shape != grid.shape:
        raise SeisError(f"shotpoint: need one value per CMP {grid.shape}, got {v.shape}")
    ds = f.create_dataset("shotpoint", data=np.rint(v).astype(np.int32))
    ds.dims[0].attach_scale(f["cmp"])
    for k, val in (attrs or {}).items():
        ds.attrs[k] = val


def read_shotpoint(f: h5py.File) -> tuple[np.ndarray | None, dict]:
    """The ``shotpoint`` data set of an open volume and its attributes ((None, {}) if none)."""
    if "shotpoint" not in f:
        return None, {}
    ds = f["shotpoint"]
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in ds.attrs.items()
             if k not in ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME")}
    return ds[...].astype(np.int64), attrs


def read_volume(path: str | os.PathLike, name: str | None = None) -> Volume:
    """Read a volume written by :func:`write_volume` into memory.

    Parameters
    ----------
    path : path-like
        HDF5 file.
    name : str, optional
        ``"image"``, ``"vrms"`` or ``"gathers"``; default: the file's ``kind`` attribute.
    """
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        if not os.path.exists(path):
            raise
        raise SeisError(f"not an HDF5 file ({exc.__class__.__name__})", path) from None
    with f:
        name = name or f.attrs.get("kind")
        if name not in f:
            raise SeisError(f"no {name!r} data set (is this a seis_hpc volume?)", path)
        history = f.attrs.get("history", "[]")
        extra = {k: f.attrs[k] for k in f.attrs
                 if not k.startswith("grid_") and k not in ("config", "history", "kind")}
        sp, sp_attrs = read_shotpoint(f)
        return Volume(
            data=f[name][...],
            grid=BinGrid.from_attrs(f.attrs),
            time=f["time"][...],
            name=name,
            offset=f["offset"][...] if "offset" in f else None,
            config=str(f.attrs.get("config", "")),
            history=list(json.loads(history)),
            attrs=extra,
            shotpoint=sp,
            shotpoint_attrs=sp_attrs,
        )
