"""A prestack survey: the trace index of a SEG-Y/SU file plus its bin grid.

How the grid is found (distances in m, angles in degrees clockwise from north):

* **Given**: ``Survey.open(..., grid=BinGrid(...))`` bins the traces into that grid.
* **3D from headers**: when INLINE_3D/CROSSLINE_3D vary, the affine map (inline, crossline) ->
  (x, y) is solved by least squares over the traces, using CDP_X/CDP_Y where present, else the
  source-receiver midpoints. Its two columns must be perpendicular (a rotation and a scale),
  else the headers are refused. Bin numbers are the header numbers. The points may scatter
  inside their bins (true midpoints in CDP_X/CDP_Y, as many contractors write them): the RMS
  and largest distance from the bin centres, in bins, are reported (``bin_scatter_rms``,
  ``bin_scatter_max``); a point outside the bin its numbers name is refused.
* **2D line from header CDP numbers** (no inline/crossline headers, no ``cmp_interval`` given):
  when the CDP header (bytes 21-24) numbers positions consistently - traces of one CDP within
  half a CDP step of each other, consecutive CDP numbers a constant step apart, at least 1 m -
  the CMP numbers are the header CDP numbers and the CMP interval is that step (method
  ``"header-cdp"``). A file whose traces all carry one CDP number is one CMP gather. This also
  makes post-stack arbitrary lines (crooked paths through a 3D cube) 2D lines; the grid is then
  the straight line from the first to the last CDP, with CMPs spaced by the path length.
* **2D line** (midpoints spread across the line by less than ``max(4 x CMP interval, 10 % of
  the line length)``): a straight line is fitted to the midpoints (principal axis); CMP number
  = rounded projected position / CMP interval, numbered from 1, bin centres placed on the
  midpoints' own lattice. The CMP interval defaults to half the median receiver-group interval
  (6.25 m for 12.5 m groups); an inferred interval below 1 m is never used (12.5 m
  instead). CMP numbers increase with the header CDP numbers when those vary, else toward
  azimuth 0..180.
* **3D from midpoints** (no inline/crossline headers): the inline direction is the mean
  source -> receiver axis (the sail line for towed streamers), or the midpoints' principal axis
  for zero-offset data. Bin sizes: along the inline the CMP interval (default half the receiver
  interval, else 12.5 m); across it 25 m. Give ``grid=`` for anything else.

The index's ``cmp``, ``inline`` and ``crossline`` columns receive each trace's bin: 2D ``cmp`` =
``crossline`` = CMP number and ``inline`` = 0; 3D ``cmp`` = bin serial number from 1, inline-major.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid, load_bin_grid
from seis_hpc.io.domain import GEOGRAPHIC_UNITS, UNIT_NAMES
from seis_hpc.io.headermap import DEFAULT_FIELDS, TYPES, load_headermap
from seis_hpc.io.index import TraceIndex
from seis_hpc.io.traces import TraceReader

DEFAULT_BIN_INLINE = 12.5  # m, when the receiver interval cannot be measured
DEFAULT_BIN_CROSSLINE = 25.0  # m, 3D bins fitted to midpoints
MIN_CMP_INTERVAL = 1.0  # m: never infer a CMP interval below this


@dataclass
class Geometry:
    """The outcome of binning: the grid and each trace's bin numbers."""

    grid: BinGrid
    cmp: np.ndarray
    inline: np.ndarray
    crossline: np.ndarray
    method: str
    scatter: tuple[float, float] | None = None  # rms, max distance from bin centres (bins)
    outside: np.ndarray | None = None  # traces outside a given grid


