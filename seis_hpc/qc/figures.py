"""QC plot primitives (PNG, matplotlib): gathers, sections, semblance, velocities, maps,
roses, spectra. ``*_figure`` returns a matplotlib Figure; ``plot_*`` writes it as a PNG
atomically and returns the path. Axes are in the field's units (s, m, m/s, Hz).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def _finish(fig, ax, title, xlabel, ylabel="two-way time (s)"):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


# -- gathers and sections ----------------------------------------------------------------------
def gather_figure(data: np.ndarray, time: np.ndarray, x: np.ndarray, *, title: str,
                  xlabel: str, style: str = "density", clip: float = 99.0, marks=None,
                  size=(10, 6)):
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
    return _finish(fig, ax, title, xlabel)


def plot_gather(data: np.ndarray, time: np.ndarray, x: np.ndarray, path, *, title: str,
                xlabel: str, style: str = "density", clip: float = 99.0, marks=None,
                size=(10, 6)) -> Path:
    """Write :func:`gather_figure` as a PNG at ``path``; returns the path."""
    return save_png(gather_figure(data, time, x, title=title, xlabel=xlabel, style=style,
                                  clip=clip, marks=marks, size=size), path)


def plot_section(data: np.ndarray, time: np.ndarray, x: np.ndarray, path, *, title: str,
                 xlabel: str, clip: float = 99.0, marks=None, size=(10, 6),
                 style: str = "density") -> Path:
    """Variable-density section: ``data`` (n_x, nt) against ``x`` (traces, CMPs, crosslines)
    and ``time`` (s). ``marks`` is an optional list of (x, t) points drawn as circles (truth).
    """
    return plot_gather(data, time, x, path, title=title, xlabel=xlabel, style=style,
                       clip=clip, marks=marks, size=size)


# -- velocity analysis ------------------------------------------------------------------------
def semblance_figure(panel: np.ndarray, time: np.ndarray, velocities: np.ndarray, *,
                     title: str, picks=None, gather=None, offset=None, clip: float = 99.0,
                     size=(10, 8)):
    """A semblance panel with its picks, optionally beside its CMP gather.

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
        Picked (time s, velocity m/s) pairs, drawn as a white line with markers.
    gather, offset : numpy.ndarray, optional
        The CMP gather (n_traces, nt) and its offsets (m), drawn on the left.
    clip : float
        Clip percentile of the gather (%).
    size : (float, float)
        Figure size in inches.
    """
    panel = np.asarray(panel)
    if panel.shape != (len(velocities), len(time)):
        raise SeisError(f"semblance picture: panel shape {panel.shape} does not match "
                        f"{len(velocities)} velocities x {len(time)} samples")
    fig = _figure(size)
    if gather is not None:
        order = np.argsort(offset, kind="stable")
        axg, ax = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [2, 3]})
        g = np.asarray(gather)[order]
        _density(axg, g, time, np.asarray(offset)[order], _clip(g, clip))
        axg.set_xlabel("offset (m)")
        axg.set_ylabel("two-way time (s)")
        axg.set_title("CMP gather")
    else:
        ax = fig.add_subplot()
    im = _density(ax, panel, time, velocities, 1.0, cmap="jet")
    im.set_clim(0.0, max(float(np.nanmax(panel)), 1e-6))
    fig.colorbar(im, ax=ax, label="semblance")
    if picks is not None and len(picks):
        pt, pv = np.asarray(picks, dtype=np.float64).T
        ax.plot(pv, pt, "w-o", ms=5, lw=1.5, mec="k")
    ax.set_ylim(time[-1], time[0])
    ax.set_xlabel("NMO velocity (m/s)")
    ax.set_ylabel("two-way time (s)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_semblance(panel, time, velocities, path, *, title: str, picks=None, gather=None,
                   offset=None, clip: float = 99.0, size=(10, 8)) -> Path:
    """Write :func:`semblance_figure` as a PNG at ``path``; returns the path."""
    return save_png(semblance_figure(panel, time, velocities, title=title, picks=picks,
                                     gather=gather, offset=offset, clip=clip, size=size), path)


def velocity_figure(vel: np.ndarray, time: np.ndarray, x: np.ndarray, *, title: str,
                    xlabel: str, label: str = "Vrms (m/s)", size=(10, 6)):
    """A velocity section: ``vel`` (n_x, nt) in m/s against ``x`` and ``time`` (s), in colour
    with a colour bar and iso-velocity contours every 100 m/s (or coarser)."""
    vel = np.asarray(vel, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64)
    if vel.shape != (len(x), len(time)):
        raise SeisError(f"velocity picture: shape {vel.shape} does not match {len(x)} x "
                        f"{len(time)}")
    fig = _figure(size)
    ax = fig.add_subplot()
    lo, hi = float(np.nanmin(vel)), float(np.nanmax(vel))
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
    ax.set_ylim(time[-1], time[0])
    return _finish(fig, ax, title, xlabel)


def plot_velocity(vel, time, x, path, *, title: str, xlabel: str, label: str = "Vrms (m/s)",
                  size=(10, 6)) -> Path:
    """Write :func:`velocity_figure` as a PNG at ``path``; returns the path."""
    return save_png(velocity_figure(vel, time, x, title=title, xlabel=xlabel, label=label,
                                    size=size), path)


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
