"""Kirchhoff prestack time migration, its modelling adjoint and the DSR traveltime.

Native core only: plain loops over raw pointers taken from typed memoryviews, ``nogil``,
``prange`` over output points (migration) or traces (modelling, traveltime), so that two
threads never write the same sample and the result does not depend on the thread count.
The public entry points, argument checks and documentation live in
:mod:`seis_hpc.migration` and :mod:`seis_hpc.traveltime`; the NumPy reference of every
kernel is in :mod:`seis_hpc._reference`.

Conventions shared with the reference (all times in s, distances in m):

* trace sample ``k`` is at ``t_start + k * dt``; output sample ``j`` at ``t0 = time[j]``;
  only ``t0 > 0`` is imaged.
* ``a2[j] = (t0/2)^2``, ``a[j] = t0/2``, ``iv2[p, j] = 1 / vrms(p, j)^2``.
* DSR: ``ts = sqrt(a2 + ds^2 iv2)``, ``tr = sqrt(a2 + dr^2 iv2)``, ``t = ts + tr``.
* ``cos(theta_leg) = a / t_leg``; the angle of a sample is the larger of the two legs.
* obliquity ``c = (cos theta_s + cos theta_r) / 2 = dt/dt0``; spreading ``(a/sqrt(ts tr))^p``.
* anti-aliasing half-length ``L = |grad_x t| dx_aa / dt`` samples, capped at the padding.
"""

from cython.parallel cimport prange
from libc.math cimport sqrt, acos, cos, M_PI

ctypedef fused real:
    float
    double


cdef struct Params:
    double dt
    double idt
    double t_start
    int ns
    int nt
    int j0                 # first output sample with t0 > 0
    double aperture
    double ap_taper0       # midpoint distance where the aperture taper starts
    double cos_max         # cos(max_angle)
    double cos_taper0      # cos of the angle where the angle taper starts
    double th_taper0       # that angle (rad)
    double th_max          # max_angle (rad)
    int obliquity
    int spreading
    double spread_pow      # 1 in 3D, 0.5 in 2D
    double c_mute          # minimum obliquity dt/dt0 kept (stretch mute); 0 = none
    int interp             # 1 linear, 3 cubic (4-point Lagrange)
    int antialias
    double aa_scale        # dx_aa / dt
    double aa_max          # max half-length (samples)
    int pad                # padding of the double-integrated traces (samples)
    int ltrace             # ns + 2 pad
    int need_inv           # anything beyond the traveltime (angles, weights, mute, AA)


cdef inline int _sample(const Params* P, double a, double a2, double iv2, double ds2,
                        double dr2, double dxs, double dys, double dxr, double dyr,
                        double* kpos, double* w, double* L) noexcept nogil:
    """Data position (samples), weight and AA half-length of one (point, trace, t0).

    Returns 0 when the sample is outside the angle range or stretch-muted.
    """
    cdef double ts, tr, q, its, itr, cmin, wt, th, c, sp, gx, gy, hl
    if a <= 0.0:
        return 0
    ts = sqrt(a2 + ds2 * iv2)
    tr = sqrt(a2 + dr2 * iv2)
    kpos[0] = (ts + tr - P.t_start) * P.idt
    if not P.need_inv:
        w[0] = 1.0
        L[0] = 0.0
        return 1
    # one division gives both reciprocals
    q = 1.0 / (ts * tr)
    its = tr * q
    itr = ts * q
    cmin = a * (its if its < itr else itr)
    if cmin < P.cos_max:
        return 0
    wt = 1.0
    if cmin < P.cos_taper0:
        th = acos(cmin)
        wt = 0.5 * (1.0 + cos(M_PI * (th - P.th_taper0) / (P.th_max - P.th_taper0)))
    c = 0.5 * a * (its + itr)
    if c < P.c_mute:
        return 0
    if P.obliquity:
        wt = wt * c
    if P.spreading:
        sp = a * sqrt(q)
        if P.spread_pow != 1.0:
            sp = sqrt(sp)
        wt = wt * sp
    w[0] = wt
    if P.antialias:
        gx = iv2 * (dxs * its + dxr * itr)
        gy = iv2 * (dys * its + dyr * itr)
        hl = sqrt(gx * gx + gy * gy) * P.aa_scale
        L[0] = hl if hl < P.aa_max else P.aa_max
    else:
        L[0] = 0.0
    return 1