class Survey:
    """A SEG-Y/SU survey with its trace index and bin grid.

    Attributes
    ----------
    index : TraceIndex
        One row per trace; ``cmp``/``inline``/``crossline`` hold the bins of :attr:`grid`.
    grid : BinGrid
        The bin grid (2D line or rotated 3D grid).
    method : str
        How the grid was found: ``"given"``, ``"headers"``, ``"header-cdp"``, ``"line-fit"`` or
        ``"midpoints"``.
    """

    def __init__(self, index: TraceIndex, geometry: Geometry):
        self.index = index
        self.grid = geometry.grid
        self.method = geometry.method

    @classmethod
    def open(cls, path: str | os.PathLike, index_path: str | os.PathLike | None = None,
             headermap=None, cmp_interval: float | None = None, grid: BinGrid | None = None,
             *, is_2d: bool | None = None, save: bool = True,
             coordinate_units: str | None = None) -> Survey:
        """Index ``path`` (or reuse its up-to-date index), bin its traces and save the bins.

        An index file binned before by the same request (``cmp_interval``, ``grid``,
        ``is_2d``: its ``geometry_request`` attribute), or a spatially blocked index binned
        into the given ``grid`` (``synth``), is not binned again: its columns stay on file,
        read when asked for, and :meth:`fold`, :meth:`offset_stats` and :meth:`report`
        stream them, so that opening a large survey takes memory for its grid, not its
        traces.

        Parameters
        ----------
        path : path-like
            SEG-Y or SU file, or a trace index file (``*.index.h5``).
        index_path : path-like, optional
            Where the index is (or goes); default beside the file or in the cache.
        headermap : path-like, optional
            Header byte map TOML file.
        cmp_interval : float, optional
            CMP interval (m) of a 2D line, or the inline bin size of a midpoint-fitted 3D grid.
        grid : BinGrid or path-like, optional
            Use this grid instead of finding one (a path: a bin grid TOML file, see
            :func:`seis_hpc.geometry.load_bin_grid`); traces outside it are reported.
        is_2d : bool, optional
            Force 2D or 3D instead of deciding from the midpoints' crossline spread.
        save : bool
            Write the index (atomically) when it is new or its bins changed; False keeps
            everything in memory.
        coordinate_units : {"metres", "feet"}, optional
            How to read coordinates whose headers (bytes 89-90) say they are geographic:
            kept in the index, so later steps on the same index accept them.

        Raises
        ------
        SeisError
            No usable coordinates, inconsistent inline/crossline headers, bad file.
        """
        hmap = load_headermap(headermap)
        if grid is not None and not isinstance(grid, BinGrid):
            grid = load_bin_grid(grid)
        if os.path.isfile(path) and h5py.is_hdf5(path):
            idx = TraceIndex.open(path)
        else:
            idx = TraceIndex.for_file(path, index_path, hmap, save=False)
        units_changed = assume_units(idx, coordinate_units)
        survey, changed = cls._from_index(idx, cmp_interval, grid, is_2d)
        changed = changed or units_changed
        if save and changed:
            idx.save(index_path or idx.path)
        return survey

    @classmethod
    def from_index(cls, idx: TraceIndex, cmp_interval: float | None = None,
                   grid: BinGrid | None = None, is_2d: bool | None = None) -> Survey:
        """Bin the traces of an index (in memory; the index file is not rewritten).

        Parameters are those of :meth:`open`.
        """
        return cls._from_index(idx, cmp_interval, grid, is_2d)[0]

    @classmethod
    def _from_index(cls, idx, cmp_interval, grid, is_2d) -> tuple[Survey, bool]:
        _refuse_headers_only(idx)
        request = geometry_request(cmp_interval, grid, is_2d)
        stored = stored_grid(idx, request, grid)
        if stored is not None:
            # binned already, by this same request: its columns stay on file, read in
            # chunks when asked for (issue 19: rank 0 never holds the survey)
            return cls(idx, Geometry(stored, None, None, None, str(idx.attrs["geometry"]))), \
                False
        geo = fit_geometry(idx, cmp_interval=cmp_interval, grid=grid, is_2d=is_2d)
        changed = idx.path is None or any(
            idx.attrs.get(k) != v for k, v in geo.grid.to_attrs().items()) or not (
            np.array_equal(idx["cmp"], geo.cmp) and np.array_equal(idx["inline"], geo.inline)
            and np.array_equal(idx["crossline"], geo.crossline))
        # (the request alone changes no file: it is saved with new bins, e.g. by `index`)
        idx["cmp"], idx["inline"], idx["crossline"] = geo.cmp, geo.inline, geo.crossline
        out = geo.outside if geo.outside is not None else np.zeros(0, np.int64)
        idx.attrs.update(_geometry_attrs(geo, request, int(out.size),
                                         int(out[0]) if out.size else -1))
        return cls(idx, geo), changed

    @classmethod
    def index_file(cls, path: str | os.PathLike, index_path: str | os.PathLike | None = None,
                   headermap=None, cmp_interval: float | None = None,
                   grid: BinGrid | None = None, *, is_2d: bool | None = None,
                   coordinate_units: str | None = None, check_samples: bool = False
                   ) -> Survey:
        """Index ``path``, bin its traces and write the index (``seis-hpc index``).

        The same file as :meth:`open` followed by ``index.save()``, built block by block
        (:meth:`TraceIndex.write <seis_hpc.io.index.TraceIndex.write>`, issue 19): headers,
        columns, header checks, ``coordinate_units`` and, with a given ``grid``, the binning
        hold one block of traces at a time. Without a grid the fit
        (:func:`fit_geometry`) reads the columns it uses from the file being written, one at
        a time as it asks for them, and holds only those (see :func:`bin_index_file`). An
        up-to-date index that exists already, or an index file given as ``path``, is copied
        and the copy binned the same way (again only if :meth:`open` would bin it again).

        Parameters are those of :meth:`open`; ``check_samples`` scans every sample for
        NaN/Inf after binning.

        Returns
        -------
        Survey
            The survey of the written index (its columns stay on file; :attr:`index`'s
            ``path`` is the index file).
        """
        hmap = load_headermap(headermap)
        if grid is not None and not isinstance(grid, BinGrid):
            grid = load_bin_grid(grid)
        if os.path.isfile(path) and h5py.is_hdf5(path):
            existing = TraceIndex.open(path)
        else:
            existing = TraceIndex.find(path, index_path, hmap)
        if existing is not None:
            out = _rewrite_index(existing, index_path, cmp_interval, grid, is_2d,
                                 coordinate_units, check_samples)
        else:
            def finish(tmp):
                bin_index_file(tmp, cmp_interval, grid, is_2d, coordinate_units)

            out = TraceIndex.write(path, index_path, hmap, finish=finish,
                                   check_samples=check_samples)
        return cls.open(out, cmp_interval=cmp_interval, grid=grid, is_2d=is_2d, save=False,
                        coordinate_units=coordinate_units)

    # -- properties -----------------------------------------------------------------------
    @property
    def is_2d(self) -> bool:
        """True for a 2D line."""
        return self.grid.is_2d

    def bin_serial(self) -> np.ndarray:
        """Each trace's bin as a flat index into ``grid.shape`` (C order); -1 outside."""
        return _bin_serial(self.grid, self.index["inline"], self.index["crossline"])

    def _chunks(self, names, traces: np.ndarray | None = None):
        """The columns ``names`` (and each row's bin serial, ``"bin"``) chunk by chunk: the
        whole columns in one chunk when they are in memory, else streamed from the index
        file (:func:`~seis_hpc.engine.stream_plan.column_chunks`; bounded memory)."""
        from seis_hpc.engine.stream_plan import PLAN_CHUNK, column_chunks, take_rows

        need = ["inline", "crossline", *names]

        def with_bin(cols):
            cols["bin"] = _bin_serial(self.grid, cols["inline"], cols["crossline"])
            return cols

        if traces is not None:
            sel = np.asarray(traces, dtype=np.int64)
            for a in range(0, max(sel.size, 1), PLAN_CHUNK):
                yield with_bin(take_rows(self.index, need, sel[a:a + PLAN_CHUNK]))
            return
        idx = self.index
        if idx.path is None or all(k in idx._columns for k in need):
            yield with_bin({k: idx[k] for k in need})
            return
        for _, cols in column_chunks(idx, need):
            yield with_bin(cols)

    def fold(self, traces: np.ndarray | None = None) -> np.ndarray:
        """Number of traces in each bin, shaped ``grid.shape``.

        Parameters
        ----------
        traces : numpy.ndarray, optional
            Count only these traces (trace numbers from 0).
        """
        n = self.grid.n_bins
        fold = np.zeros(n, np.int64)
        for c in self._chunks([], traces):
            b = c["bin"]
            fold += np.bincount(b[b >= 0], minlength=n)
        return fold.reshape(self.grid.shape)

    def offset_stats(self) -> dict[str, np.ndarray]:
        """Minimum, maximum and mean source-receiver offset (m) per bin (NaN where empty).

        Returns
        -------
        dict
            ``"min"``, ``"max"``, ``"mean"``, each shaped ``grid.shape``.
        """
        n = self.grid.n_bins
        count = np.zeros(n, np.int64)
        total = np.zeros(n)
        lo = np.full(n, np.inf)
        hi = np.full(n, -np.inf)
        for c in self._chunks(["offset"]):
            ok = c["bin"] >= 0
            b, off = c["bin"][ok], np.asarray(c["offset"])[ok]
            count += np.bincount(b, minlength=n)
            total += np.bincount(b, weights=off, minlength=n)
            np.minimum.at(lo, b, off)
            np.maximum.at(hi, b, off)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
        empty = count == 0
        lo[empty] = hi[empty] = np.nan
        return {k: v.reshape(self.grid.shape) for k, v in
                (("min", lo), ("max", hi), ("mean", mean))}

    def azimuth_histogram(self, n_sectors: int = 12) -> tuple[np.ndarray, np.ndarray]:
        """Traces per source -> receiver azimuth sector in each bin.

        Parameters
        ----------
        n_sectors : int
            Number of equal sectors over 0..360 degrees.

        Returns
        -------
        counts : numpy.ndarray
            int64, shaped ``grid.shape + (n_sectors,)``.
        edges : numpy.ndarray
            Sector edges (degrees), length ``n_sectors + 1``.
        """
        edges = np.linspace(0.0, 360.0, n_sectors + 1)
        flat = np.zeros(self.grid.n_bins * n_sectors, np.int64)
        for c in self._chunks(["azimuth"]):
            ok = c["bin"] >= 0
            sector = np.minimum((np.asarray(c["azimuth"])[ok] / 360.0 * n_sectors)
                                .astype(np.int64), n_sectors - 1)
            flat += np.bincount(c["bin"][ok] * n_sectors + sector,
                                minlength=self.grid.n_bins * n_sectors)
        return flat.reshape(self.grid.shape + (n_sectors,)), edges

    def report(self) -> dict:
        """Geometry summary for ``seis-hpc info``/``index``: grid, fold and offset ranges."""
        fold = self.fold()
        live = fold[fold > 0]
        off_min, off_max, last_source = np.inf, -np.inf, -1
        for c in self._chunks(["offset", "source_id"] if self.domain != "post-stack"
                              else ["offset"]):
            off = np.asarray(c["offset"])
            if off.size:
                off_min, off_max = min(off_min, float(off.min())), max(off_max,
                                                                      float(off.max()))
                if "source_id" in c:
                    last_source = max(last_source, int(np.max(c["source_id"])))
        return {
            "geometry": "2D" if self.is_2d else "3D",
            "method": self.method,
            "grid": self.grid.describe(),
            "bins": int(self.grid.n_bins),
            "live_bins": int(live.size),
            "fold_min": int(live.min()) if live.size else 0,
            "fold_mean": float(live.mean()) if live.size else 0.0,
            "fold_max": int(live.max()) if live.size else 0,
            "offset_min_m": off_min,
            "offset_max_m": off_max,
            "shots": 0 if self.domain == "post-stack" else last_source + 1,
            "domain": self.domain,
            "traces_outside_grid": int(self.index.attrs.get("outside_grid", 0)),
            "warnings": self.warnings(),
            **({"bin_scatter_rms": round(float(self.index.attrs["bin_scatter_rms"]), 4),
                "bin_scatter_max": round(float(self.index.attrs["bin_scatter_max"]), 4)}
               if self.method == "headers" and "bin_scatter_rms" in self.index.attrs else {}),
        }

    @property
    def domain(self) -> str:
        """``"shot"``, ``"cmp"`` or ``"post-stack"`` (see :mod:`seis_hpc.io.domain`)."""
        return str(self.index.attrs.get("domain", "shot"))

    def warnings(self) -> list[str]:
        """One-line findings about the headers (see :mod:`seis_hpc.io.domain`) and the
        traces outside a given grid."""
        out = header_warnings(self.index)
        n = int(self.index.attrs.get("outside_grid", 0))
        if n:
            out.append(f"{n} trace(s) fall outside the given bin grid (first: trace "
                       f"{int(self.index.attrs['first_outside_grid'])}); they are not used")
        return out

    def check_for(self, step: str) -> None:
        """Refuse what a prestack, geometry-dependent ``step`` cannot use: post-stack data,
        and geographic coordinates nobody said how to read.

        Raises
        ------
        SeisError
            One line naming the file and the header that decides.
        """
        if self.domain == "post-stack":
            raise SeisError(f"{step} needs prestack gathers, but this is post-stack data (offset "
                            "header 0 and no receiver coordinates on every trace, one trace "
                            "per bin)", self.index.segy_path)
        code = int(self.index.attrs.get("coordinate_units", 0))
        if code in GEOGRAPHIC_UNITS and not self.index.attrs.get("coordinate_units_assumed"):
            raise SeisError(f"{step} needs coordinates in metres or feet, but trace header "
                            f"bytes 89-90 say {UNIT_NAMES[code]} ({code}); if they are "
                            "lengths, run seis-hpc index FILE --coordinate-units metres|feet",
                            self.index.segy_path)


