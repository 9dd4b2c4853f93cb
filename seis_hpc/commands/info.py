"""``seis-hpc info``: what is in a SEG-Y, SU or seis_hpc HDF5 file."""

INPUTS = ("file", "header_map")  # reads only

HELP = "summarise a SEG-Y, SU, trace index or seis_hpc volume file"
DESCRIPTION = """Print a summary of FILE:

  SEG-Y / SU   traces, samples, interval (ms), record length, sample format, byte order,
               revision, geometry (2D/3D, grid, fold min/mean/max), ranges of the key
               headers (FFID, channel, CDP, offset, SX/SY, GX/GY, inline, crossline), the
               domain (shot, cmp or post-stack, from headers and fold) and warnings where
               the headers contradict themselves (coordinate units, sample counts, offsets).
               Uses an up-to-date trace index when there is one; writes nothing.
  HDF5         a seis_hpc volume (image, vrms, gathers): grid, axes, history;
               a trace index: the file it indexes, its layout and geometry.

Examples:
  seis-hpc info line12.sgy
  seis-hpc info shots.su --json
  seis-hpc info image.h5
"""


def add_arguments(parser) -> None:
    """FILE, --json, --header-map."""
    parser.add_argument("file", metavar="FILE", help="SEG-Y, SU or HDF5 file")
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    parser.add_argument("--header-map", metavar="MAP.toml",
                        help="trace-header byte map (TOML) for non-standard SEG-Y")


def _ranges(idx) -> dict:
    keys = ("ffid", "channel", "header_cdp", "header_offset", "sx", "sy", "rx", "ry",
            "header_inline", "header_crossline", "offset")
    out = {}
    for k in keys:
        v = idx[k]
        lo, hi = (v.min(), v.max()) if len(v) else (0, 0)
        out[k] = [lo.item(), hi.item()]
    return out


def _geometry(idx) -> dict:
    from seis_hpc.errors import SeisError
    from seis_hpc.survey import Survey

    try:
        return Survey.from_index(idx).report()
    except SeisError as exc:
        return {"geometry": "unavailable", "reason": exc.detail}


def describe_segy(path, headermap=None) -> dict:
    """Summary of a SEG-Y or SU file as a dict (see module help)."""
    from seis_hpc.io.index import TraceIndex
    from seis_hpc.io.segy import FORMAT_NAMES
    from seis_hpc.survey import header_warnings

    idx = TraceIndex.for_file(path, headermap=headermap, save=False)
    a = idx.attrs
    info = {
        "file": str(path),
        "kind": a["kind"],
        "traces": idx.n_traces,
        "samples": idx.ns,
        "interval_ms": idx.dt * 1e3,
        "start_time_ms": idx.t_start * 1e3,
        "record_length_ms": (idx.ns - 1) * idx.dt * 1e3,
        "format": f"{a['format']} ({FORMAT_NAMES[int(a['format'])]})",
        "byte_order": a["endian"],
        "revision": a["revision"] or "-",
        "header_ranges": _ranges(idx),
        "domain": a.get("domain", "shot"),
        "warnings": header_warnings(idx),
    }
    if a["declared_format"] != a["format"]:
        info["format"] += f", header says {a['declared_format']}"
    info.update(_geometry(idx))
    return info


def describe_hdf5(path) -> dict:
    """Summary of a seis_hpc HDF5 volume or trace index.

    Raises
    ------
    SeisError
        A truncated or damaged file (HDF5 cannot read it), or one that is not a seis_hpc
        volume or index (missing grid attributes or data sets), naming the file.
    """
    from seis_hpc.errors import SeisError

    try:
        return _describe_hdf5(path)
    except SeisError as exc:
        if exc.path is None:
            raise SeisError(str(exc), path) from None
        raise
    except KeyError as exc:
        raise SeisError(f"not a seis_hpc volume: missing {exc.args[0]!r}", path) from None
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, OSError) and exc.filename:
            raise  # an OS error on the file itself (permission...): its own message
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise SeisError(f"damaged or truncated HDF5 file ({reason})", path) from None


