"""``seis-hpc pstm``: Kirchhoff prestack time migration on any number of MPI ranks."""

HELP = "Kirchhoff prestack time migration (MPI: mpiexec -n N seis-hpc pstm ...)"
INPUTS = ("input", "velocity", "bin_grid")
OUTPUTS = ("out", "segy")
WRITES = ("index", "checkpoint_dir", "scratch")  # the index when missing or stale; temporaries


def side_files(args):
    """The default checkpoint folder, ``IMAGE.h5.ckpt`` (see :func:`seis_hpc.cli.check_outputs`)."""
    if args.checkpoint_dir:
        return [], []
    return [], [("checkpoint folder", args.out + ".ckpt")]
DESCRIPTION = """Kirchhoff prestack time migration of a SEG-Y/SU survey into one HDF5 image.

  seis-hpc pstm INPUT.sgy --velocity V --out IMAGE.h5 [--segy IMAGE.sgy] [options]
  mpiexec -n N seis-hpc pstm INPUT.sgy --velocity V --out IMAGE.h5 [options]

INPUT      SEG-Y or SU file (or its trace index); each rank reads only its own traces.
V          vrms (m/s): a seis_hpc HDF5 volume with a 'vrms' data set on any bin grid, or a
           CSV file with the columns time_s,vrms_mps (one function for the whole survey).
IMAGE.h5   seis_hpc volume: 'image' (inline, crossline, time) or (cmp, time); with
           --gathers also 'gathers' (offset, inline, crossline, time) in the same file.
IMAGE.sgy  --segy: the stacked image as SEG-Y (INLINE_3D/CROSSLINE_3D/CDP, CDP_X/CDP_Y in m,
           NStackedTraces = input traces in the bin), written by rank 0 after IMAGE.h5; if
           it fails, IMAGE.h5 is removed too.

Amplitude (--normalise reflector, the default): the Kirchhoff sum is divided by the
operator's response to a flat reflector of unit amplitude, measured with the same kernel on the
survey's own traces at coarse points, so a flat reflector has the amplitude of its NMO stack
(seis-hpc stack); --normalise none writes the plain sum over traces. The image's attributes
(normalise, normalise_response) and the SEG-Y text header say which.

Work is split into units handed out dynamically to free ranks (every rank computes).
Strategy (--mem-per-rank): 'shard' (traces split across ranks, partial images summed at the
end) when one rank holds the whole image, else 'tile' (image tiles of --tile bins, each with
the traces whose aperture reaches it).

A survey can also be cut in space or in time by its input traces: run one job per part with
--traces A:B (trace numbers) or --ffid LO:HI (shot records, e.g. a sail line), same grid,
velocity and parameters, then add the part images with seis-hpc image sum.

Checkpoints go to --checkpoint-dir (default IMAGE.h5.ckpt/). Run the same command again after
a crash, a kill or a stop to resume; with other parameters it is refused (--restart fresh
discards the checkpoint). SIGTERM or SIGUSR1 (e.g. sbatch --signal=USR1@120 --requeue)
checkpoint every rank and exit with status 75. The checkpoint folder must be new, empty or
one of seis-hpc's (it carries a .seis-hpc-checkpoint marker): a user's folder is refused, and
only the engine's own files are ever deleted. Bad input found part-way (a NaN sample) drops
the checkpoint, so that the same command reruns from the start once the file is fixed.

--dry-run --ranks N plans the job for N ranks without computing or writing anything: it
streams the trace index in blocks (bounded memory, also for 1e8 traces) and prints traces,
strategy, units, evaluations ((trace, output sample) pairs inside the aperture),
max_rank_memory_bytes, rank0_memory_bytes, read_bytes (with the re-reads of tiles),
core_hours (at --rate, else at the kernel rate measured by a short run here) and the balance
(max/mean work per rank); --json prints them as one JSON object. An index with a bin grid
(seis-hpc index, seis-hpc synth --headers-only) is streamed; a SEG-Y without one is indexed
in memory first.

Exit status: 0 image written; 2 bad input (reported once, nothing written); 75 stopped by a
signal after a clean checkpoint (rerun to resume); 1 a failure on some rank (its message,
all ranks stopped).
"""

import argparse  # noqa: E402 - after DESCRIPTION, which --help shows first

EXIT_CHECKPOINTED = 75


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"integers wanted, got {text!r}") from None