def _bin_serial(g: BinGrid, inline, crossline) -> np.ndarray:
    """Bins (inline, crossline numbers) as flat indices into ``g.shape`` (C order); -1
    outside the grid."""
    il = np.asarray(inline) - g.inline0
    xl = np.asarray(crossline) - g.crossline0
    inside = (il >= 0) & (il < g.n_inline) & (xl >= 0) & (xl < g.n_crossline)
    return np.where(inside, il * g.n_crossline + xl, -1)


def geometry_request(cmp_interval: float | None, grid: BinGrid | None,
                     is_2d: bool | None) -> str:
    """What a binning was asked for (JSON text, stored in the index as ``geometry_request``):
    an index binned by the same request is not binned again."""
    return json.dumps({"cmp_interval": None if cmp_interval is None else float(cmp_interval),
                       "grid": None if grid is None else grid.to_attrs(),
                       "is_2d": is_2d}, sort_keys=True, default=float)


def stored_grid(idx: TraceIndex, request: str, grid: BinGrid | None) -> BinGrid | None:
    """The grid of an index file binned by the same ``request`` (or binned into the same
    given ``grid``: a spatially blocked index written by ``synth``), whose ``cmp``,
    ``inline`` and ``crossline`` columns therefore hold what binning would give; None when
    the index must be binned (held in memory or with columns loaded, binned otherwise, or
    older than ``geometry_request``)."""
    a = idx.attrs
    # columns in memory may have been changed since the file was binned: bin them
    if idx.path is None or idx._columns or "grid_x0" not in a or not a.get("geometry"):
        return None
    try:
        stored = BinGrid.from_attrs(a)
    except (KeyError, TypeError, ValueError):
        return None
    same = a.get("geometry_request") == request or (
        grid is not None and a.get("geometry") == "given" and "geometry_request" not in a
        and a.get("order") == "spatial"
        and all(a.get(k) == v for k, v in grid.to_attrs().items()))
    if not same or not {"cmp", "inline", "crossline"} <= set(idx.keys()):
        return None
    return stored


