"""Velocity analysis of a survey into a smooth Vrms field: :func:`velan`, the library call
behind ``seis-hpc velan`` (semblance scans and automatic picks of :mod:`.velan`, the field of
:mod:`.field`, the pick files of :mod:`.picks`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from seis_hpc.errors import SeisError

if TYPE_CHECKING:
    from seis_hpc.geometry import BinGrid
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.picks import Picks


def velan(survey: str | os.PathLike | Survey, out: str | os.PathLike, *,
          picks: str | os.PathLike | None = None, use_picks: str | os.PathLike | None = None,
          su_table: str | os.PathLike | None = None, csv: str | os.PathLike | None = None,
          force: bool = False, su_every: int = 20, every: int | None = None,
          every_m: float | None = None, min_fold: int | None = None,
          supergather: int | None = None,
          reference: str | os.PathLike | None = None, smooth_m: float = 250.0,
          smooth_s: float = 0.05, index: str | os.PathLike | None = None,
          bin_grid: BinGrid | str | os.PathLike | None = None, config: str = "",
          history: Sequence[str] = (), progress: bool = True,
          qc: str | os.PathLike | None = None, line: str | None = None,
          qc_locations: int = 60, **scan: Any) -> Picks:
    """Semblance velocity analysis with automatic picks into a smooth Vrms volume.

    Every output or none: each goes to a temporary name, renamed when all are written.

    Parameters
    ----------
    survey : path-like or Survey
        SEG-Y/SU prestack file (or its trace index), or an open
        :class:`~seis_hpc.survey.Survey`.
    out : path-like
        Output HDF5 'vrms' volume on the survey grid (m/s).
    picks : path-like, optional
        Also write the picks table (TOML) here.
    use_picks : path-like, optional
        Use this picks table (TOML or SU par file) instead of picking.
    su_table : path-like, optional
        Also export the field as an SU par file, sampled every ``su_every`` CMPs.
    csv : path-like, optional
        Also export the field as CSV (``cdp,time_s,vrms_mps``) at the same places.
    force : bool
        Overwrite an existing ``picks`` table (else refused: it may hold edited picks).
    su_every : int
        CMP spacing of the SU table and the CSV.
    every : int, optional
        Analysis every N CMPs (3D: inlines and crosslines); default 20 unless ``every_m``.
    every_m : float, optional
        Analysis every M metres instead.
    min_fold : int, optional
        Skip bins with fewer traces (default: half the typical fold, <= 6).
    supergather : int, optional
        CMPs pooled per location (default: from the fold map, at least 3).
    reference : path-like, optional
        Reference ``time_s,vrms_mps`` CSV for the picker's corridor.
    smooth_m, smooth_s : float
        Smoothing of the field laterally (m) and in time (s).
    index : path-like, optional
        Trace index of a survey given by path.
    bin_grid : BinGrid or path-like, optional
        Bin a survey given by path by this grid (or bin grid TOML file) instead of finding
        one; traces outside it are reported and not used.
    config : str
        Configuration text stored in the output.
    history : sequence of str
        History lines stored in the output.
    progress : bool
        Show the progress line on stderr.
    qc : path-like, optional
        Folder for the QC pictures (:func:`seis_hpc.qc.velocity.velan_pictures`): a
        semblance panel per location (at most ``qc_locations``, evenly spread) with its
        picks, rejections, corridor, water floor and multiple times; the Vrms and Dix
        interval-velocity sections. Written with the other outputs (all or none), named
        after ``out`` (``vrms.h5`` -> ``vrms_vint.png``, ...).
    line : str, optional
        Line name of the pictures' title blocks (default: the survey file's stem).
    qc_locations : int
        Most semblance pictures.
    **scan
        Fields of :class:`seis_hpc.velocity.velan.ScanParams` (``vmin``, ``vmax``, ``dv`` in
        m/s, ``window`` in s, ``vint_min``, ``corridor``, ``outlier``, ``tmin``,
        ``water_velocity`` in m/s (None: land), ``water_bottom`` in s, ...).

    Returns
    -------
    Picks
        The picks the field was made from; its attribute ``pictures`` lists the QC pictures
        written (Path; empty without ``qc``).
    """
    import sys

    import h5py
    import numpy as np

    from seis_hpc.io.atomic import atomic_outputs, prepare_outputs
    from seis_hpc.io.volume import VolumeWriter
    from seis_hpc.limits import check_in_memory
    from seis_hpc.progress import Progress
    from seis_hpc.survey import Survey
    from seis_hpc.velocity.field import field_block_bins, field_blocks, table_from_field
    from seis_hpc.velocity.model import read_vrms_csv, write_vrms_table_csv
    from seis_hpc.velocity.picks import read_picks, write_picks, write_su_picks
    from seis_hpc.velocity.velan import (
        ScanParams,
        analysis_locations,
        choose_supergather,
        velocity_analysis,
    )

    if isinstance(survey, (str, os.PathLike)) and not os.path.exists(survey):
        raise FileNotFoundError(2, "No such file or directory", os.fspath(survey))
    if picks and not os.fspath(picks).lower().endswith(".toml"):
        raise SeisError(f"--picks {picks}: the picks table is TOML; name it .toml")
    if picks and os.path.exists(picks) and not force:
        raise SeisError(f"--picks {picks} exists (edited picks?): read it back with "
                        "--use-picks, or give --force to overwrite it")
    prepare_outputs(out, picks, su_table, csv)  # bad names fail first
    if qc is not None and os.path.exists(qc) and not os.path.isdir(qc):
        raise SeisError("is a file, not a folder for the QC pictures", qc)
    if every is not None and every_m is not None:
        raise SeisError("give --every or --every-m, not both")
    sv = survey if isinstance(survey, Survey) else Survey.open(survey, index, grid=bin_grid)
    sv.check_for("velan")  # prestack, lengths (issue 15)
    idx, grid = sv.index, sv.grid
    time = idx.times()
    # the field is made a block of bins at a time (interpolated and smoothed in float64)
    n_blk = field_block_bins(grid, time.size, smooth_m)
    check_in_memory(48 * n_blk * time.size, "the velocity field",
                    f"{n_blk:,} bins x {time.size:,} samples x 48 bytes (a block of the field)")
    defaults = ScanParams()
    picking_qc = None
    if qc is not None and not use_picks:
        from seis_hpc.velocity.velan import PickingQC

        picking_qc = PickingQC(max_locations=qc_locations)
    if use_picks:
        found = read_picks(use_picks, grid)
    else:
        fold = sv.fold()
        size, low = choose_supergather(fold, grid.is_2d)
        params = ScanParams(**{**scan, "supergather": size if supergather is None
                               else supergather})
        params.velocities()
        ref = read_vrms_csv(reference) if reference else None
        step = every if every is not None or every_m is not None else 20
        locs = analysis_locations(grid, fold, every=step, every_m=every_m,
                                  min_fold=low if min_fold is None else min_fold)
        if supergather is None or min_fold is None:
            print(f"velan: super-gathers of {params.supergather} "
                  f"{'CMPs' if grid.is_2d else 'bins a side'}, locations with fold >= "
                  f"{low if min_fold is None else min_fold} (from the fold map)",
                  file=sys.stderr)
        with Progress(len(locs), "velan", "location",
                      mode="auto" if progress else "off") as prog:
            found = velocity_analysis(idx, None, None, grid, locs, params,
                                      reference=ref,
                                      progress=lambda done, total: prog.set(done),
                                      qc=picking_qc)
    vint_min = scan.get("vint_min", defaults.vint_min)
    vint_max = scan.get("vint_max", defaults.vint_max)
    water = scan.get("water_velocity", defaults.water_velocity)
    bounds = (min(_lowest(vint_min), water or np.inf), _highest(vint_max))
    pictures = []
    if qc is not None:
        from seis_hpc.qc.velocity import velan_picture_paths

        pictures = velan_picture_paths(picking_qc, grid, qc, _prefix(out))
    # Every output or none: each goes to its temporary name, renamed when all are done.
    with atomic_outputs(out, picks, su_table, csv, *pictures) as tmps:
        out_tmp, picks_tmp, su_tmp, csv_tmp = tmps[:4]
        if picks_tmp:
            write_picks(picks_tmp, found)
        # The field block by block into the file (memory of one block, not of the survey);
        # the tables and pictures read what they need back from it.
        with h5py.File(out_tmp, "w") as f:
            w = VolumeWriter(f, grid, time, "vrms", config=config, history=list(history),
                             attrs={"n_locations": len(found.locations)})
            for (i0, i1, j0, j1), blk in field_blocks(found, grid, time, smooth_m=smooth_m,
                                                      smooth_s=smooth_s, vint_bounds=bounds):
                if not np.all(np.isfinite(blk)) or blk.min() <= 0:
                    raise SeisError("vrms field must be finite and > 0 m/s", out)
                w.put("vrms", blk, slice(i0, i1), slice(j0, j1))
            if su_tmp or csv_tmp:
                table = table_from_field(f["vrms"], grid, time, every=su_every)
                if su_tmp:
                    write_su_picks(su_tmp, table)
                if csv_tmp:
                    write_vrms_table_csv(csv_tmp, table)
            if pictures:
                from seis_hpc.qc.velocity import velan_pictures

                where = dict(zip(pictures, tmps[4:], strict=True))
                name = line or _prefix(idx.segy_path)
                # the pictures draw whole sections: the field is read back whole
                velan_pictures(picking_qc, found, f["vrms"][...], grid, time, qc, line=name,
                               prefix=_prefix(out), vint_bounds=bounds,
                               dest=where.__getitem__)
    found.pictures = pictures
    return found


def _prefix(path) -> str:
    """A file's name without its suffixes (``vrms.h5`` -> ``vrms``)."""
    from pathlib import Path

    return Path(os.fspath(path)).name.split(".")[0] or "velan"


def _lowest(bound: float | list) -> float:
    """The lowest velocity (m/s) of a bound: a number or (time, velocity) pairs."""
    return float(bound) if not isinstance(bound, list) else min(v for _, v in bound)


def _highest(bound: float | list) -> float:
    """The highest velocity (m/s) of a bound: a number or (time, velocity) pairs."""
    return float(bound) if not isinstance(bound, list) else max(v for _, v in bound)
