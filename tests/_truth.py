"""Where a synthetic survey's diffractors must image, from its ``truth.json``.

Every path from SEG-Y to image (serial command, MPI job, restart, job scripts, SLURM, array
parts, GPU emulator) is checked with :func:`assert_diffractors_exact`, so a one-sample shift
or a one-bin shift anywhere in the chain fails the test that runs it.

The truth is exact by construction (:mod:`seis_hpc.synth`): a diffractor's ``t0_s`` is a
sample of the data (``it0 * dt``) and the pstm output axis is ``0, dt_out, 2 dt_out, ...``,
so with ``dt_out`` = the data's dt (or a divisor) the diffractor's t0 is an output sample and
the peak must be at exactly that sample. Its position comes from its world (x, y) through
the image's own grid. tiny3d's diffractor lies half-way between inlines 2 and 3, where the
limited acquisition tilts the focus (the bins either side peak at samples 121 and 123), so
the image is resampled at the diffractor's own position (see :func:`diffractor_peak`).

Sub-sample/sub-bin position: a parabola through the peak and its two neighbours along each
axis. Measured on tiny3d (the window of tests/test_engine_restart.py) and marine3d-small (the
demo's), the time estimate is within 0.013 sample of t0 (a one-sample shift of the job's data
time axis puts it at +1.10) and the bin estimates within 0.26 bin (tiny3d's crossline, at the
edge of its narrow acquisition; <= 0.07 on marine3d-small). The limits: 0.1 sample, and half
a bin (the interpolated peak is nearer the diffractor than any other bin).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SUB_SAMPLE_TOL = 0.1  # output samples
SUB_BIN_TOL = 0.5  # bins


def load_truth(survey: str | Path) -> dict:
    """``truth.json`` of a synthetic survey folder (or the file itself)."""
    p = Path(survey)
    return json.loads((p / "truth.json" if p.is_dir() else p).read_text())


def _vertex(a: float, b: float, c: float) -> float:
    """Offset (in samples, -0.5 .. 0.5 for a true peak) of the parabola through b's neighbours."""
    den = a - 2 * b + c
    return 0.0 if den == 0 else 0.5 * (a - c) / den


def diffractor_peak(vol, d: dict, half=(3, 6, 10)) -> dict:
    """Brightest sample of ``vol`` (a :class:`seis_hpc.io.volume.Volume` image) near
    diffractor ``d`` of the truth, on the image resampled at the diffractor's own position.

    The image is resampled (bilinear in inline and crossline, on its own time samples) at
    ``(il_true + m, xl_true + n)`` for integers |m| <= 3, |n| <= 6: for a diffractor on a bin
    this is the image itself; for one between bins it is the image at the diffractor and at
    whole bins from it, so "the peak is at (0, 0)" means the exact position in both cases.

    Returns a dict: ``m``, ``n`` (bins from the truth of the peak), ``k`` (output sample) and
    ``value`` of the peak; ``il_true``, ``xl_true`` (fractional line numbers), ``k_true``
    (fractional sample); ``m_sub``, ``n_sub``, ``k_sub`` (parabolic sub-bin/sub-sample peak).
    """
    from scipy.ndimage import map_coordinates

    g = vol.grid
    il_t, xl_t = (float(v) for v in g.world_to_grid(d["x"], d["y"]))
    k_t = (d["t0_s"] - float(vol.time[0])) / vol.dt
    fi, fj = il_t - g.inline0, xl_t - g.crossline0  # fractional array indices
    data = np.asarray(vol.data, dtype=np.float64)
    ni, nj, nt = data.shape
    ms = np.array([m for m in range(-half[0], half[0] + 1) if -1e-6 <= fi + m <= ni - 1 + 1e-6])
    ns = np.array([n for n in range(-half[1], half[1] + 1) if -1e-6 <= fj + n <= nj - 1 + 1e-6])
    k0 = int(round(k_t))
    ks = np.arange(max(k0 - half[2], 0), min(k0 + half[2] + 1, nt))
    assert ms.size and ns.size and ks.size, f"diffractor {d} is outside the image"
    ci, cj, ck = np.meshgrid(np.clip(fi + ms, 0, ni - 1), np.clip(fj + ns, 0, nj - 1), ks,
                             indexing="ij")
    win = map_coordinates(data, [ci, cj, ck], order=1, mode="nearest")
    loc = np.unravel_index(np.argmax(np.abs(win)), win.shape)
    sub = []
    for axis, pos in enumerate(loc):
        if 0 < pos < win.shape[axis] - 1:
            idx = list(loc)
            trio = []
            for step in (-1, 0, 1):
                idx[axis] = pos + step
                trio.append(abs(float(win[tuple(idx)])))
            sub.append(pos + _vertex(*trio))
        else:
            sub.append(float(pos))
    return {"m": int(ms[loc[0]]), "n": int(ns[loc[1]]), "k": int(ks[loc[2]]),
            "value": float(win[loc]), "il_true": il_t, "xl_true": xl_t, "k_true": k_t,
            "m_sub": float(sub[0] + ms[0]), "n_sub": float(sub[1] + ns[0]),
            "k_sub": float(sub[2] + ks[0])}


def assert_diffractors_exact(image, truth, *, name: str = "image") -> list[dict]:
    """Assert every diffractor of ``truth`` inside the image peaks at its exact bin and sample.

    Parameters
    ----------
    image : Volume or path-like
        A 3D pstm image (inline, crossline, time).
    truth : dict or path-like
        The survey's truth (or its folder / ``truth.json``).
    name : str
        Dataset read when ``image`` is a path.

    Returns
    -------
    list of dict
        :func:`diffractor_peak` of each diffractor checked (at least one).
    """
    from seis_hpc.io.volume import Volume, read_volume

    vol = image if isinstance(image, Volume) else read_volume(image, name)
    if not isinstance(truth, dict):
        truth = load_truth(truth)
    g = vol.grid
    peaks = []
    for d in truth["diffractors"]:
        il_t, xl_t = g.world_to_grid(d["x"], d["y"])
        if not (g.inline0 - 0.5 <= il_t <= g.inline0 + g.n_inline - 0.5
                and g.crossline0 - 0.5 <= xl_t <= g.crossline0 + g.n_crossline - 0.5
                and vol.time[0] <= d["t0_s"] <= vol.time[-1]):
            continue
        p = diffractor_peak(vol, d)
        # Exact: the diffractor's own position and the nearest output sample (t0 is on it
        # when dt_out divides it).
        assert (p["m"], p["n"]) == (0, 0), ("bin", p, d)
        assert p["k"] == int(round(p["k_true"])), ("sample", p, d)
        assert p["value"] > 0, ("polarity", p, d)  # diffractors of positive amplitude
        assert abs(p["k_sub"] - p["k_true"]) <= SUB_SAMPLE_TOL, ("sub-sample", p, d)
        assert max(abs(p["m_sub"]), abs(p["n_sub"])) <= SUB_BIN_TOL, ("sub-bin", p, d)
        peaks.append(p)
    assert peaks, f"no diffractor of the truth lies inside the image grid {g}"
    return peaks