def header_warnings(idx: TraceIndex) -> list[str]:
    """The header warnings stored in an index (empty for indexes without them)."""
    raw = idx.attrs.get("warnings")
    return list(json.loads(raw)) if raw else []


FEET = 0.3048  # m per international foot
_LENGTH_COLUMNS = ("sx", "sy", "rx", "ry", "mx", "my", "cdp_x", "cdp_y", "offset")


def assume_units(idx: TraceIndex, units: str | None) -> bool:
    """Record how to read coordinates the headers call geographic; True if the index changed.

    ``"feet"`` converts the coordinate columns to metres once (an index already converted
    is left alone). A file whose headers say length units needs nothing.
    """
    if not _units_change(idx, units):
        return False
    if units == "feet":
        for k in _LENGTH_COLUMNS:
            idx[k] = _feet_to_metres(idx[k])
    idx.attrs["coordinate_units_assumed"] = units
    return True


def _units_change(idx: TraceIndex, units: str | None) -> bool:
    """True when ``units`` must be recorded (and, for feet, applied) in the index; refuses
    units other than those it reads already."""
    if units is None:
        return False
    _check_units(units)
    before = idx.attrs.get("coordinate_units_assumed")
    if before == units:
        return False
    if before:
        raise SeisError(f"the index already reads coordinates as {before}; rebuild it to "
                        f"read them as {units}", idx.segy_path)
    return True


def _refuse_headers_only(idx: TraceIndex) -> None:
    if idx.attrs.get("headers_only"):
        raise SeisError("a headers-only index (seis-hpc synth --headers-only) holds the "
                        "geometry of a survey without its samples: plan the job with "
                        "seis-hpc pstm INDEX ... --dry-run --ranks N",
                        idx.path if idx.path is not None else "index")


def _rewrite_index(idx: TraceIndex, index_path, cmp_interval, grid, is_2d, units,
                   check_samples: bool) -> Path:
    """``seis-hpc index`` over an existing index file ``idx`` (an up-to-date index of the
    file, or an index given as FILE): what :meth:`Survey.open` and ``save`` give, made on a
    copy of it block by block (:func:`bin_index_file`): the units recorded, the traces
    binned again unless binned by the same request already. The index file written."""
    from seis_hpc.io.atomic import atomic_output
    from seis_hpc.io.index import cached_index_path, default_index_path, provenance_attrs

    convert = _units_change(idx, units)
    _refuse_headers_only(idx)
    request = geometry_request(cmp_interval, grid, is_2d)
    # feet rewrite the coordinates: binned again (as Survey.open bins changed columns)
    rebin = (convert and units == "feet") or stored_grid(idx, request, grid) is None

    def write(target: Path) -> None:
        with atomic_output(target) as tmp:
            shutil.copyfile(idx.path, tmp)
            if convert:
                _record_units(tmp, units)
            if rebin:
                bin_index_file(tmp, cmp_interval, grid, is_2d)
            with h5py.File(tmp, "r+") as f:
                f.attrs.update(provenance_attrs())
            if check_samples:
                TraceIndex.open(tmp).check_samples()

    target = Path(index_path) if index_path else default_index_path(idx.segy_path)
    try:
        write(target)
    except PermissionError:
        if index_path:
            raise
        target = cached_index_path(idx.segy_path)
        write(target)
    return target


def _record_units(path, units: str) -> None:
    """Record ``units`` in an index file (feet: its coordinate columns converted to metres,
    block by block)."""
    from seis_hpc.io.index import FileColumns

    with h5py.File(path, "r+") as f:
        store = FileColumns(f, int(f.attrs["n_traces"]))
        if units == "feet":
            for a, b in store.spans():
                for k in _LENGTH_COLUMNS:
                    store.write(k, a, b, _feet_to_metres(store.read(k, a, b)))
        f.attrs["coordinate_units_assumed"] = units


def _check_units(units: str) -> None:
    if units not in ("metres", "feet"):
        raise SeisError(f"coordinate units must be 'metres' or 'feet' (got {units!r})")


def _feet_to_metres(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64) * FEET


def _geometry_attrs(geo: Geometry, request: str, n_outside: int, first_outside: int) -> dict:
    """Index attributes of a binning: grid, method, request, scatter, traces outside."""
    attrs = {**geo.grid.to_attrs(), "geometry": geo.method, "geometry_request": request}
    if geo.scatter is not None:
        attrs["bin_scatter_rms"], attrs["bin_scatter_max"] = geo.scatter
    attrs["outside_grid"] = n_outside
    attrs["first_outside_grid"] = first_outside
    return attrs


class _Uncached(TraceIndex):
    """An index file whose columns are read from the file each time they are asked for,
    never kept: a fit then holds only the columns in use at the moment."""

    def __getitem__(self, name: str) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise KeyError(name)
            return f[name][...]