def _describe_hdf5(path) -> dict:
    import json

    import h5py

    from seis_hpc.errors import SeisError
    from seis_hpc.geometry import BinGrid
    from seis_hpc.io.index import TraceIndex

    with h5py.File(path, "r") as f:
        if "byte_offset" in f and "segy_path" in f.attrs:
            kind = "index"
        elif f.attrs.get("kind") in f:
            kind = str(f.attrs["kind"])
        else:
            raise SeisError("HDF5 file is neither a seis_hpc volume nor a trace index", path)
        if kind != "index":
            grid = BinGrid.from_attrs(f.attrs)
            t = f["time"][...]
            info = {"file": str(path), "kind": f"volume ({kind})",
                    "shape": list(f[kind].shape),
                    "dims": [d.label or "" for d in f[kind].dims],
                    "grid": grid.describe(),
                    "samples": int(len(t)),
                    "interval_ms": float(t[1] - t[0]) * 1e3 if len(t) > 1 else 0.0,
                    "start_time_ms": float(t[0]) * 1e3 if len(t) else 0.0,
                    "units": str(f[kind].attrs.get("units", "")),
                    "history": json.loads(f.attrs.get("history", "[]"))}
            info["end_time_ms"] = float(t[-1]) * 1e3 if len(t) else 0.0
            if "cdp_x" in f:
                cx, cy = f["cdp_x"][...], f["cdp_y"][...]
                info["cdp_x_m"] = [float(cx.min()), float(cx.max())]
                info["cdp_y_m"] = [float(cy.min()), float(cy.max())]
            if "offset" in f:
                off = f["offset"][...]
                info["offset_classes_m"] = [float(off.min()), float(off.max()), len(off)]
            for name in ("image", "vrms", "gathers"):
                if name in f:
                    info[f"{name}_range"] = _value_range(f[name])
            for k in sorted(f.attrs):
                if k.startswith("pstm_") or k in ("strategy", "n_ranks"):
                    v = f.attrs[k]
                    info[k] = v.item() if hasattr(v, "item") else str(v)
            if "timing" in f.attrs:
                info["timing"] = json.loads(f.attrs["timing"])
            return info
    idx = TraceIndex.open(path)
    a = idx.attrs
    info = {"file": str(path), "kind": "trace index", "indexes": a["segy_path"],
            "stale": idx.is_stale(), "traces": idx.n_traces, "samples": idx.ns,
            "interval_ms": idx.dt * 1e3, "format": a["format"], "byte_order": a["endian"],
            "header_ranges": _ranges(idx)}
    if "grid_x0" in a:
        from seis_hpc.survey import Geometry, Survey

        geo = Geometry(BinGrid.from_attrs(a), idx["cmp"], idx["inline"], idx["crossline"],
                       str(a.get("geometry", "")))
        info.update(Survey(idx, geo).report())
    else:
        info.update(_geometry(idx))
    return info


def _value_range(dset) -> dict:
    """min, max and RMS of a data set, read chunk row by chunk row (never whole)."""
    import numpy as np

    lo, hi, ss, n = np.inf, -np.inf, 0.0, 0
    step = max(1, (dset.chunks or dset.shape)[0])
    for i in range(0, dset.shape[0], step):
        a = dset[i:i + step].astype(np.float64)
        if a.size:
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
            ss += float(np.square(a).sum())
            n += a.size
    return {"min": lo, "max": hi, "rms": (ss / n) ** 0.5 if n else 0.0,
            "units": str(dset.attrs.get("units", ""))}


def format_text(info: dict) -> str:
    """Human-readable lines of an info dict."""
    lines = []
    for k, v in info.items():
        if k == "header_ranges":
            lines.append("header ranges:")
            for name, (lo, hi) in v.items():
                lines.append(f"  {name:<18} {lo:g} .. {hi:g}")
        elif k == "warnings" and isinstance(v, list):
            lines.extend(f"warning: {w}" for w in v)
        elif k == "history" and isinstance(v, list):
            lines.append("history:")
            lines.extend(f"  {h}" for h in v)
        elif k.endswith("_range") and isinstance(v, dict):
            lines.append(f"{k.replace('_', ' ')}: {v['min']:.6g} .. {v['max']:.6g}, "
                         f"rms {v['rms']:.6g} {v['units']}".rstrip())
        elif k == "timing" and isinstance(v, list):
            lines.append("timing per rank (s): " + "; ".join(
                f"{r}: " + ", ".join(f"{p} {t.get(p, 0):.1f}" for p in
                                     ("compute", "io", "comm", "idle"))
                for r, t in enumerate(v)))
        elif isinstance(v, float):
            lines.append(f"{k.replace('_', ' ')}: {v:g}")
        else:
            lines.append(f"{k.replace('_', ' ')}: {v}")
    return "\n".join(lines)


def run(args) -> int:
    import json
    import os

    import h5py

    from seis_hpc.errors import SeisError

    path = args.file
    if os.path.isdir(path):
        raise SeisError("is a directory, not a SEG-Y, SU or HDF5 file", path)
    with open(path, "rb"):
        pass  # the OS error (missing, unreadable) is the message
    info = describe_hdf5(path) if h5py.is_hdf5(path) else describe_segy(path, args.header_map)
    print(json.dumps(info, indent=1, default=str) if args.json else format_text(info))
    return 0
