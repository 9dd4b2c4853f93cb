"""What the headers of a file say it is, and where they contradict themselves.

Called once per scan by :meth:`seis_hpc.io.index.TraceIndex.scan`, on the raw header values and
the derived index columns. It returns the data domain and a list of one-line warnings, both
stored in the index attributes (``domain``, ``warnings``) and shown by ``seis-hpc info``.

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
        out[a:b] = np.ascontiguousarray(raw[:, 88:90]).view(f"{layout.byteorder}i2").ravel()
    return out


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
    n = len(cols["sx"])
    if n == 0:
        return "shot"
    no_receivers = (not np.any(cols["rx"]) and not np.any(cols["ry"])) or (
        np.array_equal(cols["rx"], cols["sx"]) and np.array_equal(cols["ry"], cols["sy"]))
    one_offset = np.unique(cols["header_offset"]).size == 1  # 0, or a nominal constant
    if one_offset and no_receivers and (n == 1 or _one_per_bin(cols)):
        return "post-stack"
    cdp = cols["header_cdp"]
    if not np.any(cdp):  # no CDP numbers: the inline/crossline pair names the bin
        cdp = cols["header_inline"] * (int(cols["header_crossline"].max()) + 1) \
            + cols["header_crossline"]
    if np.any(cdp) and _runs(cdp) < _runs(cols["source_id"]):
        return "cmp"
    no_sources = not np.any(cols["sx"]) and not np.any(cols["sy"]) and \
        np.unique(cols["ffid"]).size == 1
    if not np.any(cdp):  # nor bin numbers: the CDP position (often 0) names the bin
        _, cdp = np.unique(np.column_stack([cols["cdp_x"], cols["cdp_y"]]), axis=0,
                           return_inverse=True)
        cdp = cdp.ravel() + 1
    # no shot identity, several offsets per bin: CMP gathers (e.g. a lone synthetic gather)
    if no_sources and _runs(cdp) < n and np.unique(cols["header_offset"]).size > 1:
        return "cmp"
    return "shot"


def apply_post_stack(cols: dict) -> None:
    """Put the post-stack trace position in every coordinate column, offset 0 (in place)."""
    x, y = _position(cols)
    x, y = x.astype(np.float64), y.astype(np.float64)
    for a, b in (("sx", "sy"), ("rx", "ry"), ("mx", "my")):
        cols[a], cols[b] = x.copy(), y.copy()
    cols["offset"] = np.zeros_like(x)
    cols["azimuth"] = np.zeros_like(x)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def inspect(raw: dict, cols: dict, layout: Layout) -> tuple[str, list[str], int]:
    """Domain, warnings and coordinate units code of a freshly scanned file.

    Post-stack files get their coordinate columns rewritten (:func:`apply_post_stack`).

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
    out: list[str] = []
    domain = classify(cols)
    if domain == "post-stack":
        apply_post_stack(cols)
    units = 0
    if layout.kind == "segy" and layout.n_traces:
        codes = coordinate_unit_codes(layout)
        vals, counts = np.unique(codes, return_counts=True)
        units = int(vals[np.argmax(counts)])
        geo = np.isin(codes, GEOGRAPHIC_UNITS)
        has_xy = any(np.any(cols[k]) for k in ("sx", "sy", "rx", "ry", "cdp_x", "cdp_y"))
        if geo.any() and has_xy:
            k = _first(geo)
            out.append(f"coordinate units are {UNIT_NAMES[int(codes[k])]} (trace header bytes "
                       f"89-90 = {int(codes[k])}, {int(geo.sum())} of {len(codes)} traces), not "
                       "metres: geometry steps refuse them unless told how to read them "
                       "(seis-hpc index --coordinate-units metres|feet)")
    ns_tr = raw.get("ns")
    if ns_tr is not None and len(ns_tr):
        bad = (ns_tr != layout.ns) & (ns_tr != 0)
        if bad.any():
            k = _first(bad)
            where = "binary header bytes 3221-3222" if layout.kind == "segy" else "first trace"
            out.append(f"{int(bad.sum())} trace(s) give another sample count than the file's "
                       f"{layout.ns} ({where}): trace {k} says {int(ns_tr[k])} (bytes "
                       f"115-116); read as {layout.ns}")
    off = cols["offset"]
    if len(off) and domain != "post-stack":
        if float(off.max()) > MAX_PLAUSIBLE_OFFSET:
            k = int(np.argmax(off))
            out.append(f"source-receiver distances from the coordinates reach {off[k]:.4g} m "
                       f"(trace {k}, SX/SY bytes 73-80, GX/GY 81-88, scalar bytes 71-72): "
                       "implausible for an offset; check the coordinate scalar and units")
        hdr = np.abs(cols["header_offset"]).astype(np.float64)
        both = (hdr > 0) & (off > 0)
        if both.any():
            ratio = float(np.median(off[both] / hdr[both]))
            if ratio > OFFSET_RATIO or ratio < 1 / OFFSET_RATIO:
                out.append(f"offset header (bytes 37-40) and the source-receiver distance from "
                           f"the coordinates disagree by a factor of {ratio:.3g} (median)")
        elif not np.any(hdr) and np.any(off > 0) and domain != "post-stack":
            out.append("offset header (bytes 37-40) is 0 on every trace although the "
                       f"coordinates give offsets up to {off.max():.4g} m")
    return domain, out, units

