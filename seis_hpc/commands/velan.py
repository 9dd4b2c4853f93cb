"""``seis-hpc velan``: semblance velocity analysis with automatic picking -> Vrms volume."""

HELP = "velocity analysis: semblance, automatic picks, smooth Vrms field (HDF5)"
INPUTS = ("input", "use_picks", "reference", "bin_grid")
OUTPUTS = ("out", "picks", "su_table", "csv")
WRITES = ("index", "qc")  # the index when missing or stale; the QC picture folder
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

QC pictures (--qc DIR, PNG, written with the other outputs, named after --out): per
analysis location (at most --qc-locations) the semblance panel beside its super-gather
NMO-corrected with the final Vrms, with the accepted picks, the rejected ones marked by
reason, the picker's corridor, the water-velocity floor and the water-bottom multiple times
k t_wb (VELOCITY_semblance_cdpN.png); the Vrms section with the picks (VELOCITY_vrms.png)
and the Dix interval-velocity section, unphysical samples in red (VELOCITY_vint.png). Each
has a title block (--line name, what it is, clip or colour scale, units).

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


def add_arguments(parser) -> None:
    """Parameters of ``seis-hpc velan`` (field names, SI units)."""
    parser.add_argument("input", metavar="GATHERS", help="SEG-Y/SU prestack file (or index)")
    parser.add_argument("--out", "-o", required=True, metavar="VELOCITY.h5",
                        help="output vrms volume (m/s)")
    parser.add_argument("--picks", metavar="PICKS.toml", help="write the picks table here "
                        "(default: not written)")
    parser.add_argument("--use-picks", metavar="TABLE", help="use this picks table (TOML or "
                        "SU par file) instead of picking (default: pick)")
    parser.add_argument("--su-table", metavar="FILE", help="also export the field as an SU "
                        "par file (default: none)")
    parser.add_argument("--csv", metavar="FILE", help="also export the field as CSV "
                        "(cdp,time_s,vrms_mps; default: none)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing --picks table")
    parser.add_argument("--su-every", type=int, default=20, metavar="N",
                        help="spacing of the SU table and the CSV in CMPs (default 20)")
    parser.add_argument("--bin-grid", metavar="GRID.toml", help="bin by this grid (origin, "
                        "azimuth, bin sizes, first inline/crossline, or corners) instead of "
                        "finding one; traces outside it are reported and not used (default: "
                        "the grid found from the headers)")
    parser.add_argument("--index", metavar="PATH", help="trace index file (default: "
                        "beside the input or in the cache)")
    parser.add_argument("--qc", metavar="DIR", help="write the QC pictures (PNG) into DIR "
                        "(default: none)")
    parser.add_argument("--qc-locations", type=int, default=60, metavar="N",
                        help="most semblance pictures, evenly spread (default 60)")
    parser.add_argument("--line", metavar="NAME", help="line name of the pictures' title "
                        "blocks (default: the input file's name)")
    g = parser.add_argument_group("analysis")
    g.add_argument("--every", type=int, metavar="N", help="analysis every N CMPs; 3D: inlines "
                   "and crosslines (default 20)")
    g.add_argument("--every-m", type=float, metavar="M", help="analysis every M metres instead "
                   "(m; default: --every)")
    g.add_argument("--supergather", type=int, metavar="N",
                   help="CMPs pooled per location; 3D: the square's edge in bins (default: "
                   "from the fold map, at least 3)")
    g.add_argument("--min-fold", type=int, metavar="N",
                   help="skip bins with fewer traces (default: half the typical fold, at most 6)")
    g.add_argument("--vmin", type=float, default=1400.0, metavar="M/S",
                   help="first trial velocity (m/s; default 1400)")
    g.add_argument("--vmax", type=float, default=4000.0, metavar="M/S",
                   help="last trial velocity (m/s; default 4000)")
    g.add_argument("--dv", type=float, default=10.0, metavar="M/S",
                   help="trial velocity step (m/s; default 10)")
    g.add_argument("--window", type=float, default=0.024, metavar="S",
                   help="semblance time window (s; default 0.024)")
    g.add_argument("--stretch-mute", type=float, default=0.5, metavar="F",
                   help="no semblance where NMO stretches the wavelet by more than F "
                   "(fraction; default 0.5)")
    g.add_argument("--method", default="conventional", choices=("conventional", "ab"),
                   help="semblance: constant fit across offset, or intercept-plus-gradient "
                   "(AB, for amplitude changes with offset; default conventional)")
    p = parser.add_argument_group("picking")
    p.add_argument("--vint-min", type=_bound, default=1400.0, metavar="V|T:V,..",
                   help="lowest interval velocity (m/s; default 1400)")
    p.add_argument("--vint-max", type=_bound, default=6000.0, metavar="V|T:V,..",
                   help="highest interval velocity (m/s; default 6000)")
    p.add_argument("--reference", metavar="CSV", help="reference time_s,vrms_mps function "
                   "(s, m/s; default: none)")
    p.add_argument("--corridor", type=float, default=0.1, metavar="F",
                   help="allowed departure from the reference (fraction; default 0.1)")
    p.add_argument("--min-semblance", type=float, default=0.2, metavar="SEMB",
                   help="weakest semblance picked (0-1; default 0.2)")
    p.add_argument("--outlier", type=float, default=0.04, metavar="F",
                   help="drop picks this far from their neighbours (fraction; default 0.04; "
                   "0: keep all)")
    p.add_argument("--tmin", type=float, metavar="S",
                   help="first pick time (s; default: the first sample)")
    p.add_argument("--tmax", type=float, metavar="S",
                   help="last pick time (s; default: the last sample)")
    p.add_argument("--water-velocity", type=float, default=1500.0, metavar="M/S",
                   help="water velocity (m/s; default 1500; 0: land data, no water)")
    p.add_argument("--water-bottom", type=float, metavar="S",
                   help="water-bottom two-way time (s; default: detected)")
    p.add_argument("--trend-corridor", type=float, default=0.06, metavar="F",
                   help="second-pass corridor around the fitted trend (fraction; default "
                   "0.06)")
    p.add_argument("--extrapolate", default="trend", choices=("trend", "constant"),
                   help="below the deepest kept pick: the trend's interval velocity or a constant "
                   "one (default trend)")
    f = parser.add_argument_group("field")
    f.add_argument("--smooth-m", type=float, default=250.0, metavar="M",
                   help="lateral smoothing length (m; default 250)")
    f.add_argument("--smooth-s", type=float, default=0.05, metavar="S",
                   help="smoothing length in time (s; default 0.05)")


