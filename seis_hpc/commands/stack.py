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
    parser.add_argument("--out", "-o", required=True, metavar="STACK.h5",
                        help="output stack (HDF5 image volume)")
    parser.add_argument("--segy", metavar="STACK.sgy", help="also write SEG-Y (default: none)")
    parser.add_argument("--stretch-mute", type=float, default=0.3, metavar="F",
                        help="NMO stretch limit (fraction; default 0.3; 0 for none)")
    parser.add_argument("--interp", default="linear", choices=("linear", "cubic"),
                        help="interpolation of the NMO correction (default linear)")
    parser.add_argument("--bin-grid", metavar="GRID.toml", help="bin by this grid (origin, "
                        "azimuth, bin sizes, first inline/crossline, or corners) instead of "
                        "finding one; traces outside it are reported and not used (default: "
                        "the grid found from the headers)")
    parser.add_argument("--segy-revision", type=int, choices=(1, 2), default=1,
                        help="SEG-Y revision of --segy (default 1)")
    parser.add_argument("--index", metavar="PATH", help="trace index file (default: "
                        "beside the input or in the cache)")


def run(args) -> int:
    import sys

    from seis_hpc.commands import provenance
    from seis_hpc.velocity.stack import stack

    config, history = provenance(args, "stack")
    stack(args.input, args.velocity, args.out, segy=args.segy, segy_revision=args.segy_revision,
          stretch_mute=args.stretch_mute, interp=args.interp, index=args.index,
          bin_grid=args.bin_grid, config=config, history=history, return_stack=False)
    print(f"stack: wrote {args.out}" + (f" and {args.segy}" if args.segy else ""),
          file=sys.stderr)
    return 0
