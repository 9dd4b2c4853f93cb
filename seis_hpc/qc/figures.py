"""QC plot primitives (PNG, matplotlib): gathers, sections, semblance, velocities, maps,
roses, spectra. ``*_figure`` returns a matplotlib Figure; ``plot_*`` writes it as a PNG
atomically and returns the path. Axes are in the field's units (s, m, m/s, Hz).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.io.atomic import atomic_output

DPI = 100


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(size):
    plt = _plt()
    return plt.figure(figsize=size, dpi=DPI)


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG at :data:`DPI` (atomically), close it and return the path."""
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    _plt().close(fig)
    return path


def _clip(a: np.ndarray, clip: float) -> float:
    a = np.asarray(a)
    finite = a[np.isfinite(a)]
    v = float(np.percentile(np.abs(finite), clip)) if finite.size else 1.0
    return v or 1.0


def _edges(x: np.ndarray) -> np.ndarray | None:
    """Cell edges around strictly monotonic centres ``x``; None if not monotonic."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    d = np.diff(x)
    if not (np.all(d > 0) or np.all(d < 0)):
        return None
    mid = 0.5 * (x[1:] + x[:-1])
    return np.concatenate([[x[0] - d[0] / 2], mid, [x[-1] + d[-1] / 2]])


def _density(ax, data, time, x, c, cmap="gray_r"):
    """Variable density of ``data`` (n_x, nt) on axes ``x`` (field units) and ``time`` (s)."""
    ex, et = _edges(x), _edges(time)
    if ex is None:  # irregular trace order: draw by trace sequence
        ex = np.arange(len(x) + 1) - 0.5
    return ax.pcolormesh(ex, et, np.asarray(data, dtype=np.float32).T, cmap=cmap, vmin=-c,
                         vmax=c, shading="flat", rasterized=True)


def _wiggle(ax, data, time, x, c):
    """Wiggle traces: each trace deflects at most one trace spacing at the clip amplitude,
    positive lobes filled black."""
    x = np.asarray(x, dtype=np.float64)
    if _edges(x) is None:
        x = np.arange(len(x), dtype=np.float64)
    dx = float(np.median(np.abs(np.diff(x)))) if len(x) > 1 else 1.0
    dx = dx or 1.0
    from matplotlib.collections import LineCollection, PolyCollection

    w = np.clip(np.asarray(data, dtype=np.float64), -c, c) / c * dx
    tt = np.broadcast_to(time, w.shape)
    # one polygon per trace: the positive lobes, closed along the trace's zero line
    lobes = np.maximum(w, 0.0) + x[:, None]
    polys = [np.column_stack([np.concatenate([[xi], lo, [xi]]),
                              np.concatenate([[time[0]], time, [time[-1]]])])
             for xi, lo in zip(x, lobes, strict=True)]
    ax.add_collection(PolyCollection(polys, facecolors="k", edgecolors="none"))
    ax.add_collection(LineCollection(np.stack([w + x[:, None], tt], axis=-1), colors="k",
                                     linewidths=0.5))
    ax.set_xlim(x.min() - dx, x.max() + dx)
    ax.set_ylim(time[-1], time[0])


@dataclass(frozen=True)
class TitleBlock:
    """The title block of a picture for a client: what it shows, of which line, at what clip.

    Attributes
    ----------
    line : str
        Line (survey) name.
    what : str
        What the picture is (e.g. ``"NMO stack, 2D line"``, ``"Semblance, CDP 1201"``).
    units : str
        Units of the axes and of the colour scale.
    clip : float, optional
        Clip percentile of |amplitude| (%); the drawing fills in ``clip_value``.
    clip_value : float, optional
        The amplitude shown at full scale (the data's units).
    scale : str, optional
        Colour scale of a picture that is not clipped (e.g. ``"1480-3200 m/s"``).
    extra : tuple of str
        More lines (parameters, pick counts, ...).
    """

    line: str
    what: str
    units: str = "two-way time s"
    clip: float | None = None
    clip_value: float | None = None
    scale: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)

    def text(self) -> str:
        """The block's text, one line per row."""
        import seis_hpc

        rows = [f"Line: {self.line}   |   {self.what}"]
        if self.clip is not None:
            c = f"Clip: {self.clip:g}th percentile of |amplitude|"
            if self.clip_value is not None:
                c += f" = {self.clip_value:.4g}"
            rows.append(c)
        if self.scale:
            rows.append(f"Colour scale: {self.scale}")
        rows.append(f"Units: {self.units}   |   seis_hpc {seis_hpc.__version__}")
        return "\n".join(rows + [str(e) for e in self.extra])


def title_block_text(fig) -> str | None:
    """The title-block text drawn on ``fig`` (None when it has none)."""
    for t in fig.texts:
        if t.get_gid() == "title-block":
            return t.get_text()
    return None


def _finish(fig, ax, title, xlabel, ylabel="two-way time (s)", block: TitleBlock | None = None):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _layout(fig, block)
    return fig


def _layout(fig, block: TitleBlock | None) -> None:
    """Tight layout, leaving room at the bottom for the title block when there is one."""
    if block is None:
        fig.tight_layout()
        return
    text = block.text()
    n = text.count("\n") + 1
    h_in = fig.get_size_inches()[1]
    frac = min(0.45, (0.16 * n + 0.14) / h_in)
    fig.text(0.008, 0.008, text, ha="left", va="bottom", fontsize=7.5, family="monospace",
             gid="title-block", bbox={"boxstyle": "square,pad=0.4", "fc": "0.96", "ec": "0.3",
                                      "lw": 0.8})
    fig.tight_layout(rect=(0.0, frac, 1.0, 1.0))


def coordinate_tick_labels(ticks, x, coords, sp=None) -> list[str]:
    """The top-axis labels of a section at bottom-axis positions ``ticks``.

    Parameters
    ----------
    ticks : array_like
        Positions on the bottom axis (CDP numbers, crosslines), within ``x``.
    x : array_like
        Bottom-axis position of each trace.
    coords : (array_like, array_like)
        ``(cdp_x, cdp_y)`` of each trace (m).
    sp : array_like, optional
        Shot-point number of each trace (2D lines).

    Returns
    -------
    list of str
        One label a tick: ``"SP <n>\\n<cdp_x>\\n<cdp_y>"`` (the SP line only with ``sp``),
        linearly interpolated between traces, rounded to whole numbers (SP) and metres.
    """
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x)
    xs = x[order]
    cx, cy = (np.asarray(c, dtype=np.float64)[order] for c in coords)
    spo = None if sp is None else np.asarray(sp, dtype=np.float64)[order]
    labels = []
    for t in ticks:
        row = f"{np.interp(t, xs, cx):.0f}\n{np.interp(t, xs, cy):.0f}"
        if spo is not None:
            row = f"SP {np.interp(t, xs, spo):.0f}\n" + row
        labels.append(row)
    return labels


