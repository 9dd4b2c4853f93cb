"""QC pictures of a velocity analysis, for a processor to accept or edit the velocities.

* one **semblance panel** per analysis location (up to a limit), beside its super-gather
  NMO-corrected with the location's final Vrms, with the accepted picks, the rejected ones
  marked by reason, the corridor the picker searched, the water-velocity floor and the
  water-bottom multiple times k t_wb (:func:`seis_hpc.qc.figures.semblance_figure`);
* the **Vrms section** with the picks' places;
* the **interval-velocity (Dix) section**, every unphysical sample marked in red
  (:func:`interval_velocity`).

Every picture has a title block (line, what it is, clip or colour scale, units). ``seis-hpc
velan --qc DIR`` writes them with its other outputs (all or none); ``seis-hpc qc VRMS.h5
--what interval`` draws the Dix section of any Vrms volume.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from seis_hpc.qc.figures import (
    TitleBlock,
    save_png,
    semblance_figure,
    velocity_figure,
)
from seis_hpc.velocity.accuracy import interval_velocity

#: Units line of the velocity pictures.
VELOCITY_UNITS = "two-way time s; velocity m/s; coordinates m"




def _section_of(grid, qc) -> tuple[int, np.ndarray, str, str]:
    """The section the velocity pictures show: (inline index, trace numbers, axis label,
    where). 2D: the line; 3D: the inline holding most QC locations."""
    if grid.is_2d:
        return 0, grid.crosslines(), "CDP", "2D line"
    ils = [il for il, _ in qc.locations] if qc is not None and qc.locations else []
    il = max(set(ils), key=ils.count) if ils else grid.inline0 + grid.n_inline // 2
    return il - grid.inline0, grid.crosslines(), "crossline", f"inline {il}"


def _nmo_gather(rec, qc, dt: float, t0: float) -> np.ndarray:
    """The location's super-gather NMO-corrected with its final Vrms (30 % stretch mute)."""
    from seis_hpc.velocity.nmo import nmo_correct
    from seis_hpc.velocity.picks import vrms_function

    if rec.final is None or rec.gather is None:
        return rec.gather
    v = vrms_function(rec.final[0], rec.final[1], qc.time)
    return nmo_correct(rec.gather, rec.offset, dt, v, t_start=t0, stretch_mute=0.3)


def velan_pictures(qc, picks, field: np.ndarray, grid, time, out_dir: str | os.PathLike, *,
                   line: str, prefix: str = "velan", clip: float = 99.0,
                   vint_bounds: tuple[float, float] = (1400.0, 6000.0),
                   dest: Callable[[Path], Path] | None = None) -> list[Path]:
    """Draw the QC pictures of a velocity analysis.

    Parameters
    ----------
    qc : seis_hpc.velocity.velan.PickingQC
        What the picker saw and did (filled by
        :func:`~seis_hpc.velocity.velan.velocity_analysis`); None for picks read from a table
        (then only the sections are drawn).
    picks : seis_hpc.velocity.picks.Picks
        The picks the field was made from (their places are marked on the Vrms section).
    field : numpy.ndarray, shape (n_bins, nt)
        The Vrms field (m/s).
    grid : BinGrid
        Survey grid.
    time : numpy.ndarray
        Two-way times of the field (s).
    out_dir : path-like
        Folder of the pictures.
    line : str
        Line name for the title blocks.
    prefix : str
        File-name prefix: ``<prefix>_vrms.png``, ``<prefix>_vint.png``,
        ``<prefix>_semblance_cdp<N>.png``.
    clip : float
        Clip percentile of the gathers (%).
    vint_bounds : (float, float)
        Physical interval velocities (m/s): samples outside are marked on the Dix section.
    dest : callable, optional
        Maps each picture's final path to the path written (e.g. its temporary name when
        the caller renames every output at once); default: the final path.

    Returns
    -------
    list of Path
        The final paths, in the order of :func:`velan_picture_paths`.
    """
    plan = picture_plan(qc, picks, field, grid, time, Path(out_dir), line, prefix, clip,
                        vint_bounds)
    made = []
    for final, draw in plan:
        save_png(draw(), dest(final) if dest else final)
        made.append(final)
    return made


def velan_picture_paths(qc, grid, out_dir: str | os.PathLike, prefix: str = "velan"
                        ) -> list[Path]:
    """The paths :func:`velan_pictures` writes, known before anything is drawn."""
    out = Path(out_dir)
    names = [out / f"{prefix}_vrms.png", out / f"{prefix}_vint.png"]
    if qc is not None:
        names += [out / f"{prefix}_semblance_cdp{rec.cdp}.png" for rec in _qc_records(qc)]
    return names


def _qc_records(qc) -> list:
    """The recorded locations that kept picks, inline-major."""
    return [qc.locations[k] for k in sorted(qc.locations) if qc.locations[k].final is not None]


