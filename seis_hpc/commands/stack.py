"""``seis-hpc stack``: NMO stack (the section before migration)."""

HELP = "NMO stack normalised by live fold -> HDF5 (+ SEG-Y)"
INPUTS = ("input", "velocity", "bin_grid")
OUTPUTS = ("out", "segy")
WRITES = ("index",)  # written when missing or stale
DESCRIPTION = """NMO correction with a stretch mute and CMP stack normalised by the live fold.

  seis-hpc stack GATHERS.sgy --velocity V --out stack.h5 [--segy stack.sgy]

V          vrms (m/s) as for seis-hpc pstm: a seis_hpc HDF5 'vrms' volume on any bin grid
           (e.g. from seis-hpc velan), or a CSV time_s,vrms_mps function.
stack.h5   seis_hpc 'image' volume (cmp, time) or (inline, crossline, time).
stack.sgy  SEG-Y with INLINE_3D/CROSSLINE_3D/CDP/CDP_X/CDP_Y (2D: CDP = CMP number).

Exit status: 0 written; 2 bad input (one line, nothing written).
"""


def add_arguments(parser) -> None:
    """Parameters of ``seis-hpc stack``."""
    parser.add_argument("input", metavar="GATHERS", help="SEG-Y/SU prestack file (or index)")
    parser.add_argument("--velocity", "-v", required=True, metavar="V",
                        help="vrms HDF5 volume or time_s,vrms_mps CSV (m/s)")
    parser.add_argument("--out", "-o", required=True, metavar="STACK.h5")
    parser.add_argument("--segy", metavar="STACK.sgy", help="also write SEG-Y")
    parser.add_argument("--stretch-mute", type=float, default=0.3,
                        help="NMO stretch limit (fraction; default 0.3; 0 for none)")
    parser.add_argument("--interp", default="linear", choices=("linear", "cubic"))
    parser.add_argument("--bin-grid", metavar="GRID.toml", help="bin by this grid (origin, "
                        "azimuth, bin sizes, first inline/crossline, or corners) instead of "
                        "finding one; traces outside it are reported and not used")
    parser.add_argument("--index", metavar="PATH", help="trace index file")


def run(args) -> int:
    import datetime as dt
    import json
    import os
    import sys

    from seis_hpc.errors import SeisError
    from seis_hpc.io.atomic import atomic_outputs, prepare_outputs
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.model import open_vrms
    from seis_hpc.velocity.stack import nmo_stack_survey, write_stack

    for p in (args.input, args.velocity):
        if not os.path.exists(p):
            raise FileNotFoundError(2, "No such file or directory", p)
    prepare_outputs(args.out, args.segy)  # a bad output name fails before any work
    if args.stretch_mute < 0:
        raise SeisError(f"--stretch-mute must be >= 0 (got {args.stretch_mute})")
    survey = Survey.open(args.input, args.index, grid=args.bin_grid)
    survey.check_for("stack")  # prestack, lengths (issue 15)
    idx = survey.index
    time = idx.times()
    from seis_hpc.limits import check_in_memory

    # the float64 sum and int64 live fold of every bin and sample, and the float32 result
    n_bins = survey.grid.n_bins
    check_in_memory(20 * n_bins * time.size, "the stack",
                    f"{n_bins:,} bins x {time.size:,} samples x 20 bytes (sum, fold, result)")
    vel = open_vrms(args.velocity, survey.grid, time)
    from seis_hpc.progress import Progress

    with Progress(None, "stack", "inline") as prog:
        stack = nmo_stack_survey(idx, survey.bin_serial(), survey.grid, vel,
                                 stretch_mute=args.stretch_mute or None, interp=args.interp,
                                 progress=lambda done, total: (setattr(prog, "total", total),
                                                               prog.set(done)))
    config = json.dumps({k: v for k, v in vars(args).items() if not k.startswith("_")},
                        default=str, indent=1)
    history = [f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} seis-hpc "
               f"stack {' '.join(sys.argv[2:])}"]
    # Both outputs or neither: each goes to its temporary name, renamed when both are done.
    with atomic_outputs(args.out, args.segy) as (out, segy):
        write_stack(out, stack, survey.grid, time, segy=segy, config=config,
                    history=history, attrs={"velocity": os.path.abspath(args.velocity)})
    print(f"stack: wrote {args.out}" + (f" and {args.segy}" if args.segy else ""),
          file=sys.stderr)
    return 0