cdef inline double _interp(const real* d, int ns, int order, double k) noexcept nogil:
    """Trace value at fractional sample ``k``; 0 where the stencil leaves the trace."""
    cdef int i
    cdef double f
    if order == 1:
        if k < 0.0 or k >= ns - 1:
            return 0.0
        i = <int>k
        f = k - i
        return d[i] + f * (d[i + 1] - d[i])
    if k < 1.0 or k >= ns - 2:
        return 0.0
    i = <int>k
    f = k - i
    return (-f * (f - 1.0) * (f - 2.0) / 6.0 * d[i - 1]
            + (f + 1.0) * (f - 1.0) * (f - 2.0) * 0.5 * d[i]
            - (f + 1.0) * f * (f - 2.0) * 0.5 * d[i + 1]
            + (f + 1.0) * f * (f - 1.0) / 6.0 * d[i + 2])


cdef inline void _spread(real* d, int ns, int order, double k, double v) noexcept nogil:
    """Adjoint of :func:`_interp`: add ``v`` into the stencil around ``k``."""
    cdef int i
    cdef double f
    if order == 1:
        if k < 0.0 or k >= ns - 1:
            return
        i = <int>k
        f = k - i
        d[i] += <real>((1.0 - f) * v)
        d[i + 1] += <real>(f * v)
        return
    if k < 1.0 or k >= ns - 2:
        return
    i = <int>k
    f = k - i
    d[i - 1] += <real>(-f * (f - 1.0) * (f - 2.0) / 6.0 * v)
    d[i] += <real>((f + 1.0) * (f - 1.0) * (f - 2.0) * 0.5 * v)
    d[i + 1] += <real>(-(f + 1.0) * f * (f - 2.0) * 0.5 * v)
    d[i + 2] += <real>((f + 1.0) * f * (f - 1.0) / 6.0 * v)


cdef inline double _lin(const double* s, double k) noexcept nogil:
    """Linear interpolation of a padded double-integrated trace (always in range)."""
    cdef int i = <int>k
    cdef double f = k - i
    return s[i] + f * (s[i + 1] - s[i])


cdef inline double _read(const Params* P, const real* d, const double* s2, double k,
                         double L) noexcept nogil:
    """Data value at ``k``, triangle-filtered with half-length ``L`` samples when ``L > 1``."""
    cdef double kp
    if L <= 1.0:
        return _interp(d, P.ns, P.interp, k)
    kp = k + P.pad
    if kp - L < 0.0 or kp + L >= P.ltrace - 1:
        return 0.0
    # causal-then-anticausal double integral: the second difference is a triangle of
    # half-length L and area L^2
    return (2.0 * _lin(s2, kp) - _lin(s2, kp - L) - _lin(s2, kp + L)) / (L * L)