def bin_index_file(path: str | os.PathLike, cmp_interval: float | None = None,
                   grid: BinGrid | None = None, is_2d: bool | None = None,
                   coordinate_units: str | None = None) -> None:
    """Read coordinates as ``coordinate_units`` and bin an index file in place, as
    :meth:`Survey.open` bins an index held in memory (same columns and attributes).

    Memory (issue 19):

    * ``coordinate_units="feet"`` and a given ``grid``: one block of
      :data:`seis_hpc.io.index._CHUNK` traces (the points' checks and the bins are
      computed and written block by block);
    * no ``grid``: the fit (:func:`fit_geometry`) holds the columns it uses, read whole
      from the file when it asks for them and dropped after: the points (``mx``, ``my``, or
      ``cdp_x``, ``cdp_y``: 16 B a trace) and, by the method, ``header_inline``,
      ``header_crossline``, ``header_cdp``, ``source_id``, ``channel``, ``rx``, ``ry``,
      ``offset``, ``azimuth`` (8 B a trace each) and its own work arrays, then the
      bins (``cmp``, ``inline``, ``crossline``: 24 B a trace) as they are written. Measured
      (``tests/test_index_stream.py``, a 2D line fitted from its header CDPs): 68 B a trace
      at the peak, against about 500 B holding every column.

    Parameters are those of :meth:`Survey.open`.
    """
    from seis_hpc.io.index import FileColumns

    idx = _Uncached.open(path)
    n = idx.n_traces
    if _units_change(idx, coordinate_units):
        _record_units(path, coordinate_units)
        idx.attrs["coordinate_units_assumed"] = coordinate_units
    request = geometry_request(cmp_interval, grid, is_2d)
    _check_interval(cmp_interval)
    if grid is not None:
        with h5py.File(path, "r") as f:  # (read only: an error reads the file again)
            cx, cy = _point_columns(idx, FileColumns(f, n))
        with h5py.File(path, "r+") as f:
            store = FileColumns(f, n)
            n_out, first_out = 0, -1
            for a, b in store.spans():
                geo = _bin_into(grid, store.read(cx, a, b), store.read(cy, a, b), "given")
                for k in ("cmp", "inline", "crossline"):
                    store.write(k, a, b, getattr(geo, k))
                if geo.outside.size and first_out < 0:
                    first_out = a + int(geo.outside[0])
                n_out += int(geo.outside.size)
            geo.outside = None
            attrs = _geometry_attrs(geo, request, n_out, first_out)
    else:
        with h5py.File(path, "r") as f:
            store = FileColumns(f, n)
            geo = fit_geometry(idx, cmp_interval=cmp_interval, is_2d=is_2d, store=store)
        out = geo.outside if geo.outside is not None else np.zeros(0, np.int64)
        attrs = _geometry_attrs(geo, request, int(out.size), int(out[0]) if out.size else -1)
        with h5py.File(path, "r+") as f:
            store = FileColumns(f, n)
            for k in ("cmp", "inline", "crossline"):
                col = getattr(geo, k)
                setattr(geo, k, None)
                for a, b in store.spans():
                    store.write(k, a, b, col[a:b])
                del col
    with h5py.File(path, "r+") as f:
        for k, v in attrs.items():
            f.attrs[k] = v


# -- fitting -----------------------------------------------------------------------------------
def open_traces(path: str | os.PathLike, bin_cmps: bool = False) -> TraceReader:
    """The trace reader of a SEG-Y/SU file, with its trace index.

    Parameters
    ----------
    path : path-like
        SEG-Y or SU file.
    bin_cmps : bool
        Bin the traces (:meth:`Survey.open`) so that the index's ``cmp`` column holds the
        survey's CMP numbers; else the header values.

    Returns
    -------
    TraceReader
        Its index is an up-to-date index file of ``path`` if there is one, else a scan kept
        in memory (nothing is written).
    """
    if bin_cmps:
        return Survey.open(path, save=False).index.reader()
    return TraceIndex.for_file(path, save=False).reader()


# index column -> header map name of the coordinate fields binned
_COORDINATES = {"sx": "sx", "sy": "sy", "rx": "gx", "ry": "gy", "cdp_x": "cdp_x",
                "cdp_y": "cdp_y"}


def check_coordinates(idx: TraceIndex, columns, store=None) -> None:
    """Refuse a trace whose coordinate, after the SEG-Y scalar, lies beyond
    :data:`seis_hpc.limits.COORD_MAX` (1e8 m): a wrong scalar (+10000 for -100) or garbage in
    the field would otherwise give bins of thousands of km and an all-zero image.

    ``store`` (:class:`~seis_hpc.io.index.FileColumns`): read the columns block by block
    from there instead of whole from ``idx``.

    Raises
    ------
    SeisError
        Naming the file, the trace (from 0, with FFID and channel), the header field with its
        bytes, and the coordinate scalar of that trace.
    """
    from seis_hpc.limits import COORD_MAX

    store = store if store is not None else _Whole(idx)
    for col in columns:
        for a, b in store.spans():
            v = store.read(col, a, b)
            bad = np.flatnonzero(~(np.abs(v) <= COORD_MAX))
            if bad.size:
                _coordinate_error(idx, col, a + int(bad[0]), float(v[bad[0]]))


def _coordinate_error(idx: TraceIndex, col: str, k: int, value: float) -> None:
    """Raise the error of :func:`check_coordinates` for trace ``k``."""
    from seis_hpc.limits import COORD_MAX

    fields = {f.split(":")[0]: f.split(":")[1:] for f in
              str(idx.attrs.get("headermap", "")).split(", ") if f.count(":") == 2}
    name = _COORDINATES[col]
    default = DEFAULT_FIELDS[name]
    byte, kind = fields.get(name, (default.byte, default.type))
    byte, size = int(byte), TYPES.get(kind, (None, 4))[1]
    sbyte = int(fields.get("coordinate_scalar", (DEFAULT_FIELDS["coordinate_scalar"].byte,))[0])
    who = idx.take(["ffid", "channel"], [k])
    raise SeisError(
        f"trace {k} (FFID {int(who['ffid'][0])}, channel {int(who['channel'][0])}): "
        f"{name} (trace header bytes {byte}-{byte + size - 1}) is {value:.4g} m after the "
        f"coordinate scalar{_scalar_text(idx, k, sbyte)}, beyond {COORD_MAX:g} m (wrong "
        f"coordinate scalar, bytes {sbyte}-{sbyte + 1}?)", idx.segy_path)


