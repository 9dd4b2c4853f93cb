"""Migration velocity analysis: PSTM stack and image gathers with residual-moveout velocity
updates (:func:`migstack`, the library call behind ``seis-hpc migstack``), MPI-aware.

Each pass migrates the rho-filtered traces with the MPI PSTM engine into the stacked image and
offset-class image gathers; after each of the first N passes the gathers at analysis locations
are scanned for residual moveout (:mod:`seis_hpc.velocity.rmo`) and the velocity updated.
This drives the engine, so it sits above it (as :mod:`seis_hpc.migration.job`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from seis_hpc.engine.normalise import RhoFiltered
from seis_hpc.errors import SeisError

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["RhoFiltered", "migstack", "pass_files"]  # RhoFiltered: kept importable from here


def pass_files(out: str | os.PathLike, iterations: int) -> list[tuple[str, str]]:
    """(what, path) of the files :func:`migstack` writes beside ``out`` (IMAGE.h5): the velocity
    and the image of every pass and the image's checkpoint folder."""
    out = os.fspath(out)
    stem = out[:-3] if out.endswith(".h5") else out
    n = max(0, int(iterations))
    files = [(f"velocity of pass {k}", f"{stem}.vrms-iter{k}.h5") for k in range(n + 1)]
    files += [(f"image of pass {k}", f"{stem}.iter{k}.h5") for k in range(n + 1)]
    files += [(f"checkpoint folder of pass {k}", f"{stem}.iter{k}.h5.ckpt")
              for k in range(n + 1)]
    return files


def _ints(grid: str | Sequence[int] | None) -> list[int] | None:
    if grid is None or not isinstance(grid, str):
        return None if grid is None else [int(v) for v in grid]
    try:
        return [int(v) for v in grid.split(",") if v.strip()]
    except ValueError:
        raise SeisError(f"--grid wants integers, got {grid!r}") from None


