"""Plain NumPy references of the PSTM kernels (``backend="numpy"``), written for clarity.

They take the resolved parameters of :mod:`seis_hpc.migration.pstm` (see the module docstring of
``kernels/pstm.pyx`` for the shared conventions) and loop over traces in Python, vectorising
over output points and times. Tests compare the Cython kernels against them.
"""

from __future__ import annotations

import numpy as np

from seis_hpc.migration.antialias import double_integral
from seis_hpc.migration.traveltime import interpolate_on_knots


def cosine_taper(x, start, end):
    """1 below ``start``, 0 above ``end``, a half cosine between (works with end = inf)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.ones_like(x)
    if np.isfinite(end) and end > start:
        inside = (x > start) & (x <= end)
        w[inside] = 0.5 * (1 + np.cos(np.pi * (x[inside] - start) / (end - start)))
    w[x > end] = 0.0
    return w


def interp(d, k, order):
    """Trace ``d`` at fractional samples ``k`` (linear or 4-point Lagrange); 0 off the trace."""
    ns = d.shape[0]
    if order == 1:
        ok = (k >= 0) & (k < ns - 1)
        i = np.where(ok, np.floor(np.where(ok, k, 0)), 0).astype(np.int64)
        f = k - i
        return np.where(ok, d[i] + f * (d[np.minimum(i + 1, ns - 1)] - d[i]), 0.0)
    ok = (k >= 1) & (k < ns - 2)
    i = np.where(ok, np.floor(np.where(ok, k, 1)), 1).astype(np.int64)
    f = k - i
    c = lagrange4(f)
    v = sum(c[m] * d[np.clip(i - 1 + m, 0, ns - 1)] for m in range(4))
    return np.where(ok, v, 0.0)


def lagrange4(f):
    """Weights of samples i-1, i, i+1, i+2 for the 4-point Lagrange interpolator at i + f."""
    return (-f * (f - 1) * (f - 2) / 6, (f + 1) * (f - 1) * (f - 2) / 2,
            -(f + 1) * f * (f - 2) / 2, (f + 1) * f * (f - 1) / 6)


def sample_terms(p, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr):
    """Data position (samples), weight, AA half-length and validity; arrays (n, nt)."""
    ts = np.sqrt(a2 + ds2[:, None] * iv2)
    tr = np.sqrt(a2 + dr2[:, None] * iv2)
    k = (ts + tr - p["t_start"]) / p["dt"]
    with np.errstate(divide="ignore", invalid="ignore"):
        its, itr = 1.0 / ts, 1.0 / tr
        # dip (operator) angle: tan = midpoint displacement / (v t0 / 2)
        dm2 = 0.25 * ((dxs + dxr) ** 2 + (dys + dyr) ** 2)
        cdip = a / np.sqrt(a2 + dm2[:, None] * iv2)
    ok = (a > 0) & (cdip >= np.cos(p["max_angle_rad"]))
    th0 = (1 - p["taper"]) * p["max_angle_rad"]
    with np.errstate(invalid="ignore"):
        th = np.arccos(np.clip(cdip, -1, 1))
    w = np.where(cdip < (np.cos(th0) if p["taper"] > 0 else -1.0),
                 cosine_taper(th, th0, p["max_angle_rad"]), 1.0)
    c = 0.5 * a * (its + itr)
    ok &= c >= p["c_mute"]
    if p["c_mute"] > 0 and p["taper"] > 0:
        # stretch-mute taper: half cosine over the outer taper fraction of acos(c)
        thm = np.arccos(p["c_mute"])
        thm0 = (1 - p["taper"]) * thm
        with np.errstate(invalid="ignore"):
            thc = np.arccos(np.clip(c, -1, 1))
        w = w * np.where(ok & (c < np.cos(thm0)), cosine_taper(thc, thm0, thm), 1.0)
    if p["obliquity"]:
        w = w * c
    if p["spreading"]:
        w = w * (a / np.sqrt(ts * tr)) ** p["spread_pow"]
    if p["antialias"]:
        gx = iv2 * (dxs[:, None] * its + dxr[:, None] * itr)
        gy = iv2 * (dys[:, None] * its + dyr[:, None] * itr)
        L = np.minimum(np.hypot(gx, gy) * p["dx_aa"] / p["dt"], p["aa_max"])
    else:
        L = np.zeros_like(k)
    return k, np.where(ok, w, 0.0), L, ok


def _pairs(p, points, sx, sy, rx, ry, tr):
    """Points inside the aperture of trace ``tr``, their aperture weights and distances."""
    mx = 0.5 * (sx[tr] + rx[tr]) - points[:, 0]
    my = 0.5 * (sy[tr] + ry[tr]) - points[:, 1]
    wa = cosine_taper(np.hypot(mx, my), (1 - p["taper"]) * p["aperture"], p["aperture"])
    sel = np.flatnonzero(wa > 0)
    pts = points[sel]
    dxs, dys = pts[:, 0] - sx[tr], pts[:, 1] - sy[tr]
    dxr, dyr = pts[:, 0] - rx[tr], pts[:, 1] - ry[tr]
    return sel, wa[sel], dxs, dys, dxr, dyr


def pstm_numpy(p, data, sx, sy, rx, ry, points, a, a2, iv2, knots=None) -> np.ndarray:
    """Reference PSTM: float64 image (npts, nt) summed over traces."""
    ntr, ns = data.shape
    image = np.zeros((points.shape[0], a.size))
    s2 = double_integral(data, p["pad"]) if p["antialias"] else None
    for tr in range(ntr):
        sel, wa, dxs, dys, dxr, dyr = _pairs(p, points, sx, sy, rx, ry, tr)
        if sel.size == 0:
            continue
        k, w, L, ok = sample_terms(p, a, a2, iv2[sel], dxs**2 + dys**2, dxr**2 + dyr**2,
                                   dxs, dys, dxr, dyr)
        if knots is not None and len(knots):
            seg_ok = interpolate_on_knots(ok.astype(np.float64), knots) == 1.0
            seg_ok[:, knots] = False
            k = np.where(seg_ok, interpolate_on_knots(k, knots), k)
            w = np.where(seg_ok, interpolate_on_knots(w, knots), w)
            L = np.where(seg_ok, interpolate_on_knots(L, knots), L)
            ok = ok | seg_ok
        val = interp(data[tr].astype(np.float64), k, p["interp"])
        if p["antialias"]:
            kp = k + p["pad"]
            use = (L > 1.0)
            inside = use & (kp - L >= 0) & (kp + L < ns + 2 * p["pad"] - 1)
            Ls = np.where(inside, L, 2.0)
            kps = np.where(inside, kp, p["pad"] + 2.0)
            tri = (2 * interp(s2[tr], kps, 1) - interp(s2[tr], kps - Ls, 1)
                   - interp(s2[tr], kps + Ls, 1)) / Ls**2
            val = np.where(use, np.where(inside, tri, 0.0), val)
        image[sel] += np.where(ok, wa[:, None] * w * val, 0.0)
    return image


def model_numpy(p, image, points, a, a2, iv2, sx, sy, rx, ry, ns) -> np.ndarray:
    """Reference Kirchhoff modelling (adjoint of :func:`pstm_numpy` without AA): (ntr, ns)."""
    ntr = sx.size
    data = np.zeros((ntr, ns))
    q = dict(p, antialias=False)
    for tr in range(ntr):
        sel, wa, dxs, dys, dxr, dyr = _pairs(q, points, sx, sy, rx, ry, tr)
        if sel.size == 0:
            continue
        k, w, _, ok = sample_terms(q, a, a2, iv2[sel], dxs**2 + dys**2, dxr**2 + dyr**2,
                                   dxs, dys, dxr, dyr)
        amp = np.where(ok, wa[:, None] * w * image[sel], 0.0).ravel()
        k = k.ravel()
        if q["interp"] == 1:
            good = (k >= 0) & (k < ns - 1)
            i = np.floor(k[good]).astype(np.int64)
            f = k[good] - i
            np.add.at(data[tr], i, (1 - f) * amp[good])
            np.add.at(data[tr], i + 1, f * amp[good])
        else:
            good = (k >= 1) & (k < ns - 2)
            i = np.floor(k[good]).astype(np.int64)
            c = lagrange4(k[good] - i)
            for m in range(4):
                np.add.at(data[tr], i - 1 + m, c[m] * amp[good])
    return data