class _Whole:
    """The columns of an index as one block (the store interface of
    :class:`~seis_hpc.io.index.FileColumns`)."""

    def __init__(self, idx: TraceIndex):
        self.idx = idx

    def read(self, name: str, a: int, b: int) -> np.ndarray:
        return self.idx[name][a:b]

    def spans(self):
        yield 0, self.idx.n_traces


def _scalar_text(idx: TraceIndex, k: int, byte: int) -> str:
    """`` <value>``: the coordinate scalar of trace ``k`` read from the file ('' if unread)."""
    try:
        bo = ">" if idx.attrs.get("endian", "big") == "big" else "<"
        with open(idx.segy_path, "rb") as fh:
            fh.seek(int(idx.take(["byte_offset"], [k])["byte_offset"][0]) + byte - 1)
            return f" {int(np.frombuffer(fh.read(2), dtype=bo + 'i2')[0]):+d}"
    except (OSError, IndexError, ValueError):
        return ""


def _points(idx: TraceIndex, store=None) -> tuple[np.ndarray, np.ndarray]:
    """The points to bin: midpoints, or CDP_X/CDP_Y when there are no source/receiver
    coordinates (stacked data). Coordinates beyond 1e8 m are refused."""
    cx, cy = _point_columns(idx, store)
    return idx[cx], idx[cy]


def _point_columns(idx: TraceIndex, store=None) -> tuple[str, str]:
    """The columns of :func:`_points`, checked (block by block from ``store`` if given)."""
    store = store if store is not None else _Whole(idx)

    def nonzero(k):
        return any(bool(np.any(store.read(k, a, b) != 0)) for a, b in store.spans())

    if any(nonzero(k) for k in ("sx", "sy", "rx", "ry")):
        check_coordinates(idx, ("sx", "sy", "rx", "ry"), store)
        return "mx", "my"
    if nonzero("cdp_x") or nonzero("cdp_y"):
        check_coordinates(idx, ("cdp_x", "cdp_y"), store)
        return "cdp_x", "cdp_y"
    keys = ("ffid", "channel", "header_cdp", "header_offset", "header_inline",
            "header_crossline")
    if all(not nonzero(k) for k in keys):
        raise SeisError("all trace headers are zero (no coordinates, FFID, channel, CDP or "
                        "offset): cannot build geometry", idx.segy_path)
    raise SeisError("missing coordinates: SX/SY/GX/GY (bytes 73-88) and CDP_X/CDP_Y (181-188) "
                    "are all zero: cannot build geometry (give a header map if they are "
                    "elsewhere)", idx.segy_path)


def receiver_interval(idx: TraceIndex) -> float | None:
    """Median distance (m) between consecutive channels of the same shot; None if unknown."""
    sid, ch = idx["source_id"], idx["channel"]
    order = np.lexsort((ch, sid))
    rx, ry, sid = idx["rx"][order], idx["ry"][order], sid[order]
    same = sid[1:] == sid[:-1]
    d = np.hypot(np.diff(rx), np.diff(ry))[same]
    d = d[d > 1e-6]
    if not d.size:
        return None
    # Mean of the spacings near the median: averages away the rounding of coordinates to
    # whole cm (a 12.5 m spacing at an angle reads 12.49..12.51 m trace by trace).
    med = float(np.median(d))
    return round(float(d[np.abs(d - med) <= 0.02 * med].mean()), 3)


def _lattice(s: np.ndarray, step: float) -> tuple[float, np.ndarray]:
    """Origin (m) of a lattice of spacing ``step`` that puts the points ``s`` nearest to bin
    centres (circular mean of their phase), and each point's rounded lattice number."""
    ang = 2 * np.pi * s / step
    phase = math.atan2(float(np.sin(ang).sum()), float(np.cos(ang).sum())) / (2 * np.pi)
    s0 = phase * step
    k = np.rint((s - s0) / step).astype(np.int64)
    return s0, k


