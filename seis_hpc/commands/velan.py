"""``seis-hpc velan``: semblance velocity analysis with automatic picking -> Vrms volume."""

HELP = "velocity analysis: semblance, automatic picks, smooth Vrms field (HDF5)"
INPUTS = ("input", "use_picks", "reference", "bin_grid")
OUTPUTS = ("out", "picks", "su_table", "csv")
WRITES = ("index",)  # written when missing or stale
DESCRIPTION = """Velocity analysis of CMP gathers into a smooth RMS-velocity field.

  seis-hpc velan GATHERS.sgy --out velocity.h5 [--picks picks.toml] [--every N]

At analysis locations every N CMPs (--every, or every M metres with --every-m; 3D: every N
inlines and crosslines) the traces of --supergather neighbouring CMPs are scanned for
semblance over trial velocities vmin..vmax step dv (m/s). The automatic picker takes the
highest-coherence path with Vrms never decreasing in time and every Dix interval velocity in
--vint-min..--vint-max (m/s; a number, or time:velocity pairs such as 0:1450,0.2:1550 to let
the water layer be slower), optionally within --corridor of a --reference function
(time_s,vrms_mps CSV). Picks at neighbouring locations that disagree by more than --outlier
are dropped. The picks are interpolated (linear in V^2 t in time, linear between locations)
and smoothed over --smooth-m metres and --smooth-s seconds.

Marine data: the picker knows the water (--water-velocity, default 1500 m/s; 0 for land):
no velocity below it, the sea floor (--water-bottom seconds, else detected on the near
offsets) at the water velocity, picks on the water-bottom multiple train and peg-legs
rejected, a second pass inside --trend-corridor of a smooth trend fitted to all locations,
and below the deepest kept pick the trend's interval velocity instead of noise. The field's
Dix interval velocities are kept within --vint-min..--vint-max everywhere.

Outputs: velocity.h5 (seis_hpc 'vrms' volume on the survey grid; every --velocity reads
it); --picks PICKS.toml (editable table; an existing one is kept unless --force);
--su-table FILE (SU par file cdp=.. tnmo=.. vnmo=.., sampled every --su-every CMPs);
--csv FILE (cdp,time_s,vrms_mps at the same places). To use edited picks instead of
picking, give --use-picks PICKS.toml (or an SU par file).

Exit status: 0 written; 2 bad input (one line, nothing written).
"""

import argparse  # noqa: E402 - after DESCRIPTION, which --help shows first


def _bound(text: str):
    try:
        if ":" not in text:
            return float(text)
        return [tuple(float(x) for x in pair.split(":")) for pair in text.split(",") if pair]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a velocity or time:velocity pairs, got {text!r}"
                                         ) from None


def _lowest(bound) -> float:
    return float(bound) if not isinstance(bound, list) else min(v for _, v in bound)


def _highest(bound) -> float:
    return float(bound) if not isinstance(bound, list) else max(v for _, v in bound)


