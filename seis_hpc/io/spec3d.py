"""A header-only model of the spec's 3D survey (``seis-hpc synth --preset spec3d --headers-only``).

Geometry only, no samples: the trace index (:mod:`seis_hpc.io.index` columns, spatially
blocked as in :mod:`seis_hpc.io.blocked`), ``truth.json`` and ``velocity.csv`` of

* an area of 25 km across x 30 km along the sail lines at scale F = 1 (both sides times
  sqrt(F), so F is the fraction of the area);
* dual flip-flop sources 50 m apart, firing alternately every 25 m along each sail line;
* 12 streamers 100 m apart, 240 groups of 12.5 m each (3,000 m), 100 m near offset;
* sail lines 600 m apart (the 24 CMP lines of 25 m of one pass), shot in alternate
  directions, each with a 1,500 m run-in before the area and a 1,500 m run-out after it;
* streamer feathering: each line has its own angle (up to +-``max_feather`` degrees) plus a
  slow +-1.5 degree swing along the line; every receiver lies on the straight streamer
  leaving its nominal head position at the feather angle to the sail line;
* infill gaps: about one line in seven misses a run of 40 shots (1 km), listed in the truth;
* 5 s at 2 ms (2,501 samples): the trace positions (``byte_offset``) are those of the
  rev 1 SEG-Y the survey would be, in firing order.

Everything is generated one sail line at a time, and inside a line the traces are sorted by
midpoint segment (``segment`` m along the line) and written as blocks (sail line, segment), so
memory holds one line's keys and one block's columns, whatever F.

All distances m, angles degrees, times s.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid


@dataclass(frozen=True)
class SpecSurvey:
    """Acquisition of the spec's 3D survey (m, s, degrees); see the module text."""

    width: float = 25_000.0  # across the sail lines, at F = 1
    length: float = 30_000.0  # along them
    n_sources: int = 2
    source_separation: float = 50.0
    shot_interval: float = 25.0  # along a sail line, alternate sources
    n_streamers: int = 12
    streamer_separation: float = 100.0
    n_channels: int = 240
    group_interval: float = 12.5
    near_offset: float = 100.0
    run_in: float = 1500.0
    run_out: float = 1500.0
    max_feather: float = 5.0
    feather_swing: float = 1.5
    feather_period: float = 10_000.0
    gap_every: int = 7  # about one line in this many has an infill gap
    gap_shots: int = 40
    dt: float = 0.002
    record_length: float = 5.0
    azimuth: float = 30.0
    x0: float = 500_000.0
    y0: float = 3_650_000.0
    segment: float = 400.0  # along-line extent of a block (midpoints, m)
    seed: int = 19

    @property
    def sail_line_spacing(self) -> float:
        """One pass's swath of CMP lines: streamers x separation / sources (600 m)."""
        return self.n_streamers * self.streamer_separation / self.n_sources

    @property
    def ns(self) -> int:
        """Samples per trace."""
        return int(round(self.record_length / self.dt)) + 1

    @property
    def channels_per_shot(self) -> int:
        """Traces of one shot."""
        return self.n_streamers * self.n_channels


def _lines(acq: SpecSurvey, scale: float) -> dict:
    """Sail lines, shots per line, gaps and feather angles at scale ``scale``."""
    if not 0 < scale <= 1:
        raise SeisError(f"--scale must be in (0, 1] (the fraction of the spec's area; got "
                        f"{scale:g})")
    f = math.sqrt(scale)
    length, width = acq.length * f, acq.width * f
    n_lines = max(1, int(round(width / acq.sail_line_spacing)))
    n_shots = int(math.floor((length + acq.run_in + acq.run_out) / acq.shot_interval)) + 1
    rng = np.random.default_rng(acq.seed)
    feather = rng.uniform(-acq.max_feather + acq.feather_swing,
                          acq.max_feather - acq.feather_swing, n_lines)
    phase = rng.uniform(0, 2 * math.pi, n_lines)
    gaps = []
    for line in range(n_lines):
        if rng.random() < 1.0 / acq.gap_every and n_shots > 3 * acq.gap_shots:
            first = int(rng.integers(acq.gap_shots, n_shots - 2 * acq.gap_shots))
            gaps.append((line, first, first + acq.gap_shots))
    return {"length": length, "width": width, "n_lines": n_lines, "n_shots": n_shots,
            "feather": feather, "phase": phase, "gaps": gaps}