def _pca(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid, major and minor unit vectors of the points."""
    c = np.array([x.mean(), y.mean()])
    cov = np.cov(np.vstack([x - c[0], y - c[1]])) if len(x) > 1 else np.eye(2)
    w, v = np.linalg.eigh(np.atleast_2d(cov))
    major = v[:, np.argmax(w)]
    return c, major, np.array([major[1], -major[0]])


def _azimuth(u: np.ndarray) -> float:
    return math.degrees(math.atan2(u[0], u[1])) % 360.0


def fit_geometry(idx: TraceIndex, cmp_interval: float | None = None, grid: BinGrid | None = None,
                 is_2d: bool | None = None, store=None) -> Geometry:
    """Find the bin grid of an indexed survey and each trace's bin (see the module text).

    Parameters
    ----------
    idx : TraceIndex
        The survey's index.
    cmp_interval : float, optional
        CMP interval (m); default half the median receiver interval.
    grid : BinGrid, optional
        Use this grid.
    is_2d : bool, optional
        Force 2D or 3D.
    store : FileColumns, optional
        Check the coordinates block by block from here (an index file) instead of whole.

    Returns
    -------
    Geometry
    """
    _check_interval(cmp_interval)
    x, y = _points(idx, store)
    if grid is not None:
        return _bin_into(grid, x, y, "given")
    il_h, xl_h = idx["header_inline"], idx["header_crossline"]
    has_ilxl = (np.any(il_h != 0) or np.any(xl_h != 0)) and \
        (np.unique(il_h).size > 1 or np.unique(xl_h).size > 1)
    if has_ilxl and is_2d is not True:
        return _fit_headers(idx, x, y)
    if cmp_interval is None and is_2d is not False:
        geo = _fit_header_cdp(idx, x, y)
        if geo is not None:
            return geo
    rec = receiver_interval(idx)
    c, major, minor = _pca(x, y)
    s = (x - c[0]) * major[0] + (y - c[1]) * major[1]
    t = (x - c[0]) * minor[0] + (y - c[1]) * minor[1]
    interval = cmp_interval or (rec / 2 if rec else None)
    if interval is None:
        gaps = np.diff(np.unique(np.round(s, 3)))
        gaps = gaps[gaps > 1e-3]
        interval = float(np.median(gaps)) if gaps.size else DEFAULT_BIN_INLINE
    if cmp_interval is None and interval < MIN_CMP_INTERVAL:
        interval = DEFAULT_BIN_INLINE  # a sub-metre spacing is rounding noise, not a CMP interval
    if is_2d is None:
        spread_s = np.ptp(s) if s.size else 0.0
        spread_t = (np.percentile(t, 99) - np.percentile(t, 1)) if t.size else 0.0
        is_2d = spread_t <= max(4 * interval, 0.1 * spread_s)
    if is_2d:
        return _fit_line(idx, c, major, s, interval)
    return _fit_midpoints(idx, x, y, interval)


def _check_interval(cmp_interval: float | None) -> None:
    if cmp_interval is not None and not cmp_interval > 0:
        raise SeisError(f"CMP interval must be > 0 m (got {cmp_interval})")


def _fit_header_cdp(idx: TraceIndex, x: np.ndarray, y: np.ndarray) -> Geometry | None:
    """A 2D line numbered by the header CDPs, when they are consistent (module text); None
    otherwise."""
    cdp = np.asarray(idx["header_cdp"], dtype=np.int64)
    u, inv = np.unique(cdp, return_inverse=True)
    inv = inv.ravel()
    if not np.any(u) or len(x) < 2:
        return None
    if u.size == 1:  # one CDP gather: one CMP at the midpoints' centre
        c, major, _ = _pca(x, y)
        if _azimuth(major) >= 180.0:
            major = -major
        grid = BinGrid.line(float(c[0]), float(c[1]), _azimuth(major), DEFAULT_BIN_INLINE,
                            int(u[0]), 1)
        return Geometry(grid, cdp.copy(), np.zeros_like(cdp), cdp.copy(), "header-cdp")
    n = np.bincount(inv)
    px, py = np.bincount(inv, x) / n, np.bincount(inv, y) / n
    seg = np.hypot(np.diff(px), np.diff(py))
    step = seg / np.diff(u)
    b = float(np.median(step))
    # post-stack, one trace per CDP (an arbitrary line): the numbers order the traces even
    # where the path's steps vary; prestack CMPs must be evenly spaced to be trusted
    one_each = idx.attrs.get("domain") == "post-stack" and u.size == len(cdp)
    if b < MIN_CMP_INTERVAL or (not one_each and np.any(np.abs(step - b) > 0.25 * b)):
        return None
    if np.hypot(x - px[inv], y - py[inv]).max() > 0.5 * b:
        return None
    chord = np.array([px[-1] - px[0], py[-1] - py[0]])
    length = float(np.hypot(*chord))
    # straight: CMP interval from the chord (exact on a line); crooked: from the path
    interval = length / float(u[-1] - u[0]) if length > 0.99 * seg.sum() else b
    rec = receiver_interval(idx)
    if rec and abs(rec / 2 - interval) < 0.01 * interval:
        interval = rec / 2  # the nominal spacing, free of the coordinates' rounding
    grid = BinGrid.line(float(px[0]), float(py[0]), _azimuth(chord / length), interval,
                        int(u[0]), int(u[-1] - u[0]) + 1)
    return Geometry(grid, cdp.copy(), np.zeros_like(cdp), cdp.copy(), "header-cdp")


def _fit_line(idx: TraceIndex, c: np.ndarray, u: np.ndarray, s: np.ndarray, interval: float
              ) -> Geometry:
    cdp = idx["header_cdp"]
    flip = False
    if np.unique(cdp).size > 1:
        flip = np.corrcoef(s, cdp.astype(np.float64))[0, 1] < 0
    elif _azimuth(u) >= 180.0:
        flip = True
    if flip:
        u, s = -u, -s
    s0, k = _lattice(s, interval)
    kmin, kmax = int(k.min()), int(k.max())
    origin = c + (s0 + kmin * interval) * u
    grid = BinGrid.line(float(origin[0]), float(origin[1]), _azimuth(u), float(interval), 1,
                        kmax - kmin + 1)
    number = k - kmin + 1
    return Geometry(grid, number, np.zeros_like(number), number, "line-fit")


def _fit_midpoints(idx: TraceIndex, x: np.ndarray, y: np.ndarray, bin_inline: float
                   ) -> Geometry:
    off = idx["offset"]
    moving = off > 1e-6
    if moving.any():
        # Doubled-angle mean: the streamer axis, whichever way each trace points along it.
        a = np.radians(idx["azimuth"][moving]) * 2
        axis = math.atan2(float(np.sin(a).mean()), float(np.cos(a).mean())) / 2
        along = np.array([math.sin(axis), math.cos(axis)])
    else:
        _, along, _ = _pca(x, y)
    if _azimuth(along) >= 180.0:
        along = -along
    az = _azimuth(along)
    across = np.array([math.cos(math.radians(az)), -math.sin(math.radians(az))])
    s = x * along[0] + y * along[1]
    t = x * across[0] + y * across[1]
    s0, k = _lattice(s, bin_inline)
    t0, j = _lattice(t, DEFAULT_BIN_CROSSLINE)
    kmin, jmin = int(k.min()), int(j.min())
    origin = (s0 + kmin * bin_inline) * along + (t0 + jmin * DEFAULT_BIN_CROSSLINE) * across
    grid = BinGrid(float(origin[0]), float(origin[1]), az, float(bin_inline),
                   DEFAULT_BIN_CROSSLINE, 1, 1, int(j.max()) - jmin + 1, int(k.max()) - kmin + 1)
    return _bin_into(grid, x, y, "midpoints")


def _fit_headers(idx: TraceIndex, x: np.ndarray, y: np.ndarray) -> Geometry:
    il, xl = idx["header_inline"].astype(np.int64), idx["header_crossline"].astype(np.int64)
    exact = np.any(idx["cdp_x"] != 0) or np.any(idx["cdp_y"] != 0)
    if exact:
        check_coordinates(idx, ("cdp_x", "cdp_y"))
        x, y = idx["cdp_x"], idx["cdp_y"]
    il0, xl0 = int(il.min()), int(xl.min())
    n_il, n_xl = int(il.max()) - il0 + 1, int(xl.max()) - xl0 + 1
    a = np.column_stack([il - il0, xl - xl0, np.ones(len(il))]).astype(np.float64)
    rank = np.linalg.matrix_rank(a)
    coef, *_ = np.linalg.lstsq(a, np.column_stack([x, y]), rcond=None)
    if rank == 3 and len(il) > 3:
        resid = np.column_stack([x, y]) - a @ coef
        # traces outside their bin by the least-squares grid (refused below) stay out of it
        try:
            frac = np.abs(resid @ np.linalg.inv(coef[:2]))
        except np.linalg.LinAlgError:
            frac = np.zeros((len(il), 2))
        keep = np.all(frac <= 0.5, axis=1)
        # bin centres in CDP_X/CDP_Y (to their rounding): least squares is exact already
        if keep.sum() > 3 and float(frac[keep].max()) > 0.02:
            coef = coef + _minimax_correction(a[keep], resid[keep],
                                              ((il - il0) * n_xl + (xl - xl0))[keep])
    d_il, d_xl, origin = coef[0], coef[1], coef[2]
    if rank < 3:  # one inline (or one crossline): the other direction is the perpendicular
        if n_xl > 1:
            d_il = np.array([d_xl[1], -d_xl[0]])
        else:
            d_xl = np.array([-d_il[1], d_il[0]])
    b_inline, b_cross = float(np.hypot(*d_xl)), float(np.hypot(*d_il))
    if b_inline < 1e-6 or b_cross < 1e-6:
        raise SeisError("INLINE_3D/CROSSLINE_3D do not move the coordinates: cannot build a "
                        "grid from them", idx.segy_path)
    along, u_il = d_xl / b_inline, d_il / b_cross
    cosang = float(abs(along @ u_il))
    if cosang > 0.02:
        raise SeisError(f"INLINE_3D/CROSSLINE_3D axes are not perpendicular (angle "
                        f"{math.degrees(math.acos(min(cosang, 1.0))):.1f} deg): the map from "
                        "inline/crossline to coordinates is not a rotation and scale",
                        idx.segy_path)
    az = _azimuth(along)
    ref = np.array([math.cos(math.radians(az)), -math.sin(math.radians(az))])
    hand = 1 if float(u_il @ ref) >= 0 else -1
    grid = BinGrid(float(origin[0]), float(origin[1]), az, b_inline, b_cross, il0, xl0, n_il,
                   n_xl, hand, False)
    scatter = _check_scatter(idx, grid, x, y, il, xl, "CDP_X/CDP_Y (bytes 181-188)" if exact
                             else "source-receiver midpoints")
    cmp = (il - il0) * n_xl + (xl - xl0) + 1
    return Geometry(grid, cmp, il, xl, "headers", scatter)


def _minimax_correction(a: np.ndarray, resid: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Correction to a least-squares affine fit that minimises the largest residual instead.

    Midpoints scattered inside their bins average to the bin centre only where the scatter is
    balanced (rarely at the survey edges), which tilts and scales a least-squares grid; the
    band they fill is centred on the bin centres wherever both sides occur. Solved for x and
    y separately as a linear programme over each bin's extreme residuals."""
    from scipy.optimize import linprog

    ub, first, inv = np.unique(key, return_index=True, return_inverse=True)
    inv = inv.ravel()
    ab = a[first]
    out = np.zeros((3, 2))
    for j in range(2):
        lo, hi = np.full(ub.size, np.inf), np.full(ub.size, -np.inf)
        np.minimum.at(lo, inv, resid[:, j])
        np.maximum.at(hi, inv, resid[:, j])
        # variables: correction (3) and the half-width t; minimise t with lo..hi inside +-t
        ones = np.ones((ub.size, 1))
        a_ub = np.vstack([np.hstack([-ab, -ones]), np.hstack([ab, -ones])])
        b_ub = np.concatenate([-hi, lo])
        res = linprog(np.array([0, 0, 0, 1.0]), A_ub=a_ub, b_ub=b_ub,
                      bounds=[(None, None)] * 3 + [(0, None)], method="highs")
        if res.status == 0:
            out[:, j] = res.x[:3]
    return out


def _check_scatter(idx: TraceIndex, grid: BinGrid, x, y, il, xl, what: str
                   ) -> tuple[float, float]:
    """RMS and largest distance (in bins) of the points from the centres of the bins their
    INLINE_3D/CROSSLINE_3D name. Midpoints scattered inside their bins are normal (true
    midpoints in CDP_X/CDP_Y); a point outside its bin is refused, naming the trace."""
    fil, fxl = grid.world_to_grid(x, y)
    # each axis in bins; 2 cm of coordinate rounding allowed at the bin edge
    dil, dxl = np.abs(fil - il), np.abs(fxl - xl)
    tol_il, tol_xl = 0.02 / grid.bin_crossline, 0.02 / grid.bin_inline
    out = (dil > 0.5 + tol_il) | (dxl > 0.5 + tol_xl)
    if out.any():
        k = int(np.flatnonzero(out)[0])
        raise SeisError(f"trace {k}: {what} ({x[k]:.2f}, {y[k]:.2f}) m lie in bin inline "
                        f"{fil[k]:.2f} crossline {fxl[k]:.2f}, outside the bin INLINE_3D/"
                        f"CROSSLINE_3D (bytes 189-196) name ({int(il[k])}, {int(xl[k])}); "
                        f"{int(out.sum())} such traces; grid {grid.bin_inline:.2f} x "
                        f"{grid.bin_crossline:.2f} m", idx.segy_path)
    d = np.hypot(dil, dxl)
    return (float(np.sqrt(np.mean(d ** 2))) if d.size else 0.0,
            float(d.max()) if d.size else 0.0)


def _bin_into(grid: BinGrid, x: np.ndarray, y: np.ndarray, method: str) -> Geometry:
    il, xl = grid.bin_of(x, y)
    inside = (xl >= grid.crossline0) & (xl < grid.crossline0 + grid.n_crossline)
    if grid.is_2d:
        geo = Geometry(grid, xl, np.full_like(xl, grid.inline0), xl, method)
    else:
        inside &= (il >= grid.inline0) & (il < grid.inline0 + grid.n_inline)
        cmp = (il - grid.inline0) * grid.n_crossline + (xl - grid.crossline0) + 1
        geo = Geometry(grid, np.where(inside, cmp, 0), il, xl, method)
    geo.outside = np.flatnonzero(~inside)
    return geo
