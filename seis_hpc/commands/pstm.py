"""``seis-hpc pstm``: Kirchhoff prestack time migration on any number of MPI ranks."""

HELP = "Kirchhoff prestack time migration (MPI: mpiexec -n N seis-hpc pstm ...)"
INPUTS = ("input", "velocity", "bin_grid")
OUTPUTS = ("out",)
WRITES = ("index", "checkpoint_dir")  # the index is written when missing or stale


def side_files(args):
    """The default checkpoint folder, ``IMAGE.h5.ckpt`` (see :func:`seis_hpc.cli.check_outputs`)."""
    if args.checkpoint_dir:
        return [], []
    return [], [("checkpoint folder", args.out + ".ckpt")]
DESCRIPTION = """Kirchhoff prestack time migration of a SEG-Y/SU survey into one HDF5 image.

  seis-hpc pstm INPUT.sgy --velocity V --out IMAGE.h5 [options]
  mpiexec -n N seis-hpc pstm INPUT.sgy --velocity V --out IMAGE.h5 [options]

INPUT      SEG-Y or SU file (or its trace index); each rank reads only its own traces.
V          vrms (m/s): a seis_hpc HDF5 volume with a 'vrms' data set on any bin grid, or a
           CSV file with the columns time_s,vrms_mps (one function for the whole survey).
IMAGE.h5   seis_hpc volume: 'image' (inline, crossline, time) or (cmp, time); with
           --gathers also 'gathers' (offset, inline, crossline, time) in the same file.

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


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"numbers wanted, got {text!r}") from None


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


def _subgrid(grid, sel):
    from seis_hpc.errors import SeisError
    from seis_hpc.geometry import BinGrid

    if sel is None:
        return grid
    if grid.is_2d:
        if len(sel) != 2:
            raise SeisError(f"--grid for a 2D line is CMP0,CMP1 (got {sel})")
        i0 = i1 = grid.inline0
        j0, j1 = sel
    else:
        if len(sel) != 4:
            raise SeisError(f"--grid is IL0,IL1,XL0,XL1 (got {sel})")
        i0, i1, j0, j1 = sel
    lo_i, hi_i = grid.inline0, grid.inline0 + grid.n_inline - 1
    lo_j, hi_j = grid.crossline0, grid.crossline0 + grid.n_crossline - 1
    if not (lo_i <= i0 <= i1 <= hi_i and lo_j <= j0 <= j1 <= hi_j):
        what = f"CMP {lo_j}..{hi_j}" if grid.is_2d else \
            f"inline {lo_i}..{hi_i}, crossline {lo_j}..{hi_j}"
        raise SeisError(f"--grid {','.join(map(str, sel))} is outside the survey ({what})")
    x0, y0 = grid.grid_to_world(i0, j0)
    return BinGrid(float(x0), float(y0), grid.azimuth, grid.bin_inline, grid.bin_crossline,
                   int(i0), int(j0), int(i1 - i0 + 1), int(j1 - j0 + 1), grid.handedness,
                   grid.is_2d)


def _time_axis(idx, tmax, dt, *, n_bins=None, n_classes=0, mem_per_rank=None, out=None):
    """The output time axis 0..tmax step dt (s), refused before it is allocated when a value
    is impossible or when the image would not fit the memory of a rank or the output disk.

    Parameters
    ----------
    idx : TraceIndex
        The input (its last sample and interval are the defaults).
    tmax, dt : float or None
        ``--tmax`` and ``--dt`` (s).
    n_bins, n_classes : int
        Image points and offset classes, for the size check (no check when ``n_bins`` is None).
    mem_per_rank : str
        ``--mem-per-rank``: one image point (its trace, time axis, velocity and kernel output)
        must fit it.
    out : str
        The output image, whose file system must hold the image.
    """
    import os
    import shutil

    import numpy as np

    from seis_hpc.engine.decomposition import format_size, image_bytes, parse_size
    from seis_hpc.errors import SeisError
    from seis_hpc.limits import check_output_axis

    dt = float(idx.dt) if dt is None else float(dt)
    last = float(idx.t_start + (idx.ns - 1) * idx.dt)
    tmax = last if tmax is None else float(tmax)
    n = check_output_axis(dt, tmax)
    if n_bins is not None:
        image = image_bytes(n_bins, n, n_classes)
        what = (f"--tmax {tmax:g} s at --dt {dt:g} s gives {n:,} output samples: the image "
                f"would need {format_size(image)} ({n_bins:,} points x {n:,} samples"
                + (f" x {1 + n_classes} (image + {n_classes} offset classes)" if n_classes
                   else "") + " x 4 bytes)")
        # per rank, at least one image point: its trace and gathers, the kernel's output
        # and the velocity (float32), and the time axis (float64)
        one = image_bytes(1, n, n_classes + 2) + 8 * n
        budget = parse_size(mem_per_rank) if mem_per_rank is not None else None
        if budget is not None and one > budget:
            raise SeisError(f"{what}; one image point alone needs {format_size(one)} per "
                            f"rank, more than --mem-per-rank {format_size(budget)}: lower "
                            "--tmax or raise --dt")
        if out is not None:
            folder = os.path.dirname(os.path.abspath(out))
            free = shutil.disk_usage(folder).free if os.path.isdir(folder) else None
            if free is not None and image > free:
                raise SeisError(f"{what}; only {format_size(free)} free in {folder}: lower "
                                "--tmax or raise --dt")
    return np.arange(n) * dt


def _edges(args, idx):
    import numpy as np

    from seis_hpc.errors import SeisError

    if not (args.gathers or args.offset_classes):
        return None
    spec = args.offset_classes or "8"
    vals = _floats(spec)
    if len(vals) == 1:
        n = int(vals[0])
        if n < 1 or n != vals[0]:
            raise SeisError(f"--offset-classes: a number of classes must be a positive "
                            f"integer (got {spec})")
        top = float(np.abs(idx["offset"]).max()) * (1 + 1e-6) + 1e-3
        return np.linspace(0.0, top, n + 1)
    e = np.asarray(vals)
    if np.any(np.diff(e) <= 0) or e[0] < 0:
        raise SeisError(f"--offset-classes: edges must be >= 0 and increasing (got {spec})")
    return e


def _stamp(path) -> dict:
    import os

    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime": int(st.st_mtime)}


def run(args) -> int:
    import datetime as dt
    import json
    import os
    import sys

    from seis_hpc.engine.comm import checked_on_root, input_error, rank_size, world
    from seis_hpc.engine.pstm_run import execute, make_job
    from seis_hpc.errors import SeisError
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.model import open_vrms

    comm = world()
    rank, size = rank_size(comm)
    held = {}

    def setup():
        for p in (args.input, args.velocity):
            if not os.path.exists(p):
                raise FileNotFoundError(2, "No such file or directory", p)
        out = os.path.abspath(args.out)
        if os.path.isdir(out):
            raise SeisError("output is a directory", out)
        if not os.access(os.path.dirname(out) or ".", os.W_OK):
            raise SeisError("cannot write to the output directory", os.path.dirname(out))
        survey = Survey.open(args.input, args.index, grid=args.bin_grid)
        survey.check_for("pstm")  # prestack, lengths (issue 15)
        idx = survey.index
        grid = _subgrid(survey.grid, args.grid)
        edges = _edges(args, idx)
        time = _time_axis(idx, args.tmax, args.dt, n_bins=grid.n_bins,
                          n_classes=0 if edges is None else len(edges) - 1,
                          mem_per_rank=args.mem_per_rank, out=out)
        vel = open_vrms(args.velocity, grid, time)
        kernel_args = {"aperture": args.aperture, "max_angle": args.max_angle,
                       "taper": args.taper, "antialias": not args.no_antialias,
                       "weights": args.weights, "interp": args.interp,
                       "stretch_mute": args.stretch_mute}
        if args.threads:
            kernel_args["threads"] = args.threads
        if args.backend != "cython":
            from seis_hpc.gpu import get_runtime

            get_runtime()  # no CuPy or no GPU: say so once, before any work
            kernel_args["backend"] = args.backend
        # Check the kernel parameters once, here, instead of failing on every rank later.
        from seis_hpc.migration.pstm import _setup

        n = min(2, grid.n_crossline)
        _setup(grid.points()[:n], time, vel.window(0, 1, 0, n),
               [0.0], [0.0], [0.0], [0.0], idx.dt, idx.t_start, args.aperture,
               args.max_angle, args.taper, args.weights, args.interp, "cython", None,
               args.threads)
        if args.stretch_mute is not None and not args.stretch_mute > 0:
            raise SeisError(f"--stretch-mute must be > 0 (got {args.stretch_mute})")
        config = json.dumps({k: v for k, v in vars(args).items() if not k.startswith("_")},
                            default=str, indent=1)
        history = [f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} "
                   f"seis-hpc pstm {' '.join(sys.argv[2:] if len(sys.argv) > 2 else [])} "
                   f"({size} ranks)"]
        hash_params = {"input": _stamp(args.input), "velocity": _stamp(args.velocity),
                       "out": out}
        job = make_job(idx, grid, time, out, kernel_args=kernel_args,
                       mem_per_rank=args.mem_per_rank, strategy=args.strategy, tile=args.tile,
                       n_units=args.units, offset_edges=edges,
                       checkpoint_dir=args.checkpoint_dir, restart=args.restart,
                       checkpoint_interval=args.checkpoint_interval, hash_params=hash_params,
                       config=config, history=history, progress_period=args.progress_every,
                       parallel_hdf5=args.parallel_hdf5)
        job.keep_checkpoint = bool(args.keep_checkpoint)
        held.update(idx=idx, vel=vel)
        return job

    job, err = checked_on_root(comm, setup)
    if err is not None:
        return input_error(comm, err)
    if rank == 0:
        idx, vel = held["idx"], held["vel"]
    else:
        idx = Survey.open(args.input, args.index, save=False, grid=args.bin_grid).index
        vel = open_vrms(args.velocity, job.plan.grid, job.time, validate=False)
    code = execute(job, idx, vel, comm)
    rec = getattr(args, "_record", None)  # the run record, when $SEIS_HPC_RUNDIR is set
    if rec is not None:
        rec.traces_in = int(idx.n_traces)
        rec.metrics.update(strategy=job.plan.strategy, units=len(job.plan.units), ranks=size)
    return code