def _coordinate_axis(ax, x, coords, sp=None) -> None:
    """A top axis naming the bin-centre coordinates (m) and, when known, the shot point of the
    bottom axis' ticks (CDP numbers, crosslines).

    ``coords`` is ``(cdp_x, cdp_y)`` of each trace of ``x`` (m); ``sp`` the shot point."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2 or _edges(x) is None:
        return
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if min(lo, hi) <= t <= max(lo, hi)
             and x.min() <= t <= x.max()]
    top = ax.secondary_xaxis("top")
    top.set_xticks(ticks)
    top.set_xticklabels(coordinate_tick_labels(ticks, x, coords, sp), fontsize=7)
    top.set_xlabel(("SP, " if sp is not None else "") + "CDP_X / CDP_Y (m)", fontsize=8)


# -- gathers and sections ----------------------------------------------------------------------
def gather_figure(data: np.ndarray, time: np.ndarray, x: np.ndarray, *, title: str,
                  xlabel: str, style: str = "density", clip: float = 99.0, marks=None,
                  size=(10, 6), block: TitleBlock | None = None, coords=None, sp=None):
    """A gather or section: ``data`` (n_x, nt) against ``x`` and ``time`` (s).

    Parameters
    ----------
    data : numpy.ndarray
        Traces, shape (n_x, nt).
    time : numpy.ndarray
        Time of each sample (s).
    x : numpy.ndarray
        Position of each trace in field units (channel, CMP, crossline, offset in m).
    title, xlabel : str
        Title and trace-axis label (with units).
    style : {"density", "wiggle", "both"}
        Variable density, wiggle traces, or wiggles over variable density.
    clip : float
        Percentile of |amplitude| shown at full scale (%).
    marks : sequence of (x, t), optional
        Points drawn as red circles (e.g. the truth).
    size : (float, float)
        Figure size in inches (pixels = inches x DPI).
    block : TitleBlock, optional
        Title block drawn under the picture; its ``clip_value`` is filled in.
    coords : (numpy.ndarray, numpy.ndarray), optional
        Bin-centre coordinates (m) of each trace, annotated on a top axis.
    sp : numpy.ndarray, optional
        Shot point of each trace, annotated with the coordinates.
    """
    if style not in ("density", "wiggle", "both"):
        raise SeisError(f"gather style must be density, wiggle or both (got {style!r})")
    data = np.asarray(data)
    time = np.asarray(time, dtype=np.float64)
    x = np.asarray(x)
    if data.ndim != 2 or data.shape != (len(x), len(time)):
        raise SeisError(f"gather picture: data shape {data.shape} does not match "
                        f"{len(x)} traces x {len(time)} samples")
    fig = _figure(size)
    ax = fig.add_subplot()
    c = _clip(data, clip)
    if style in ("density", "both"):
        _density(ax, data, time, x, c)
    if style in ("wiggle", "both"):
        _wiggle(ax, data, time, x, c)
    ax.set_ylim(time[-1], time[0])
    for mx, mt in marks or ():
        ax.plot(mx, mt, "o", mfc="none", mec="red", ms=14, mew=1.5)
    if coords is not None:
        _coordinate_axis(ax, x, coords, sp)
    if block is not None:
        block = replace(block, clip=clip, clip_value=c)
    return _finish(fig, ax, title, xlabel, block=block)


def plot_gather(data: np.ndarray, time: np.ndarray, x: np.ndarray, path, *, title: str,
                xlabel: str, style: str = "density", clip: float = 99.0, marks=None,
                size=(10, 6), block: TitleBlock | None = None, coords=None, sp=None) -> Path:
    """Write :func:`gather_figure` as a PNG at ``path``; returns the path."""
    return save_png(gather_figure(data, time, x, title=title, xlabel=xlabel, style=style,
                                  clip=clip, marks=marks, size=size, block=block,
                                  coords=coords, sp=sp), path)


def plot_section(data: np.ndarray, time: np.ndarray, x: np.ndarray, path, *, title: str,
                 xlabel: str, clip: float = 99.0, marks=None, size=(10, 6),
                 style: str = "density", block: TitleBlock | None = None, coords=None,
                 sp=None) -> Path:
    """Variable-density section: ``data`` (n_x, nt) against ``x`` (traces, CMPs, crosslines)
    and ``time`` (s). ``marks`` is an optional list of (x, t) points drawn as circles (truth);
    ``block``, ``coords`` and ``sp`` as in :func:`gather_figure`.
    """
    return plot_gather(data, time, x, path, title=title, xlabel=xlabel, style=style,
                       clip=clip, marks=marks, size=size, block=block, coords=coords, sp=sp)


def image_gathers_figure(gathers: np.ndarray, time: np.ndarray, offset: np.ndarray,
                         labels: Sequence[str], *, title: str, clip: float = 99.0,
                         size=(12, 7), block: TitleBlock | None = None, tmax=None):
    """Image (common-image-point) gathers side by side, as a processor reads them.

    Each gather is drawn in its own panel, offsets increasing to the right, as wiggles with
    the positive lobes filled over variable density, all at one clip (so that amplitudes
    compare between gathers); a flat event means a right velocity.

    Parameters
    ----------
    gathers : numpy.ndarray, shape (n_gathers, n_offsets, nt)
        The gathers.
    time : numpy.ndarray
        Two-way time of each sample (s).
    offset : numpy.ndarray
        Offset (class centre) of each trace of a gather (m).
    labels : sequence of str
        Name of each gather (e.g. ``"CDP 1201"``), drawn over its panel.
    title : str
        Title.
    clip : float
        Clip percentile of |amplitude| over all gathers (%).
    size : (float, float)
        Figure size in inches.
    block : TitleBlock, optional
        Title block (its ``clip_value`` is filled in).
    tmax : float, optional
        Last time drawn (s).
    """
    g = np.asarray(gathers, dtype=np.float32)
    time = np.asarray(time, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    if g.ndim != 3 or g.shape[1:] != (len(offset), len(time)) or len(labels) != g.shape[0]:
        raise SeisError(f"image gathers picture: shape {g.shape} does not match "
                        f"{len(labels)} gathers x {len(offset)} offsets x {len(time)} samples")
    if tmax is not None:
        keep = time <= tmax
        g, time = g[:, :, keep], time[keep]
    c = _clip(g, clip)
    fig = _figure(size)
    axes = np.atleast_1d(fig.subplots(1, g.shape[0], sharey=True, squeeze=False)[0])
    for ax, d, name in zip(axes, g, labels, strict=True):
        _density(ax, d, time, offset, c)
        _wiggle(ax, d, time, offset, c)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("offset (m)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("two-way time (s)")
    axes[0].set_ylim(time[-1], time[0])
    fig.suptitle(title)
    if block is not None:
        block = replace(block, clip=clip, clip_value=c)
    _layout(fig, block)
    return fig


# -- velocity analysis ------------------------------------------------------------------------
#: Marker and colour of each reason a pick was rejected (seis_hpc.velocity.velan.REASONS).
REJECT_STYLE = {"water-bottom multiple": ("v", "cyan"), "peg-leg": ("^", "deepskyblue"),
                "corridor edge": ("D", "orange"), "above sea floor": ("s", "lightgrey"),
                "unphysical interval": ("X", "red"), "no lateral support": ("P", "yellow"),
                "lateral outlier": ("*", "magenta")}


def semblance_figure(panel: np.ndarray, time: np.ndarray, velocities: np.ndarray, *,
                     title: str, picks=None, gather=None, offset=None, clip: float = 99.0,
                     size=(10, 8), rejected=None, corridor=None, water_velocity=None,
                     water_bottom=None, extrapolated=None, gather_title: str = "CMP gather",
                     block: TitleBlock | None = None):
    """A semblance panel with its picks, optionally beside its CMP gather.

    What the picker saw and did, for a processor to accept or edit the picks: the accepted
    picks, the rejected ones marked by reason, the corridor it picked in, the water-velocity
    floor and the water-bottom multiple times. Each overlay is a line of the panel's axes
    whose ``gid`` names it (``"picks"``, ``"extrapolated"``, ``"rejected: <reason>"``,
    ``"corridor"``, ``"water velocity"``, ``"multiples"``), so its data can be read back.

    Parameters
    ----------
    panel : numpy.ndarray
        Semblance, shape (n_velocities, nt), values in [0, 1].
    time : numpy.ndarray
        Zero-offset time of each sample (s).
    velocities : numpy.ndarray
        Trial velocities (m/s), increasing.
    title : str
        Title.
    picks : sequence of (t, v), optional
        Accepted (time s, velocity m/s) picks, drawn as a white line with markers.
    gather, offset : numpy.ndarray, optional
        The CMP gather (n_traces, nt) and its offsets (m), drawn on the left.
    clip : float
        Clip percentile of the gather (%).
    size : (float, float)
        Figure size in inches.
    rejected : sequence of (t, v, reason), optional
        Rejected picks (s, m/s, one of :data:`REJECT_STYLE`'s reasons), one marker per reason.
    corridor : (time, low, high) arrays, optional
        The velocity corridor the picker searched (s, m/s, m/s), drawn as two dashed lines.
    water_velocity : float, optional
        The water-velocity floor (m/s): no pick slower, drawn as a vertical line.
    water_bottom : float, optional
        Water-bottom two-way time t_wb (s): the sea floor and its multiples k t_wb
        (k = 2 .. 6) are drawn as horizontal dotted lines.
    extrapolated : sequence of (t, v), optional
        Vrms knots below the deepest pick (extrapolated, not picked), drawn dashed.
    gather_title : str
        Title of the gather panel.
    block : TitleBlock, optional
        Title block under the picture.
    """
    panel = np.asarray(panel)
    time = np.asarray(time, dtype=np.float64)
    velocities = np.asarray(velocities, dtype=np.float64)
    if panel.shape != (len(velocities), len(time)):
        raise SeisError(f"semblance picture: panel shape {panel.shape} does not match "
                        f"{len(velocities)} velocities x {len(time)} samples")
    fig = _figure(size)
    c = None
    if gather is not None:
        order = np.argsort(offset, kind="stable")
        axg, ax = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [2, 3]})
        g = np.asarray(gather)[order]
        c = _clip(g, clip)
        _density(axg, g, time, np.asarray(offset)[order], c)
        axg.set_xlabel("offset (m)")
        axg.set_ylabel("two-way time (s)")
        axg.set_title(gather_title, fontsize=10)
    else:
        ax = fig.add_subplot()
    im = _density(ax, panel, time, velocities, 1.0, cmap="jet")
    im.set_clim(0.0, max(float(np.nanmax(panel)), 1e-6))
    fig.colorbar(im, ax=ax, label="semblance")
    vlo, vhi = velocities[0], velocities[-1]
    if corridor is not None:
        ct, clo, chi = (np.asarray(a, dtype=np.float64) for a in corridor)
        ax.plot(clo, ct, "--", color="magenta", lw=1.2, gid="corridor", label="corridor")
        ax.plot(chi, ct, "--", color="magenta", lw=1.2, gid="corridor-high")
    if water_velocity:
        ax.plot([water_velocity, water_velocity], [time[0], time[-1]], ":", color="w", lw=1.5,
                gid="water velocity", label=f"water velocity {water_velocity:g} m/s")
    if water_bottom:
        ks = np.arange(1, min(int(time[-1] / water_bottom), 6) + 1)  # the strong ones
        tk = ks * water_bottom
        xs = np.repeat([[vlo, vhi, np.nan]], ks.size, axis=0).ravel()
        ys = np.repeat(tk, 3)
        ax.plot(xs, ys, ":", color="0.85", lw=1.0, gid="multiples",
                label="sea floor t_wb, multiples k t_wb")
        for k, t in zip(ks, tk, strict=True):
            ax.annotate("t_wb" if k == 1 else f"{k} t_wb", (vhi, t), xytext=(-3, -2),
                        textcoords="offset points", ha="right", va="bottom", fontsize=7,
                        color="w")
    if extrapolated is not None and len(extrapolated):
        et, ev = np.asarray(extrapolated, dtype=np.float64).reshape(-1, 2).T
        if picks is not None and len(picks):
            pt, pv = np.asarray(picks, dtype=np.float64).reshape(-1, 2).T
            et, ev = np.append(pt[-1:], et), np.append(pv[-1:], ev)
        ax.plot(ev, et, "w--", lw=1.2, gid="extrapolated", label="extrapolated (not picked)")
    if picks is not None and len(picks):
        pt, pv = np.asarray(picks, dtype=np.float64).reshape(-1, 2).T
        ax.plot(pv, pt, "w-o", ms=5, lw=1.5, mec="k", gid="picks",
                label=f"accepted picks ({pt.size})")
    if rejected is not None and len(rejected):
        by: dict[str, list] = {}
        for t, v, why in rejected:
            by.setdefault(str(why), []).append((float(t), float(v)))
        for why, pts in by.items():
            m, col = REJECT_STYLE.get(why, ("x", "w"))
            rt, rv = np.array(pts).T
            ax.plot(rv, rt, m, ls="none", ms=7, mfc=col, mec="k", mew=0.7,
                    gid=f"rejected: {why}", label=f"rejected: {why} ({rt.size})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=7, framealpha=0.85)
    ax.set_xlim(vlo, vhi)
    ax.set_ylim(time[-1], time[0])
    ax.set_xlabel("NMO velocity (m/s)")
    ax.set_ylabel("two-way time (s)")
    ax.set_title(title, fontsize=10)
    if block is not None and c is not None:
        block = replace(block, clip=clip, clip_value=c)
    _layout(fig, block)
    return fig


def overlay(fig, gid: str) -> np.ndarray | None:
    """The (x, y) data of the overlay named ``gid`` on ``fig`` (see :func:`semblance_figure`),
    shape (n, 2); None when it is not drawn."""
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_gid() == gid:
                return np.asarray(line.get_xydata())
    return None


def plot_semblance(panel, time, velocities, path, *, title: str, picks=None, gather=None,
                   offset=None, clip: float = 99.0, size=(10, 8), **overlays) -> Path:
    """Write :func:`semblance_figure` as a PNG at ``path``; returns the path (``overlays``:
    the keyword arguments of :func:`semblance_figure`)."""
    return save_png(semblance_figure(panel, time, velocities, title=title, picks=picks,
                                     gather=gather, offset=offset, clip=clip, size=size,
                                     **overlays), path)


def velocity_figure(vel: np.ndarray, time: np.ndarray, x: np.ndarray, *, title: str,
                    xlabel: str, label: str = "Vrms (m/s)", size=(10, 6),
                    block: TitleBlock | None = None, coords=None, sp=None, picks=None,
                    vrange: tuple[float, float] | None = None, bad=None):
    """A velocity section: ``vel`` (n_x, nt) in m/s against ``x`` and ``time`` (s), in colour
    with a colour bar and iso-velocity contours every 100 m/s (or coarser).

    ``block``, ``coords`` and ``sp`` as in :func:`gather_figure` (the block's colour scale is
    filled in); ``picks`` is an optional (x, t) pair of arrays drawn as white dots (where the
    field was picked); ``vrange`` (m/s) fixes the colour scale; ``bad`` (n_x, nt) bool marks
    samples drawn in red (e.g. unphysical interval velocities)."""
    vel = np.asarray(vel, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64)
    if vel.shape != (len(x), len(time)):
        raise SeisError(f"velocity picture: shape {vel.shape} does not match {len(x)} x "
                        f"{len(time)}")
    fig = _figure(size)
    ax = fig.add_subplot()
    lo, hi = (float(np.nanmin(vel)), float(np.nanmax(vel))) if vrange is None else vrange
    im = _density(ax, vel, time, np.asarray(x, dtype=np.float64), 1.0, cmap="viridis")
    im.set_clim(lo, hi if hi > lo else lo + 1.0)
    fig.colorbar(im, ax=ax, label=label)
    if hi > lo and len(x) > 1 and len(time) > 1:
        step = max(100.0, float(np.ceil((hi - lo) / 12 / 100.0) * 100.0))
        levels = np.arange(np.ceil(lo / step) * step, hi, step)
        if levels.size:
            cs = ax.contour(np.asarray(x, dtype=np.float64), time, vel.T, levels=levels,
                            colors="w", linewidths=0.6)
            ax.clabel(cs, fmt="%d", fontsize=7)
    if bad is not None and np.any(bad):
        ib, jb = np.nonzero(np.asarray(bad, bool))
        ax.plot(np.asarray(x, dtype=np.float64)[ib], time[jb], "s", color="red", ms=2,
                label=f"unphysical ({ib.size})", gid="unphysical")
    if picks is not None and len(picks[0]):
        ax.plot(picks[0], picks[1], "o", mfc="w", mec="k", ms=3, mew=0.5, gid="picks",
                label="picks")
    if (bad is not None and np.any(bad)) or (picks is not None and len(picks[0])):
        ax.legend(loc="lower left", fontsize=7, framealpha=0.8)
    ax.set_ylim(time[-1], time[0])
    if coords is not None:
        _coordinate_axis(ax, x, coords, sp)
    if block is not None:
        unit = label[label.rfind("(") + 1:label.rfind(")")] if "(" in label else ""
        block = replace(block, scale=f"{lo:.0f} to {hi:.0f} {unit}".strip())
    return _finish(fig, ax, title, xlabel, block=block)


def plot_velocity(vel, time, x, path, *, title: str, xlabel: str, label: str = "Vrms (m/s)",
                  size=(10, 6), block: TitleBlock | None = None, coords=None, sp=None,
                  picks=None, vrange=None, bad=None) -> Path:
    """Write :func:`velocity_figure` as a PNG at ``path``; returns the path."""
    return save_png(velocity_figure(vel, time, x, title=title, xlabel=xlabel, label=label,
                                    size=size, block=block, coords=coords, sp=sp, picks=picks,
                                    vrange=vrange, bad=bad), path)


# -- maps --------------------------------------------------------------------------------------
def map_figure(values: np.ndarray, *, title: str, xlabel: str = "crossline",
               ylabel: str = "inline", x=None, y=None, cmap: str = "viridis", label: str = "",
               marks=None, size=(8, 6), symmetric: bool | None = None):
    """Map view of ``values`` (n_y, n_x): fold, offsets, a time slice.

    ``x`` and ``y`` are the numbers (or coordinates, m) of the columns and rows. With
    ``symmetric`` (default: when ``cmap`` is ``"gray_r"``) the colour scale is +-the 99th
    percentile of |values|, for amplitudes. NaN bins are left blank.
    """
    values = np.asarray(values, dtype=np.float64)
    x = np.arange(values.shape[1]) if x is None else np.asarray(x, dtype=np.float64)
    y = np.arange(values.shape[0]) if y is None else np.asarray(y, dtype=np.float64)
    fig = _figure(size)
    ax = fig.add_subplot()
    ex, ey = _edges(x), _edges(y)
    if ex is None or ey is None:
        raise SeisError("map picture: row and column positions must be monotonic")
    symmetric = cmap == "gray_r" if symmetric is None else symmetric
    if symmetric:
        c = _clip(values, 99.0)
        im = ax.pcolormesh(ex, ey, values, cmap=cmap, vmin=-c, vmax=c, rasterized=True)
    else:
        im = ax.pcolormesh(ex, ey, np.ma.masked_invalid(values), cmap=cmap, rasterized=True)
    if ey[-1] > ey[0]:
        ax.invert_yaxis()  # first inline at the top, as the section views
    for mx, my in marks or ():
        ax.plot(mx, my, "o", mfc="none", mec="red", ms=14, mew=1.5)
    fig.colorbar(im, ax=ax, label=label)
    return _finish(fig, ax, title, xlabel, ylabel)


def plot_map(values: np.ndarray, path, *, title: str, xlabel: str = "crossline",
             ylabel: str = "inline", x=None, y=None, cmap: str = "viridis",
             label: str = "", marks=None, size=(8, 6)) -> Path:
    """Map view of ``values`` (n_y, n_x), e.g. fold per bin or a time slice."""
    return save_png(map_figure(values, title=title, xlabel=xlabel, ylabel=ylabel, x=x, y=y,
                               cmap=cmap, label=label, marks=marks, size=size), path)


def rose_figure(counts: np.ndarray, edges: np.ndarray, *, title: str, size=(6, 6)):
    """Azimuth rose: traces per source -> receiver azimuth sector (degrees from north,
    clockwise)."""
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.radians(np.asarray(edges, dtype=np.float64))
    fig = _figure(size)
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue",
           edgecolor="k")
    ax.set_title(title)
    ax.set_xlabel("azimuth (deg from north), radius: traces")
    fig.tight_layout()
    return fig


def line_figure(x: np.ndarray, curves: dict[str, np.ndarray], *, title: str, xlabel: str,
                ylabel: str, size=(10, 4)):
    """Curves against ``x`` (e.g. fold or offset range along a 2D line)."""
    fig = _figure(size)
    ax = fig.add_subplot()
    for name, y in curves.items():
        ax.plot(x, y, label=name)
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return _finish(fig, ax, title, xlabel, ylabel)


def positions_figure(idx, *, title: str, size=(8, 8), max_points: int = 200_000):
    """Sources, receivers and midpoints in world coordinates (m), decimated to ``max_points``
    each."""
    fig = _figure(size)
    ax = fig.add_subplot()
    n = idx.n_traces
    step = max(1, n // max_points)
    sel = slice(None, None, step)
    ax.plot(idx["rx"][sel], idx["ry"][sel], ",", color="tab:blue", label="receivers")
    ax.plot(idx["mx"][sel], idx["my"][sel], ",", color="tab:green", label="midpoints")
    ax.plot(idx["sx"][sel], idx["sy"][sel], ".", color="tab:red", ms=2, label="sources")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(markerscale=8, loc="best")
    ax.ticklabel_format(useOffset=False, style="plain")
    return _finish(fig, ax, title, "x (m)", "y (m)")


def bin_grid_figure(grid, mx: np.ndarray, my: np.ndarray, *, title: str, outside=None,
                    size=(8, 8), max_points: int = 200_000, max_lines: int = 400):
    """The bin grid (bin edges, m) over the midpoints, its four corner bins labelled with
    their (inline, crossline) numbers; midpoints outside the grid in red.

    Bin edges are drawn every bin up to ``max_lines`` lines each way, else every n-th."""
    fig = _figure(size)
    ax = fig.add_subplot()
    n_il, n_xl = grid.n_inline, grid.n_crossline
    s_il = max(1, -(-n_il // max_lines))
    s_xl = max(1, -(-n_xl // max_lines))
    il_e = np.append(np.arange(0, n_il, s_il), n_il) - 0.5 + grid.inline0
    xl_e = np.append(np.arange(0, n_xl, s_xl), n_xl) - 0.5 + grid.crossline0
    lo_xl, hi_xl = grid.crossline0 - 0.5, grid.crossline0 + n_xl - 0.5
    lo_il, hi_il = grid.inline0 - 0.5, grid.inline0 + n_il - 0.5
    for v in il_e:
        x, y = grid.grid_to_world([v, v], [lo_xl, hi_xl])
        ax.plot(x, y, "-", color="0.6", lw=0.5)
    for v in xl_e:
        x, y = grid.grid_to_world([lo_il, hi_il], [v, v])
        ax.plot(x, y, "-", color="0.6", lw=0.5)
    step = max(1, len(mx) // max_points)
    out = np.zeros(len(mx), bool) if outside is None else np.asarray(outside, bool)
    ax.plot(mx[~out][::step], my[~out][::step], ".", color="tab:green", ms=2,
            label="midpoints")
    if out.any():
        ax.plot(mx[out], my[out], ".", color="red", ms=4,
                label=f"outside the grid ({int(out.sum())})")
    for il, xl in ((grid.inline0, grid.crossline0),
                   (grid.inline0, grid.crossline0 + n_xl - 1),
                   (grid.inline0 + n_il - 1, grid.crossline0),
                   (grid.inline0 + n_il - 1, grid.crossline0 + n_xl - 1)):
        x, y = grid.grid_to_world(il, xl)
        ax.plot(x, y, "s", mfc="none", mec="k", ms=8)
        ax.annotate(f"IL {il}\nXL {xl}" if not grid.is_2d else f"CMP {xl}", (x, y),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="best", markerscale=3)
    ax.ticklabel_format(useOffset=False, style="plain")
    return _finish(fig, ax, title, "x (m)", "y (m)")


def offset_azimuth_figure(offset: np.ndarray, azimuth: np.ndarray, *, title: str,
                          n_sectors: int = 24, n_rings: int = 12, size=(7, 7)):
    """Traces per (azimuth sector, offset ring): the offset/azimuth distribution (polar, north
    up, clockwise; radius offset in m)."""
    offset = np.asarray(offset, dtype=np.float64)
    top = float(offset.max()) if offset.size and offset.max() > 0 else 1.0
    a_e = np.linspace(0.0, 2 * np.pi, n_sectors + 1)
    r_e = np.linspace(0.0, top, n_rings + 1)
    h, _, _ = np.histogram2d(np.radians(np.asarray(azimuth) % 360.0), offset, bins=[a_e, r_e])
    fig = _figure(size)
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)
    im = ax.pcolormesh(a_e, r_e, np.ma.masked_equal(h.T, 0), cmap="viridis", shading="flat")
    fig.colorbar(im, ax=ax, label="traces", pad=0.1)
    ax.set_title(title)
    ax.set_xlabel("azimuth (deg from north), radius: offset (m)")
    fig.tight_layout()
    return fig


# -- before/after and spectra ------------------------------------------------------------------
def compare_figure(before: np.ndarray, after: np.ndarray, time: np.ndarray, x: np.ndarray, *,
                   title: str, xlabel: str, clip: float = 99.0,
                   labels: Sequence[str] = ("before", "after", "difference (after - before)"),
                   size=(15, 6)):
    """Before, after and difference panels side by side, all at the clip of ``before`` so that
    the difference shows at true relative amplitude."""
    before = np.asarray(before, dtype=np.float32)
    after = np.asarray(after, dtype=np.float32)
    if before.shape != after.shape:
        raise SeisError(f"before/after picture: shapes differ ({before.shape} vs "
                        f"{after.shape})")
    if before.shape != (len(x), len(time)):
        raise SeisError(f"before/after picture: shape {before.shape} does not match "
                        f"{len(x)} traces x {len(time)} samples")
    fig = _figure(size)
    axes = fig.subplots(1, 3, sharey=True)
    c = _clip(before, clip)
    for ax, d, name in zip(axes, (before, after, after - before), labels, strict=True):
        _density(ax, d, time, x, c)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
    axes[0].set_ylim(time[-1], time[0])
    axes[0].set_ylabel("two-way time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_compare(before, after, time, x, path, *, title: str, xlabel: str, clip: float = 99.0,
                 labels: Sequence[str] = ("before", "after", "difference (after - before)"),
                 size=(15, 6)) -> Path:
    """Write :func:`compare_figure` as a PNG at ``path``; returns the path."""
    return save_png(compare_figure(before, after, time, x, title=title, xlabel=xlabel,
                                   clip=clip, labels=labels, size=size), path)


def amplitude_spectrum(traces: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean amplitude spectrum of ``traces``.

    Parameters
    ----------
    traces : numpy.ndarray
        Shape (ntr, ns) or (ns,).
    dt : float
        Sample interval (s).

    Returns
    -------
    freq : numpy.ndarray
        Frequencies (Hz), 0 .. Nyquist.
    amp : numpy.ndarray
        Mean over traces of |FFT| (amplitude x samples), same length as ``freq``.
    """
    if not dt > 0:
        raise SeisError(f"spectrum: sample interval must be > 0 s (got {dt})")
    a = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    amp = np.abs(np.fft.rfft(a, axis=-1)).mean(axis=0)
    return np.fft.rfftfreq(a.shape[-1], dt), amp


def spectrum_figure(traces: dict[str, np.ndarray] | np.ndarray, dt: float, *, title: str,
                    size=(8, 5), db: bool = True):
    """Mean amplitude spectra (dB relative to the largest, or linear) of one or several sets of
    traces, e.g. ``{"before": a, "after": b}``, against frequency (Hz)."""
    sets = traces if isinstance(traces, dict) else {"": traces}
    spectra = {k: amplitude_spectrum(v, dt) for k, v in sets.items()}
    peak = max(float(a.max()) for _, a in spectra.values()) or 1.0
    fig = _figure(size)
    ax = fig.add_subplot()
    for name, (f, a) in spectra.items():
        y = 20 * np.log10(np.maximum(a / peak, 1e-6)) if db else a
        ax.plot(f, y, label=name or None)
    if any(sets):
        ax.legend()
    ax.set_xlim(0, 0.5 / dt)
    if db:
        ax.set_ylim(-80, 3)
    ax.grid(alpha=0.3)
    return _finish(fig, ax, title, "frequency (Hz)",
                   "amplitude (dB re. maximum)" if db else "amplitude")


def plot_spectrum(traces, dt: float, path, *, title: str, size=(8, 5), db: bool = True
                  ) -> Path:
    """Write :func:`spectrum_figure` as a PNG at ``path``; returns the path."""
    return save_png(spectrum_figure(traces, dt, title=title, size=size, db=db), path)
