"""The trace index: one pass over a SEG-Y or SU file's headers into an HDF5 table.

Layout of an index file (one row per trace, in file order; coordinates in m, angles in degrees)::

    ffid, channel, source_id, energy_source_point   int64
    sx, sy, rx, ry, mx, my                          float64, scalars applied (m)
    offset, azimuth                                 float64: source-receiver distance (m),
                                                    direction source -> receiver (deg from north)
    header_offset                                   int64, the signed offset header (bytes 37-40)
    cmp, inline, crossline                          int64: from the headers (CDP, INLINE_3D,
                                                    CROSSLINE_3D) until a Survey bins the
                                                    traces, then the survey's bin numbers
    header_cdp, header_inline, header_crossline     int64, the header values as read
    cdp_x, cdp_y                                    float64 (m)
    receiver_elevation, source_elevation, source_depth, source_water_depth,
    receiver_water_depth                            float64 (m), elevation scalar applied
    byte_offset                                     int64, position of the trace's 240-byte header
    attributes    segy_path, ns, dt (s), t_start (s), format, declared_format, endian, kind,
                  n_traces, trace_bytes, data_offset, revision, file_size, file_mtime_ns,
                  headermap; after Survey: grid_* (BinGrid), geometry, cmp_interval

``source_id`` numbers the distinct (FFID, SX, SY) in order of first appearance, from 0.

Headers are read with NumPy structured views over memory-mapped header bytes (no loop over
traces), :data:`_CHUNK` traces at a time, and each block's columns derived from them
(:func:`derive_block`): :meth:`TraceIndex.scan` gathers the blocks in memory,
:meth:`TraceIndex.write` (``seis-hpc index``) writes each into the index file as it comes, so
that its memory is a block's, not the survey's (issue 19). Samples are read only for the
traces asked for, by byte position.

NaN/Inf samples: :meth:`TraceIndex.read_traces` always checks the traces it returns and raises a
:class:`~seis_hpc.errors.SeisError` naming the first bad trace; ``check_samples=True`` at build
time scans every sample once (``seis-hpc index --check-samples``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

from seis_hpc import __version__
from seis_hpc.errors import SeisError
from seis_hpc.io import domain
from seis_hpc.io.atomic import atomic_output
from seis_hpc.io.headermap import ELEVATION_KEYS, HeaderMap, load_headermap
from seis_hpc.io.segy import TRACE_HEADER_BYTES, Layout, header_blocks, probe
from seis_hpc.io.traces import TraceReader, layout_of_index

INDEX_SUFFIX = ".index.h5"
_CHUNK = 200_000  # traces per header block (48 MB of headers, 50 MB of columns); tests lower it
# TraceIndex.take reads rows closer than this as one slice (a gap costs at most 8 B a row).
TAKE_GAP = 512
UNITS = {"sx": "m", "sy": "m", "rx": "m", "ry": "m", "mx": "m", "my": "m", "offset": "m",
         "azimuth": "deg", "cdp_x": "m", "cdp_y": "m", "byte_offset": "byte",
         **{k: "m" for k in ELEVATION_KEYS}}
_LAYOUT_ATTRS = ("kind", "endian", "format", "declared_format", "ns", "dt", "t_start",
                 "data_offset", "trace_bytes", "n_traces", "revision", "file_size",
                 "header_bytes")


def cache_dir() -> Path:
    """Folder for indexes of files in read-only folders: ``$SEIS_HPC_CACHE`` or
    ``~/.cache/seis_hpc``."""
    return Path(os.environ.get("SEIS_HPC_CACHE") or Path.home() / ".cache" / "seis_hpc")


def _dir_writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def default_index_path(segy_path: str | os.PathLike) -> Path:
    """Where the index of ``segy_path`` goes: ``<file name>.index.h5`` beside it, or, when that
    folder is not writable, in :func:`cache_dir` under a name keyed by the file's absolute
    path, size and modification time."""
    p = Path(segy_path).absolute()
    if _dir_writable(p.parent):
        return p.with_name(p.name + INDEX_SUFFIX)
    return cached_index_path(p)


def cached_index_path(segy_path: str | os.PathLike) -> Path:
    """The cache location of the index of ``segy_path`` (see :func:`default_index_path`)."""
    p = Path(segy_path).absolute()
    st = p.stat()
    key = hashlib.sha256(f"{p}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / f"{p.name}-{key}{INDEX_SUFFIX}"


def _scale(values: np.ndarray, scalar: np.ndarray) -> np.ndarray:
    """Apply SEG-Y scalars: positive multiplies, negative divides, 0 means 1."""
    s = scalar.astype(np.float64)
    factor = np.where(s > 0, s, np.where(s < 0, -1.0 / np.where(s < 0, s, -1.0), 1.0))
    return values.astype(np.float64) * factor


def _raw_blocks(layout: Layout, headermap: HeaderMap):
    """``(first, end, raw, headers)`` block by block (at most :data:`_CHUNK` traces): ``raw``
    every header-map field as unscaled int64/float64 arrays keyed by map name, ``headers`` the
    block's 240-byte trace headers (uint8). A file without traces gives one empty block."""
    dtype = headermap.dtype(layout.endian, TRACE_HEADER_BYTES)
    blocks = header_blocks(layout, max_traces=_CHUNK) if layout.n_traces else \
        [(0, 0, np.zeros((0, TRACE_HEADER_BYTES), np.uint8))]
    for a, b, hdr in blocks:
        block = hdr.view(dtype).ravel()
        raw = {name: block[name].astype(np.float64 if dtype[name].kind == "f" else np.int64)
               for name in dtype.names}
        yield a, b, raw, hdr


