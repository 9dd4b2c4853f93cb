"""What the headers of a file say it is, and where they contradict themselves.

Gathered block by block while an index is built (:class:`HeaderStats`, fed by
:func:`seis_hpc.io.index.scan_columns` with the raw header values and derived columns of each
block; :func:`inspect` is the same on whole columns). It gives the data domain and a list of
one-line warnings, both stored in the index attributes (``domain``, ``warnings``) and shown
by ``seis-hpc info``.

Domains (from headers and fold):

* ``"post-stack"``: no offsets (one offset header value, 0 or nominal, on every trace) and no
  receiver positions
  (GX/GY all zero, or equal to SX/SY), with one trace per bin (INLINE_3D/CROSSLINE_3D, else
  CDP, else position). Such a file's SX/SY or CDP_X/CDP_Y is the trace position, not a source:
  the index then sets midpoint = receiver = source = that position and offset 0.
* ``"cmp"``: gathers sorted by CDP: the header CDP (else the INLINE_3D/CROSSLINE_3D pair)
  changes less often, trace to trace, than the source (a single-CDP file with several sources
  is one CMP gather); or, with no shot identity at all (no source coordinates, one FFID),
  several offsets in one bin (a lone synthetic CMP gather).
* ``"shot"``: everything else with offsets (sorted by source).

Checks (each a warning, never an error here; the geometry refuses what it cannot use):

* coordinate units (trace header bytes 89-90): 2 arc seconds, 3 decimal degrees, 4 DMS are
  geographic, not lengths (see :data:`GEOGRAPHIC_UNITS`);
* sample counts in trace headers (bytes 115-116) that differ from the file's;
* offsets from coordinates beyond :data:`MAX_PLAUSIBLE_OFFSET`, and an offset header that
  disagrees with the coordinate distance by more than a factor of 10.
"""

from __future__ import annotations

import numpy as np

from seis_hpc.io.segy import Layout

# SEG-Y trace header bytes 89-90: coordinate units.
UNIT_NAMES = {1: "length (metres or feet)", 2: "seconds of arc", 3: "decimal degrees",
              4: "degrees, minutes, seconds (DMS)"}
GEOGRAPHIC_UNITS = (2, 3, 4)
MAX_PLAUSIBLE_OFFSET = 100_000.0  # m: no acquisition spread is 100 km long
OFFSET_RATIO = 10.0  # header offset vs coordinate distance: a factor of 10 is not rounding


def coordinate_unit_codes(layout: Layout) -> np.ndarray:
    """Coordinate units code (trace header bytes 89-90, int16) of every trace."""
    if layout.n_traces == 0:
        return np.zeros(0, dtype=np.int64)
    from seis_hpc.io.segy import header_blocks

    out = np.empty(layout.n_traces, dtype=np.int64)
    for a, b, raw in header_blocks(layout, nbytes=90):
        out[a:b] = unit_codes(raw, layout)
    return out


def unit_codes(headers: np.ndarray, layout: Layout) -> np.ndarray:
    """Coordinate units codes (bytes 89-90, int64) of a block of raw trace headers (uint8,
    one row of at least 90 bytes per trace)."""
    return np.ascontiguousarray(headers[:, 88:90]).view(f"{layout.byteorder}i2").ravel() \
        .astype(np.int64)


def _runs(v: np.ndarray) -> int:
    """Number of runs of equal consecutive values."""
    return int(np.count_nonzero(np.diff(v))) + 1 if len(v) else 0


def _one_per_bin(cols: dict) -> bool:
    il, xl, cdp = cols["header_inline"], cols["header_crossline"], cols["header_cdp"]
    n = len(cdp)
    if np.unique(il).size > 1 or np.unique(xl).size > 1:
        return np.unique(np.column_stack([il, xl]), axis=0).shape[0] == n
    if np.unique(cdp).size > 1:
        return np.unique(cdp).size == n
    x, y = _position(cols)
    return np.unique(np.column_stack([np.round(x, 2), np.round(y, 2)]), axis=0).shape[0] == n


