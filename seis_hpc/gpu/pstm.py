"""Kirchhoff PSTM and modelling on a GPU: host preparation, batching and launches.

Called by :func:`seis_hpc.migration.pstm` and :func:`seis_hpc.migration.pstm.kirchhoff_model`
with ``backend="gpu"``, with the parameters those functions resolved (see ``_setup`` there
and the conventions in ``kernels/pstm.pyx``). The image of the requested points stays on the
device while the traces pass through it in batches; each batch is uploaded as float32, its
double integral (anti-aliasing) is formed on the device in float64 and stored as the float32
triple (H, Lo, D) that ``kernels.cu`` reads (see its header).
"""

from __future__ import annotations

import math
import os

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.gpu.runtime import get_runtime

SPT_ENV = "SEIS_HPC_GPU_SPT"
DEFAULT_SPT = 2          # output samples per thread (per-trace work shared by them)
MAX_THREADS = 256        # threads per block
BATCH_BYTES = 1 << 30    # device memory for one batch of traces and its temporaries
COORD_LIMIT = 2.0 ** 20  # m from the tile centre: hi parts on the 1/16 m grid stay exact


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 coordinates (m) -> float32 hi on the 1/16 m grid and float32 lo = x - hi."""
    hi = np.rint(x * 16.0) / 16.0
    return hi.astype(np.float32), (x - hi).astype(np.float32)


def _geometry(pts, sx, sy, rx, ry):
    """Points and traces relative to the tile centre, split hi/lo: (pts4, geo_hi, geo_lo)."""
    origin = np.rint(pts.mean(axis=0) * 16.0) / 16.0 if len(pts) else np.zeros(2)
    xs = [pts[:, 0] - origin[0], pts[:, 1] - origin[1], sx - origin[0], sy - origin[1],
          rx - origin[0], ry - origin[1]]
    far = max((float(np.abs(v).max()) for v in xs if v.size), default=0.0)
    if not far < COORD_LIMIT:
        raise SeisError(f"backend gpu: a point or trace lies {far / 1e3:.0f} km from the centre "
                        f"of the output points (limit {COORD_LIMIT / 1e3:.0f} km); migrate "
                        "smaller tiles")
    h = [_split(v) for v in xs]
    pts4 = np.column_stack([h[0][0], h[1][0], h[0][1], h[1][1]])
    geo_hi = np.column_stack([h[2][0], h[3][0], h[4][0], h[5][0]])
    geo_lo = np.column_stack([h[2][1], h[3][1], h[4][1], h[5][1]])
    return (np.ascontiguousarray(pts4, np.float32), np.ascontiguousarray(geo_hi, np.float32),
            np.ascontiguousarray(geo_lo, np.float32))


def _time_table(time, a, dt, t_start):
    """Per output sample: rows a, a^2, fraction of (t0 - t_start)/dt; and its integer part."""
    kb = (np.asarray(time, np.float64) - t_start) / dt
    ib = np.floor(kb)
    tab = np.stack([a, a * a, kb - ib]).astype(np.float32)
    return np.ascontiguousarray(tab), ib.astype(np.int32)


def _first_live(a) -> int:
    j0 = 0
    while j0 < a.size and a[j0] <= 0.0:
        j0 += 1
    return j0


def _need_inv(p) -> bool:
    """Anything beyond the traveltime (the rule of kernels/pstm.pyx's ``_params``)."""
    return bool(p["obliquity"] or p["spreading"] or p["antialias"] or p["c_mute"] > 0.0
                or math.cos(p["max_angle_rad"]) > 1e-12 or p["taper"] > 0)


def defines(p, spt: int, antialias: bool) -> dict:
    """The compile-time options of ``kernels.cu`` for the parameters ``p``."""
    need = _need_inv(p)
    spread = 0 if not p["spreading"] else (1 if p["spread_pow"] == 1.0 else 2)
    return {"SEIS_AA": int(antialias and need), "SEIS_INTERP": p["interp"],
            "SEIS_OBL": int(p["obliquity"]), "SEIS_SPREAD": spread,
            "SEIS_NEED_INV": int(need), "SEIS_ANGLE_TAPER": int(need and p["taper"] > 0),
            # the tests the CPU kernel does always, here only where they can fail
            "SEIS_ANGLE_LIMIT": int(math.cos(p["max_angle_rad"]) > 1e-12),
            "SEIS_MUTE": int(p["c_mute"] > 0.0), "SEIS_SPT": int(spt)}


def _spt(spt) -> int:
    if spt is None:
        spt = int(os.environ.get(SPT_ENV, DEFAULT_SPT) or DEFAULT_SPT)
    if spt not in (1, 2, 3, 4, 6, 8):
        raise SeisError(f"backend gpu: samples per thread must be 1, 2, 3, 4, 6 or 8 (got {spt})")
    return spt


def launch_shape(nt: int, j0: int, spt: int) -> tuple[int, int, int]:
    """(chunks per point, samples per chunk, threads per block) for output samples j0..nt-1."""
    n_live = nt - j0
    nchunk = -(-n_live // (MAX_THREADS * spt))
    chunk = -(-n_live // nchunk)
    per_thread = -(-chunk // spt)
    threads = 32 * -(-per_thread // 32)
    return nchunk, chunk, threads


def _params(p, ns, nt, j0, nchunk, chunk, antialias) -> np.ndarray:
    """The SeisPar struct of kernels.cu as 22 int32 words (7 ints, then 15 floats)."""
    ap = p["aperture"]
    th = p["max_angle_rad"]
    tap = p["taper"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ap_t0 = np.float64((1.0 - tap) * ap)
        ap_scale = np.float64(1.0) / (np.float64(ap) - ap_t0)
        th_t0 = (1.0 - tap) * th
        th_scale = np.float64(1.0) / np.float64(th - th_t0)
    pad = p["pad"] if antialias else 0
    aa_scale = p["dx_aa"] / p["dt"] if antialias else 0.0
    aa_max = p["aa_max"] if antialias else 1.0
    cm = p["c_mute"]
    thm = math.acos(cm) if cm > 0 else 0.0
    thm_t0 = (1.0 - tap) * thm
    c_t0 = math.cos(thm_t0) if (cm > 0 and tap > 0) else 0.0
    thm_scale = 1.0 / (thm - thm_t0) if c_t0 > 0 else 0.0
    words = np.zeros(22, np.int32)
    words[:7] = [ns, ns + 2 * pad, pad, nt, j0, nchunk, chunk]
    words[7:].view(np.float32)[:] = [
        # cos_max and cos_t0: squares of the cosines of the dip angles (the kernel compares
        # cos^2 of the dip angle)
        1.0 / p["dt"], ap * ap, ap_t0, ap_scale, math.cos(th) ** 2,
        math.cos(th_t0) ** 2 if tap > 0 else -1.0, th_t0, th_scale, p["c_mute"],
        aa_scale * aa_scale, aa_max, 1.0 / (aa_max * aa_max), c_t0, thm_t0, thm_scale]
    return words


def split_double_integral(xp, d, pad: int):
    """(ntr, ns + 2 pad, 4) float32: H, Lo, D and 0 of the padded double integral of ``d``.

    ``S`` is the causal-then-anticausal running sum of each zero-padded trace in float64
    (``seis_hpc.migration.antialias.double_integral``); ``H`` is S rounded to the trace's
    power-of-two grid ``g`` (max |S| < 2^22 g, so that differences of H are exact in float32),
    ``Lo = S - H`` and ``D[m] = S[m+1] - S[m]`` (= minus the causal sum at m).
    """
    n, ns = d.shape
    z = xp.zeros((n, ns + 2 * pad), xp.float64)
    z[:, pad:pad + ns] = d
    s1 = xp.cumsum(z, axis=1)
    S = xp.cumsum(s1[:, ::-1], axis=1)[:, ::-1]
    _, e = xp.frexp(xp.abs(S).max(axis=1))
    g = xp.ldexp(xp.ones(n), (e - 22).astype(xp.int32))[:, None]
    H = xp.rint(S / g) * g
    q = xp.zeros((n, ns + 2 * pad, 4), xp.float32)
    q[..., 0] = H
    q[..., 1] = S - H
    q[:, :-1, 2] = -s1[:, :-1]
    return q


PAIR_BYTES = 1 << 29     # device memory for the (point, trace) pair records of one batch


def _batch_size(ns: int, ltrace: int, ntr: int, npts: int, batch_traces) -> int:
    """Traces per batch: the data budget and the pair-record budget (36 B per pair)."""
    if batch_traces is not None:
        return max(1, min(int(batch_traces), (2**31 - 1) // ltrace))
    per_trace = 4 * ns + 16 * ltrace + 32 * ltrace + 64
    # < 2^31 samples per batch: the kernels index a batch with 32-bit offsets
    return max(1, min(ntr, BATCH_BYTES // per_trace, PAIR_BYTES // (36 * max(1, npts)),
                      (2**31 - 1) // ltrace))


def pairs(rt, geo_hi, geo_lo, pts4, par):
    """Packed (point, trace) pairs inside the aperture: (records (n, 2, 4), offsets (npts+1,)).

    ``pstm_pairs`` computes each pair's geometry on the device; the live ones are gathered in
    (point, trace) order, so point p's pairs are ``records[off[p]:off[p+1]]``.
    """
    xp = rt.xp
    ntr, npts = geo_hi.shape[0], pts4.shape[0]
    n = npts * ntr
    rec = xp.empty((n, 2, 4), xp.float32)
    live = xp.empty(n, xp.int32)
    rt.launch("pstm_pairs", {}, (-(-n // 256),), (256,),
              (geo_hi, geo_lo, np.int32(ntr), pts4, np.int32(npts), par, rec, live))
    keep = xp.flatnonzero(live)
    off = xp.zeros(npts + 1, xp.int32)
    off[1:] = xp.cumsum(live.reshape(npts, ntr).sum(axis=1))
    return xp.ascontiguousarray(rec[keep]), off


class _Launch:
    """What migration and modelling share: launch shape, device tables and trace batches."""

    def __init__(self, rt, p, pts, sx, sy, rx, ry, time, a, iv2, ns, nt, spt, aa,
                 batch_traces):
        self.rt = rt
        j0 = _first_live(a)
        self.nchunk, chunk, self.threads = launch_shape(nt, j0, spt)
        self.npts = len(pts)
        pts4, self.geo_hi, self.geo_lo = _geometry(pts, sx, sy, rx, ry)
        tab, ib = _time_table(time, a, p["dt"], p["t_start"])
        self.pad = p["pad"] if aa else 0
        self.par = rt.asarray(_params(p, ns, nt, j0, self.nchunk, chunk, aa))
        self.pts = rt.asarray(pts4)
        self.tables = (rt.asarray(tab), rt.asarray(ib),
                       rt.asarray(np.ascontiguousarray(iv2, np.float32)))
        self.defines = defines(p, spt, aa)
        self.nb = _batch_size(ns, ns + 2 * self.pad, len(sx), self.npts, batch_traces)

    def batches(self):
        """(b0, b1, packed pairs, offsets) of each batch of traces with pairs in aperture."""
        for b0 in range(0, self.geo_hi.shape[0], self.nb):
            b1 = min(self.geo_hi.shape[0], b0 + self.nb)
            recs, off = pairs(self.rt, self.rt.asarray(self.geo_hi[b0:b1]),
                              self.rt.asarray(self.geo_lo[b0:b1]), self.pts, self.par)
            if recs.shape[0]:
                yield b0, b1, recs, off

    def run(self, name: str, *args) -> None:
        self.rt.launch(name, self.defines, (self.npts * self.nchunk,), (self.threads,),
                       (*args[:-1], *self.tables, self.par, args[-1]))


def migrate(p, data, sx, sy, rx, ry, pts, time, a, iv2, out, *, spt=None,
            batch_traces=None, runtime=None) -> np.ndarray:
    """Add the PSTM of ``data`` (ntr, ns) float32 into ``out`` (npts, nt) float32.

    Parameters are those resolved by :func:`seis_hpc.migration.pstm` (``p``: its parameter
    dict; ``a`` = t0 / 2 (s); ``iv2`` = 1 / vrms^2 (s^2/m^2), (npts, nt)); ``spt``: output
    samples per thread; ``batch_traces``: traces per upload (default: from the device-memory
    budgets ``BATCH_BYTES`` and ``PAIR_BYTES``). Returns ``out``.
    """
    rt = runtime or get_runtime()
    xp = rt.xp
    ntr, ns = data.shape
    npts, nt = out.shape
    if ntr == 0 or npts == 0 or _first_live(a) >= nt:
        return out
    # no triangle is ever read when aa_max <= 1 (L is capped there): the plain read
    aa = bool(p["antialias"]) and _need_inv(p) and p["aa_max"] > 1.0
    job = _Launch(rt, p, pts, sx, sy, rx, ry, time, a, iv2, ns, nt, _spt(spt), aa,
                  batch_traces)
    img = xp.zeros((npts, nt), xp.float32)
    dummy = xp.zeros((1, 4), xp.float32)
    for b0, b1, recs, off in job.batches():
        d = rt.asarray(data[b0:b1], xp.float32)
        s2q = split_double_integral(xp, d, job.pad) if aa else dummy
        job.run("pstm_migrate", d, s2q, recs, off, img)
    out += rt.asnumpy(img)
    return out


def model(p, image, pts, time, a, iv2, sx, sy, rx, ry, ns, *, spt=None, batch_traces=None,
          runtime=None) -> np.ndarray:
    """Kirchhoff modelling (adjoint of :func:`migrate` without anti-aliasing): (ntr, ns) float32.

    ``image`` (npts, nt) float32; other parameters as for :func:`migrate`; ``ns`` samples per
    modelled trace.
    """
    rt = runtime or get_runtime()
    xp = rt.xp
    npts, nt = image.shape
    data = np.zeros((sx.size, ns), np.float32)
    if sx.size == 0 or npts == 0 or _first_live(a) >= nt:
        return data
    job = _Launch(rt, p, pts, sx, sy, rx, ry, time, a, iv2, ns, nt, _spt(spt), False,
                  batch_traces)
    img = rt.asarray(np.ascontiguousarray(image, np.float32))
    for b0, b1, recs, off in job.batches():
        d = xp.zeros((b1 - b0, ns), xp.float32)
        job.run("pstm_model", img, recs, off, d)
        data[b0:b1] = rt.asnumpy(d)
    return data


class BareProblem:
    """Device-resident inputs of the bare PSTM loop (``pstm_bare`` in kernels.cu), the
    yardstick of ``benchmarks/bench_gpu.py``: plain float32 coordinates about the centre of
    the points, no anti-aliasing, weights or tapers; t0 = 0 left out as the kernels do."""

    def __init__(self, data, dt, sx, sy, rx, ry, pts, time, vrms, aperture, t_start=0.0,
                 runtime=None):
        self.rt = rt = runtime or get_runtime()
        o = pts.mean(axis=0)
        geo = np.column_stack([sx - o[0], sy - o[1], rx - o[0], ry - o[1]]).astype(np.float32)
        keep = np.asarray(time) > 0
        self.nt = int(keep.sum())
        self.npts = len(pts)
        self.ntr, self.ns = data.shape
        self.data = rt.asarray(np.ascontiguousarray(data, np.float32))
        self.geo = rt.asarray(geo)
        self.pts = rt.asarray((pts - o).astype(np.float32))
        self.a2 = rt.asarray(((0.5 * np.asarray(time)[keep]) ** 2).astype(np.float32))
        self.iv2 = rt.asarray(np.ascontiguousarray(
            1.0 / np.asarray(vrms, np.float64)[:, keep] ** 2, np.float32))
        self.scalars = (np.float32(t_start), np.float32(1.0 / dt), np.float32(aperture ** 2))
        self.out = rt.xp.zeros((self.npts, self.nt), rt.xp.float32)

    def run(self, block: int = 256) -> None:
        n = self.npts * self.nt
        t_start, idt, ap2 = self.scalars
        self.rt.launch("pstm_bare", {}, (-(-n // block),), (block,),
                       (self.data, self.geo, np.int32(self.ntr), np.int32(self.ns), self.pts,
                        np.int32(self.npts), self.a2, self.iv2, np.int32(self.nt), t_start,
                        idt, ap2, self.out))
