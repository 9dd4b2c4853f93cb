"""``seis-hpc migstack``: PSTM stack and image gathers, with residual-moveout velocity updates."""

HELP = "PSTM stack + offset-class gathers, iterated RMO velocity update (MPI)"
INPUTS = ("input", "velocity")
OUTPUTS = ("out", "segy", "velocity_out")
WRITES = ("index",)  # written when missing or stale


def side_files(args):
    """The velocity and image of every pass beside IMAGE.h5, and their checkpoint folders
    (see :func:`seis_hpc.cli.check_outputs`)."""
    from seis_hpc.velocity.mva import pass_files

    return [], pass_files(args.out, args.iterations)


DESCRIPTION = """The stack after migration, with the velocity built by residual moveout.

  seis-hpc migstack GATHERS.sgy --velocity V --out image.h5 [--iterations N] [--segy image.sgy]
  mpiexec -n R seis-hpc migstack ...

Each pass migrates the (rho-filtered) traces with the MPI PSTM engine (as seis-hpc pstm) into
the stacked image and offset-class image gathers. After each of the first N passes the
gathers at analysis locations every --every CMPs are scanned for residual moveout (semblance
over gamma = v_mig / v, --gamma-min..--gamma-max); the picks of gamma on coherent events
(below --tmin) give the ratio 1/gamma, interpolated, smoothed (--smooth-m, --smooth-s) and
applied to the velocity. Pass N+1 migrates with the final velocity into image.h5.

V          starting vrms: HDF5 'vrms' volume (e.g. from seis-hpc velan) or time_s,vrms_mps CSV.
Outputs    image.h5 ('image' and 'gathers'); image.vrms-iterK.h5 (velocity used by pass K;
           the last is the final velocity, also written to --velocity-out); image.iterK.h5
           (image of pass K < N); --segy image.sgy (the final stack). image.h5, --segy and
           --velocity-out are renamed into place together at the end: all three or none.

Exit status: 0 written; 2 bad input (one line, nothing written); 1 a failure on some rank.
"""


def add_arguments(parser) -> None:
    """Parameters of ``seis-hpc migstack``."""
    parser.add_argument("input", metavar="GATHERS", help="SEG-Y/SU prestack file (or index)")
    parser.add_argument("--velocity", "-v", required=True, metavar="V",
                        help="starting vrms HDF5 volume or time_s,vrms_mps CSV (m/s)")
    parser.add_argument("--out", "-o", required=True, metavar="IMAGE.h5",
                        help="final image: stack and offset-class gathers")
    parser.add_argument("--segy", metavar="IMAGE.sgy", help="also write the stack as SEG-Y "
                        "(default: none)")
    parser.add_argument("--segy-revision", type=int, choices=(1, 2), default=1,
                        help="SEG-Y revision of --segy (default 1)")
    parser.add_argument("--velocity-out", metavar="VEL.h5", help="also write the final "
                        "velocity here (m/s; default: none, the last IMAGE.vrms-iterK.h5 "
                        "holds it)")
    parser.add_argument("--iterations", type=int, default=1, metavar="N",
                        help="RMO velocity updates (default 1; 0: migrate only)")
    parser.add_argument("--index", metavar="PATH", help="trace index file (default: "
                        "beside the input or in the cache)")
    g = parser.add_argument_group("image")
    g.add_argument("--grid", metavar="IL0,IL1,XL0,XL1", help="image range, inclusive; 2D: "
                   "CMP0,CMP1 (default: the survey's grid)")
    g.add_argument("--tmax", type=float, metavar="S", help="last output time (s; default: "
                   "the input's last sample)")
    g.add_argument("--offset-classes", type=int, default=8, metavar="N",
                   help="equal offset classes of the gathers (default 8)")
    g.add_argument("--aperture", type=float, default=float("inf"), metavar="M",
                   help="max distance output point - trace midpoint (m; default: unlimited)")
    g.add_argument("--max-angle", type=float, default=45.0, metavar="DEG",
                   help="max dip (operator) angle of the PSTM (degrees; default 45)")
    g.add_argument("--mem-per-rank", default="2G", metavar="SIZE",
                   help="memory budget per rank, e.g. 2G, 512M (default 2G)")
    g.add_argument("--normalise", default="reflector", choices=("reflector", "none"),
                   help="amplitude scale: reflector = divide by the operator's flat-reflector "
                   "response, so a flat reflector keeps its NMO-stack amplitude; none = the "
                   "plain sum over (rho-filtered) traces (default reflector)")
    g.add_argument("--backend", default="cython", choices=("cython", "gpu"),
                   help="PSTM kernel: cython (CPU) or gpu (CUDA through CuPy, one GPU per rank; "
                   "default cython)")
    r = parser.add_argument_group("residual moveout")
    r.add_argument("--every", type=int, default=20, metavar="N",
                   help="RMO analysis every N CMPs (default 20)")
    r.add_argument("--gamma-min", type=float, default=0.85, metavar="G",
                   help="lowest gamma = v_mig / v scanned (ratio; default 0.85)")
    r.add_argument("--gamma-max", type=float, default=1.15, metavar="G",
                   help="highest gamma = v_mig / v scanned (ratio; default 1.15)")
    r.add_argument("--min-semblance", type=float, default=0.5, metavar="SEMB",
                   help="weakest residual semblance picked (0-1; default 0.5)")
    r.add_argument("--tmin", type=float, default=0.0, metavar="S",
                   help="no RMO picks above this time (s; default 0)")
    r.add_argument("--water-bottom", type=float, metavar="S",
                   help="water-bottom time (s): the water is kept and multiples are not "
                   "flattened (default: detected on the near offsets; 0: none)")
    r.add_argument("--smooth-m", type=float, default=250.0, metavar="M",
                   help="lateral smoothing length of the update (m; default 250)")
    r.add_argument("--smooth-s", type=float, default=0.05, metavar="S",
                   help="smoothing length of the update in time (s; default 0.05)")


def run(args) -> int:
    import json

    from seis_hpc.engine.comm import CheckedInputError, input_error, world
    from seis_hpc.velocity.mva import migstack

    comm = world()
    try:
        return migstack(args.input, args.velocity, args.out, segy=args.segy,
                        segy_revision=args.segy_revision,
                        velocity_out=args.velocity_out, iterations=args.iterations,
                        index=args.index, grid=args.grid, tmax=args.tmax,
                        offset_classes=args.offset_classes, aperture=args.aperture,
                        max_angle=args.max_angle, mem_per_rank=args.mem_per_rank,
                        backend=args.backend, normalise=args.normalise, every=args.every,
                        gamma_min=args.gamma_min,
                        gamma_max=args.gamma_max, min_semblance=args.min_semblance,
                        tmin=args.tmin, water_bottom=args.water_bottom,
                        smooth_m=args.smooth_m, smooth_s=args.smooth_s,
                        comm=comm, config=json.dumps(vars(args), default=str))
    except CheckedInputError as exc:
        return input_error(comm, str(exc))