def add_arguments(parser) -> None:
    """Parameters of ``seis-hpc velan`` (field names, SI units)."""
    parser.add_argument("input", metavar="GATHERS", help="SEG-Y/SU prestack file (or index)")
    parser.add_argument("--out", "-o", required=True, metavar="VELOCITY.h5",
                        help="output vrms volume")
    parser.add_argument("--picks", metavar="PICKS.toml", help="write the picks table here")
    parser.add_argument("--use-picks", metavar="TABLE", help="use this picks table (TOML or "
                        "SU par file) instead of picking")
    parser.add_argument("--su-table", metavar="FILE", help="also export the field as an SU "
                        "par file")
    parser.add_argument("--csv", metavar="FILE", help="also export the field as CSV "
                        "(cdp,time_s,vrms_mps)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing --picks table")
    parser.add_argument("--su-every", type=int, default=20, metavar="N",
                        help="CMP spacing of the SU table (default 20)")
    parser.add_argument("--bin-grid", metavar="GRID.toml", help="bin by this grid (origin, "
                        "azimuth, bin sizes, first inline/crossline, or corners) instead of "
                        "finding one; traces outside it are reported and not used")
    parser.add_argument("--index", metavar="PATH", help="trace index file")
    g = parser.add_argument_group("analysis")
    g.add_argument("--every", type=int, metavar="N", help="analysis every N CMPs (default 20)")
    g.add_argument("--every-m", type=float, metavar="M", help="analysis every M metres")
    g.add_argument("--supergather", type=int, metavar="N",
                   help="CMPs pooled per location (default: from the fold map, at least 3)")
    g.add_argument("--min-fold", type=int,
                   help="skip bins with fewer traces (default: half the typical fold, <= 6)")
    g.add_argument("--vmin", type=float, default=1400.0, help="first trial velocity (m/s)")
    g.add_argument("--vmax", type=float, default=4000.0, help="last trial velocity (m/s)")
    g.add_argument("--dv", type=float, default=10.0, help="velocity step (m/s)")
    g.add_argument("--window", type=float, default=0.024, help="semblance window (s)")
    g.add_argument("--stretch-mute", type=float, default=0.5, help="scan stretch mute")
    g.add_argument("--method", default="conventional", choices=("conventional", "ab"))
    p = parser.add_argument_group("picking")
    p.add_argument("--vint-min", type=_bound, default=1400.0, metavar="V|T:V,..",
                   help="lowest interval velocity (m/s; default 1400)")
    p.add_argument("--vint-max", type=_bound, default=6000.0, metavar="V|T:V,..",
                   help="highest interval velocity (m/s; default 6000)")
    p.add_argument("--reference", metavar="CSV", help="reference time_s,vrms_mps function")
    p.add_argument("--corridor", type=float, default=0.1,
                   help="allowed relative departure from the reference (default 0.1)")
    p.add_argument("--min-semblance", type=float, default=0.2)
    p.add_argument("--outlier", type=float, default=0.04,
                   help="drop picks this far (relative) from their neighbours (0: keep all)")
    p.add_argument("--tmin", type=float, help="first pick time (s)")
    p.add_argument("--tmax", type=float, help="last pick time (s)")
    p.add_argument("--water-velocity", type=float, default=1500.0, metavar="M/S",
                   help="water velocity (m/s; default 1500; 0: land data, no water)")
    p.add_argument("--water-bottom", type=float, metavar="S",
                   help="water-bottom two-way time (s; default: detected)")
    p.add_argument("--trend-corridor", type=float, default=0.06,
                   help="second-pass corridor around the fitted trend (default 0.06)")
    p.add_argument("--extrapolate", default="trend", choices=("trend", "constant"),
                   help="below the deepest kept pick: the trend's interval velocity (default) "
                   "or a constant one")
    f = parser.add_argument_group("field")
    f.add_argument("--smooth-m", type=float, default=250.0, help="lateral smoothing (m)")
    f.add_argument("--smooth-s", type=float, default=0.05, help="smoothing in time (s)")