def run(args) -> int:
    import sys

    from seis_hpc.commands import provenance
    from seis_hpc.velocity.analysis import velan
    from seis_hpc.velocity.velan import rejection_summary

    config, history = provenance(args, "velan")
    picks = velan(args.input, args.out, picks=args.picks, use_picks=args.use_picks,
                  su_table=args.su_table, csv=args.csv, force=args.force,
                  su_every=args.su_every, every=args.every, every_m=args.every_m,
                  min_fold=args.min_fold, reference=args.reference, smooth_m=args.smooth_m,
                  smooth_s=args.smooth_s, index=args.index, bin_grid=args.bin_grid,
                  config=config, history=history, vmin=args.vmin, vmax=args.vmax, dv=args.dv,
                  window=args.window, stretch_mute=args.stretch_mute,
                  supergather=args.supergather, method=args.method, vint_min=args.vint_min,
                  vint_max=args.vint_max, corridor=args.corridor,
                  min_semblance=args.min_semblance, outlier=args.outlier or None,
                  tmin=args.tmin, tmax=args.tmax, water_velocity=args.water_velocity or None,
                  water_bottom=args.water_bottom, trend_corridor=args.trend_corridor,
                  extrapolate=args.extrapolate, qc=args.qc, line=args.line,
                  qc_locations=args.qc_locations)
    n = sum(len(p.time) for p in picks.locations)
    print(f"velan: {len(picks.locations)} locations, {n} picks; wrote {args.out}",
          file=sys.stderr)
    if not args.use_picks:
        print(f"velan: {rejection_summary(picks)}", file=sys.stderr)
    if args.qc:
        print(f"velan: {len(picks.pictures)} QC pictures in {args.qc}", file=sys.stderr)
        rec = getattr(args, "_record", None)
        if rec is not None:
            rec.qc = list(picks.pictures)
    return 0