def migstack(survey: str | os.PathLike, velocity: str | os.PathLike, out: str | os.PathLike,
             *, segy: str | os.PathLike | None = None, segy_revision: int = 1,
             velocity_out: str | os.PathLike | None = None, iterations: int = 1,
             index: str | os.PathLike | None = None, grid: str | Sequence[int] | None = None,
             tmax: float | None = None, offset_classes: int = 8,
             aperture: float = float("inf"), max_angle: float = 45.0,
             mem_per_rank: str | int = "2G", backend: str = "cython", every: int = 20,
             gamma_min: float = 0.85, gamma_max: float = 1.15, min_semblance: float = 0.5,
             tmin: float = 0.0, water_bottom: float | None = None, smooth_m: float = 250.0,
             smooth_s: float = 0.05, normalise: str = "reflector",
             comm: MPI.Comm | None | str = "auto", config: str | None = None) -> int:
    """PSTM stack and gathers, with ``iterations`` residual-moveout velocity updates
    (collective).

    Parameters
    ----------
    survey : path-like
        SEG-Y/SU prestack file (or its trace index).
    velocity : path-like
        Starting Vrms (m/s): HDF5 'vrms' volume or ``time_s,vrms_mps`` CSV.
    out : path-like
        Final image (HDF5 'image' and 'gathers'); the files of each pass go beside it
        (:func:`pass_files`).
    segy : path-like, optional
        Also write the final stack as SEG-Y.
    segy_revision : {1, 2}
        SEG-Y revision of that file.
    velocity_out : path-like, optional
        Also write the final velocity here.
    iterations : int
        RMO velocity updates (>= 0; 0: migrate only).
    index : path-like, optional
        Trace index file.
    grid : str or sequence of int, optional
        Image range ``il0,il1,xl0,xl1`` (2D ``cmp0,cmp1``), inclusive.
    tmax : float, optional
        Last output time (s).
    offset_classes : int
        Equal offset classes of the gathers (>= 2).
    aperture : float
        Maximum distance output point - trace midpoint (m).
    max_angle : float
        Maximum dip (operator) angle (degrees from vertical) of the PSTM (see
        :mod:`seis_hpc.migration.pstm`). 45 by default: the gathers the RMO reads keep the
        operator's steep flanks out as the former 60-degree emergence-angle limit did (with
        60 degrees of dip one update on the marine2d line raises the 99th-percentile Vrms
        error, tests/test_rmo.py).
    mem_per_rank : str or int
        Memory budget per rank (e.g. ``"2G"``).
    backend : {"cython", "gpu"}
        PSTM kernel.
    every : int
        RMO analysis every N CMPs.
    gamma_min, gamma_max : float
        Range of the scanned ratio gamma = v_mig / v.
    min_semblance : float
        Weakest semblance picked.
    tmin : float
        No RMO picks above this time (s).
    water_bottom : float, optional
        Water-bottom time (s): the water is kept and multiples are not flattened (default:
        detected on the near offsets; 0: none).
    smooth_m, smooth_s : float
        Smoothing of the update laterally (m) and in time (s).
    normalise : {"reflector", "none"}
        Amplitude scale of every pass's image and gathers (the traces are rho-filtered
        either way): ``reflector`` divides by the kernel's flat-reflector response (a flat
        reflector keeps its NMO-stack amplitude, :mod:`seis_hpc.engine.normalise`); ``none``
        writes the plain sum. Semblance does not see an overall scale; the division of each
        offset class by its own response evens the classes' amplitudes before the RMO scan.
    comm : mpi4py.MPI.Comm, None or "auto"
        Communicator (see :func:`seis_hpc.migration.job.migrate`).
    config : str, optional
        Configuration text stored in each pass's image.

    Returns
    -------
    int
        0 when everything is written, else the engine's status of the pass that stopped.

    Raises
    ------
    seis_hpc.engine.comm.CheckedInputError
        Bad input, found on rank 0 and raised on every rank; the final outputs are not written.
    """
    from seis_hpc.engine.comm import default_comm, on_root, rank_size
    from seis_hpc.engine.pstm_run import execute, make_job
    from seis_hpc.io.atomic import atomic_outputs, prepare_outputs
    from seis_hpc.migration.job import output_times, select_grid
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.model import load_vrms, open_vrms

    comm = default_comm(comm)
    rank, _ = rank_size(comm)
    out_arg, out = out, os.path.abspath(out)
    stem = out[:-3] if out.endswith(".h5") else out
    if config is None:
        config = json.dumps({"survey": str(survey), "velocity": str(velocity),
                             "iterations": iterations, "grid": grid, "tmax": tmax},
                            default=str)

    def setup():
        from seis_hpc.velocity.field import write_vrms
        from seis_hpc.velocity.rmo import (
            RmoParams,
            class_offsets,
            detect_water_bottom,
            rmo_fold,
        )
        from seis_hpc.velocity.velan import analysis_locations

        for p in (survey, velocity):
            if not os.path.exists(p):
                raise FileNotFoundError(2, "No such file or directory", os.fspath(p))
        prepare_outputs(out_arg, segy, velocity_out)  # bad names: before any work
        if iterations < 0:
            raise SeisError(f"--iterations must be >= 0 (got {iterations})")
        if offset_classes < 2:
            raise SeisError(f"--offset-classes must be >= 2 (got {offset_classes})")
        if backend != "cython":
            from seis_hpc.gpu import get_runtime

            get_runtime()  # no CuPy or no GPU: say so once, before any work
        sv = Survey.open(survey, index)
        sv.check_for("migstack")  # prestack, lengths (issue 15)
        idx = sv.index
        g = select_grid(sv.grid, _ints(grid))
        time = output_times(idx, tmax, None, n_bins=g.n_bins, n_classes=offset_classes,
                            mem_per_rank=mem_per_rank, out=out)
        from seis_hpc.engine.decomposition import image_bytes
        from seis_hpc.limits import check_in_memory

        # rank 0 holds the gathers of a pass and the velocity (float32, and float64 while
        # it is interpolated) for the RMO update
        check_in_memory(image_bytes(g.n_bins, time.size, offset_classes)
                        + 12 * g.n_bins * time.size,
                        "the image gathers and the velocity of the RMO update",
                        f"{g.n_bins:,} points x {time.size:,} samples x "
                        f"({offset_classes} offset classes + 1) x 4 bytes, and the "
                        "velocity at 12 bytes a sample", "lower --tmax or use --grid")
        params = RmoParams(gamma_min=gamma_min, gamma_max=gamma_max,
                           min_semblance=min_semblance, smooth_m=smooth_m, smooth_s=smooth_s,
                           tmin=tmin,
                           water_bottom=(water_bottom if water_bottom is not None
                                         else detect_water_bottom(idx)) or None)
        params.gammas()
        top = float(np.abs(idx["offset"]).max()) * (1 + 1e-6) + 1e-3
        edges = np.linspace(0.0, top, offset_classes + 1)
        # Only where the gathers hold most offsets (not the tapering ends of the line).
        locs = analysis_locations(g, rmo_fold(sv, g), every=every) if iterations else []
        v0 = load_vrms(velocity, g, time).reshape(g.shape + (time.size,))
        write_vrms(f"{stem}.vrms-iter0.h5", v0, g, time,
                   history=[f"seis-hpc migstack: starting velocity from {velocity}"])
        from seis_hpc.io.shotpoint import line_shotpoints

        # input traces per image bin: the fold of the SEG-Y stack (NStackedTraces)
        f = sv.fold().reshape(sv.grid.n_inline, sv.grid.n_crossline)
        i0, j0 = g.inline0 - sv.grid.inline0, g.crossline0 - sv.grid.crossline0
        return {"grid": g, "time": time, "edges": edges, "locs": locs, "params": params,
                "offsets": class_offsets(idx["offset"], edges),
                "shotpoint": line_shotpoints(idx, g),
                "fold": f[i0:i0 + g.n_inline, j0:j0 + g.n_crossline]}

    setup_out = on_root(comm, setup)
    g, time = setup_out["grid"], setup_out["time"]
    idx = Survey.open(survey, index, save=False).index
    kernel_args = {"aperture": aperture, "max_angle": max_angle}
    if backend != "cython":
        kernel_args["backend"] = backend
    for k in range(iterations + 1):
        vpath = f"{stem}.vrms-iter{k}.h5"
        # The last pass too goes to its own name; `out` appears with the other outputs.
        target = f"{stem}.iter{k}.h5"

        def plan(vpath=vpath, target=target, k=k):
            job = make_job(idx, g, time, target, kernel_args=kernel_args,
                           mem_per_rank=mem_per_rank, offset_edges=setup_out["edges"],
                           hash_params={"input": os.path.abspath(survey),
                                        "velocity": vpath, "pass": k},
                           config=config,
                           history=[f"seis-hpc migstack pass {k} with {vpath}"],
                           normalise=normalise, rho_filter=True)
            job.shotpoint = setup_out["shotpoint"]  # 2D: the CMPs' SP, in every pass image
            return job

        job = on_root(comm, plan)
        rc = execute(job, idx, open_vrms(vpath, g, time, validate=rank == 0), comm)
        if rc:
            return rc
        if k == iterations:
            break

        def update(vpath=vpath, target=target, k=k):
            from seis_hpc.io.volume import read_volume
            from seis_hpc.velocity.field import write_vrms
            from seis_hpc.velocity.rmo import rmo_update

            gath = read_volume(target, "gathers")
            v = load_vrms(vpath, g, time).reshape(g.shape + (time.size,))
            locs = setup_out["locs"]
            g2 = gath.data.reshape(gath.data.shape[0], g.n_inline, g.n_crossline, -1)
            v2 = v.reshape(g.n_inline, g.n_crossline, -1)
            ii = [il - g.inline0 for il, _ in locs]
            jj = [xl - g.crossline0 for _, xl in locs]
            new, rep = rmo_update(g2[:, ii, jj], setup_out["offsets"], time, v2[ii, jj], locs,
                                  g, v, setup_out["params"])
            gam = np.concatenate([r[3] for r in rep]) if rep else np.zeros(0)
            dev = float(np.median(np.abs(gam - 1))) if gam.size else 0.0
            fb = np.nanmean([r[5] for r in rep]) if rep else float("nan")
            fa = np.nanmean([r[6] for r in rep]) if rep else float("nan")
            print(f"migstack: pass {k}: {gam.size} RMO picks, median |gamma - 1| = {dev:.4f}, "
                  f"flatness {fb:.3f} -> {fa:.3f} (predicted)", file=sys.stderr, flush=True)
            write_vrms(f"{stem}.vrms-iter{k + 1}.h5", new, g, time,
                       history=[f"seis-hpc migstack: RMO update {k + 1} from {target}"])
            return True

        on_root(comm, update)
    if rank == 0:
        import shutil

        from seis_hpc.io.export import write_volume_segy
        from seis_hpc.io.volume import read_volume

        final_v = f"{stem}.vrms-iter{iterations}.h5"
        final_image = f"{stem}.iter{iterations}.h5"
        with atomic_outputs(out, segy, velocity_out) as (o, segy_tmp, vout):
            if vout:
                shutil.copyfile(final_v, vout)
            if segy_tmp:
                write_volume_segy(segy_tmp, read_volume(final_image, "image"),
                                  revision=segy_revision, fold=setup_out["fold"])
            os.replace(final_image, o)
    return 0