def _position(cols: dict) -> tuple[np.ndarray, np.ndarray]:
    """Trace position of a post-stack trace: CDP_X/CDP_Y when present, else SX/SY."""
    if np.any(cols["cdp_x"] != 0) or np.any(cols["cdp_y"] != 0):
        return cols["cdp_x"], cols["cdp_y"]
    return cols["sx"], cols["sy"]


def classify(cols: dict) -> str:
    """The domain of a file: ``"shot"``, ``"cmp"`` or ``"post-stack"`` (see module text)."""
    stats = HeaderStats()
    stats.add(cols, 0)
    return stats.domain(ArrayColumns(cols))


def post_stack_columns(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The coordinate columns of post-stack traces at positions ``x``, ``y`` (m): source,
    receiver and midpoint there, offset and azimuth 0."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    out = {}
    for a, b in (("sx", "sy"), ("rx", "ry"), ("mx", "my")):
        out[a], out[b] = x.copy(), y.copy()
    out["offset"] = np.zeros_like(x)
    out["azimuth"] = np.zeros_like(x)
    return out


def apply_post_stack(cols: dict) -> None:
    """Put the post-stack trace position in every coordinate column, offset 0 (in place)."""
    cols.update(post_stack_columns(*_position(cols)))


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


class ArrayColumns:
    """Index columns held in a dict of arrays, read and written by trace range (the column
    store :class:`HeaderStats` reads back from; see :class:`seis_hpc.io.index.FileColumns`
    for columns in an index file being written)."""

    def __init__(self, cols: dict, n: int | None = None, block: int | None = None):
        self.cols = cols
        self.n = len(cols["sx"]) if n is None else n
        self.block = block  # traces per block read back (None: the whole columns at once)

    def read(self, name: str, a: int, b: int) -> np.ndarray:
        return self.cols[name][a:b]

    def column(self, name: str) -> np.ndarray:
        return self.cols[name]

    def write(self, name: str, a: int, b: int, values: np.ndarray) -> None:
        col = self.cols.get(name)
        if col is None or len(col) != self.n or col.dtype != values.dtype:
            if a == 0 and b == self.n:
                self.cols[name] = values
                return
            new = np.empty(self.n, dtype=values.dtype)
            if col is not None and len(col) == self.n:
                new[...] = col
            col = self.cols[name] = new
        col[a:b] = values

    def spans(self):
        """``(first, end)`` trace ranges of at most :attr:`block` traces."""
        size = max(1, self.block or self.n)
        for a in range(0, self.n, size):
            yield a, min(self.n, a + size)


class _Lazy(dict):
    """Whole columns of a store, each read when first asked for."""

    def __init__(self, store):
        super().__init__()
        self.store = store

    def __missing__(self, name):
        self[name] = self.store.column(name)
        return self[name]


_ANY = ("sx", "sy", "rx", "ry", "cdp_x", "cdp_y", "header_cdp")
_DIGIT = 16  # bits per pass of the exact streamed median (a 2**16-bin histogram)
_GATHER = 1 << 20  # values gathered at most to finish a median (8 MB)


class HeaderStats:
    """What :func:`inspect` needs of a file's headers, gathered block by block.

    :meth:`add` takes each block of raw headers and derived columns in file order and keeps
    a few numbers (flags, run counts, extremes, counts of unit codes, a histogram of the
    offset ratio); :meth:`finish` decides the domain and warnings, reading back from the
    index being written only what cannot be counted on the way (block by block: the runs of
    INLINE_3D/CROSSLINE_3D bins when no CDP header is set, the exact median offset ratio;
    whole: the 1 to 3 columns of the one-trace-per-bin test, only for files with one offset
    value and no receivers). The outcome is the same as :func:`inspect` on whole columns.
    """

    def __init__(self, layout: Layout | None = None):
        self.layout = layout
        self.n = 0
        self.any = dict.fromkeys(_ANY, False)
        self.same_rs = True  # receiver == source on every trace
        self.first: dict[str, object] = {}
        self.multi = {"header_offset": False, "ffid": False}
        self.runs = {"header_cdp": 0, "source_id": 0, "pos": 0}
        self.last: dict[str, object] = {}
        self.off_max, self.off_arg, self.off_nan = -np.inf, -1, False
        self.off_pos = self.hdr_any = False
        self.both = 0
        self.ratio_hist = np.zeros(1 << _DIGIT, np.int64)
        self.codes: dict[int, int] = {}
        self.geo, self.geo_first = 0, -1
        self.ns_seen, self.ns_bad, self.ns_first = False, 0, -1
        self.ns_first_value = 0

    def _run(self, key: str, changes: np.ndarray, head) -> None:
        """Count runs: changes inside the block, plus one at its start unless it continues
        the previous block's last run."""
        start = 1 if key not in self.last else int(head(self.last[key]))
        self.runs[key] += int(np.count_nonzero(changes)) + start

    def add(self, cols: dict, a: int, raw: dict | None = None,
            codes: np.ndarray | None = None) -> None:
        """Gather one block: derived columns ``cols`` (and raw headers ``raw``, unit codes
        ``codes``) of traces ``a`` .. ``a + len``."""
        n = len(cols["sx"])
        if n == 0:
            return
        self.n += n
        for k in _ANY:
            self.any[k] = self.any[k] or bool(np.any(cols[k]))
        self.same_rs = self.same_rs and bool(np.array_equal(cols["rx"], cols["sx"])) and \
            bool(np.array_equal(cols["ry"], cols["sy"]))
        for k in ("header_offset", "ffid"):
            v = cols[k]
            f = self.first.setdefault(k, v[0])
            self.multi[k] = self.multi[k] or bool(np.any(v != f))
        for k in ("header_cdp", "source_id"):
            v = cols[k]
            self._run(k, np.diff(v), lambda last, v=v: v[0] != last)
            self.last[k] = v[-1]
        x, y = cols["cdp_x"], cols["cdp_y"]
        self._run("pos", (x[1:] != x[:-1]) | (y[1:] != y[:-1]),
                  lambda last: x[0] != last[0] or y[0] != last[1])
        self.last["pos"] = (x[-1], y[-1])
        off = cols["offset"]
        if np.isnan(off).any():
            self.off_nan = True
        else:
            k = int(np.argmax(off))
            if off[k] > self.off_max:
                self.off_max, self.off_arg = float(off[k]), a + k
        self.off_pos = self.off_pos or bool(np.any(off > 0))
        hdr = np.abs(cols["header_offset"]).astype(np.float64)
        self.hdr_any = self.hdr_any or bool(np.any(hdr))
        ratio = _ratios(off, hdr)
        self.both += ratio.size
        self.ratio_hist += _ratio_histogram(ratio)
        if codes is not None:
            vals, counts = np.unique(codes, return_counts=True)
            for v, c in zip(vals.tolist(), counts.tolist(), strict=True):
                self.codes[v] = self.codes.get(v, 0) + c
            geo = np.isin(codes, GEOGRAPHIC_UNITS)
            if geo.any() and self.geo_first < 0:
                self.geo_first = a + _first(geo)
                self.geo_first_code = int(codes[_first(geo)])
            self.geo += int(geo.sum())
        ns_tr = None if raw is None else raw.get("ns")
        if ns_tr is not None and self.layout is not None:
            self.ns_seen = True
            bad = (ns_tr != self.layout.ns) & (ns_tr != 0)
            if bad.any() and self.ns_first < 0:
                self.ns_first, self.ns_first_value = a + _first(bad), int(ns_tr[_first(bad)])
            self.ns_bad += int(bad.sum())

    # -- decisions --------------------------------------------------------------------------
    def domain(self, store) -> str:
        """The domain (see :func:`classify`); ``store`` holds the columns (read back)."""
        n = self.n
        if n == 0:
            return "shot"
        no_receivers = (not self.any["rx"] and not self.any["ry"]) or self.same_rs
        one_offset = not self.multi["header_offset"]
        if one_offset and no_receivers and (n == 1 or _one_per_bin(_Lazy(store))):
            return "post-stack"
        if self.any["header_cdp"]:
            cdp_any, cdp_runs = True, self.runs["header_cdp"]
        else:  # no CDP numbers: the inline/crossline pair names the bin
            cdp_any, cdp_runs = _bin_number_runs(store)
        if cdp_any and cdp_runs < self.runs["source_id"]:
            return "cmp"
        no_sources = not self.any["sx"] and not self.any["sy"] and not self.multi["ffid"]
        if not cdp_any:  # nor bin numbers: the CDP position names the bin
            cdp_runs = self.runs["pos"]
        if no_sources and cdp_runs < n and self.multi["header_offset"]:
            return "cmp"
        return "shot"

    def finish(self, store) -> tuple[str, list[str], int]:
        """Domain, warnings and units code (see :func:`inspect`); post-stack coordinate
        columns are rewritten in ``store``, block by block."""
        out: list[str] = []
        layout = self.layout
        domain = self.domain(store)
        if domain == "post-stack":
            pos = ("cdp_x", "cdp_y") if self.any["cdp_x"] or self.any["cdp_y"] else ("sx", "sy")
            for a, b in store.spans():
                new = post_stack_columns(store.read(pos[0], a, b), store.read(pos[1], a, b))
                for k, v in new.items():
                    store.write(k, a, b, v)
        units = 0
        if layout.kind == "segy" and layout.n_traces:
            vals = sorted(self.codes)
            counts = [self.codes[v] for v in vals]
            units = int(vals[int(np.argmax(counts))])
            has_xy = any(self.any[k] for k in ("sx", "sy", "rx", "ry", "cdp_x", "cdp_y"))
            if self.geo and has_xy:
                code = self.geo_first_code
                out.append(f"coordinate units are {UNIT_NAMES[code]} (trace header bytes "
                           f"89-90 = {code}, {self.geo} of {self.n} traces), not "
                           "metres: geometry steps refuse them unless told how to read them "
                           "(seis-hpc index --coordinate-units metres|feet)")
        if self.ns_seen and self.n and self.ns_bad:
            where = "binary header bytes 3221-3222" if layout.kind == "segy" else "first trace"
            out.append(f"{self.ns_bad} trace(s) give another sample count than the file's "
                       f"{layout.ns} ({where}): trace {self.ns_first} says "
                       f"{self.ns_first_value} (bytes 115-116); read as {layout.ns}")
        if self.n and domain != "post-stack":
            off_max = np.nan if self.off_nan else self.off_max
            if off_max > MAX_PLAUSIBLE_OFFSET:
                out.append(f"source-receiver distances from the coordinates reach {off_max:.4g} "
                           f"m (trace {self.off_arg}, SX/SY bytes 73-80, GX/GY 81-88, scalar "
                           "bytes 71-72): implausible for an offset; check the coordinate "
                           "scalar and units")
            if self.both:
                ratio = _median_ratio(store, self.both, self.ratio_hist)
                if ratio > OFFSET_RATIO or ratio < 1 / OFFSET_RATIO:
                    out.append(f"offset header (bytes 37-40) and the source-receiver distance "
                               f"from the coordinates disagree by a factor of {ratio:.3g} "
                               "(median)")
            elif not self.hdr_any and self.off_pos:
                out.append("offset header (bytes 37-40) is 0 on every trace although the "
                           f"coordinates give offsets up to {off_max:.4g} m")
        return domain, out, units


def _ratios(off: np.ndarray, hdr: np.ndarray) -> np.ndarray:
    """Coordinate distance over header offset where both are positive."""
    both = (hdr > 0) & (off > 0)
    return off[both] / hdr[both]


def _ratio_histogram(ratio: np.ndarray) -> np.ndarray:
    """Counts of positive float64 values by their top :data:`_DIGIT` bits."""
    return np.bincount((ratio.view(np.uint64) >> np.uint64(64 - _DIGIT)).astype(np.int64),
                       minlength=1 << _DIGIT)


def _bin_number_runs(store) -> tuple[bool, int]:
    """Whether any trace has a nonzero INLINE_3D * (max CROSSLINE_3D + 1) + CROSSLINE_3D,
    and the runs of that number (read back block by block)."""
    top = None
    for a, b in store.spans():
        m = int(store.read("header_crossline", a, b).max())
        top = m if top is None else max(top, m)
    stats = HeaderStats()
    found = False
    for a, b in store.spans():
        cdp = store.read("header_inline", a, b) * (top + 1) + store.read("header_crossline", a, b)
        found = found or bool(np.any(cdp))
        stats._run("header_cdp", np.diff(cdp), lambda last, c=cdp: c[0] != last)
        stats.last["header_cdp"] = cdp[-1]
    return found, stats.runs["header_cdp"]


def _median_ratio(store, m: int, hist: np.ndarray) -> float:
    """``np.median`` of the offset ratios (:func:`_ratios`) of every trace, exactly, in
    bounded memory: positive floats order as their bit patterns, so the middle values are
    found 16 bits at a time from histograms (the first gathered by :meth:`HeaderStats.add`),
    each further level one pass over the offset columns."""

    def blocks():
        for a, b in store.spans():
            r = _ratios(store.read("offset", a, b),
                        np.abs(store.read("header_offset", a, b)).astype(np.float64))
            yield r.view(np.uint64)

    ks = [(m - 1) // 2] if m % 2 else [m // 2 - 1, m // 2]
    vals = [_kth(blocks, k, hist) for k in ks]
    return float(np.mean(np.array(vals)))


def _kth(blocks, k: int, hist: np.ndarray) -> float:
    """The ``k``-th smallest (from 0) positive float64 of ``blocks()`` (uint64 views)."""
    prefix, shift = 0, 64 - _DIGIT
    while True:
        cum = np.cumsum(hist)
        d = int(np.searchsorted(cum, k, side="right"))
        k -= int(cum[d - 1]) if d else 0
        prefix = (prefix << _DIGIT) | d
        if shift == 0:  # the whole bit pattern: one value
            return float(np.array([prefix], np.uint64).view(np.float64)[0])
        if hist[d] <= _GATHER:
            sh, want = np.uint64(shift), np.uint64(prefix)
            v = np.concatenate([u[(u >> sh) == want] for u in blocks()]).view(np.float64)
            return float(np.partition(v, k)[k])
        shift -= _DIGIT
        sh, up, want = np.uint64(shift), np.uint64(shift + _DIGIT), np.uint64(prefix)
        mask = np.uint64((1 << _DIGIT) - 1)
        hist = np.zeros(1 << _DIGIT, np.int64)
        for u in blocks():
            sel = u[(u >> up) == want]
            hist += np.bincount(((sel >> sh) & mask).astype(np.int64), minlength=1 << _DIGIT)


def inspect(raw: dict, cols: dict, layout: Layout) -> tuple[str, list[str], int]:
    """Domain, warnings and coordinate units code of a freshly scanned file.

    Post-stack files get their coordinate columns rewritten (:func:`apply_post_stack`).
    Whole columns in one block of :class:`HeaderStats` (the index build gathers it block by
    block).

    Parameters
    ----------
    raw : dict
        Raw header arrays (see :func:`seis_hpc.io.index.read_headers`).
    cols : dict
        Index columns (see :func:`seis_hpc.io.index.derive_columns`); modified in place.
    layout : Layout
        The file's layout.

    Returns
    -------
    domain : str
    warnings : list of str
        One line each, without the file name.
    units : int
        The coordinate units code most traces carry (0 when unset).
    """
    stats = HeaderStats(layout)
    codes = coordinate_unit_codes(layout) if layout.kind == "segy" else None
    stats.add(cols, 0, raw, codes)
    return stats.finish(ArrayColumns(cols, layout.n_traces))