def read_headers(layout: Layout, headermap: HeaderMap) -> dict[str, np.ndarray]:
    """Every header-map field of every trace, as raw (unscaled) arrays keyed by map name."""
    dtype = headermap.dtype(layout.endian, TRACE_HEADER_BYTES)
    out = {name: np.empty(layout.n_traces, dtype=np.float64 if dtype[name].kind == "f"
                          else np.int64) for name in dtype.names}
    from seis_hpc.progress import Progress

    with Progress(layout.n_traces, "index", "header") as prog:
        for a, b, raw, _ in _raw_blocks(layout, headermap):
            for name in dtype.names:
                out[name][a:b] = raw[name]
            prog.set(b)
    return out


def derive_columns(raw: dict[str, np.ndarray], layout: Layout) -> dict[str, np.ndarray]:
    """Index columns from raw header values of every trace: scaled coordinates, midpoints,
    offsets, azimuths, source numbers and byte positions (:func:`derive_block` in one block)."""
    return derive_block(raw, layout, 0, SourceNumbers())


def derive_block(raw: dict[str, np.ndarray], layout: Layout, first: int,
                 sources: SourceNumbers) -> dict[str, np.ndarray]:
    """Index columns of one block of traces from their raw header values.

    Parameters
    ----------
    raw : dict
        Raw header arrays of traces ``first`` .. ``first + len`` (see :func:`read_headers`).
    layout : Layout
        The file's layout (byte positions).
    first : int
        Number of the block's first trace in the file (from 0).
    sources : SourceNumbers
        Source numbering of the blocks before (updated).

    Returns
    -------
    dict
        Column name -> values (coordinates in m, azimuth in degrees, byte positions).
    """
    n = len(raw["ffid"])
    cs, es = raw["coordinate_scalar"], raw["elevation_scalar"]
    col: dict[str, np.ndarray] = {
        "ffid": raw["ffid"], "channel": raw["channel"],
        "energy_source_point": raw["energy_source_point"],
    }
    col["sx"], col["sy"] = _scale(raw["sx"], cs), _scale(raw["sy"], cs)
    col["rx"], col["ry"] = _scale(raw["gx"], cs), _scale(raw["gy"], cs)
    col["cdp_x"], col["cdp_y"] = _scale(raw["cdp_x"], cs), _scale(raw["cdp_y"], cs)
    col["mx"] = 0.5 * (col["sx"] + col["rx"])
    col["my"] = 0.5 * (col["sy"] + col["ry"])
    dx, dy = col["rx"] - col["sx"], col["ry"] - col["sy"]
    col["offset"] = np.hypot(dx, dy)
    col["azimuth"] = np.degrees(np.arctan2(dx, dy)) % 360.0
    col["header_offset"] = raw["offset"]
    for k in ("receiver_elevation", "source_elevation", "source_depth", "source_water_depth",
              "receiver_water_depth"):
        col[k] = _scale(raw[k], es)
    col["header_cdp"] = raw["cdp"]
    col["header_inline"] = raw["inline"]
    col["header_crossline"] = raw["crossline"]
    col["cmp"] = raw["cdp"].copy()
    col["inline"] = raw["inline"].copy()
    col["crossline"] = raw["crossline"].copy()
    col["source_id"] = sources.number(col["ffid"], col["sx"], col["sy"])
    col["byte_offset"] = layout.data_offset + np.arange(first, first + n, dtype=np.int64) \
        * layout.trace_bytes
    return col


