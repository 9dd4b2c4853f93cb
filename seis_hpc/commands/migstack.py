"""``seis-hpc migstack``: PSTM stack and image gathers, with residual-moveout velocity updates."""

HELP = "PSTM stack + offset-class gathers, iterated RMO velocity update (MPI)"
INPUTS = ("input", "velocity")
OUTPUTS = ("out", "segy", "velocity_out")
WRITES = ("index",)  # written when missing or stale


def side_files(args):
    """The velocity and image of every pass beside IMAGE.h5, and their checkpoint folders
    (see :func:`seis_hpc.cli.check_outputs`)."""
    stem = args.out[:-3] if args.out.endswith(".h5") else args.out
    n = max(0, int(args.iterations))
    outs = [(f"velocity of pass {k}", f"{stem}.vrms-iter{k}.h5") for k in range(n + 1)]
    outs += [(f"image of pass {k}", f"{stem}.iter{k}.h5") for k in range(n + 1)]
    outs += [(f"checkpoint folder of pass {k}", f"{stem}.iter{k}.h5.ckpt")
             for k in range(n + 1)]
    return [], outs
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
    parser.add_argument("--out", "-o", required=True, metavar="IMAGE.h5")
    parser.add_argument("--segy", metavar="IMAGE.sgy", help="also write the stack as SEG-Y")
    parser.add_argument("--velocity-out", metavar="VEL.h5", help="final velocity volume")
    parser.add_argument("--iterations", type=int, default=1, metavar="N",
                        help="RMO velocity updates (default 1; 0: migrate only)")
    parser.add_argument("--index", metavar="PATH", help="trace index file")
    g = parser.add_argument_group("image")
    g.add_argument("--grid", metavar="IL0,IL1,XL0,XL1", help="image range (2D: CMP0,CMP1)")
    g.add_argument("--tmax", type=float, metavar="S", help="last output time (s)")
    g.add_argument("--offset-classes", type=int, default=8, metavar="N",
                   help="equal offset classes of the gathers (default 8)")
    g.add_argument("--aperture", type=float, default=float("inf"), metavar="M")
    g.add_argument("--max-angle", type=float, default=60.0, metavar="DEG")
    g.add_argument("--mem-per-rank", default="2G", metavar="SIZE")
    g.add_argument("--backend", default="cython", choices=("cython", "gpu"),
                   help="PSTM kernel: cython (CPU) or gpu (CUDA through CuPy, one GPU per rank)")
    r = parser.add_argument_group("residual moveout")
    r.add_argument("--every", type=int, default=20, metavar="N",
                   help="RMO analysis every N CMPs (default 20)")
    r.add_argument("--gamma-min", type=float, default=0.85)
    r.add_argument("--gamma-max", type=float, default=1.15)
    r.add_argument("--min-semblance", type=float, default=0.5)
    r.add_argument("--tmin", type=float, default=0.0, help="no RMO picks above (s)")
    r.add_argument("--water-bottom", type=float, metavar="S",
                   help="water-bottom time (s): the water is kept and multiples are not "
                   "flattened (default: detected on the near offsets; 0: none)")
    r.add_argument("--smooth-m", type=float, default=250.0, help="lateral smoothing (m)")
    r.add_argument("--smooth-s", type=float, default=0.05, help="smoothing in time (s)")


class RhoFiltered:
    """A trace source whose traces come out rho-filtered (zero-phase reflector images)."""

    def __init__(self, source, dims: int):
        self.src, self.dims = source, dims
        self.ns, self.dt, self.t_start = source.ns, source.dt, source.t_start

    def __getitem__(self, name):
        return self.src[name]

    def read_traces(self, ids):
        from seis_hpc.migration.pstm import rho_filter

        return rho_filter(self.src.read_traces(ids), self.dt, dims=self.dims)