def add_arguments(parser) -> None:
    """Parameters of ``seis-hpc pstm`` (field names, SI units)."""
    parser.add_argument("input", metavar="INPUT", help="SEG-Y/SU file or its trace index")
    parser.add_argument("--velocity", "-v", required=True, metavar="V",
                        help="vrms HDF5 volume or time_s,vrms_mps CSV (m/s)")
    parser.add_argument("--out", "-o", required=True, metavar="IMAGE.h5", help="output image")
    parser.add_argument("--segy", metavar="IMAGE.sgy", help="also write the (stacked) image "
                        "as SEG-Y, all or none with IMAGE.h5 (default: none)")
    parser.add_argument("--segy-revision", type=int, choices=(1, 2), default=1,
                        help="SEG-Y revision of --segy (default 1)")
    parser.add_argument("--bin-grid", metavar="GRID.toml", help="bin by this grid (origin, "
                        "azimuth, bin sizes, first inline/crossline, or corners) instead of "
                        "finding one; traces outside it are reported and not used (default: "
                        "the grid found from the headers)")
    parser.add_argument("--index", metavar="PATH", help="trace index file (default: beside "
                        "the input or in the cache)")
    g = parser.add_argument_group("image")
    g.add_argument("--grid", type=_ints, metavar="IL0,IL1,XL0,XL1",
                   help="inline and crossline range (inclusive) of the image; 2D: CMP0,CMP1 "
                   "(default: the survey's grid)")
    g.add_argument("--tmax", type=float, metavar="S", help="last output time (s; default: "
                   "the input's last sample)")
    g.add_argument("--dt", type=float, metavar="S", help="output sample interval (s; "
                   "default: the input's)")
    g.add_argument("--gathers", action="store_true",
                   help="also write offset-class image gathers")
    g.add_argument("--offset-classes", metavar="EDGES",
                   help="offset-class edges (m), e.g. 0,500,1000,2000, or a number of equal "
                   "classes up to the largest offset (default 8 classes; implies --gathers)")
    k = parser.add_argument_group("migration")
    k.add_argument("--aperture", type=float, default=float("inf"), metavar="M",
                   help="max distance output point - trace midpoint (m; default: unlimited)")
    k.add_argument("--max-angle", type=float, default=60.0, metavar="DEG",
                   help="max dip (operator) angle from vertical, tan = |midpoint - image "
                   "point| / (v t0/2): a time-dependent aperture (degrees; default 60); "
                   "offsets are limited by --stretch-mute")
    k.add_argument("--taper", type=float, default=0.1, metavar="F",
                   help="taper at the edges of aperture, dip angle and stretch mute (fraction; "
                   "default 0.1)")
    k.add_argument("--no-antialias", action="store_true", help="no anti-aliasing filter")
    k.add_argument("--weights", default="spreading+obliquity",
                   choices=("none", "spreading", "obliquity", "spreading+obliquity"),
                   help="amplitude weights of the Kirchhoff sum (default spreading+obliquity)")
    k.add_argument("--interp", default="linear", choices=("linear", "cubic"),
                   help="interpolation of the input traces (default linear)")
    k.add_argument("--stretch-mute", type=float, default=0.5, metavar="F",
                   help="mute where the wavelet stretch 1/c - 1 exceeds F, the offset limit: "
                   "a flat reflector uses the offsets whose NMO stretch is below F (fraction; "
                   "default 0.5, 0: no mute)")
    k.add_argument("--no-rho-filter", action="store_true",
                   help="do not rho-filter the traces before migrating (for input filtered "
                   "already; without the filter reflectors image 45 (2D) or 90 (3D) degrees "
                   "out of phase)")
    k.add_argument("--normalise", default="reflector", choices=("reflector", "none"),
                   help="amplitude scale: reflector = divide the sum by the operator's "
                   "flat-reflector response, so a flat reflector keeps its NMO-stack "
                   "amplitude; none = the plain sum over traces; a part (--traces, --ffid) "
                   "holds plain sums (default reflector)")
    k.add_argument("--threads", type=int, metavar="N", help="OpenMP threads per rank "
                   "(default OMP_NUM_THREADS)")
    k.add_argument("--backend", default="cython", choices=("cython", "gpu"),
                   help="kernel: cython (CPU, OpenMP) or gpu (CUDA through CuPy, one GPU per "
                   "rank: local rank r uses GPU r %% n_gpus; default cython)")
    s = parser.add_argument_group("input split (a part of a job, added by seis-hpc image sum)")
    s.add_argument("--traces", metavar="A:B[,C:D]", help="migrate only these trace numbers "
                   "(from 0, B excluded), e.g. 0:500000 for the first part of a job split "
                   "by trace ranges (default all traces)")
    s.add_argument("--ffid", metavar="LO:HI[,..]", help="migrate only the shots of these FFID "
                   "ranges (both ends included), e.g. one sail line's records (default all "
                   "shots)")
    j = parser.add_argument_group("parallel job")
    j.add_argument("--mem-per-rank", default="2G", metavar="SIZE",
                   help="memory budget per rank, e.g. 2G, 512M (default 2G)")
    j.add_argument("--strategy", default="auto", choices=("auto", "shard", "tile"),
                   help="force input sharding or output tiles (default: by memory)")
    j.add_argument("--tile", type=int, metavar="N", help="tile edge in bins (tile strategy; "
                   "default: the largest of 64..1 that fits the budget)")
    j.add_argument("--units", type=int, default=256, metavar="N",
                   help="target number of work units of the shard strategy (default 256)")
    j.add_argument("--checkpoint-dir", metavar="DIR", help="new, empty or an earlier "
                   "checkpoint of seis-hpc (default IMAGE.h5.ckpt/)")
    j.add_argument("--scratch", metavar="DIR", help="folder for each rank's temporary files, "
                   "e.g. a node-local disk (%%n: the node's name); default: the checkpoint "
                   "folder. Checkpoints stay in --checkpoint-dir (shared filesystem)")
    j.add_argument("--checkpoint-interval", type=float, default=120.0, metavar="S",
                   help="time between flushes of partial images (s; default 120)")
    j.add_argument("--restart", default="auto", choices=("auto", "fresh"),
                   help="auto: resume a checkpoint of this job; fresh: discard it (default auto)")
    j.add_argument("--keep-checkpoint", action="store_true",
                   help="keep the checkpoint directory after success")
    j.add_argument("--progress-every", type=float, default=10.0, metavar="S",
                   help="time between progress lines when not on a terminal (s; default 10)")
    j.add_argument("--parallel-hdf5", default="auto", choices=("auto", "on", "off"),
                   help="output writer: on = every rank writes its share through parallel "
                   "HDF5 (h5py built with MPI); off = rank 0 assembles the file; auto = "
                   "parallel when h5py has MPI and there are several ranks (default auto)")
    d = parser.add_argument_group("dry run")
    d.add_argument("--dry-run", action="store_true", help="plan the job for --ranks ranks "
                   "and print its figures; compute and write nothing")
    d.add_argument("--ranks", type=int, metavar="N", help="ranks of the planned job "
                   "(--dry-run; default none: required with --dry-run)")
    d.add_argument("--rate", type=float, metavar="EVALS", help="kernel rate per core "
                   "(evaluations/s; default measured here by a short kernel run)")
    d.add_argument("--json", action="store_true", help="--dry-run figures as JSON")