class SourceNumbers:
    """Numbers the distinct (ffid, sx, sy) from 0 in order of first appearance, block after
    block: memory per distinct source (a table of the keys seen), not per trace."""

    def __init__(self):
        self.table: dict[tuple, int] = {}

    def number(self, ffid: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
        """Source numbers of the next block of traces."""
        if len(ffid) == 0:
            return np.zeros(0, dtype=np.int64)
        keys = np.column_stack([ffid.astype(np.float64), sx, sy])
        uniq, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        ids = np.empty(len(first), dtype=np.int64)
        table = self.table
        rows = uniq.tolist()
        for j in np.argsort(first, kind="stable").tolist():
            ids[j] = table.setdefault(tuple(rows[j]), len(table))
        return ids[inverse.ravel()]


def source_numbers(ffid: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Number the distinct (ffid, sx, sy) from 0 in order of first appearance."""
    return SourceNumbers().number(ffid, sx, sy)


class FileColumns(domain.ArrayColumns):
    """Index columns in an open HDF5 file, read and written by trace range (each data set
    made at its first write, ``n`` rows, of the values' type)."""

    def __init__(self, f: h5py.File, n: int):
        self.f, self.n, self.block = f, n, _CHUNK

    def read(self, name: str, a: int, b: int) -> np.ndarray:
        return self.f[name][a:b]

    def column(self, name: str) -> np.ndarray:
        return self.f[name][...]

    def write(self, name: str, a: int, b: int, values: np.ndarray) -> None:
        ds = self.f.get(name)
        if ds is None or ds.dtype != values.dtype or ds.shape != (self.n,):
            if ds is not None:
                del self.f[name]
            ds = self.f.create_dataset(name, shape=(self.n,), dtype=values.dtype)
            if name in UNITS:
                ds.attrs["units"] = UNITS[name]
        ds[a:b] = values


def scan_columns(store, layout: Layout, headermap: HeaderMap) -> dict:
    """Read the headers block by block into the columns of ``store`` (in memory or an index
    file) and check them (:class:`~seis_hpc.io.domain.HeaderStats`); the index attributes.

    Memory: one block of :data:`_CHUNK` traces (headers and columns) plus the source table
    (:class:`SourceNumbers`) and what the header checks read back.
    """
    from seis_hpc.progress import Progress

    stats = domain.HeaderStats(layout)
    sources = SourceNumbers()
    with Progress(layout.n_traces, "index", "header") as prog:
        for a, b, raw, hdr in _raw_blocks(layout, headermap):
            cols = derive_block(raw, layout, a, sources)
            codes = domain.unit_codes(hdr, layout) if layout.kind == "segy" else None
            stats.add(cols, a, raw, codes)
            for name, values in cols.items():
                store.write(name, a, b, values)
            del cols, raw, hdr
            prog.set(b)
    dom, warns, units = stats.finish(store)
    st = os.stat(layout.path)
    attrs = {k: getattr(layout, k) for k in _LAYOUT_ATTRS}
    attrs.update(segy_path=str(Path(layout.path).absolute()), file_mtime_ns=st.st_mtime_ns,
                 headermap=headermap.describe(), headermap_source=headermap.source,
                 domain=dom, warnings=json.dumps(warns), coordinate_units=units)
    return attrs


def provenance_attrs() -> dict:
    """Attributes naming the software and the time of writing."""
    return dict(software=f"seis_hpc {__version__}",
                created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


class TraceIndex:
    """One row per trace of a SEG-Y or SU file: header values, geometry and byte position.

    Build with :meth:`build` (scan and write), :meth:`scan` (in memory only), :meth:`for_file`
    (reuse an up-to-date index, else build) or :meth:`open` (an existing index file).
    ``idx["sx"]`` returns a column as a NumPy array.

    Attributes
    ----------
    path : pathlib.Path or None
        The index file (None for an index held only in memory).
    attrs : dict
        File attributes (see the module documentation).
    """

    def __init__(self, columns: dict[str, np.ndarray], attrs: dict, path: Path | None = None):
        self._columns = dict(columns)
        self.attrs = dict(attrs)
        self.path = path
        self._reader: TraceReader | None = None

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def scan(cls, segy_path: str | os.PathLike, headermap=None, check_samples: bool = False
             ) -> TraceIndex:
        """Read every trace header of ``segy_path`` into an in-memory index (nothing written).

        Parameters
        ----------
        segy_path : path-like
            SEG-Y or SU file.
        headermap : path-like or HeaderMap, optional
            Header byte map (TOML file); default the standard rev 1 map.
        check_samples : bool
            Also decode every sample once and refuse NaN/Inf (costs a full read).
        """
        hmap = load_headermap(headermap)
        layout = probe(segy_path)
        store = domain.ArrayColumns({}, layout.n_traces, _CHUNK)
        attrs = scan_columns(store, layout, hmap)
        cols = store.cols
        idx = cls(cols, attrs)
        if check_samples:
            idx.check_samples()
        return idx

    @classmethod
    def build(cls, segy_path: str | os.PathLike, index_path: str | os.PathLike | None = None,
              headermap=None, check_samples: bool = False) -> TraceIndex:
        """Scan ``segy_path`` and write its index (atomically).

        Parameters
        ----------
        segy_path : path-like
            SEG-Y or SU file.
        index_path : path-like, optional
            Output; default :func:`default_index_path`.
        headermap : path-like or HeaderMap, optional
            Header byte map TOML file.
        check_samples : bool
            Refuse files with NaN/Inf samples (scans every sample).

        Returns
        -------
        TraceIndex
        """
        idx = cls.scan(segy_path, headermap, check_samples)
        idx.save(index_path)
        return idx

    @classmethod
    def write(cls, segy_path: str | os.PathLike, index_path: str | os.PathLike | None = None,
              headermap=None, finish=None, check_samples: bool = False) -> Path:
        """Index ``segy_path`` straight into an index file, block by block (atomically).

        The same columns and attributes as :meth:`build`, but the headers are read, derived
        and written :data:`_CHUNK` traces at a time (:func:`scan_columns`): the memory is a
        block's, not the survey's (issue 19).

        Parameters
        ----------
        segy_path : path-like
            SEG-Y or SU file.
        index_path : path-like, optional
            Output; default :func:`default_index_path` (the cache folder when the folder
            beside the file refuses the write).
        headermap : path-like or HeaderMap, optional
            Header byte map TOML file.
        finish : callable, optional
            ``finish(path)`` called on the complete temporary index file before it is
            renamed (binning: :meth:`seis_hpc.survey.Survey.index_file`); an error there
            leaves nothing behind.
        check_samples : bool
            Refuse files with NaN/Inf samples (scans every sample, after ``finish``).

        Returns
        -------
        pathlib.Path
            The index file written.
        """
        hmap = load_headermap(headermap)
        layout = probe(segy_path)
        target = Path(index_path) if index_path else default_index_path(segy_path)
        try:
            cls._write_streamed(target, layout, hmap, finish, check_samples)
        except PermissionError:
            if index_path:
                raise
            target = cached_index_path(segy_path)
            cls._write_streamed(target, layout, hmap, finish, check_samples)
        return target

    @classmethod
    def _write_streamed(cls, target: Path, layout: Layout, hmap: HeaderMap, finish,
                        check_samples: bool) -> None:
        with atomic_output(target) as tmp:
            with h5py.File(tmp, "w") as f:
                attrs = scan_columns(FileColumns(f, layout.n_traces), layout, hmap)
                attrs.update(provenance_attrs())
                for k, v in attrs.items():
                    f.attrs[k] = v
            if finish is not None:
                finish(tmp)
            if check_samples:
                cls.open(tmp).check_samples()

    @classmethod
    def open(cls, index_path: str | os.PathLike) -> TraceIndex:
        """Open an index file; columns are read when first asked for."""
        index_path = Path(index_path)
        try:
            f = h5py.File(index_path, "r")
        except OSError as exc:
            if not index_path.exists() or index_path.is_dir():
                raise
            raise SeisError(f"not an HDF5 file ({exc.__class__.__name__})", index_path) from None
        with f:
            if "byte_offset" not in f or "segy_path" not in f.attrs:
                raise SeisError("not a seis_hpc trace index (no byte_offset data set)",
                                index_path)
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
        idx = cls({}, attrs, index_path)
        return idx

    @classmethod
    def for_file(cls, segy_path: str | os.PathLike, index_path: str | os.PathLike | None = None,
                 headermap=None, save: bool = True) -> TraceIndex:
        """The index of ``segy_path``: an existing up-to-date one, else a fresh scan.

        An index is up to date when it was made from the same file (absolute path, size,
        modification time) with the same header map. A stale one is rebuilt. With
        ``save=False`` a fresh scan stays in memory (its :attr:`path` is None).
        """
        hmap = load_headermap(headermap)
        idx = cls.find(segy_path, index_path, hmap)
        if idx is not None:
            return idx
        idx = cls.scan(segy_path, hmap)
        if save:
            idx.save(index_path)
        return idx

    @classmethod
    def find(cls, segy_path: str | os.PathLike, index_path: str | os.PathLike | None = None,
             headermap=None) -> TraceIndex | None:
        """The up-to-date index file of ``segy_path`` (see :meth:`for_file`), or None."""
        hmap = load_headermap(headermap)
        segy_path = Path(segy_path)
        if not segy_path.exists():
            raise FileNotFoundError(2, "No such file or directory", str(segy_path))
        candidates = [Path(index_path)] if index_path else _candidates(segy_path)
        for cand in candidates:
            if cand.is_file():
                try:
                    idx = cls.open(cand)
                except (SeisError, OSError):
                    continue
                if idx.matches(segy_path, hmap, blocked=index_path is not None):
                    return idx
                if index_path is not None and idx.attrs.get("order") == "spatial":
                    # the caller would write a file-order index over it: a user's sort lost
                    raise SeisError(
                        f"is a spatially blocked index that does not describe {segy_path} as "
                        "it is now (file changed, or another header map); it is not "
                        "rewritten: sort it again (seis-hpc index --spatial) or give "
                        "another --index", cand)
        return None

    def matches(self, segy_path: str | os.PathLike, headermap=None, blocked: bool = False
                ) -> bool:
        """True if this index describes ``segy_path`` as it is now, read with ``headermap``.

        A spatially blocked index (rows not in file order) matches only with ``blocked``
        (an index the user named): it is never a file's default index."""
        p = Path(segy_path).absolute()
        try:
            st = p.stat()
        except OSError:
            return False
        return (str(p) == self.attrs.get("segy_path")
                and st.st_size == self.attrs.get("file_size")
                and st.st_mtime_ns == self.attrs.get("file_mtime_ns")
                and load_headermap(headermap).describe() == self.attrs.get("headermap")
                and "domain" in self.attrs  # older indexes lack the header checks
                # a spatially blocked index numbers its rows otherwise: never the default
                and (blocked or self.attrs.get("order") != "spatial"))

    def is_stale(self) -> bool:
        """True when the SEG-Y file changed (size or modification time) since indexing."""
        try:
            st = os.stat(self.segy_path)
        except OSError:
            return True
        return (st.st_size != self.attrs["file_size"]
                or st.st_mtime_ns != self.attrs["file_mtime_ns"])

    def save(self, index_path: str | os.PathLike | None = None) -> Path:
        """Write the index (atomically) to ``index_path``, default :func:`default_index_path`.

        Falls back to the cache folder when the folder beside the file refuses the write.
        """
        cols = self.columns()
        target = Path(index_path) if index_path else default_index_path(self.segy_path)
        try:
            self._write(target, cols)
        except PermissionError:
            if index_path:
                raise
            target = cached_index_path(self.segy_path)
            self._write(target, cols)
        self.path = target
        return target

    def _write(self, target: Path, cols: dict[str, np.ndarray]) -> None:
        with atomic_output(target) as tmp, h5py.File(tmp, "w") as f:
            for name, values in cols.items():
                ds = f.create_dataset(name, data=values)
                if name in UNITS:
                    ds.attrs["units"] = UNITS[name]
            attrs = dict(self.attrs)
            attrs.update(provenance_attrs())
            for k, v in attrs.items():
                f.attrs[k] = v
            if self.attrs.get("order") == "spatial" and self.path is not None:
                # rows unchanged: the block table of the file read stays valid
                with h5py.File(self.path, "r") as src:
                    src.copy("blocks", f)

    # -- access ---------------------------------------------------------------------------
    def columns(self) -> dict[str, np.ndarray]:
        """Every column, loaded into memory."""
        if self.path is not None:
            with h5py.File(self.path, "r") as f:
                for name in _column_names(f):
                    if name not in self._columns:
                        self._columns[name] = f[name][...]
        return dict(self._columns)

    def keys(self) -> list[str]:
        """Column names."""
        if self.path is not None:
            with h5py.File(self.path, "r") as f:
                return sorted(set(_column_names(f)) | set(self._columns))
        return sorted(self._columns)

    def __contains__(self, name: str) -> bool:
        return name in self.keys()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._columns:
            if self.path is None:
                raise KeyError(name)
            with h5py.File(self.path, "r") as f:
                if name not in f or not isinstance(f[name], h5py.Dataset):
                    raise KeyError(name)
                self._columns[name] = f[name][...]
        return self._columns[name]

    def take(self, names, ids) -> dict[str, np.ndarray]:
        """Columns ``names`` of the traces ``ids`` only, without loading whole columns.

        A column already in memory is indexed; otherwise the rows are read from the index
        file in a few contiguous slices (runs of ``ids`` closer than :data:`TAKE_GAP` rows
        are read as one slice), so the memory used follows ``len(ids)``, not the survey.

        Parameters
        ----------
        names : sequence of str
            Column names (``"sx"``, ``"offset"``...).
        ids : array-like of int
            Trace numbers (file order, from 0), any order.

        Returns
        -------
        dict
            ``name -> values``, each of ``len(ids)``, in the order of ``ids``.
        """
        ids = np.asarray(ids, dtype=np.int64)
        out = {n: self._columns[n][ids] for n in names if n in self._columns}
        rest = [n for n in names if n not in out]
        if not rest:
            return out
        if self.path is None:
            raise KeyError(rest[0])
        order = None
        s = ids
        if ids.size > 1 and np.any(np.diff(ids) < 0):
            order = np.argsort(ids, kind="stable")
            s = ids[order]
        groups = []
        if s.size:
            brk = np.flatnonzero(np.diff(s) > TAKE_GAP) + 1
            groups = list(zip(np.r_[0, brk], np.r_[brk, s.size], strict=True))
        with h5py.File(self.path, "r") as f:
            for n in rest:
                if n not in f:
                    raise KeyError(n)
                ds = f[n]
                vals = np.empty(s.size, dtype=ds.dtype)
                for a, b in groups:
                    lo = int(s[a])
                    vals[a:b] = ds[lo:int(s[b - 1]) + 1][s[a:b] - lo]
                if order is not None:
                    back = np.empty_like(vals)
                    back[order] = vals
                    vals = back
                out[n] = vals
        return out

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        values = np.asarray(values)
        if values.shape != (self.n_traces,):
            raise ValueError(f"column {name!r} needs shape ({self.n_traces},), got {values.shape}")
        self.columns()
        self._columns[name] = values

    def __len__(self) -> int:
        return self.n_traces

    @property
    def segy_path(self) -> str:
        """Absolute path of the indexed SEG-Y/SU file."""
        return str(self.attrs["segy_path"])

    @property
    def n_traces(self) -> int:
        """Number of traces."""
        return int(self.attrs["n_traces"])

    @property
    def ns(self) -> int:
        """Samples per trace."""
        return int(self.attrs["ns"])

    @property
    def dt(self) -> float:
        """Sample interval (s)."""
        return float(self.attrs["dt"])

    @property
    def t_start(self) -> float:
        """Time of the first sample (s)."""
        return float(self.attrs["t_start"])

    def times(self) -> np.ndarray:
        """Time of every sample (s)."""
        return self.t_start + self.dt * np.arange(self.ns)

    # -- samples --------------------------------------------------------------------------
    def reader(self) -> TraceReader:
        """The :class:`~seis_hpc.io.traces.TraceReader` of the indexed file (made once).

        Raises
        ------
        SeisError
            The file changed (size or modification time) since it was indexed.
        """
        if self._reader is None:
            if self.attrs.get("headers_only"):
                raise SeisError("a headers-only index (seis-hpc synth --headers-only) has no "
                                "samples to read; plan with seis-hpc pstm --dry-run",
                                self.path)
            if self.is_stale():
                raise SeisError("file changed since it was indexed (size or modification "
                                "time); rebuild the index", self.segy_path)
            self._reader = TraceReader(layout_of_index(self.attrs), index=self)
        return self._reader

    def read_traces(self, ids) -> np.ndarray:
        """Read the samples of the traces ``ids`` (file order numbers, from 0).

        Only those traces are read, by byte position (:meth:`TraceReader.read
        <seis_hpc.io.traces.TraceReader.read>`). In a spatially blocked index
        (:mod:`seis_hpc.io.blocked`) ``ids`` are row numbers, mapped to file traces through its
        ``trace`` column.

        Parameters
        ----------
        ids : array-like of int
            Trace numbers (rows of a blocked index).

        Returns
        -------
        numpy.ndarray
            float32, shape ``(len(ids), ns)``.

        Raises
        ------
        SeisError
            A trace number out of range, or a NaN/Inf sample (names the trace).
        """
        reader = self.reader()
        if self.attrs.get("order") == "spatial":
            # only these rows' file trace numbers: not the whole column on every rank
            ids = self.take(["trace"], np.asarray(ids, dtype=np.int64))["trace"]
        return reader.read(ids)

    def check_samples(self, chunk: int = 4096) -> None:
        """Decode every sample once and raise :class:`SeisError` at the first NaN/Inf."""
        from seis_hpc.progress import Progress

        with Progress(self.n_traces, "check samples", "trace") as prog:
            for a in range(0, self.n_traces, chunk):
                b = min(self.n_traces, a + chunk)
                self.read_traces(np.arange(a, b))
                prog.set(b)

    def close(self) -> None:
        """Release the memory map of the data file."""
        self._reader = None


def _candidates(segy_path: Path) -> list[Path]:
    p = segy_path.absolute()
    out = [p.with_name(p.name + INDEX_SUFFIX)]
    try:
        out.append(cached_index_path(p))
    except OSError:
        pass
    return out


def _column_names(f: h5py.File) -> list[str]:
    """The column data sets of an index file (a blocked index also has a 'blocks' group)."""
    return [name for name in f if isinstance(f[name], h5py.Dataset)]


def _plain(v):
    """HDF5 attribute -> plain Python value."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v
