"""QC pictures (PNG, matplotlib): gathers, semblance, velocities, maps, sections, slices, spectra.

Two layers:

* ``*_figure(...)`` functions draw one picture and return the matplotlib ``Figure`` (for
  notebooks and tests); ``plot_*(..., path)`` draw the same picture and write it as a PNG
  atomically, returning the path. Pictures are ``size`` inches at :data:`DPI` dots per inch:
  the default ``size=(10, 6)`` is a 1000 x 600 pixel PNG.
* :func:`survey_pictures`, :func:`volume_pictures` and :func:`compare_pictures` draw the standard
  set for a SEG-Y/SU survey, a seis_hpc HDF5 volume (image, vrms, gathers) or a before/after
  pair; ``seis-hpc qc`` calls them.

Axes are in the field's units: trace axes in channel, CMP, inline/crossline numbers or offset
(m), map axes in inline/crossline numbers or world coordinates (m), time in s, velocity in m/s,
frequency in Hz. Amplitudes are clipped at a percentile of |amplitude| (``clip``, default 99)
so that one spike does not grey out the panel.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.qc.figures import (
    TitleBlock,
    bin_grid_figure,
    image_gathers_figure,
    line_figure,
    offset_azimuth_figure,
    plot_compare,
    plot_gather,
    plot_map,
    plot_semblance,
    plot_spectrum,
    plot_velocity,
    positions_figure,
    rose_figure,
    save_png,
)

SURVEY_PICTURES = ("shot", "cmp", "semblance", "maps", "spectrum", "geometry")
VOLUME_PICTURES = ("inline", "crossline", "slice", "spectrum", "gather", "interval")

#: Units line of the amplitude pictures' title blocks.
AMPLITUDE_UNITS = "two-way time s; amplitude in the data's units; coordinates and offsets m"


_save = save_png


# -- standard sets -----------------------------------------------------------------------------
def _check_what(what: Iterable[str] | None, allowed: Sequence[str], kind: str) -> list[str]:
    if what is None:
        return list(allowed)
    what = list(what)
    bad = [w for w in what if w not in allowed]
    if bad:
        raise SeisError(f"no {', '.join(bad)} picture for {kind} (choose from "
                        f"{', '.join(allowed)})")
    return what


def _scaled(default, size):
    """``size`` (inches) when given, else the picture's default."""
    return default if size is None else size