def spec_grid(acq: SpecSurvey, lines: dict) -> BinGrid:
    """The nominal bin grid: 6.25 m along (half the group interval), 25 m across (a quarter
    of the streamer separation), covering every nominal midpoint of every line."""
    bin_in = acq.group_interval / 2.0
    bin_cr = acq.streamer_separation / (2.0 * acq.n_sources)
    far = (acq.near_offset + (acq.n_channels - 1) * acq.group_interval) / 2.0
    a0 = -acq.run_in - far
    a1 = lines["length"] + acq.run_out + far
    n_xl = int(round((a1 - a0) / bin_in)) + 1
    half = (acq.sail_line_spacing - bin_cr) / 2.0
    c0 = -half
    n_il = lines["n_lines"] * int(round(acq.sail_line_spacing / bin_cr))
    ux, uy, vx, vy = _axes(acq)
    return BinGrid(acq.x0 + a0 * ux + c0 * vx, acq.y0 + a0 * uy + c0 * vy, acq.azimuth,
                   bin_in, bin_cr, 1, 1, n_il, n_xl)


def _axes(acq: SpecSurvey) -> tuple[float, float, float, float]:
    """Unit vectors (x, y) along the sail lines and across them (inline numbers increase)."""
    a = math.radians(acq.azimuth)
    return math.sin(a), math.cos(a), math.cos(a), -math.sin(a)


def _line_shots(acq: SpecSurvey, lines: dict, line: int) -> dict:
    """The shots of one sail line in firing order: along position, source, feather angle."""
    n = lines["n_shots"]
    k = np.arange(n)
    keep = np.ones(n, bool)
    for gl, a, b in lines["gaps"]:
        if gl == line:
            keep[a:b] = False
    k = k[keep]
    forward = line % 2 == 0  # alternate directions (racetrack)
    start = -acq.run_in
    along = start + k * acq.shot_interval
    if not forward:
        along = (lines["length"] + acq.run_out) - (along - start)
    feather = (lines["feather"][line] + acq.feather_swing
               * np.sin(2 * math.pi * along / acq.feather_period + lines["phase"][line]))
    return {"k": k, "along": along, "source": k % acq.n_sources, "feather": feather,
            "heading": 1.0 if forward else -1.0}


def _traces(acq: SpecSurvey, line: int, shots: dict, si: np.ndarray, ch: np.ndarray
            ) -> dict[str, np.ndarray]:
    """Sail coordinates of traces (shot position ``si`` in the line's shots, channel ``ch``
    0-based over all streamers): source and receiver along/across (m)."""
    h = shots["heading"]
    line_c = line * acq.sail_line_spacing
    src = shots["source"][si]
    sa = shots["along"][si]
    sc = line_c + (src - (acq.n_sources - 1) / 2.0) * acq.source_separation * h
    streamer = ch // acq.n_channels
    group = ch % acq.n_channels
    head_c = line_c + (streamer - (acq.n_streamers - 1) / 2.0) * acq.streamer_separation * h
    d = acq.near_offset + group * acq.group_interval  # along the streamer from its head
    phi = np.radians(shots["feather"][si])
    ra = sa - h * d * np.cos(phi)
    rc = head_c + d * np.sin(phi)
    return {"sa": sa, "sc": sc, "ra": ra, "rc": rc, "source": src, "streamer": streamer}


