"""The small CSV tables of the mute and statics steps, read and checked whole.

Every table has a header line naming its columns (any order, ``#`` comments and blank lines
ignored); a problem is one :class:`~seis_hpc.errors.SeisError` naming the file and line.

* mute: ``offset_m,time_s``, optionally with a key column ``cdp`` or ``ffid`` (one function
  per key value; offsets increasing within each key);
* statics: ``ffid,shift_s`` (per shot) or ``station,shift_s`` (per source and receiver
  station);
* tide: ``time,tide_m`` (time ISO 8601 UTC such as ``2026-03-01T12:30:00``, or POSIX seconds;
  height in m above the datum), times increasing.
"""

from __future__ import annotations

import csv
import datetime as _dt
import os

import numpy as np

from seis_hpc.errors import SeisError


def _rows(path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    path = os.fspath(path)
    try:
        with open(path, newline="") as fh:
            lines = [(n, ln) for n, ln in enumerate(fh, start=1)
                     if ln.strip() and not ln.lstrip().startswith("#")]
    except UnicodeDecodeError:
        raise SeisError("not a text CSV table", path) from None
    if not lines:
        raise SeisError("empty table (expected a header line and rows)", path)
    recs = list(csv.reader([ln for _, ln in lines]))
    header = [c.strip().lower() for c in recs[0]]
    rows = [(lines[i][0], [c.strip() for c in r]) for i, r in enumerate(recs) if i > 0]
    if not rows:
        raise SeisError("table has a header but no rows", path)
    return header, rows


def _columns(path, header, want: list[str], optional: tuple[str, ...] = ()) -> dict[str, int]:
    missing = [c for c in want if c not in header]
    if missing:
        raise SeisError(f"line 1: missing column {missing[0]!r} (expected "
                        f"{','.join(want)}; found {','.join(header)})", path)
    extra = [c for c in header if c not in want and c not in optional]
    if extra:
        raise SeisError(f"line 1: unknown column {extra[0]!r} (expected "
                        f"{','.join(list(optional) + want)})", path)
    return {c: header.index(c) for c in list(want) + [o for o in optional if o in header]}


def _num(path, n: int, row: list[str], i: int, name: str) -> float:
    try:
        v = float(row[i])
    except (IndexError, ValueError):
        got = row[i] if i < len(row) else "nothing"
        raise SeisError(f"line {n}: {name}: expected a number, got {got!r}", path) from None
    if not np.isfinite(v):
        raise SeisError(f"line {n}: {name}: not a finite number ({row[i]!r})", path)
    return v


def read_mute_table(path) -> tuple[str | None, list[tuple[float | None, np.ndarray, np.ndarray]]]:
    """A mute table: (key name or None, [(key, offsets m, times s), ...] sorted by key)."""
    header, rows = _rows(path)
    keys = [k for k in ("cdp", "ffid") if k in header]
    if len(keys) > 1:
        raise SeisError("line 1: give one key column, cdp or ffid, not both", path)
    col = _columns(path, header, ["offset_m", "time_s"], tuple(keys))
    key = keys[0] if keys else None
    groups: dict = {}
    for n, r in rows:
        if len(r) != len(header):
            raise SeisError(f"line {n}: expected {len(header)} values, got {len(r)}", path)
        k = _num(path, n, r, col[key], key) if key else None
        off = _num(path, n, r, col["offset_m"], "offset_m")
        t = _num(path, n, r, col["time_s"], "time_s")
        if off < 0:
            raise SeisError(f"line {n}: offset_m: negative offset {off:g} (give absolute "
                            "offsets)", path)
        g = groups.setdefault(k, ([], [], []))
        if g[0] and off <= g[0][-1]:
            what = f" for {key} {k:g}" if key else ""
            raise SeisError(f"line {n}: offsets must increase{what} ({off:g} m after "
                            f"{g[0][-1]:g} m)", path)
        g[0].append(off)
        g[1].append(t)
        g[2].append(n)
    knots = [(k, np.array(o), np.array(t)) for k, (o, t, _) in
             sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0]))]
    return key, knots


def read_statics_table(path) -> tuple[str, np.ndarray, np.ndarray]:
    """A statics table: (``"ffid"`` or ``"station"``, keys int64, shifts s)."""
    header, rows = _rows(path)
    kinds = [k for k in ("ffid", "station") if k in header]
    if len(kinds) != 1:
        raise SeisError("line 1: expected columns ffid,shift_s or station,shift_s (found "
                        f"{','.join(header)})", path)
    kind = kinds[0]
    col = _columns(path, header, [kind, "shift_s"])
    keys, shifts, seen = [], [], {}
    for n, r in rows:
        if len(r) != len(header):
            raise SeisError(f"line {n}: expected {len(header)} values, got {len(r)}", path)
        k = _num(path, n, r, col[kind], kind)
        if k != int(k):
            raise SeisError(f"line {n}: {kind}: expected an integer, got {r[col[kind]]!r}", path)
        if int(k) in seen:
            raise SeisError(f"line {n}: {kind} {int(k)} given twice (first on line "
                            f"{seen[int(k)]})", path)
        seen[int(k)] = n
        keys.append(int(k))
        shifts.append(_num(path, n, r, col["shift_s"], "shift_s"))
    return kind, np.array(keys, np.int64), np.array(shifts)


def parse_time(text: str) -> float:
    """POSIX seconds (UTC) of an ISO 8601 time or of a plain number of seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    d = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


def read_tide_table(path) -> tuple[np.ndarray, np.ndarray]:
    """A tide table: (times, POSIX s UTC; heights, m), times increasing."""
    header, rows = _rows(path)
    hcol = "tide_m" if "tide_m" in header else "height_m"
    col = _columns(path, header, ["time", hcol])
    times, heights = [], []
    for n, r in rows:
        if len(r) != len(header):
            raise SeisError(f"line {n}: expected {len(header)} values, got {len(r)}", path)
        try:
            t = parse_time(r[col["time"]])
        except ValueError:
            raise SeisError(f"line {n}: time: expected ISO 8601 (2026-03-01T12:30:00) or "
                            f"seconds, got {r[col['time']]!r}", path) from None
        if times and t <= times[-1]:
            raise SeisError(f"line {n}: times must increase ({r[col['time']]!r})", path)
        times.append(t)
        heights.append(_num(path, n, r, col[hcol], hcol))
    return np.array(times), np.array(heights)
