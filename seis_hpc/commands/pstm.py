"""``seis-hpc pstm``: Kirchhoff prestack time migration on any number of MPI ranks."""

HELP = "Kirchhoff prestack time migration (MPI: mpiexec -n N seis-hpc pstm ...)"
INPUTS = ("input", "velocity", "bin_grid")
OUTPUTS = ("out", "segy")
WRITES = ("index", "checkpoint_dir")  # the index is written when missing or stale


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

Work is split into units handed out dynamically to free ranks (every rank computes).
Strategy (--mem-per-rank): 'shard' (traces split across ranks, partial images summed at the
end) when one rank holds the whole image, else 'tile' (image tiles of --tile bins, each with
the traces whose aperture reaches it).

Checkpoints go to --checkpoint-dir (default IMAGE.h5.ckpt/). Run the same command again after
a crash, a kill or a stop to resume; with other parameters it is refused (--restart fresh
discards the checkpoint). SIGTERM or SIGUSR1 (e.g. sbatch --signal=USR1@120 --requeue)
checkpoint every rank and exit with status 75. The checkpoint folder must be new, empty or
one of seis-hpc's (it carries a .seis-hpc-checkpoint marker): a user's folder is refused, and
only the engine's own files are ever deleted. Bad input found part-way (a NaN sample) drops
the checkpoint, so that the same command reruns from the start once the file is fixed.

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
                        "as SEG-Y (all or none with IMAGE.h5)")
    parser.add_argument("--segy-revision", type=int, choices=(1, 2), default=1,
                        help="SEG-Y revision of --segy (default 1)")
    parser.add_argument("--bin-grid", metavar="GRID.toml", help="bin by this grid (origin, "
                        "azimuth, bin sizes, first inline/crossline, or corners) instead of "
                        "finding one; traces outside it are reported and not used")
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
                   help="offset-class edges in m (e.g. 0,500,1000,2000) or a number of equal "
                   "classes up to the largest offset (default 8; implies --gathers)")
    k = parser.add_argument_group("migration")
    k.add_argument("--aperture", type=float, default=float("inf"), metavar="M",
                   help="max distance output point - trace midpoint (m; default: unlimited)")
    k.add_argument("--max-angle", type=float, default=60.0, metavar="DEG",
                   help="max emergence angle from vertical (degrees; default 60)")
    k.add_argument("--taper", type=float, default=0.1, help="taper fraction of aperture and "
                   "angle (default 0.1)")
    k.add_argument("--no-antialias", action="store_true", help="no anti-aliasing filter")
    k.add_argument("--weights", default="spreading+obliquity",
                   choices=("none", "spreading", "obliquity", "spreading+obliquity"))
    k.add_argument("--interp", default="linear", choices=("linear", "cubic"))
    k.add_argument("--stretch-mute", type=float, metavar="F",
                   help="mute where the wavelet stretch exceeds F (e.g. 0.5)")
    k.add_argument("--threads", type=int, help="OpenMP threads per rank (default "
                   "OMP_NUM_THREADS)")
    k.add_argument("--backend", default="cython", choices=("cython", "gpu"),
                   help="kernel: cython (CPU, OpenMP) or gpu (CUDA through CuPy, one GPU per "
                   "rank: local rank r uses GPU r %% n_gpus)")
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
                   help="seconds between flushes of partial images (default 120)")
    j.add_argument("--restart", default="auto", choices=("auto", "fresh"),
                   help="auto: resume a checkpoint of this job; fresh: discard it")
    j.add_argument("--keep-checkpoint", action="store_true",
                   help="keep the checkpoint directory after success")
    j.add_argument("--progress-every", type=float, default=10.0, metavar="S",
                   help="seconds between progress lines when not on a terminal (default 10)")
    j.add_argument("--parallel-hdf5", default="auto", choices=("auto", "on", "off"),
                   help="output writer: on = every rank writes its share through parallel "
                   "HDF5 (h5py built with MPI); off = rank 0 assembles the file; auto = "
                   "parallel when h5py has MPI and there are several ranks (default auto)")


def run(args) -> int:
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
                      interp=args.interp, stretch_mute=args.stretch_mute, threads=args.threads,
                      backend=args.backend, mem_per_rank=args.mem_per_rank,
                      strategy=args.strategy, tile=args.tile, units=args.units,
                      checkpoint_dir=args.checkpoint_dir,
                      checkpoint_interval=args.checkpoint_interval, restart=args.restart,
                      keep_checkpoint=args.keep_checkpoint, progress_every=args.progress_every,
                      parallel_hdf5=args.parallel_hdf5, comm=comm, config=config,
                      history=history, segy=args.segy, segy_revision=args.segy_revision,
                      scratch=args.scratch)
    except CheckedInputError as exc:
        return input_error(comm, str(exc))
    rec = getattr(args, "_record", None)  # the run record, when $SEIS_HPC_RUNDIR is set
    if rec is not None:
        rec.traces_in = res.traces_in
        rec.metrics.update(strategy=res.strategy, units=res.units, ranks=res.ranks)
    return res.status