def write_headers_only(out_dir: str | os.PathLike, scale: float = 1.0,
                       acq: SpecSurvey | None = None, log=print) -> dict:
    """Write the header-only spec survey into ``out_dir``: ``spec3d.index.h5`` (blocked
    trace index), ``truth.json`` and ``velocity.csv``.

    Parameters
    ----------
    out_dir : path-like
        Output folder (created).
    scale : float
        Fraction F of the spec's area, in (0, 1].
    acq : SpecSurvey, optional
        Acquisition (default the spec's).
    log : callable
        Progress lines (one per sail line).

    Returns
    -------
    dict
        The truth written to truth.json.
    """
    from seis_hpc.io.atomic import atomic_output
    from seis_hpc.io.blocked import BlockedIndexWriter
    from seis_hpc.synth import Medium, vrms_function

    acq = acq or SpecSurvey()
    lines = _lines(acq, scale)
    grid = spec_grid(acq, lines)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ns, nch = acq.ns, acq.channels_per_shot
    trace_bytes = 240 + 4 * ns
    ux, uy, vx, vy = _axes(acq)
    shots_all = [_line_shots(acq, lines, li) for li in range(lines["n_lines"])]
    n_traces = int(sum(len(s["k"]) for s in shots_all) * nch)
    attrs = {
        "segy_path": "", "kind": "segy", "endian": ">", "format": 5, "declared_format": 5,
        "ns": ns, "dt": acq.dt, "t_start": 0.0, "data_offset": 3600,
        "trace_bytes": trace_bytes, "n_traces": n_traces, "revision": 1,
        "file_size": 3600 + n_traces * trace_bytes, "file_mtime_ns": 0, "header_bytes": 240,
        "headermap": "", "headermap_source": "", "domain": "shot", "warnings": "[]",
        "coordinate_units": 1, "headers_only": 1, "preset": "spec3d", "scale": float(scale),
        "geometry": "given", **grid.to_attrs(),
    }
    i64, f64 = np.dtype(np.int64), np.dtype(np.float64)
    columns = {k: i64 for k in ("ffid", "channel", "energy_source_point", "source_id",
                                "header_offset", "cmp", "inline", "crossline", "byte_offset",
                                "trace")}
    columns.update({k: f64 for k in ("sx", "sy", "rx", "ry", "mx", "my", "offset", "azimuth")})
    far = (acq.near_offset + (acq.n_channels - 1) * acq.group_interval) / 2.0
    a_min = -acq.run_in - far
    first_shot = 0  # global shot number (firing order) of the line's first shot
    first_trace = 0
    target = out / "spec3d.index.h5"
    blocking = (f"sail line x {acq.segment:g} m segments of midpoint along the line; firing "
                "order inside a block")
    with BlockedIndexWriter(target, columns, attrs, blocking) as w:
        for li, shots in enumerate(shots_all):
            n_sh = len(shots["k"])
            # the key of every trace of the line: its midpoint's along-line segment
            si = np.repeat(np.arange(n_sh, dtype=np.int64), nch)
            ch = np.tile(np.arange(nch, dtype=np.int64), n_sh)
            t = _traces(acq, li, shots, si, ch)
            seg = np.floor((0.5 * (t["sa"] + t["ra"]) - a_min) / acq.segment).astype(np.int64)
            del t
            order = np.argsort(seg, kind="stable")
            seg = seg[order]
            cuts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1], True])
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                rows = order[a:b]  # trace numbers inside the line, in firing order
                s_i, c_i = si[rows], ch[rows]
                tr = _traces(acq, li, shots, s_i, c_i)
                sx = acq.x0 + tr["sa"] * ux + tr["sc"] * vx
                sy = acq.y0 + tr["sa"] * uy + tr["sc"] * vy
                rx = acq.x0 + tr["ra"] * ux + tr["rc"] * vx
                ry = acq.y0 + tr["ra"] * uy + tr["rc"] * vy
                mx, my = 0.5 * (sx + rx), 0.5 * (sy + ry)
                dx, dy = rx - sx, ry - sy
                il, xl = grid.bin_of(mx, my)
                seq = first_trace + rows
                cols = {
                    "ffid": 1001 + first_shot + s_i, "channel": c_i + 1,
                    "energy_source_point": tr["source"] + 1, "source_id": first_shot + s_i,
                    "sx": sx, "sy": sy, "rx": rx, "ry": ry, "mx": mx, "my": my,
                    "offset": np.hypot(dx, dy),
                    "azimuth": np.degrees(np.arctan2(dx, dy)) % 360.0,
                    "header_offset": np.rint(np.hypot(dx, dy)).astype(np.int64),
                    "inline": il, "crossline": xl,
                    "cmp": (il - grid.inline0) * grid.n_crossline + (xl - grid.crossline0) + 1,
                    "byte_offset": 3600 + seq * trace_bytes, "trace": seq,
                }
                w.write_block(cols, (li, int(seg[a])))
            first_shot += n_sh
            first_trace += n_sh * nch
            del si, ch, order, seg
            if log is not None:
                log(f"synth spec3d: sail line {li + 1}/{lines['n_lines']}: {n_sh} shots, "
                    f"{first_trace:,} traces so far")
    med = Medium()
    t_axis, vrms = vrms_function(med, acq.record_length, acq.dt)
    with atomic_output(out / "velocity.csv") as tmp, open(tmp, "w") as fh:
        fh.write("time_s,vrms_mps\n")
        for tt, v in zip(t_axis[::5], vrms[::5], strict=True):
            fh.write(f"{tt:.4f},{v:.3f}\n")
    truth = {
        "preset": "spec3d", "headers_only": True, "scale": float(scale), "is_2d": False,
        "n_traces": n_traces, "ns": ns, "dt_s": acq.dt, "acquisition": asdict(acq),
        "sail_line_spacing_m": acq.sail_line_spacing, "n_sail_lines": lines["n_lines"],
        "shots_per_line_nominal": lines["n_shots"], "area_m": [lines["width"], lines["length"]],
        "shots_per_line": [len(s["k"]) for s in shots_all],
        "line_direction": [int(s["heading"]) for s in shots_all],
        "feather_deg": {"per_line": lines["feather"].tolist(),
                        "swing": acq.feather_swing, "period_m": acq.feather_period,
                        "phase_rad": lines["phase"].tolist()},
        "infill_gaps": [{"line": g[0] + 1, "first_shot": g[1], "end_shot": g[2]}
                        for g in lines["gaps"]],
        "grid": {k.removeprefix("grid_"): v for k, v in grid.to_attrs().items()},
        "index": target.name, "segy_bytes": 3600 + n_traces * trace_bytes,
    }
    with atomic_output(out / "truth.json") as tmp:
        Path(tmp).write_text(json.dumps(truth, indent=1, default=float))
    return truth