cdef void _migrate_pair(const Params* P, const real* d, const double* s2, real* o,
                        const double* a, const double* a2, const double* iv2,
                        double ds2, double dr2, double dxs, double dys, double dxr,
                        double dyr, double wa, const int* knots, int nknots) noexcept nogil:
    """Accumulate one trace into one output point's image row."""
    cdef int j, m, jl, jr, okl, okr
    cdef double k, w, L, g, h
    cdef double kl = 0.0, wl = 0.0, Ll = 0.0, kr = 0.0, wr = 0.0, Lr = 0.0
    if nknots == 0:
        for j in range(P.j0, P.nt):
            if _sample(P, a[j], a2[j], iv2[j], ds2, dr2, dxs, dys, dxr, dyr, &k, &w, &L):
                o[j] += <real>(wa * w * _read(P, d, s2, k, L))
        return
    # sparse t0: exact at the knots, linear in between; a segment with an end outside the
    # angle range or muted is evaluated exactly sample by sample
    jl = knots[0]
    okl = _sample(P, a[jl], a2[jl], iv2[jl], ds2, dr2, dxs, dys, dxr, dyr, &kl, &wl, &Ll)
    if okl:
        o[jl] += <real>(wa * wl * _read(P, d, s2, kl, Ll))
    for m in range(1, nknots):
        jr = knots[m]
        okr = _sample(P, a[jr], a2[jr], iv2[jr], ds2, dr2, dxs, dys, dxr, dyr, &kr, &wr, &Lr)
        if okl and okr:
            h = 1.0 / (jr - jl)
            for j in range(jl + 1, jr):
                g = (j - jl) * h
                o[j] += <real>(wa * (wl + g * (wr - wl))
                               * _read(P, d, s2, kl + g * (kr - kl), Ll + g * (Lr - Ll)))
        else:
            for j in range(jl + 1, jr):
                if _sample(P, a[j], a2[j], iv2[j], ds2, dr2, dxs, dys, dxr, dyr, &k, &w, &L):
                    o[j] += <real>(wa * w * _read(P, d, s2, k, L))
        if okr:
            o[jr] += <real>(wa * wr * _read(P, d, s2, kr, Lr))
        jl = jr
        okl = okr
        kl = kr
        wl = wr
        Ll = Lr


cdef inline double _aperture_weight(const Params* P, double dm) noexcept nogil:
    """Cosine taper of the midpoint distance ``dm`` (m) over the outer aperture fraction."""
    if dm <= P.ap_taper0:
        return 1.0
    if dm > P.aperture:
        return 0.0
    return 0.5 * (1.0 + cos(M_PI * (dm - P.ap_taper0) / (P.aperture - P.ap_taper0)))


cdef void _migrate_point(const Params* P, int p, int tr0, int tr1, const real* data,
                         const double* s2, real* out, const double* points,
                         const double* sx, const double* sy, const double* rx,
                         const double* ry, const double* a, const double* a2,
                         const double* iv2, const int* knots, int nknots) noexcept nogil:
    cdef int tr
    cdef double px = points[2 * p], py = points[2 * p + 1]
    cdef double dxs, dys, dxr, dyr, mx, my, wa
    for tr in range(tr0, tr1):
        mx = 0.5 * (sx[tr] + rx[tr]) - px
        my = 0.5 * (sy[tr] + ry[tr]) - py
        wa = _aperture_weight(P, sqrt(mx * mx + my * my))
        if wa == 0.0:
            continue
        dxs = px - sx[tr]
        dys = py - sy[tr]
        dxr = px - rx[tr]
        dyr = py - ry[tr]
        _migrate_pair(P, data + <Py_ssize_t>tr * P.ns,
                      s2 + <Py_ssize_t>tr * P.ltrace if P.antialias else s2,
                      out + <Py_ssize_t>p * P.nt, a, a2, iv2 + <Py_ssize_t>p * P.nt,
                      dxs * dxs + dys * dys, dxr * dxr + dyr * dyr, dxs, dys, dxr, dyr, wa,
                      knots, nknots)


cdef Params _params(double dt, double t_start, int ns, int nt, int j0, double aperture,
                    double taper, double max_angle_rad, int obliquity, int spreading,
                    double spread_pow, double c_mute, int interp, int antialias,
                    double dx_aa, double aa_max, int pad):
    cdef Params P
    P.dt = dt
    P.idt = 1.0 / dt
    P.t_start = t_start
    P.ns = ns
    P.nt = nt
    P.j0 = j0
    P.aperture = aperture
    P.ap_taper0 = (1.0 - taper) * aperture
    P.th_max = max_angle_rad
    P.th_taper0 = (1.0 - taper) * max_angle_rad
    P.cos_max = cos(max_angle_rad)
    P.cos_taper0 = cos(P.th_taper0) if taper > 0 else -1.0
    P.obliquity = obliquity
    P.spreading = spreading
    P.spread_pow = spread_pow
    P.c_mute = c_mute
    P.interp = interp
    P.antialias = antialias
    P.aa_scale = dx_aa / dt
    P.aa_max = aa_max
    P.pad = pad
    P.ltrace = ns + 2 * pad
    P.need_inv = (obliquity or spreading or antialias or c_mute > 0.0
                  or P.cos_max > 1e-12 or P.cos_taper0 > -1.0)
    return P


