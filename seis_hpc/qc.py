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
from seis_hpc.io.atomic import atomic_output

DPI = 100
SURVEY_PICTURES = ("shot", "cmp", "semblance", "maps", "spectrum")
VOLUME_PICTURES = ("inline", "crossline", "slice", "spectrum", "gather")


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


_save = save_png


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
                    prefix: str | None = None, index_path=None, headermap=None) -> list[Path]:
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

    Returns
    -------
    list of Path
        The pictures written.
    """
    from seis_hpc.survey import Survey

    what = _check_what(what, SURVEY_PICTURES, "a SEG-Y/SU survey")
    out_dir = Path(out_dir)
    prefix = prefix or Path(path).name.split(".")[0]
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
                                    size=_scaled((10, 6), size)))
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
                                        size=_scaled((8, 6), size)))
        if "semblance" in what:
            from seis_hpc.semblance import semblance

            v0, v1, dv = vrange or (1400.0, 4000.0, 25.0)
            vel = np.arange(v0, v1 + dv / 2, dv)
            panel = semblance(g, off, idx.dt, vel, t_start=idx.t_start, window=0.02)
            picks = None
            if velocity is not None:
                from seis_hpc.velocity import read_vrms_csv

                pt, pv = read_vrms_csv(velocity)
                picks = np.column_stack([pt, pv])
            made.append(plot_semblance(panel, t, vel,
                                       out_dir / f"{prefix}_semblance_{number}.png",
                                       title=f"Semblance, CMP {number} ({where})",
                                       picks=picks, gather=g, offset=off, clip=clip,
                                       size=_scaled((10, 8), size)))
    if "maps" in what:
        made += geometry_pictures(s, out_dir, prefix, size=size)
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
                      n_sectors: int = 12) -> list[Path]:
    """Fold, offset and azimuth maps of a :class:`~seis_hpc.survey.Survey`, and its source,
    receiver and midpoint positions (m). A 2D line gets curves along the CMP axis instead of
    maps."""
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
    made.append(save_png(rose_figure(counts.reshape(-1, n_sectors).sum(axis=0), edges,
                                     title="Source-receiver azimuths",
                                     size=_scaled((6, 6), size)),
                         out_dir / f"{prefix}_azimuth_rose.png"))
    made.append(save_png(positions_figure(s.index, title="Sources, receivers, midpoints",
                                          size=_scaled((8, 8), size)),
                         out_dir / f"{prefix}_positions.png"))
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
                    size=None, prefix: str | None = None) -> list[Path]:
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
        ``spectrum`` (images), ``gather`` (the offset gather at one bin, gathers only).
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
    """
    from seis_hpc.io.volume import read_volume

    vol = read_volume(path, name)
    kind = vol.name
    allowed = {"image": ("inline", "crossline", "slice", "spectrum"),
               "vrms": ("inline", "crossline", "slice"),
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
    sz = _scaled((10, 6), size)
    made: list[Path] = []

    def section(arr, x, xlabel, title, fname):
        if kind == "vrms":
            return plot_velocity(arr, t, x, out_dir / fname, title=title, xlabel=xlabel,
                                 size=sz)
        return plot_gather(arr, t, x, out_dir / fname, title=title, xlabel=xlabel,
                           style=style, clip=clip, size=sz)

    if g.is_2d:
        if "inline" in what:
            made.append(section(stack, xlines, "CMP", f"{label}, 2D line",
                                f"{prefix}_line.png"))
    else:
        if "inline" in what:
            made.append(section(stack[il], xlines, "crossline",
                                f"{label}, inline {ilines[il]}",
                                f"{prefix}_inline_{ilines[il]}.png"))
        if "crossline" in what:
            made.append(section(stack[:, xl], ilines, "inline",
                                f"{label}, crossline {xlines[xl]}",
                                f"{prefix}_crossline_{xlines[xl]}.png"))
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
    if "gather" in what:
        cig = data[:, xl] if g.is_2d else data[:, il, xl]
        where = f"CMP {xlines[xl]}" if g.is_2d else f"inline {ilines[il]}, crossline {xlines[xl]}"
        made.append(plot_gather(cig, t, vol.offset, out_dir / f"{prefix}_cig_{ilines[il]}_"
                                f"{xlines[xl]}.png", title=f"Image gather, {where}",
                                xlabel="offset class centre (m)", style="both", clip=clip,
                                size=_scaled((6, 6), size)))
    return made


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