def run(args) -> int:
    import datetime as dt
    import json
    import os
    import sys

    import numpy as np

    from seis_hpc.errors import SeisError
    from seis_hpc.io.atomic import atomic_outputs, prepare_outputs
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.field import field_from_picks, table_from_field, write_vrms
    from seis_hpc.velocity.model import read_vrms_csv, write_vrms_table_csv
    from seis_hpc.velocity.picks import read_picks, write_picks, write_su_picks
    from seis_hpc.velocity.velan import (
        ScanParams,
        analysis_locations,
        rejection_summary,
        velocity_analysis,
    )

    if not os.path.exists(args.input):
        raise FileNotFoundError(2, "No such file or directory", args.input)
    if args.picks and not args.picks.lower().endswith(".toml"):
        raise SeisError(f"--picks {args.picks}: the picks table is TOML; name it .toml")
    if args.picks and os.path.exists(args.picks) and not args.force:
        raise SeisError(f"--picks {args.picks} exists (edited picks?): read it back with "
                        "--use-picks, or give --force to overwrite it")
    prepare_outputs(args.out, args.picks, args.su_table, args.csv)  # bad names fail first
    if args.every is not None and args.every_m is not None:
        raise SeisError("give --every or --every-m, not both")
    survey = Survey.open(args.input, args.index, grid=args.bin_grid)
    survey.check_for("velan")  # prestack, lengths (issue 15)
    idx, grid = survey.index, survey.grid
    time = idx.times()
    from seis_hpc.limits import check_in_memory

    # the field is interpolated and smoothed in float64 (three copies) and written float32
    check_in_memory(28 * grid.n_bins * time.size, "the velocity field",
                    f"{grid.n_bins:,} bins x {time.size:,} samples x 28 bytes")
    if args.use_picks:
        picks = read_picks(args.use_picks, grid)
    else:
        from seis_hpc.velocity.velan import choose_supergather

        fold = survey.fold()
        size, min_fold = choose_supergather(fold, grid.is_2d)
        if args.supergather is not None:
            size = args.supergather
        if args.min_fold is not None:
            min_fold = args.min_fold
        params = ScanParams(vmin=args.vmin, vmax=args.vmax, dv=args.dv, window=args.window,
                            stretch_mute=args.stretch_mute, supergather=size,
                            method=args.method, vint_min=args.vint_min, vint_max=args.vint_max,
                            corridor=args.corridor, min_semblance=args.min_semblance,
                            outlier=args.outlier or None, tmin=args.tmin, tmax=args.tmax,
                            water_velocity=args.water_velocity or None,
                            water_bottom=args.water_bottom,
                            trend_corridor=args.trend_corridor, extrapolate=args.extrapolate)
        params.velocities()
        reference = read_vrms_csv(args.reference) if args.reference else None
        every = args.every if args.every is not None or args.every_m is not None else 20
        locs = analysis_locations(grid, fold, every=every, every_m=args.every_m,
                                  min_fold=min_fold)
        if args.supergather is None or args.min_fold is None:
            print(f"velan: super-gathers of {size} {'CMPs' if grid.is_2d else 'bins a side'}, "
                  f"locations with fold >= {min_fold} (from the fold map)", file=sys.stderr)
        from seis_hpc.progress import Progress

        with Progress(len(locs), "velan", "location") as prog:
            picks = velocity_analysis(idx, idx["inline"], idx["crossline"], grid, locs, params,
                                      reference=reference,
                                      progress=lambda done, total: prog.set(done))
    bounds = (min(_lowest(args.vint_min), args.water_velocity or np.inf),
              _highest(args.vint_max))
    field = field_from_picks(picks, grid, time, smooth_m=args.smooth_m, smooth_s=args.smooth_s,
                             vint_bounds=bounds)
    config = json.dumps({k: v for k, v in vars(args).items() if not k.startswith("_")},
                        default=str, indent=1)
    history = [f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} seis-hpc "
               f"velan {' '.join(sys.argv[2:])}"]
    # Every output or none: each goes to its temporary name, renamed when all are done.
    with atomic_outputs(args.out, args.picks, args.su_table, args.csv) as (out, picks_out,
                                                                           su_out, csv_out):
        if picks_out:
            write_picks(picks_out, picks)
        write_vrms(out, field, grid, time, config=config, history=history,
                   attrs={"n_locations": len(picks.locations)})
        if su_out:
            write_su_picks(su_out, table_from_field(field, grid, time, every=args.su_every))
        if csv_out:
            write_vrms_table_csv(csv_out, table_from_field(field, grid, time,
                                                           every=args.su_every))
    n = sum(len(p.time) for p in picks.locations)
    print(f"velan: {len(picks.locations)} locations, {n} picks; wrote {args.out}",
          file=sys.stderr)
    if not args.use_picks:
        print(f"velan: {rejection_summary(picks)}", file=sys.stderr)
    return 0
