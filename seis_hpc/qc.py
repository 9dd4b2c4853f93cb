"""QC pictures (PNG, matplotlib): gathers, sections, time slices and maps in the field's units.

Every function writes one PNG atomically and returns its path. Amplitudes are clipped at a
percentile of |amplitude| (``clip``, default 99) so one spike does not grey out the panel.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from seis_hpc.io.atomic import atomic_output


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    _plt().close(fig)
    return path


def _clip(a: np.ndarray, clip: float) -> float:
    v = float(np.percentile(np.abs(a[np.isfinite(a)]), clip)) if a.size else 1.0
    return v or 1.0


def plot_section(data: np.ndarray, time: np.ndarray, x: np.ndarray, path, *, title: str,
                 xlabel: str, clip: float = 99.0, marks=None, size=(10, 6)) -> Path:
    """Variable-density section: ``data`` (n_x, nt) against ``x`` (traces, CMPs, crosslines)
    and ``time`` (s). ``marks`` is an optional list of (x, t) points drawn as circles (truth)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=size)
    c = _clip(data, clip)
    ax.imshow(data.T, aspect="auto", cmap="gray_r", vmin=-c, vmax=c,
              extent=(x[0], x[-1], time[-1], time[0]), interpolation="bilinear")
    for mx, mt in marks or ():
        ax.plot(mx, mt, "o", mfc="none", mec="red", ms=14, mew=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("two-way time (s)")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_map(values: np.ndarray, path, *, title: str, xlabel: str = "crossline",
             ylabel: str = "inline", x=None, y=None, cmap: str = "viridis",
             label: str = "", marks=None, size=(8, 6)) -> Path:
    """Map view of ``values`` (n_y, n_x), e.g. fold per bin or a time slice."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=size)
    x = np.arange(values.shape[1]) if x is None else x
    y = np.arange(values.shape[0]) if y is None else y
    extent = (x[0], x[-1], y[-1], y[0])
    if cmap == "gray_r":
        c = _clip(values, 99.0)
        im = ax.imshow(values, aspect="auto", cmap=cmap, vmin=-c, vmax=c, extent=extent)
    else:
        im = ax.imshow(values, aspect="auto", cmap=cmap, extent=extent)
    for mx, my in marks or ():
        ax.plot(mx, my, "o", mfc="none", mec="red", ms=14, mew=1.5)
    fig.colorbar(im, ax=ax, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)