def pstm_3d(const real[:, ::1] data, const double[:, ::1] s2, int pad, double dt,
            double t_start, const double[::1] sx, const double[::1] sy,
            const double[::1] rx, const double[::1] ry, const double[:, ::1] points,
            const double[::1] a, const double[::1] a2, const double[:, ::1] iv2,
            real[:, ::1] out, double aperture, double taper, double max_angle_rad,
            int obliquity, int spreading, double spread_pow, double c_mute, int interp,
            int antialias, double dx_aa, double aa_max, const int[::1] knots,
            int threads, int block=256):
    """Accumulate the Kirchhoff PSTM of ``data`` into ``out`` (npts, nt); see module doc.

    ``s2`` is the padded double-integrated data (ntr, ns + 2 pad), used when ``antialias``;
    ``knots`` (sample indices, empty for exact traveltimes) selects sparse-t0 evaluation.
    """
    cdef int ntr = data.shape[0], ns = data.shape[1]
    cdef int npts = points.shape[0], nt = a.shape[0]
    cdef int j0 = 0, b, tr0, tr1, p, nknots = knots.shape[0]
    while j0 < nt and a[j0] <= 0.0:
        j0 += 1
    cdef Params P = _params(dt, t_start, ns, nt, j0, aperture, taper, max_angle_rad,
                            obliquity, spreading, spread_pow, c_mute, interp, antialias,
                            dx_aa, aa_max, pad)
    if ntr == 0 or npts == 0 or nt == 0:
        return
    cdef const double* s2p = &s2[0, 0]
    cdef const int* kp = &knots[0] if nknots > 0 else NULL
    # traces in blocks (outer, serial) so a block of data stays in cache while every thread
    # sweeps its points; each point's traces are always summed in the same order
    for b in range(0, ntr, block):
        tr0 = b
        tr1 = b + block if b + block < ntr else ntr
        for p in prange(npts, nogil=True, schedule="dynamic", chunksize=1,
                        num_threads=threads):
            _migrate_point(&P, p, tr0, tr1, &data[0, 0], s2p, &out[0, 0], &points[0, 0],
                           &sx[0], &sy[0], &rx[0], &ry[0], &a[0], &a2[0], &iv2[0, 0],
                           kp, nknots)


cdef void _model_trace(const Params* P, int tr, real* d, const real* image,
                       const double* points, int npts, double sx, double sy, double rx,
                       double ry, const double* a, const double* a2,
                       const double* iv2) noexcept nogil:
    cdef int p, j
    cdef double px, py, mx, my, wa, dxs, dys, dxr, dyr, ds2, dr2, k, w, L
    cdef const double* iv
    cdef const real* m
    for p in range(npts):
        px = points[2 * p]
        py = points[2 * p + 1]
        mx = 0.5 * (sx + rx) - px
        my = 0.5 * (sy + ry) - py
        wa = _aperture_weight(P, sqrt(mx * mx + my * my))
        if wa == 0.0:
            continue
        dxs = px - sx
        dys = py - sy
        dxr = px - rx
        dyr = py - ry
        ds2 = dxs * dxs + dys * dys
        dr2 = dxr * dxr + dyr * dyr
        iv = iv2 + <Py_ssize_t>p * P.nt
        m = image + <Py_ssize_t>p * P.nt
        for j in range(P.j0, P.nt):
            if _sample(P, a[j], a2[j], iv[j], ds2, dr2, dxs, dys, dxr, dyr, &k, &w, &L):
                _spread(d, P.ns, P.interp, k, wa * w * m[j])


