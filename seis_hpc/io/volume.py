"""The HDF5 volume format every seis_hpc output uses (images, velocities, image gathers).

Layout of one file::

    /<name>            float32, chunked; name is "image", "vrms" or "gathers"
                       dims 3D (inline, crossline, time); 2D (cmp, time);
                       gathers prepend (offset, ...)
    /inline, /crossline (2D: /cmp), /time [s], /offset [m]
                       1-D dimension scales attached to the data set
    /cdp_x, /cdp_y     bin-centre world coordinates [m], dims (inline, crossline) or (cmp)
    attributes         grid_* (see BinGrid.to_attrs), units, software, created,
                       config (the job's configuration text), history (one line per step)

xarray opens it with ``xr.open_dataset(path, engine="h5netcdf", phony_dims="access")``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
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
    """

    data: np.ndarray
    grid: BinGrid
    time: np.ndarray
    name: str = "image"
    offset: np.ndarray | None = None
    config: str = ""
    history: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)

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


def write_into(f: h5py.File, vol: Volume, chunks: tuple[int, ...] | None = None,
               allocate_only: bool = False) -> h5py.Dataset:
    """Write the axes, coordinates and attributes of ``vol`` into an open file.

    With ``allocate_only`` the data set is created but not filled (ranks fill tiles later).
    """
    dims = vol.dims()
    shape = tuple(vol.data.shape)
    dset = f.create_dataset(vol.name, shape=shape, dtype="f4",
                            chunks=chunks or _default_chunks(shape))
    if not allocate_only:
        dset[...] = np.asarray(vol.data, dtype=np.float32)
    axes = {"time": np.asarray(vol.time, dtype=np.float64)}
    if vol.grid.is_2d:
        axes["cmp"] = vol.grid.crosslines().astype(np.int32)
    else:
        axes["inline"] = vol.grid.inlines().astype(np.int32)
        axes["crossline"] = vol.grid.crosslines().astype(np.int32)
    if vol.offset is not None:
        axes["offset"] = np.asarray(vol.offset, dtype=np.float64)
    for name, values in axes.items():
        f.create_dataset(name, data=values)
        f[name].make_scale(name)
        f[name].attrs["units"] = UNITS[name]
    for i, d in enumerate(dims):
        dset.dims[i].label = d
        dset.dims[i].attach_scale(f[d])
    cx, cy = vol.grid.cdp_xy()
    lateral = dims[1:-1] if vol.name == "gathers" else dims[:-1]
    for name, values in (("cdp_x", cx), ("cdp_y", cy)):
        ds = f.create_dataset(name, data=values.astype(np.float64))
        ds.attrs["units"] = "m"
        for i, d in enumerate(lateral):
            ds.dims[i].attach_scale(f[d])
    dset.attrs["units"] = UNITS[vol.name]
    attrs = {**vol.grid.to_attrs(), **vol.attrs}
    attrs.update(
        kind=vol.name,
        software=f"seis_hpc {__version__}",
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        config=vol.config,
        history=json.dumps(list(vol.history)),
    )
    for k, v in attrs.items():
        f.attrs[k] = v if not isinstance(v, dict) else json.dumps(v)
    return dset


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
        return Volume(
            data=f[name][...],
            grid=BinGrid.from_attrs(f.attrs),
            time=f["time"][...],
            name=name,
            offset=f["offset"][...] if "offset" in f else None,
            config=str(f.attrs.get("config", "")),
            history=list(json.loads(history)),
            attrs=extra,
        )