def _dry_run(args) -> int:
    import json
    import sys

    from seis_hpc.errors import SeisError
    from seis_hpc.migration.dryrun import describe, dry_run

    if args.ranks is None:
        raise SeisError("--dry-run needs --ranks N (the ranks of the planned job)")
    res = dry_run(args.input, args.velocity, ranks=args.ranks, index=args.index,
                  bin_grid=args.bin_grid, grid=args.grid, tmax=args.tmax, dt=args.dt,
                  gathers=args.gathers, offset_classes_spec=args.offset_classes,
                  aperture=args.aperture, max_angle=args.max_angle, taper=args.taper,
                  antialias=not args.no_antialias, weights=args.weights, interp=args.interp,
                  stretch_mute=args.stretch_mute, mem_per_rank=args.mem_per_rank,
                  strategy=args.strategy, tile=args.tile, units=args.units, rate=args.rate,
                  log=None if args.json else lambda line: print(line, file=sys.stderr,
                                                                 flush=True))
    print(json.dumps(res, indent=1) if args.json else describe(res))
    return 0


def run(args) -> int:
    if args.dry_run:
        return _dry_run(args)
    if args.ranks is not None or args.rate is not None or args.json:
        from seis_hpc.errors import SeisError

        raise SeisError("--ranks, --rate and --json are options of --dry-run")
    from seis_hpc.commands import provenance
    from seis_hpc.engine.comm import CheckedInputError, input_error, rank_size, world
    from seis_hpc.migration.job import migrate

    comm = world()
    config, history = provenance(args, "pstm", f"({rank_size(comm)[1]} ranks)")
    try:
        res = migrate(args.input, args.velocity, args.out, index=args.index,
                      bin_grid=args.bin_grid, grid=args.grid, tmax=args.tmax, dt=args.dt,
                      gathers=args.gathers, offset_classes=args.offset_classes,
                      aperture=args.aperture, max_angle=args.max_angle, taper=args.taper,
                      antialias=not args.no_antialias, weights=args.weights,
                      interp=args.interp, stretch_mute=args.stretch_mute or None,
                      rho=not args.no_rho_filter, threads=args.threads,
                      backend=args.backend, mem_per_rank=args.mem_per_rank,
                      strategy=args.strategy, tile=args.tile, units=args.units,
                      checkpoint_dir=args.checkpoint_dir,
                      checkpoint_interval=args.checkpoint_interval, restart=args.restart,
                      keep_checkpoint=args.keep_checkpoint, progress_every=args.progress_every,
                      parallel_hdf5=args.parallel_hdf5, comm=comm, config=config,
                      history=history, segy=args.segy, segy_revision=args.segy_revision,
                      traces=args.traces, ffid=args.ffid,
                      normalise=args.normalise, scratch=args.scratch)
    except CheckedInputError as exc:
        return input_error(comm, str(exc))
    rec = getattr(args, "_record", None)  # the run record, when $SEIS_HPC_RUNDIR is set
    if rec is not None:
        rec.traces_in = res.traces_in
        rec.metrics.update(strategy=res.strategy, units=res.units, ranks=res.ranks,
                           traces_selected=res.traces_selected,
                           reads_per_trace=res.reads_per_trace)
    return res.status