def model_3d(const real[:, ::1] image, const double[:, ::1] points, const double[::1] a,
             const double[::1] a2, const double[:, ::1] iv2, const double[::1] sx,
             const double[::1] sy, const double[::1] rx, const double[::1] ry,
             real[:, ::1] data, double dt, double t_start, double aperture, double taper,
             double max_angle_rad, int obliquity, int spreading, double spread_pow,
             int interp, int threads):
    """Accumulate the Kirchhoff modelling (adjoint of :func:`pstm_3d` without AA) into ``data``."""
    cdef int ntr = data.shape[0], ns = data.shape[1]
    cdef int npts = points.shape[0], nt = a.shape[0]
    cdef int j0 = 0, tr
    while j0 < nt and a[j0] <= 0.0:
        j0 += 1
    cdef Params P = _params(dt, t_start, ns, nt, j0, aperture, taper, max_angle_rad,
                            obliquity, spreading, spread_pow, 0.0, interp, 0, 0.0, 0.0, 0)
    if ntr == 0 or npts == 0 or nt == 0:
        return
    for tr in prange(ntr, nogil=True, schedule="dynamic", chunksize=1, num_threads=threads):
        _model_trace(&P, tr, &data[0, 0] + <Py_ssize_t>tr * ns, &image[0, 0], &points[0, 0],
                     npts, sx[tr], sy[tr], rx[tr], ry[tr], &a[0], &a2[0], &iv2[0, 0])


cdef void _tt_trace(double* out, const double* points, int npts, int nt, double sx,
                    double sy, double rx, double ry, const double* a2, const double* iv2,
                    const double* eta) noexcept nogil:
    cdef int p, j
    cdef double dxs, dys, dxr, dyr, ds2, dr2, e, v2
    for p in range(npts):
        dxs = points[2 * p] - sx
        dys = points[2 * p + 1] - sy
        dxr = points[2 * p] - rx
        dyr = points[2 * p + 1] - ry
        ds2 = dxs * dxs + dys * dys
        dr2 = dxr * dxr + dyr * dyr
        for j in range(nt):
            if eta == NULL:
                out[p * nt + j] = (sqrt(a2[j] + ds2 * iv2[p * nt + j])
                                   + sqrt(a2[j] + dr2 * iv2[p * nt + j]))
            else:
                e = eta[p * nt + j]
                v2 = 1.0 / iv2[p * nt + j]
                out[p * nt + j] = (_vti_leg(a2[j], ds2, iv2[p * nt + j], v2, e)
                                   + _vti_leg(a2[j], dr2, iv2[p * nt + j], v2, e))


cdef inline double _vti_leg(double a2, double d2, double iv2, double v2,
                            double eta) noexcept nogil:
    """Alkhalifah-Tsvankin one-way leg time (s)."""
    cdef double den = a2 * v2 + (1.0 + 2.0 * eta) * d2
    cdef double t2 = a2 + d2 * iv2
    if den > 0.0:
        t2 = t2 - 2.0 * eta * d2 * d2 * iv2 / den
    return sqrt(t2) if t2 > 0.0 else 0.0


def dsr_traveltime(const double[:, ::1] points, const double[::1] a2,
                   const double[:, ::1] iv2, const double[::1] sx, const double[::1] sy,
                   const double[::1] rx, const double[::1] ry, const double[:, ::1] eta,
                   double[:, :, ::1] out, int use_eta, int threads):
    """Exact DSR (or VTI) traveltimes (s) into ``out`` (ntr, npts, nt)."""
    cdef int ntr = out.shape[0], npts = out.shape[1], nt = out.shape[2], tr
    if ntr == 0 or npts == 0 or nt == 0:
        return
    cdef const double* ep = &eta[0, 0] if use_eta else NULL
    for tr in prange(ntr, nogil=True, schedule="static", num_threads=threads):
        _tt_trace(&out[tr, 0, 0], &points[0, 0], npts, nt, sx[tr], sy[tr], rx[tr], ry[tr],
                  &a2[0], &iv2[0, 0], ep)