def picture_plan(qc, picks, field, grid, time, out: Path, line: str, prefix: str,
                 clip: float, vint_bounds: tuple[float, float]) -> list[tuple[Path, Callable]]:
    """The pictures of :func:`velan_pictures` as ``(final path, draw)`` pairs, where
    ``draw()`` returns the matplotlib Figure (for notebooks and tests; same parameters)."""
    time = np.asarray(time, dtype=np.float64)
    field = np.asarray(field, dtype=np.float64).reshape(grid.n_inline, grid.n_crossline, -1)
    i, x, xlabel, where = _section_of(grid, qc)
    il = grid.inline0 + i
    sec = field[i]
    coords = grid.grid_to_world(np.full(x.size, il), x)
    on_line = [p for p in picks.locations if p.inline == il]
    px = np.concatenate([np.full(int((~(p.semblance == 0)).sum()), p.crossline)
                         for p in on_line]) if on_line else np.zeros(0)
    pt = np.concatenate([p.time[~(p.semblance == 0)] for p in on_line]) if on_line \
        else np.zeros(0)
    lo, hi = vint_bounds
    t_mid, vint, bad = interval_velocity(sec, time, vint_min=lo, vint_max=hi)
    n_bad = int(bad.sum())
    from seis_hpc.velocity.velan import REASONS

    n_rej = {k: picks.params.get("rejected_" + k.replace(" ", "_").replace("-", "_"), 0)
             for k in REASONS}
    n_rej = {k: v for k, v in n_rej.items() if v}
    extra = (f"{len(picks.locations)} locations, "
             f"{sum(int((~(p.semblance == 0)).sum()) for p in picks.locations)} picks "
             "(extrapolated knots not counted)",)
    if n_rej:
        extra += (f"rejected: {', '.join(f'{v} {k}' for k, v in n_rej.items())}",)
    plan = [
        (out / f"{prefix}_vrms.png", lambda: velocity_figure(
            sec, time, x, title=f"Vrms, {where} (white dots: picks)", xlabel=xlabel,
            size=(10, 6.5), coords=coords, picks=(px, pt),
            block=TitleBlock(line, f"RMS (stacking) velocity, {where}", VELOCITY_UNITS,
                             extra=extra))),
        (out / f"{prefix}_vint.png", lambda: velocity_figure(
            vint, t_mid, x, title=f"Interval velocity (Dix, 20 ms), {where}", xlabel=xlabel,
            label="Vint (m/s)", size=(10, 6.5), coords=coords, bad=bad,
            vrange=(float(np.nanmin(vint)) if np.isfinite(vint).any() else lo,
                    float(np.nanmax(vint)) if np.isfinite(vint).any() else hi),
            block=TitleBlock(line, f"Dix interval velocity, {where}", VELOCITY_UNITS,
                             extra=(f"{n_bad} unphysical samples (imaginary or outside "
                                    f"{lo:.0f}-{hi:.0f} m/s, 20 ms steps; red)",)))),
    ]
    if qc is None:
        return plan
    dt = float(time[1] - time[0]) if time.size > 1 else 0.004
    for rec in _qc_records(qc):
        plan.append((out / f"{prefix}_semblance_cdp{rec.cdp}.png",
                     _semblance_drawer(rec, qc, grid, line, clip, dt, float(time[0]))))
    return plan


def _semblance_drawer(rec, qc, grid, line, clip, dt, t0):
    def draw():
        acc, ext, rej = rec.accepted(), rec.extrapolated(), rec.rejected()
        where = f"CDP {rec.cdp}" if grid.is_2d else \
            f"CDP {rec.cdp} (inline {rec.inline}, crossline {rec.crossline})"
        reasons = {}
        for *_, why in rej:
            reasons[why] = reasons.get(why, 0) + 1
        rows = [f"{where}, x {rec.x:.0f} m, y {rec.y:.0f} m; super-gather of "
                f"{0 if rec.gather is None else len(rec.gather)} traces",
                f"{len(acc)} picks accepted, {len(rej)} rejected"
                + (f" ({', '.join(f'{n} {k}' for k, n in reasons.items())})" if reasons else "")]
        water = []
        if qc.water_velocity:
            water.append(f"water velocity floor {qc.water_velocity:g} m/s")
        if rec.water_bottom:
            water.append(f"water bottom t_wb {rec.water_bottom:.3f} s")
        if rec.corridor is not None:
            c = rec.corridor
            k = int(np.argmin(np.abs(c[0] - c[0][-1] / 2)))
            water.append(f"corridor +-{100 * (c[2][k] / c[1][k] - 1) / (c[2][k] / c[1][k] + 1):.0f}"
                         " % of the trend")
        if water:
            rows.append("; ".join(water))
        return semblance_figure(
            rec.panel, qc.time, qc.velocities, title=f"Semblance, {where}",
            picks=acc, extrapolated=ext, rejected=rej, corridor=rec.corridor,
            water_velocity=qc.water_velocity, water_bottom=rec.water_bottom,
            gather=_nmo_gather(rec, qc, dt, t0), offset=rec.offset, clip=clip,
            gather_title="super-gather, NMO with the final Vrms", size=(11, 8.5),
            block=TitleBlock(line, f"Velocity analysis, {where}",
                             "two-way time s; velocity m/s; offset m; semblance 0-1",
                             extra=tuple(rows)))
    return draw