def survey_pictures(path: str | os.PathLike, out_dir: str | os.PathLike, *,
                    what: Iterable[str] | None = None, ffid: int | None = None,
                    cmp: int | None = None, clip: float = 99.0, style: str = "both",
                    velocity: str | os.PathLike | None = None,
                    vrange: tuple[float, float, float] | None = None, size=None,
                    prefix: str | None = None, index_path=None, headermap=None,
                    line: str | None = None) -> list[Path]:
    """The standard QC pictures of a SEG-Y/SU survey.

    Parameters
    ----------
    path : path-like
        SEG-Y/SU file (or its trace index).
    out_dir : path-like
        Folder for the PNGs, named ``<prefix>_<picture>.png``.
    what : iterable of str, optional
        Subset of :data:`SURVEY_PICTURES` (default all): ``shot`` (shot gather by channel),
        ``cmp`` (CMP gather by offset), ``semblance`` (of that CMP, with the picks of
        ``velocity``), ``maps`` (fold, offsets, azimuths, positions), ``spectrum`` (of the shot).
    ffid : int, optional
        Shot to draw (default: the middle shot of the file).
    cmp : int, optional
        CMP (bin) number to draw (default: the fullest bin near the middle of the grid).
    clip : float
        Clip percentile (%).
    style : {"density", "wiggle", "both"}
        Gather style; ``both`` writes a density and a wiggle picture of each gather.
    velocity : path-like, optional
        ``time_s,vrms_mps`` CSV whose function is drawn as picks on the semblance panel.
    vrange : (vmin, vmax, dv), optional
        Semblance trial velocities (m/s); default 1400..4000 every 25 m/s.
    size : (float, float), optional
        Picture size in inches (default per picture).
    prefix : str, optional
        File-name prefix (default: the file's stem).
    line : str, optional
        Line name of the gathers' and semblance panel's title blocks (default: the file's
        stem).

    Returns
    -------
    list of Path
        The pictures written.
    """
    from seis_hpc.survey import Survey

    what = _check_what(what, SURVEY_PICTURES, "a SEG-Y/SU survey")
    out_dir = Path(out_dir)
    prefix = prefix or Path(path).name.split(".")[0]
    line = line or Path(path).name.split(".")[0]
    s = Survey.open(path, index_path=index_path, headermap=headermap, save=False)
    idx = s.index
    t = idx.t_start + np.arange(idx.ns) * idx.dt
    made: list[Path] = []
    styles = ("density", "wiggle") if style == "both" else (style,)

    shot_ids = None
    if {"shot", "spectrum"} & set(what):
        ffids = idx["ffid"]
        if ffid is None:
            ffid = int(ffids[len(ffids) // 2])
        shot_ids = np.flatnonzero(ffids == ffid)
        if not shot_ids.size:
            raise SeisError(f"no trace with FFID {ffid}", path)
        shot_ids = shot_ids[np.argsort(idx["channel"][shot_ids], kind="stable")]
    if "shot" in what:
        data = idx.read_traces(shot_ids)
        for st in styles:
            made.append(plot_gather(data, t, idx["channel"][shot_ids],
                                    out_dir / f"{prefix}_shot_{ffid}_{st}.png",
                                    title=f"Shot FFID {ffid} ({len(shot_ids)} traces)",
                                    xlabel="channel", style=st, clip=clip,
                                    size=_scaled((10, 6.5), size),
                                    block=TitleBlock(line, f"Shot FFID {ffid}",
                                                     AMPLITUDE_UNITS)))
    if {"cmp", "semblance"} & set(what):
        bins = s.bin_serial()
        if cmp is None:
            fold = s.fold().ravel()
            centre = s.grid.n_bins // 2
            # the fullest bin, nearest the centre of the grid among equals
            score = fold.astype(np.float64) - 1e-9 * np.abs(np.arange(fold.size) - centre)
            b = int(np.argmax(score))
        else:
            hit = np.flatnonzero(_bin_numbers(s) == cmp)
            if not hit.size:
                raise SeisError(f"no CMP {cmp} in the grid ({s.grid.describe()})", path)
            b = int(hit[0])
        number = int(_bin_numbers(s)[b])
        ids = np.flatnonzero(bins == b)
        if not ids.size:
            raise SeisError(f"CMP {number} has no traces", path)
        off = idx["offset"][ids]
        order = np.argsort(off, kind="stable")
        ids, off = ids[order], off[order]
        g = idx.read_traces(ids)
        where = _bin_label(s, b)
        if "cmp" in what:
            for st in styles:
                made.append(plot_gather(g, t, off, out_dir / f"{prefix}_cmp_{number}_{st}.png",
                                        title=f"CMP {number} ({where}), {len(ids)} traces",
                                        xlabel="offset (m)", style=st, clip=clip,
                                        size=_scaled((8, 6.5), size),
                                        block=TitleBlock(line, f"CMP {number} ({where})",
                                                         AMPLITUDE_UNITS)))
        if "semblance" in what:
            from seis_hpc.velocity.semblance import semblance

            v0, v1, dv = vrange or (1400.0, 4000.0, 25.0)
            vel = np.arange(v0, v1 + dv / 2, dv)
            panel = semblance(g, off, idx.dt, vel, t_start=idx.t_start, window=0.02)
            picks = None
            if velocity is not None:
                from seis_hpc.velocity.model import read_velocity_function

                pt, pv = read_velocity_function(velocity, cdp=number)
                picks = np.column_stack([pt, pv])
            made.append(plot_semblance(panel, t, vel,
                                       out_dir / f"{prefix}_semblance_{number}.png",
                                       title=f"Semblance, CMP {number} ({where})",
                                       picks=picks, gather=g, offset=off, clip=clip,
                                       size=_scaled((10, 8), size),
                                       block=TitleBlock(
                                           line, f"Semblance, CMP {number} ({where})",
                                           "two-way time s; velocity m/s; offset m; "
                                           "semblance 0-1",
                                           extra=(f"picks: {velocity}",) if velocity
                                           else ())))
    if "maps" in what:
        made += geometry_pictures(s, out_dir, prefix, size=size)
    if "geometry" in what:
        made += bin_grid_pictures(s, out_dir, prefix, size=size)
        if "maps" not in what:
            made += geometry_pictures(s, out_dir, prefix, size=size, overview=False)
    if "spectrum" in what:
        data = idx.read_traces(shot_ids)
        made.append(plot_spectrum(data, idx.dt, out_dir / f"{prefix}_spectrum_{ffid}.png",
                                  title=f"Amplitude spectrum, shot FFID {ffid}",
                                  size=_scaled((8, 5), size)))
    return made


def _bin_numbers(s) -> np.ndarray:
    """CMP number of each bin (2D: the CMP number; 3D: the serial number from 1)."""
    g = s.grid
    if g.is_2d:
        return g.crosslines()
    return np.arange(1, g.n_bins + 1)


def _bin_label(s, b: int) -> str:
    g = s.grid
    if g.is_2d:
        return f"line CMP {g.crossline0 + b}"
    il, xl = divmod(b, g.n_crossline)
    return f"inline {g.inline0 + il}, crossline {g.crossline0 + xl}"


def geometry_pictures(s, out_dir: str | os.PathLike, prefix: str, *, size=None,
                      n_sectors: int = 12, overview: bool = True) -> list[Path]:
    """Fold, offset and azimuth maps of a :class:`~seis_hpc.survey.Survey`, and (with
    ``overview``) its azimuth rose and source, receiver and midpoint positions (m). A 2D line
    gets curves along the CMP axis instead of maps."""
    out_dir = Path(out_dir)
    g = s.grid
    fold = s.fold()
    off = s.offset_stats()
    counts, edges = s.azimuth_histogram(n_sectors)
    made = []
    if g.is_2d:
        cmps = g.crosslines()
        made.append(save_png(line_figure(cmps, {"fold": fold}, title="CMP fold", xlabel="CMP",
                                         ylabel="traces per CMP", size=_scaled((10, 4), size)),
                             out_dir / f"{prefix}_fold.png"))
        made.append(save_png(line_figure(cmps, {"min": off["min"], "mean": off["mean"],
                                                "max": off["max"]},
                                         title="Offset range per CMP", xlabel="CMP",
                                         ylabel="offset (m)", size=_scaled((10, 4), size)),
                             out_dir / f"{prefix}_offsets.png"))
    else:
        kw = {"x": g.crosslines(), "y": g.inlines(), "size": _scaled((8, 6), size)}
        made.append(plot_map(fold.astype(float), out_dir / f"{prefix}_fold.png",
                             title="CMP fold", label="traces per bin", **kw))
        for k in ("min", "max"):
            made.append(plot_map(off[k], out_dir / f"{prefix}_offset_{k}.png",
                                 title=f"{'Minimum' if k == 'min' else 'Maximum'} offset per "
                                 "bin", label="offset (m)", cmap="magma", **kw))
        cover = (counts > 0).sum(axis=-1).astype(float)
        cover[fold == 0] = np.nan
        made.append(plot_map(cover, out_dir / f"{prefix}_azimuth_sectors.png",
                             title=f"Azimuth coverage ({360 // n_sectors} deg sectors)",
                             label="occupied sectors", cmap="cividis", **kw))
    if not overview:
        return made
    made.append(save_png(rose_figure(counts.reshape(-1, n_sectors).sum(axis=0), edges,
                                     title="Source-receiver azimuths",
                                     size=_scaled((6, 6), size)),
                         out_dir / f"{prefix}_azimuth_rose.png"))
    made.append(save_png(positions_figure(s.index, title="Sources, receivers, midpoints",
                                          size=_scaled((8, 8), size)),
                         out_dir / f"{prefix}_positions.png"))
    return made


def bin_grid_pictures(s, out_dir: str | os.PathLike, prefix: str, *, size=None) -> list[Path]:
    """Geometry QC of a :class:`~seis_hpc.survey.Survey`: the bin grid (and its corners) over
    the midpoints, the traces outside it in red, and the offset/azimuth distribution."""
    out_dir = Path(out_dir)
    idx, g = s.index, s.grid
    outside = s.bin_serial() < 0
    method = {"given": "given", "headers": "from INLINE_3D/CROSSLINE_3D"}.get(s.method,
                                                                              s.method)
    made = [save_png(bin_grid_figure(g, idx["mx"], idx["my"], outside=outside,
                                     title=f"Bin grid ({method}) over the midpoints",
                                     size=_scaled((8, 8), size)),
                     out_dir / f"{prefix}_bin_grid.png")]
    made.append(save_png(offset_azimuth_figure(idx["offset"], idx["azimuth"],
                                               title="Offset / azimuth distribution",
                                               size=_scaled((7, 7), size)),
                         out_dir / f"{prefix}_offset_azimuth.png"))
    return made


_MAKERS = {"pstm": "PSTM", "migstack": "PSTM stack", "stack": "NMO stack"}


def volume_label(vol) -> str:
    """What an image volume is, from the last ``seis-hpc <command>`` in its history:
    ``"PSTM"``, ``"PSTM stack"``, ``"NMO stack"``, or ``"image"``."""
    import re

    for line in reversed(vol.history):
        for cmd in re.findall(r"seis-hpc (\w+)", str(line)):
            if cmd in _MAKERS:
                return _MAKERS[cmd]
    return "image"


def _index_of(values: np.ndarray, v, name: str, path) -> int:
    k = np.flatnonzero(np.asarray(values) == v)
    if not k.size:
        raise SeisError(f"{name} {v} not in the volume ({values[0]}..{values[-1]})", path)
    return int(k[0])


def volume_pictures(path: str | os.PathLike, out_dir: str | os.PathLike, *,
                    what: Iterable[str] | None = None, name: str | None = None,
                    inline: int | None = None, crossline: int | None = None,
                    time: float | None = None, clip: float = 99.0, style: str = "density",
                    size=None, prefix: str | None = None, line: str | None = None
                    ) -> list[Path]:
    """The standard QC pictures of a seis_hpc HDF5 volume.

    Parameters
    ----------
    path : path-like
        HDF5 volume (see :mod:`seis_hpc.io.volume`).
    out_dir : path-like
        Folder for the PNGs, named ``<prefix>_<picture>.png``.
    what : iterable of str, optional
        Subset of :data:`VOLUME_PICTURES` (default: all that apply): ``inline``, ``crossline``
        (sections; a 2D line has one section, ``inline``), ``slice`` (time slice, 3D),
        ``spectrum`` (images), ``gather`` (image gathers at five bins of the section around
        the chosen one, side by side; gathers only), ``interval`` (the Dix interval-velocity
        section, vrms only).
    name : {"image", "vrms", "gathers"}, optional
        Data set to draw (default: the file's kind).
    inline, crossline : int, optional
        Section / gather position (default: the middle of the grid).
    time : float, optional
        Time of the slice (s; default: where the image's RMS amplitude is largest, the
        middle for velocities).
    clip, style, size
        As in :func:`survey_pictures`.
    prefix : str, optional
        File-name prefix (default: the file's stem and the data set name).
    line : str, optional
        Line name of the title blocks (default: the volume's ``line`` attribute, else its
        input file's stem, else the file's stem).

    Sections and image gathers have a title block (line, what, clip, units) and their top
    axis gives the bins' CDP_X / CDP_Y (m), and on a 2D line with shot points (the volume's
    ``shotpoint``) the SP of each CDP tick.
    """
    from seis_hpc.io.volume import read_volume

    vol = read_volume(path, name)
    kind = vol.name
    allowed = {"image": ("inline", "crossline", "slice", "spectrum"),
               "vrms": ("inline", "crossline", "slice", "interval"),
               "gathers": ("inline", "crossline", "slice", "spectrum", "gather")}[kind]
    if vol.grid.is_2d:
        allowed = tuple(a for a in allowed if a not in ("crossline", "slice"))
    what = _check_what(what, allowed, f"a {'2D' if vol.grid.is_2d else '3D'} {kind} volume")
    out_dir = Path(out_dir)
    prefix = prefix or f"{Path(path).name.split('.')[0]}_{kind}"
    g = vol.grid
    t = np.asarray(vol.time, dtype=np.float64)
    data = vol.data
    ilines, xlines = g.inlines(), g.crosslines()
    il = len(ilines) // 2 if inline is None else _index_of(ilines, inline, "inline", path)
    xl = len(xlines) // 2 if crossline is None else _index_of(xlines, crossline, "crossline",
                                                               path)
    if g.is_2d and inline is not None:
        raise SeisError("a 2D line has no inlines; give --crossline (CMP) for a gather", path)
    label = {"image": volume_label(vol), "vrms": "Vrms", "gathers": "Image gathers"}[kind]
    stack = data.mean(axis=0) if kind == "gathers" else data  # sections of gathers: stacked
    if kind == "gathers":
        label += " (stacked over offset)"
    it = 0
    if time is not None:  # checked before anything is drawn
        it = int(round((time - t[0]) / vol.dt)) if vol.dt else 0
        if not 0 <= it < len(t):
            raise SeisError(f"time {time} s outside the volume ({t[0]:g}..{t[-1]:g} s)", path)
    elif kind == "vrms":
        it = len(t) // 2
    elif "slice" in what:
        it = int(np.argmax(np.sqrt((stack.astype(np.float64) ** 2).mean(axis=(0, 1)))))
    sz = _scaled((10, 6.5), size)
    made: list[Path] = []
    line = line or _line_name(vol, path)
    units = "two-way time s; velocity m/s; coordinates m" if kind == "vrms" else \
        AMPLITUDE_UNITS

    def section(arr, x, xlabel, title, fname, coords, sp=None):
        extra = ()
        if sp is not None:  # the title block names the line's CDP and SP range
            src = str(vol.shotpoint_attrs.get("source", "")).split(" of the input")[0]
            extra = (f"CDP {x[0]}-{x[-1]}, SP {sp[0]}-{sp[-1]}"
                     + (f" (SP from {src})" if src else ""),)
        block = TitleBlock(line, title, units, extra=extra)
        if kind == "vrms":
            return plot_velocity(arr, t, x, out_dir / fname, title=title, xlabel=xlabel,
                                 size=sz, block=block, coords=coords, sp=sp)
        return plot_gather(arr, t, x, out_dir / fname, title=title, xlabel=xlabel,
                           style=style, clip=clip, size=sz, block=block, coords=coords, sp=sp)

    def along_inline(i):
        return g.grid_to_world(np.full(len(xlines), ilines[i]), xlines)

    def along_crossline(j):
        return g.grid_to_world(ilines, np.full(len(ilines), xlines[j]))

    if g.is_2d:
        if "inline" in what:
            # a 2D line with shot points: SP over each CDP tick, with the coordinates
            made.append(section(stack, xlines, "CDP", f"{label}, 2D line",
                                f"{prefix}_line.png", along_inline(0), vol.shotpoint))
    else:
        if "inline" in what:
            made.append(section(stack[il], xlines, "crossline",
                                f"{label}, inline {ilines[il]}",
                                f"{prefix}_inline_{ilines[il]}.png", along_inline(il)))
        if "crossline" in what:
            made.append(section(stack[:, xl], ilines, "inline",
                                f"{label}, crossline {xlines[xl]}",
                                f"{prefix}_crossline_{xlines[xl]}.png", along_crossline(xl)))
        if "slice" in what:
            made.append(plot_map(stack[:, :, it], out_dir / f"{prefix}_slice_{t[it]:.3f}s.png",
                                 title=f"{label}, time slice {t[it]:.3f} s",
                                 x=xlines, y=ilines, size=_scaled((8, 6), size),
                                 cmap="viridis" if kind == "vrms" else "gray_r",
                                 label="Vrms (m/s)" if kind == "vrms" else "amplitude"))
    if "spectrum" in what:
        traces = stack.reshape(-1, len(t))
        live = traces[np.abs(traces).max(axis=1) > 0]
        made.append(plot_spectrum(live if live.size else traces, vol.dt,
                                  out_dir / f"{prefix}_spectrum.png",
                                  title=f"Amplitude spectrum, {label}",
                                  size=_scaled((8, 5), size)))
    if "interval" in what:
        from seis_hpc.qc.velocity import VELOCITY_UNITS, interval_velocity

        sec, x, xlabel, where, coords = (stack, xlines, "CDP", "2D line", along_inline(0)) \
            if g.is_2d else (stack[il], xlines, "crossline", f"inline {ilines[il]}",
                             along_inline(il))
        t_mid, vint, bad = interval_velocity(sec, t)
        fname = "interval_line.png" if g.is_2d else f"interval_inline_{ilines[il]}.png"
        made.append(plot_velocity(
            vint, t_mid, x, out_dir / f"{prefix}_{fname}", xlabel=xlabel, size=sz,
            title=f"Interval velocity (Dix, 20 ms), {where}", label="Vint (m/s)",
            coords=coords, bad=bad,
            vrange=(float(np.nanmin(vint)), float(np.nanmax(vint)))
            if np.isfinite(vint).any() else None,
            block=TitleBlock(line, f"Dix interval velocity, {where}", VELOCITY_UNITS,
                             extra=(f"{int(bad.sum())} unphysical samples (imaginary or "
                                    "outside 1400-6000 m/s, 20 ms steps; red)",))))
    if "gather" in what:
        # Five image gathers of the section around the chosen bin, one clip: a processor
        # compares flatness and amplitude from gather to gather.
        row = data[:, :] if g.is_2d else data[:, il]  # (n_off, n_xl, nt)
        live = np.flatnonzero(np.abs(row).max(axis=(0, 2)) > 0)
        live = live if live.size else np.arange(len(xlines))
        n = min(5, live.size)
        picks = live[np.unique(np.linspace(0, live.size - 1, n).round().astype(int))]
        picks = np.unique(np.append(picks[np.argsort(np.abs(picks - xl))][:n - 1], xl))
        cigs = np.stack([row[:, j] for j in picks])
        names = [f"CDP {xlines[j]}" if g.is_2d else f"crossline {xlines[j]}" for j in picks]
        where = "2D line" if g.is_2d else f"inline {ilines[il]}"
        block = TitleBlock(line, f"Image gathers (offset classes), {where}", AMPLITUDE_UNITS,
                           extra=(f"{len(vol.offset)} offset classes "
                                  f"{np.min(vol.offset):.0f}-{np.max(vol.offset):.0f} m; "
                                  "wiggles, positive lobes filled, over variable density",))
        made.append(save_png(image_gathers_figure(
            cigs, t, np.asarray(vol.offset), names,
            title=f"Image gathers, {where} (flat events: right velocity)", clip=clip,
            size=_scaled((12, 7), size), block=block),
            out_dir / f"{prefix}_cig_{ilines[il]}_{xlines[xl]}.png"))
    return made


def _line_name(vol, path) -> str:
    """The line a volume shows: its ``line`` attribute, else its input's stem, else its own."""
    name = vol.attrs.get("line")
    if name:
        return str(name)
    for key in ("input", "survey"):
        if vol.attrs.get(key):
            return Path(str(vol.attrs[key])).name.split(".")[0]
    return Path(path).name.split(".")[0]


def compare_pictures(before: str | os.PathLike, after: str | os.PathLike,
                     out_dir: str | os.PathLike, *, ffid: int | None = None,
                     inline: int | None = None, clip: float = 99.0, size=None,
                     prefix: str | None = None) -> list[Path]:
    """Before / after / difference panels and overlaid spectra of one conditioning step.

    Two SEG-Y/SU files: the same shot (``ffid``, default the middle one), traces matched by
    (FFID, channel). Two HDF5 volumes of the same kind and grid: the same inline (2D: the line).

    Raises
    ------
    SeisError
        The files differ in kind, sampling or geometry so that no panel can be matched.
    """
    import h5py

    out_dir = Path(out_dir)
    prefix = prefix or Path(after).name.split(".")[0]
    hdf = [os.path.isfile(p) and h5py.is_hdf5(p) for p in (before, after)]
    if hdf[0] != hdf[1]:
        raise SeisError("before and after must both be SEG-Y/SU or both HDF5 volumes", after)
    if hdf[0]:
        from seis_hpc.io.volume import read_volume

        vb, va = read_volume(before), read_volume(after)
        if vb.data.shape != va.data.shape or vb.grid != va.grid:
            raise SeisError(f"volume shape or grid differs from {before}", after)
        g = va.grid
        if g.is_2d:
            b, a, x, xlabel, where = vb.data, va.data, g.crosslines(), "CMP", "2D line"
        else:
            il = g.n_inline // 2 if inline is None else _index_of(g.inlines(), inline,
                                                                  "inline", after)
            b, a, x = vb.data[il], va.data[il], g.crosslines()
            xlabel, where = "crossline", f"inline {g.inline0 + il}"
        if b.ndim != 2:
            raise SeisError("before/after panels need an image or vrms volume", after)
        t, dt = va.time, va.dt
    else:
        from seis_hpc.io.index import TraceIndex

        ib, ia = (TraceIndex.for_file(p, save=False) for p in (before, after))
        if ib.ns != ia.ns or ib.dt != ia.dt or ib.t_start != ia.t_start:
            raise SeisError(f"sampling differs from {before} ({ia.ns} x {ia.dt * 1e3:g} ms "
                            f"vs {ib.ns} x {ib.dt * 1e3:g} ms)", after)
        ffids = ia["ffid"]
        ffid = int(ffids[len(ffids) // 2]) if ffid is None else ffid
        sa = np.flatnonzero(ffids == ffid)
        if not sa.size:
            raise SeisError(f"no trace with FFID {ffid}", after)
        keys_b = {(int(f), int(c)): i for i, (f, c) in
                  enumerate(zip(ib["ffid"], ib["channel"], strict=True)) if f == ffid}
        pairs = [(keys_b[(ffid, int(ia["channel"][i]))], i) for i in sa
                 if (ffid, int(ia["channel"][i])) in keys_b]
        if not pairs:
            raise SeisError(f"FFID {ffid}: no channel in common with {before}", after)
        pairs.sort(key=lambda p: ia["channel"][p[1]])
        jb, ja = (np.array(v) for v in zip(*pairs, strict=True))
        b, a = ib.read_traces(jb), ia.read_traces(ja)
        x, xlabel, where = ia["channel"][ja], "channel", f"shot FFID {ffid}"
        t, dt = ia.t_start + np.arange(ia.ns) * ia.dt, ia.dt
    step = Path(after).name
    made = [plot_compare(b, a, t, x, out_dir / f"{prefix}_compare.png",
                         title=f"{where}: {Path(before).name} -> {step}", xlabel=xlabel,
                         clip=clip, size=_scaled((15, 6), size))]
    made.append(plot_spectrum({"before": b.reshape(-1, len(t)), "after": a.reshape(-1, len(t)),
                               "difference": (a - b).reshape(-1, len(t))}, dt,
                              out_dir / f"{prefix}_compare_spectrum.png",
                              title=f"Amplitude spectra, {where}", size=_scaled((8, 5), size)))
    return made