def run(args) -> int:
    import json
    import os
    import sys

    import numpy as np

    from seis_hpc.commands.pstm import _subgrid, _time_axis
    from seis_hpc.engine.comm import checked_on_root, input_error, rank_size, world
    from seis_hpc.engine.pstm_run import execute, make_job
    from seis_hpc.errors import SeisError
    from seis_hpc.io.atomic import atomic_outputs, prepare_outputs
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.model import load_vrms, open_vrms

    comm = world()
    rank, size = rank_size(comm)
    out = os.path.abspath(args.out)
    stem = out[:-3] if out.endswith(".h5") else out

    def ints(text):
        try:
            return [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise SeisError(f"--grid wants integers, got {text!r}") from None

    def setup():
        from seis_hpc.velocity.field import write_vrms
        from seis_hpc.velocity.rmo import RmoParams, class_offsets, detect_water_bottom, rmo_fold
        from seis_hpc.velocity.velan import analysis_locations

        for p in (args.input, args.velocity):
            if not os.path.exists(p):
                raise FileNotFoundError(2, "No such file or directory", p)
        prepare_outputs(args.out, args.segy, args.velocity_out)  # bad names: before any work
        if args.iterations < 0:
            raise SeisError(f"--iterations must be >= 0 (got {args.iterations})")
        if args.offset_classes < 2:
            raise SeisError(f"--offset-classes must be >= 2 (got {args.offset_classes})")
        if args.backend != "cython":
            from seis_hpc.gpu import get_runtime

            get_runtime()  # no CuPy or no GPU: say so once, before any work
        survey = Survey.open(args.input, args.index)
        survey.check_for("migstack")  # prestack, lengths (issue 15)
        idx = survey.index
        grid = _subgrid(survey.grid, ints(args.grid) if args.grid else None)
        time = _time_axis(idx, args.tmax, None, n_bins=grid.n_bins,
                          n_classes=args.offset_classes, mem_per_rank=args.mem_per_rank,
                          out=out)
        from seis_hpc.engine.decomposition import image_bytes
        from seis_hpc.limits import check_in_memory

        # rank 0 holds the gathers of a pass and the velocity (float32, and float64 while
        # it is interpolated) for the RMO update
        check_in_memory(image_bytes(grid.n_bins, time.size, args.offset_classes)
                        + 12 * grid.n_bins * time.size,
                        "the image gathers and the velocity of the RMO update",
                        f"{grid.n_bins:,} points x {time.size:,} samples x "
                        f"({args.offset_classes} offset classes + 1) x 4 bytes, and the "
                        "velocity at 12 bytes a sample", "lower --tmax or use --grid")
        params = RmoParams(gamma_min=args.gamma_min, gamma_max=args.gamma_max,
                           min_semblance=args.min_semblance, smooth_m=args.smooth_m,
                           smooth_s=args.smooth_s, tmin=args.tmin,
                           water_bottom=(args.water_bottom if args.water_bottom is not None
                                         else detect_water_bottom(idx)) or None)
        params.gammas()
        top = float(np.abs(idx["offset"]).max()) * (1 + 1e-6) + 1e-3
        edges = np.linspace(0.0, top, args.offset_classes + 1)
        # Only where the gathers hold most offsets (not the tapering ends of the line).
        locs = analysis_locations(grid, rmo_fold(survey, grid), every=args.every) \
            if args.iterations else []
        v0 = load_vrms(args.velocity, grid, time).reshape(grid.shape + (time.size,))
        write_vrms(f"{stem}.vrms-iter0.h5", v0, grid, time,
                   history=[f"seis-hpc migstack: starting velocity from {args.velocity}"])
        return {"grid": grid, "time": time, "edges": edges, "locs": locs, "params": params,
                "offsets": class_offsets(idx["offset"], edges)}

    setup_out, err = checked_on_root(comm, setup)
    if err is not None:
        return input_error(comm, err)
    grid, time = setup_out["grid"], setup_out["time"]
    idx = Survey.open(args.input, args.index, save=False).index
    source = RhoFiltered(idx, 2 if grid.is_2d else 3)
    kernel_args = {"aperture": args.aperture, "max_angle": args.max_angle}
    if args.backend != "cython":
        kernel_args["backend"] = args.backend
    for k in range(args.iterations + 1):
        vpath = f"{stem}.vrms-iter{k}.h5"
        # The last pass too goes to its own name; IMAGE.h5 appears with the other outputs.
        target = f"{stem}.iter{k}.h5"

        def plan(vpath=vpath, target=target, k=k):
            return make_job(idx, grid, time, target, kernel_args=kernel_args,
                            mem_per_rank=args.mem_per_rank, offset_edges=setup_out["edges"],
                            hash_params={"input": os.path.abspath(args.input),
                                         "velocity": vpath, "pass": k},
                            config=json.dumps(vars(args), default=str),
                            history=[f"seis-hpc migstack pass {k} with {vpath}"])

        job, err = checked_on_root(comm, plan)
        if err is not None:
            return input_error(comm, err)
        rc = execute(job, source, open_vrms(vpath, grid, time, validate=rank == 0), comm)
        if rc:
            return rc
        if k == args.iterations:
            break

        def update(vpath=vpath, target=target, k=k):
            from seis_hpc.io.volume import read_volume
            from seis_hpc.velocity.field import write_vrms
            from seis_hpc.velocity.rmo import rmo_update

            gath = read_volume(target, "gathers")
            v = load_vrms(vpath, grid, time).reshape(grid.shape + (time.size,))
            locs = setup_out["locs"]
            g2 = gath.data.reshape(gath.data.shape[0], grid.n_inline, grid.n_crossline, -1)
            v2 = v.reshape(grid.n_inline, grid.n_crossline, -1)
            ii = [il - grid.inline0 for il, _ in locs]
            jj = [xl - grid.crossline0 for _, xl in locs]
            new, rep = rmo_update(g2[:, ii, jj], setup_out["offsets"], time, v2[ii, jj], locs,
                                  grid, v, setup_out["params"])
            gam = np.concatenate([r[3] for r in rep]) if rep else np.zeros(0)
            dev = float(np.median(np.abs(gam - 1))) if gam.size else 0.0
            fb = np.nanmean([r[5] for r in rep]) if rep else float("nan")
            fa = np.nanmean([r[6] for r in rep]) if rep else float("nan")
            print(f"migstack: pass {k}: {gam.size} RMO picks, median |gamma - 1| = {dev:.4f}, "
                  f"flatness {fb:.3f} -> {fa:.3f} (predicted)", file=sys.stderr, flush=True)
            write_vrms(f"{stem}.vrms-iter{k + 1}.h5", new, grid, time,
                       history=[f"seis-hpc migstack: RMO update {k + 1} from {target}"])
            return True

        _, err = checked_on_root(comm, update)
        if err is not None:
            return input_error(comm, err)
    if rank == 0:
        import shutil

        from seis_hpc.io.export import write_volume_segy
        from seis_hpc.io.volume import read_volume

        final_v = f"{stem}.vrms-iter{args.iterations}.h5"
        final_image = f"{stem}.iter{args.iterations}.h5"
        with atomic_outputs(out, args.segy, args.velocity_out) as (o, segy, vout):
            if vout:
                shutil.copyfile(final_v, vout)
            if segy:
                write_volume_segy(segy, read_volume(final_image, "image"))
            os.replace(final_image, o)
    return 0