def add_arguments(parser) -> None:
    """``seis-hpc synth`` options of the header-only spec survey: ``--headers-only``,
    ``--scale``."""
    g = parser.add_argument_group(
        "header-only spec survey",
        "--preset spec3d --headers-only [--scale F]: the spec's 3D survey (25 x 30 km at\n"
        "F = 1, F the fraction of the area; 1.6e8 traces, 1.6 TB of SEG-Y) as geometry only:\n"
        "OUT/spec3d.index.h5 (a spatially blocked trace index, about 4 GB at F = 1),\n"
        "truth.json and velocity.csv, for seis-hpc pstm --dry-run")
    g.add_argument("--headers-only", action="store_true",
                   help="geometry only: the trace index and truth, no samples (spec3d)")
    g.add_argument("--scale", type=float, default=1.0, metavar="F",
                   help="spec3d: fraction of the spec's 750 km^2 area (default 1)")


def command(args) -> int:
    """``seis-hpc synth --preset spec3d --headers-only``: write the survey, print a summary."""
    if args.preset != "spec3d":
        raise SeisError(f"--headers-only is for the preset spec3d (got {args.preset!r})")
    if not args.headers_only:
        raise SeisError("preset spec3d is header-only (its samples would be 1.6 TB at scale "
                        "1): add --headers-only")
    t = write_headers_only(args.out, args.scale, log=lambda line: print(line, flush=True))
    print(f"{args.out}/{t['index']}: {t['n_traces']:,} traces (headers only; the SEG-Y would "
          f"be {t['segy_bytes'] / 1e12:.3g} TB), {t['n_sail_lines']} sail lines, "
          f"{len(t['infill_gaps'])} infill gaps; truth.json, velocity.csv")
    return 0
