"""Kirchhoff prestack time migration, its modelling adjoint and the DSR traveltime.

Native core only: plain loops over raw pointers taken from typed memoryviews, ``nogil``,
``prange`` over output points (migration) or traces (modelling, traveltime), so that two
threads never write the same sample and the result does not depend on the thread count.
The public entry points, argument checks and documentation live in
:mod:`seis_hpc.migration.pstm` and :mod:`seis_hpc.migration.traveltime`; the NumPy reference of every
kernel is in :mod:`seis_hpc.migration.reference`.

Conventions shared with the reference (all times in s, distances in m):

* trace sample ``k`` is at ``t_start + k * dt``; output sample ``j`` at ``t0 = time[j]``;
  only ``t0 > 0`` is imaged.
* ``a2[j] = (t0/2)^2``, ``a[j] = t0/2``, ``iv2[p, j] = 1 / vrms(p, j)^2``.
* DSR: ``ts = sqrt(a2 + ds^2 iv2)``, ``tr = sqrt(a2 + dr^2 iv2)``, ``t = ts + tr``.
* dip (operator) angle: ``tan(theta) = |dm| / (vrms t0/2)``, dm = midpoint - output point,
  i.e. ``cos^2(theta) = a2 / (a2 + dm^2 iv2)`` (the ``cm`` rows hold this cos^2); limited to
  ``max_angle`` (a time-dependent aperture ``vrms a tan(max_angle)``), with a cosine taper.
  Offsets are limited by the stretch mute (``c >= c_mute``), not by an angle; the mute is
  tapered by a half cosine over the outer ``taper`` fraction of the angle ``acos(c)``.
* obliquity ``c = (cos theta_s + cos theta_r) / 2 = dt/dt0``; spreading ``(a/sqrt(ts tr))^p``.
* anti-aliasing half-length ``L = |grad_x t| dx_aa / dt`` samples, capped at the padding.
"""

from cython.parallel cimport parallel, prange
from libc.math cimport sqrt, sqrtf, acos, cos, M_PI
from libc.stdlib cimport free, malloc

cdef extern from *:
    """
    #ifdef _OPENMP
    #define seis_barrier() _Pragma("omp barrier")
    #else
    #define seis_barrier() ((void)0)
    #endif
    #define seis_imin(a, b) ((a) < (b) ? (a) : (b))
    #define seis_imax(a, b) ((a) > (b) ? (a) : (b))
    """
    # every thread of the team waits here (Cython's prange inside parallel() is nowait)
    void seis_barrier() nogil
    # min and max as C expressions (a Cython conditional becomes an if statement, which keeps
    # gcc from vectorising a loop that reduces with it)
    int seis_imin(int, int) nogil
    int seis_imax(int, int) nogil
    # restrict-qualified rows: tells the compiler the scratch rows do not overlap, so the
    # per-sample loops vectorise without run-time alias checks
    ctypedef double* drow "double * __restrict__"
    ctypedef int* irow "int * __restrict__"

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
    double cos2_max        # cos^2(max_angle): the dip-angle limit
    double cos_taper0      # cos of the angle where the angle taper starts
    double cos2_taper0     # its square; -1 without taper
    double th_taper0       # that angle (rad)
    double th_max          # max_angle (rad)
    int obliquity
    int spreading
    double spread_pow      # 1 in 3D, 0.5 in 2D
    double c_mute          # minimum obliquity dt/dt0 kept (stretch mute); 0 = none
    double c_taper0        # obliquity where the mute taper starts; 0 = no mute taper
    double thm_taper0      # acos(c_taper0) (rad)
    double thm_max         # acos(c_mute) (rad)
    int interp             # 1 linear, 3 cubic (4-point Lagrange)
    int antialias
    double aa_scale        # dx_aa / dt
    double aa_max          # max half-length (samples)
    int pad                # padding of the double-integrated traces (samples)
    int ltrace             # ns + 2 pad
    int need_inv           # anything beyond the traveltime (angles, weights, mute, AA)
    int m0                 # first sparse-t0 knot with t0 > 0


cdef struct Settings:
    # the scalar parameters of pstm_3d and model_3d, passed from Python as one dict (the
    # parameter dict of seis_hpc.migration.pstm; Cython fills the struct by key, missing keys
    # raise, extra keys are ignored); model_3d ignores c_mute, antialias, dx_aa, aa_max, pad
    double dt              # sample interval (s)
    double t_start         # time of data sample 0 (s)
    double aperture        # maximum midpoint distance (m)
    double taper           # tapered fraction of the aperture and of the angle range
    double max_angle_rad   # maximum dip (operator) angle from vertical (rad)
    int obliquity          # 1: obliquity weight
    int spreading          # 1: spreading weight
    double spread_pow      # 1 in 3D, 0.5 in 2D
    double c_mute          # minimum obliquity dt/dt0 kept (stretch mute); 0 = none
    int interp             # 1 linear, 3 cubic
    int antialias          # 1: triangle anti-aliasing filter
    double dx_aa           # output bin spacing for the AA length (m)
    double aa_max          # maximum AA half-length (samples)
    int pad                # padding of the double-integrated traces (samples)
    int threads            # OpenMP threads


# --- Per (point, trace) pair, in three passes over the output samples --------------------
#
# 1. _terms: data position k, weight w, AA half-length L and the angle/mute mask of every
#    sample, branch-free so that the compiler vectorises it (SIMD square roots and divisions;
#    this needs -fno-math-errno and -fno-trapping-math, see setup.py, which change no value);
#    the angle taper, which needs acos, is applied afterwards to the samples in its zone.
#    On sparse t0 (_sparse) the knots go through the same loop, packed, and the samples
#    in between are interpolated.
# 2. _fold: the trace-bounds test of the read each sample will do, folded into the weight
#    (times the aperture weight: w = 0 where nothing is read), and the integer sample and
#    fraction of each read position, all vectorised, so that the read pass is only gathers.
# 3. the read pass (_read_pair in migration, the scatter in _model_trace) over the live
#    range only.
#
# With exact traveltimes passes 1 and 2 are one loop (_exact, _exact_loop): the terms of a
# sample go straight into the fold, without scratch rows in between; for float32 data its
# square roots and reciprocals are float32 (twice the SIMD width), the leg times brought
# back to double precision by one Newton step so the read position stays exact to ~1e-14.
# On sparse t0 (_sparse) a segment between two live knots is interpolated and folded in
# one loop (_interp_fold_loop); the other segments go through passes 1 and 2 separately.
#
# Migration and modelling share passes 1 and 2, so they stay exact adjoints.

cdef struct Rows:
    # per-thread scratch rows, one value per output sample (allocated once per thread);
    # pass 2 turns k, L and cm, dead after it, into the fractions f0, f1 and f2
    double* k      # data position (samples)           -> f0: fraction of read position 0
    double* L      # AA half-length (samples)          -> f1: fraction of read position 1
    double* cm     # cos^2 of the dip angle           -> f2: fraction of read position 2
    double* w      # weight; after pass 2 times the aperture weight, 0 where nothing is read
    double* ok     # 1 inside the angle range and not muted, else 0
    double* il2    # after pass 2: 1 / L^2 where the AA triangle is read (L > 1), else 1
    int* i0        # after pass 2: read positions (samples): the data sample of a plain read,
    int* i1        # or the three samples k, k - L, k + L of the padded double-integrated
    int* i2        # trace of a triangle read
    double* c      # obliquity dt/dt0 (for the stretch-mute taper)


cdef struct Knots:
    # the sparse-t0 knots of one thread, packed: inputs of pass 1 and its results
    double* a
    double* a2
    double* iv2
    Rows R


cdef inline Py_ssize_t _rows_size(int n) noexcept nogil:
    """Doubles needed by one Rows of ``n`` samples (3 int rows fit in 2 double rows)."""
    return 9 * <Py_ssize_t>n


cdef inline Rows _rows(double* buf, int n) noexcept nogil:
    cdef Rows R
    R.k = buf
    R.L = buf + n
    R.cm = buf + 2 * n
    R.w = buf + 3 * n
    R.ok = buf + 4 * n
    R.il2 = buf + 5 * n
    R.i0 = <int*>(buf + 6 * n)
    R.i1 = R.i0 + n
    R.i2 = R.i0 + 2 * n
    R.c = buf + 8 * n
    return R


cdef inline Knots _knots(double* buf, int n) noexcept nogil:
    cdef Knots K
    K.R = _rows(buf, n)
    K.a = buf + _rows_size(n)
    K.a2 = K.a + n
    K.iv2 = K.a2 + n
    return K


cdef inline void _terms_loop(const Params* P, const double* a, const double* a2,
                             const double* iv2, double ds2, double dr2, double dxs,
                             double dys, double dxr, double dyr, int jb, int je, drow k,
                             drow w, drow L, drow cm, drow ok, drow cc, bint aa,
                             bint spread, bint root) noexcept nogil:
    """Pass 1 without the angle taper, for samples ``jb <= j < je`` (all with t0 > 0).

    ``aa``, ``spread`` and ``root`` (2D spreading) are constants at every call site, so the
    compiler emits one branch-free loop per combination.
    """
    cdef int j
    cdef double ts, tr, q, its, itr, cmin, c, wt, sp, gx, gy, hl
    cdef double t_start = P.t_start, idt = P.idt, cos2_max = P.cos2_max, c_mute = P.c_mute
    # squared midpoint displacement (m^2): the output point minus the trace midpoint
    cdef double dm2 = 0.25 * ((dxs + dxr) * (dxs + dxr) + (dys + dyr) * (dys + dyr))
    cdef double aa_scale = P.aa_scale, aa_max = P.aa_max
    cdef bint obl = P.obliquity != 0
    for j in range(jb, je):
        ts = sqrt(a2[j] + ds2 * iv2[j])
        tr = sqrt(a2[j] + dr2 * iv2[j])
        k[j] = (ts + tr - t_start) * idt
        # one division gives both reciprocals
        q = 1.0 / (ts * tr)
        its = tr * q
        itr = ts * q
        # cos^2 of the dip angle
        cmin = a2[j] / (a2[j] + dm2 * iv2[j])
        c = 0.5 * a[j] * (its + itr)
        wt = c if obl else 1.0
        if spread:
            sp = a[j] * sqrt(q)
            if root:
                sp = sqrt(sp)
            wt = wt * sp
        w[j] = wt
        cm[j] = cmin
        cc[j] = c
        ok[j] = 1.0 if (cmin >= cos2_max) & (c >= c_mute) else 0.0
        if aa:
            gx = iv2[j] * (dxs * its + dxr * itr)
            gy = iv2[j] * (dys * its + dyr * itr)
            hl = sqrt(gx * gx + gy * gy) * aa_scale
            L[j] = hl if hl < aa_max else aa_max
        else:
            L[j] = 0.0


cdef inline void _time_loop(const Params* P, const double* a2, const double* iv2,
                            double ds2, double dr2, int jb, int je, drow k, drow w, drow L,
                            drow ok) noexcept nogil:
    """Pass 1 when only the traveltime is needed: weight 1, no AA, no mask."""
    cdef int j
    cdef double ts, tr
    cdef double t_start = P.t_start, idt = P.idt
    for j in range(jb, je):
        ts = sqrt(a2[j] + ds2 * iv2[j])
        tr = sqrt(a2[j] + dr2 * iv2[j])
        k[j] = (ts + tr - t_start) * idt
        w[j] = 1.0
        L[j] = 0.0
        ok[j] = 1.0


cdef inline double _cospi(double u) noexcept nogil:
    """cos(pi u) for 0 <= u <= 1, to rounding (libm's cos is slow on [pi/4, pi]).

    cos(pi u) = sin(y), y = pi (1/2 - u), |y| <= pi/2, by its Taylor series
    y sum_n (-1)^n y^2n / (2n+1)! to n = 11 (the first omitted term, (pi/2)^25 / 25!, is
    < 1e-20), the even and odd n as two independent Horner chains in y^4 (shorter latency).
    """
    cdef double y = M_PI * (0.5 - u)
    cdef double z = y * y
    cdef double w = z * z
    cdef double e = ((((1.0 / 51090942171709440000.0 * w + 1.0 / 355687428096000.0) * w
                       + 1.0 / 6227020800.0) * w + 1.0 / 362880.0) * w + 1.0 / 120.0) * w + 1.0
    cdef double o = ((((-1.0 / 25852016738884976640000.0 * w - 1.0 / 121645100408832000.0) * w
                       - 1.0 / 1307674368000.0) * w - 1.0 / 39916800.0) * w
                     - 1.0 / 5040.0) * w - 1.0 / 6.0
    return y * (e + z * o)


cdef inline double _mute_taper(const Params* P, double c) noexcept nogil:
    """Weight of the stretch-mute taper at obliquity ``c`` (in its zone, c < c_taper0): a half
    cosine in the obliquity angle acos(c) from thm_taper0 (1) to thm_max (0), like the angle
    taper (with a stretch mute of 1, the former 60-degree emergence limit of a flat
    reflector's stationary ray, 54-60 degrees)."""
    return 0.5 * (1.0 + _cospi((acos(c) - P.thm_taper0) / (P.thm_max - P.thm_taper0)))


cdef void _terms(const Params* P, const double* a, const double* a2, const double* iv2,
                 double ds2, double dr2, double dxs, double dys, double dxr, double dyr,
                 int jb, int je, Rows* R) noexcept nogil:
    """Pass 1: data position, weight, AA half-length and mask of samples ``jb <= j < je``."""
    cdef int j
    cdef double th
    if not P.need_inv:
        _time_loop(P, a2, iv2, ds2, dr2, jb, je, R.k, R.w, R.L, R.ok)
        return
    if P.antialias:
        if not P.spreading:
            _terms_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, jb, je, R.k, R.w, R.L,
                        R.cm, R.ok, R.c, 1, 0, 0)
        elif P.spread_pow == 1.0:
            _terms_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, jb, je, R.k, R.w, R.L,
                        R.cm, R.ok, R.c, 1, 1, 0)
        else:
            _terms_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, jb, je, R.k, R.w, R.L,
                        R.cm, R.ok, R.c, 1, 1, 1)
    else:
        if not P.spreading:
            _terms_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, jb, je, R.k, R.w, R.L,
                        R.cm, R.ok, R.c, 0, 0, 0)
        elif P.spread_pow == 1.0:
            _terms_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, jb, je, R.k, R.w, R.L,
                        R.cm, R.ok, R.c, 0, 1, 0)
        else:
            _terms_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, jb, je, R.k, R.w, R.L,
                        R.cm, R.ok, R.c, 0, 1, 1)
    if P.cos2_taper0 > -1.0:
        # angle taper: acos only in the taper zone
        for j in range(jb, je):
            if R.cm[j] < P.cos2_taper0 and R.ok[j] != 0.0:
                th = acos(sqrt(R.cm[j]))
                R.w[j] = R.w[j] * 0.5 * (1.0 + _cospi((th - P.th_taper0)
                                                      / (P.th_max - P.th_taper0)))
    if P.c_taper0 > 0.0:
        # stretch-mute taper, over the outer taper fraction of the obliquity angle acos(c)
        for j in range(jb, je):
            if R.c[j] < P.c_taper0 and R.ok[j] != 0.0:
                R.w[j] = R.w[j] * _mute_taper(P, R.c[j])


cdef inline void _fold_loop(const Params* P, double wa, int j0, int nt, drow k_f0,
                            drow L_f1, drow cm_f2, drow w, drow il2, const double* ok,
                            int* i0, int* i1, int* i2) noexcept nogil:
    cdef int j
    cdef bint tri, live
    cdef double kj, Lj, L2, wj, kp, x0, x1, x2
    cdef double pad = P.pad, kend = P.ltrace - 1
    # stencil of the plain read: [lo, hi) in samples (linear: 2 points, cubic: 4 points)
    cdef double lo = 0.0 if P.interp == 1 else 1.0
    cdef double hi = P.ns - 1.0 if P.interp == 1 else P.ns - 2.0
    for j in range(j0, nt):
        kj = k_f0[j]
        Lj = L_f1[j]
        kp = kj + pad
        tri = Lj > 1.0
        live = (ok[j] != 0.0) & ((tri & (kp - Lj >= 0.0) & (kp + Lj < kend))
                                 | ((not tri) & (kj >= lo) & (kj < hi)))
        wj = wa * w[j]
        w[j] = wj if live else 0.0
        # a dead sample reads (harmlessly, times 0) at lo, inside the trace whenever any
        # sample of the pair is live
        tri = tri & live
        x0 = kp if tri else (kj if live else lo)
        x1 = kp - Lj if tri else x0
        x2 = kp + Lj if tri else x0
        # 1 / L^2 is used only where L > 1; the select keeps the division unconditional
        L2 = Lj * Lj
        il2[j] = 1.0 / (L2 if tri else 1.0)
        # all positions >= 0 here, so truncation is floor
        i0[j] = <int>x0
        i1[j] = <int>x1
        i2[j] = <int>x2
        k_f0[j] = x0 - <int>x0
        L_f1[j] = x1 - <int>x1
        cm_f2[j] = x2 - <int>x2


cdef inline void _interp_fold_loop(const Params* P, double wa, int jl, int jr, double kl,
                                   double dk, double wl, double dw, double Ll, double dL,
                                   drow f0, drow f1, drow f2, drow w, drow il2, irow i0,
                                   irow i1, irow i2) noexcept nogil:
    """Sparse t0, a segment with both knots live: linear interpolation of k, w and L and the
    fold (as ``_fold_loop``) in one loop over ``jl <= j < jr`` (at the left knot g = 0 gives
    its values exactly); the same arithmetic as interpolating into rows and folding them,
    so the same image to the bit."""
    cdef int j
    cdef bint tri, live
    cdef double g, h = 1.0 / (jr - jl), kj, Lj, L2, wj, kp, x0, x1, x2
    cdef double pad = P.pad, kend = P.ltrace - 1
    cdef double lo = 0.0 if P.interp == 1 else 1.0
    cdef double hi = P.ns - 1.0 if P.interp == 1 else P.ns - 2.0
    for j in range(jl, jr):
        g = (j - jl) * h
        kj = kl + g * dk
        wj = wl + g * dw
        Lj = Ll + g * dL
        kp = kj + pad
        tri = Lj > 1.0
        live = (tri & (kp - Lj >= 0.0) & (kp + Lj < kend)) | ((not tri) & (kj >= lo) & (kj < hi))
        wj = wa * wj
        w[j] = wj if live else 0.0
        tri = tri & live
        x0 = kp if tri else (kj if live else lo)
        x1 = kp - Lj if tri else x0
        x2 = kp + Lj if tri else x0
        L2 = Lj * Lj
        il2[j] = 1.0 / (L2 if tri else 1.0)
        i0[j] = <int>x0
        i1[j] = <int>x1
        i2[j] = <int>x2
        f0[j] = x0 - <int>x0
        f1[j] = x1 - <int>x1
        f2[j] = x2 - <int>x2


cdef inline void _knot_to_rows(const Knots* K, int m, int j, Rows* R) noexcept nogil:
    R.k[j] = K.R.k[m]
    R.w[j] = K.R.w[m]
    R.L[j] = K.R.L[m]
    R.ok[j] = K.R.ok[m]


cdef void _sparse(const Params* P, const double* a, const double* a2, const double* iv2,
                  double ds2, double dr2, double dxs, double dys, double dxr, double dyr,
                  const int* knots, int nknots, Knots* K, Rows* R, double wa, int* jlo,
                  int* jhi) noexcept nogil:
    """Passes 1 and 2 on sparse t0: exact at the knots, linear in between; a segment with an
    end outside the angle range or muted (or at t0 <= 0) is evaluated exactly sample by
    sample (``_terms``, then ``_fold_loop``); one between two live knots is interpolated and
    folded in one loop. Sets the live range ``[jlo, jhi)`` outside which w = 0.

    ``K.a`` and ``K.a2`` hold ``a`` and ``a2`` at the knots; ``P.m0`` is the first knot with
    t0 > 0.
    """
    cdef int m, j, jl, jr, jb
    for m in range(P.m0, nknots):
        K.iv2[m] = iv2[knots[m]]
    _terms(P, K.a, K.a2, K.iv2, ds2, dr2, dxs, dys, dxr, dyr, P.m0, nknots, &K.R)
    for m in range(1, nknots):
        jl = knots[m - 1]
        jr = knots[m]
        if m - 1 >= P.m0 and K.R.ok[m - 1] != 0.0 and K.R.ok[m] != 0.0:
            _interp_fold_loop(P, wa, jl, jr, K.R.k[m - 1], K.R.k[m] - K.R.k[m - 1],
                              K.R.w[m - 1], K.R.w[m] - K.R.w[m - 1], K.R.L[m - 1],
                              K.R.L[m] - K.R.L[m - 1], R.k, R.L, R.cm, R.w, R.il2, R.i0,
                              R.i1, R.i2)
        else:
            if m - 1 >= P.m0:
                _knot_to_rows(K, m - 1, jl, R)
            jb = jl + 1 if jl + 1 > P.j0 else P.j0
            if jr > jb:
                _terms(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, jb, jr, R)
            jb = jl if jl > P.j0 else P.j0
            if jr > jb:
                _fold_loop(P, wa, jb, jr, R.k, R.L, R.cm, R.w, R.il2, R.ok, R.i0, R.i1, R.i2)
    jl = knots[nknots - 1]
    if nknots - 1 >= P.m0:
        _knot_to_rows(K, nknots - 1, jl, R)
        _fold_loop(P, wa, jl, jl + 1, R.k, R.L, R.cm, R.w, R.il2, R.ok, R.i0, R.i1, R.i2)
    j = P.j0
    while j < P.nt and R.w[j] == 0.0:
        j += 1
    jlo[0] = j
    j = P.nt
    while j > jlo[0] and R.w[j - 1] == 0.0:
        j -= 1
    jhi[0] = j


cdef inline void _exact_loop(const Params* P, const double* a, const double* a2,
                             const double* iv2, double ds2, double dr2, double dxs,
                             double dys, double dxr, double dyr, double wa, drow f0,
                             drow f1, drow f2, drow w, drow il2, drow cm, drow cc, irow i0,
                             irow i1, irow i2, int* jr, bint inv, bint aa, bint spread,
                             bint root, bint f32) noexcept nogil:
    """Passes 1 and 2 in one for exact traveltimes, samples ``j0 <= j < nt``: the sample's
    terms (as ``_terms_loop``) go straight into the fold (as ``_fold_loop``) without scratch
    rows in between. ``jr`` gets the live range [jr[0], jr[1]) and jr[2]: one past the last
    live sample inside the angle-taper zone (0 if none); ``cm`` gets the cos^2 of the dip
    angle.

    ``f32`` (float32 data): the square roots and reciprocals in float32, at twice the SIMD
    width: the leg times go back to double by one Newton step from the float32 root (error
    ~1e-14 relative, so the read position keeps double precision), the weights, angles and
    AA length stay float32 (~1e-7 relative). Otherwise all in double, as ``_terms_loop``.

    ``inv`` (anything beyond the traveltime), ``aa``, ``spread``, ``root`` and ``f32`` are
    constants at every call site: one branch-free loop per combination; the range reductions
    are min/max, so the loop stays vectorised.
    """
    cdef int j, nt = P.nt, jlo = P.nt, jhi = 0, jtp = 0
    cdef double ts, tr, q, its, itr, cmin, c, wt, sp, gx, gy, hl, kj, Lj, kp, x0, x1, x2, L2
    cdef double xs, xr
    cdef float s0, s1, rs, rr, fa, fcmin, fc, fwt, fsp, fiv, fgx, fgy, fhl, fL
    cdef float one = 1.0, half = 0.5
    cdef float fcos2_max = P.cos2_max, fc_mute = P.c_mute, faa_scale = P.aa_scale
    cdef float faa_max = P.aa_max
    cdef float fdxs = dxs, fdys = dys, fdxr = dxr, fdyr = dyr
    cdef bint ok, tri, live
    cdef double t_start = P.t_start, idt = P.idt, cos2_max = P.cos2_max, c_mute = P.c_mute
    cdef double cos_t0 = P.cos2_taper0, c_t0 = P.c_taper0
    # squared midpoint displacement (m^2): the output point minus the trace midpoint
    cdef double dm2 = 0.25 * ((dxs + dxr) * (dxs + dxr) + (dys + dyr) * (dys + dyr))
    cdef double aa_scale = P.aa_scale, aa_max = P.aa_max
    cdef bint obl = P.obliquity != 0
    cdef double pad = P.pad, kend = P.ltrace - 1
    cdef double lo = 0.0 if P.interp == 1 else 1.0
    cdef double hi = P.ns - 1.0 if P.interp == 1 else P.ns - 2.0
    for j in range(P.j0, P.nt):
        if f32:
            xs = a2[j] + ds2 * iv2[j]
            xr = a2[j] + dr2 * iv2[j]
            s0 = sqrtf(<float>xs)
            s1 = sqrtf(<float>xr)
            rs = one / s0
            rr = one / s1
            ts = s0 + 0.5 * (xs - <double>s0 * s0) * rs
            tr = s1 + 0.5 * (xr - <double>s1 * s1) * rr
        else:
            ts = sqrt(a2[j] + ds2 * iv2[j])
            tr = sqrt(a2[j] + dr2 * iv2[j])
        kj = (ts + tr - t_start) * idt
        if inv and f32:
            fa = <float>a[j]
            # cos^2 of the dip angle
            fcmin = <float>a2[j] / <float>(a2[j] + dm2 * iv2[j])
            fc = half * fa * (rs + rr)
            fwt = fc if obl else one
            if spread:
                fsp = fa * sqrtf(rs * rr)
                if root:
                    fsp = sqrtf(fsp)
                fwt = fwt * fsp
            ok = (fcmin >= fcos2_max) & (fc >= fc_mute)
            wt = fwt
            cmin = fcmin
            c = fc
        elif inv:
            # one division gives both reciprocals
            q = 1.0 / (ts * tr)
            its = tr * q
            itr = ts * q
            cmin = a2[j] / (a2[j] + dm2 * iv2[j])
            c = 0.5 * a[j] * (its + itr)
            wt = c if obl else 1.0
            if spread:
                sp = a[j] * sqrt(q)
                if root:
                    sp = sqrt(sp)
                wt = wt * sp
            ok = (cmin >= cos2_max) & (c >= c_mute)
        else:
            wt = 1.0
            cmin = 1.0
            c = 1.0
            ok = True
        if aa and f32:
            fiv = <float>iv2[j]
            fgx = fiv * (fdxs * rs + fdxr * rr)
            fgy = fiv * (fdys * rs + fdyr * rr)
            fhl = sqrtf(fgx * fgx + fgy * fgy) * faa_scale
            fL = fhl if fhl < faa_max else faa_max
            Lj = fL
        elif aa:
            gx = iv2[j] * (dxs * its + dxr * itr)
            gy = iv2[j] * (dys * its + dyr * itr)
            hl = sqrt(gx * gx + gy * gy) * aa_scale
            Lj = hl if hl < aa_max else aa_max
        else:
            Lj = 0.0
        kp = kj + pad
        tri = Lj > 1.0
        live = ok & ((tri & (kp - Lj >= 0.0) & (kp + Lj < kend))
                     | ((not tri) & (kj >= lo) & (kj < hi)))
        w[j] = wa * wt if live else 0.0
        # the ranges as branch-free min / max reductions, so the loop still vectorises
        jlo = seis_imin(jlo, j + (1 - live) * nt)
        jhi = seis_imax(jhi, (j + 1) * live)
        cm[j] = cmin
        cc[j] = c
        jtp = seis_imax(jtp, (j + 1) * (live & ((cmin < cos_t0) | (c < c_t0))))
        tri = tri & live
        x0 = kp if tri else (kj if live else lo)
        x1 = kp - Lj if tri else x0
        x2 = kp + Lj if tri else x0
        if aa and f32:
            il2[j] = one / (fL * fL if tri else one)
        else:
            L2 = Lj * Lj
            il2[j] = 1.0 / (L2 if tri else 1.0)
        i0[j] = <int>x0
        i1[j] = <int>x1
        i2[j] = <int>x2
        f0[j] = x0 - <int>x0
        f1[j] = x1 - <int>x1
        f2[j] = x2 - <int>x2
    jr[0] = jlo if jlo < nt else nt
    jr[1] = jhi if jhi > jr[0] else jr[0]
    jr[2] = jtp


cdef void _exact(const Params* P, const double* a, const double* a2, const double* iv2,
                 double ds2, double dr2, double dxs, double dys, double dxr, double dyr,
                 double wa, Rows* R, int* jlo, int* jhi, bint f32) noexcept nogil:
    """Passes 1 and 2 for exact traveltimes (``_terms`` then the fold, merged): the read
    rows of samples ``j0 <= j < nt`` and the live range ``[jlo, jhi)`` outside which w = 0."""
    cdef int j, jr[3]
    cdef double th
    # R.ok is free in exact mode: it gets the cos^2 of the dip angle
    if not P.need_inv:
        if f32:
            _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                        R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 0, 0, 0, 0, 1)
        else:
            _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                        R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 0, 0, 0, 0, 0)
    elif P.antialias:
        if not P.spreading:
            if f32:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 1, 0, 0, 1)
            else:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 1, 0, 0, 0)
        elif P.spread_pow == 1.0:
            if f32:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 1, 1, 0, 1)
            else:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 1, 1, 0, 0)
        else:
            if f32:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 1, 1, 1, 1)
            else:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 1, 1, 1, 0)
    else:
        if not P.spreading:
            if f32:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 0, 0, 0, 1)
            else:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 0, 0, 0, 0)
        elif P.spread_pow == 1.0:
            if f32:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 0, 1, 0, 1)
            else:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 0, 1, 0, 0)
        else:
            if f32:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 0, 1, 1, 1)
            else:
                _exact_loop(P, a, a2, iv2, ds2, dr2, dxs, dys, dxr, dyr, wa, R.k, R.L, R.cm, R.w,
                            R.il2, R.ok, R.c, R.i0, R.i1, R.i2, jr, 1, 0, 1, 1, 0)
    jlo[0] = jr[0]
    jhi[0] = jr[1]
    if P.cos2_taper0 > -1.0 or P.c_taper0 > 0.0:
        # angle and stretch-mute tapers on the live samples of their zones (acos there only)
        for j in range(jr[0], jr[2]):
            if R.ok[j] < P.cos2_taper0 and R.w[j] != 0.0:
                th = acos(sqrt(R.ok[j]))
                R.w[j] = R.w[j] * 0.5 * (1.0 + _cospi((th - P.th_taper0)
                                                      / (P.th_max - P.th_taper0)))
            if R.c[j] < P.c_taper0 and R.w[j] != 0.0:
                R.w[j] = R.w[j] * _mute_taper(P, R.c[j])


cdef inline double _lin(const double* s, int i, double f) noexcept nogil:
    """Linear interpolation of a padded double-integrated trace at ``i + f``."""
    return s[i] + f * (s[i + 1] - s[i])


cdef inline double _cubic(const real* d, int i, double f) noexcept nogil:
    """4-point Lagrange interpolation at ``i + f`` (stencil inside the trace)."""
    return (-f * (f - 1.0) * (f - 2.0) / 6.0 * d[i - 1]
            + (f + 1.0) * (f - 1.0) * (f - 2.0) * 0.5 * d[i]
            - (f + 1.0) * f * (f - 2.0) * 0.5 * d[i + 1]
            + (f + 1.0) * f * (f - 1.0) / 6.0 * d[i + 2])


cdef void _read_pair(const Params* P, const real* d, const double* s2, real* o,
                     const Rows* R, int jlo, int jhi) noexcept nogil:
    """Pass 3 of migration: ``o[j] += w[j] * data(k[j])`` over the live range, the data
    triangle-filtered with half-length ``L`` samples where ``L > 1``."""
    cdef int j, i
    cdef double f, v
    cdef const double* f0 = R.k
    cdef const double* f1 = R.L
    cdef const double* f2 = R.cm
    cdef const double* w = R.w
    cdef const double* il2 = R.il2
    cdef const int* i0 = R.i0
    cdef const int* i1 = R.i1
    cdef const int* i2 = R.i2
    if not P.antialias:
        if P.interp == 1:
            for j in range(jlo, jhi):
                i = i0[j]
                o[j] += <real>(w[j] * (d[i] + f0[j] * (d[i + 1] - d[i])))
        else:
            for j in range(jlo, jhi):
                o[j] += <real>(w[j] * _cubic(d, i0[j], f0[j]))
        return
    for j in range(jlo, jhi):
        if il2[j] < 1.0:
            # L > 1: causal-then-anticausal double integral, whose second difference is a
            # triangle of half-length L and area L^2
            v = (2.0 * _lin(s2, i0[j], f0[j]) - _lin(s2, i1[j], f1[j])
                 - _lin(s2, i2[j], f2[j])) * il2[j]
        elif P.interp == 1:
            i = i0[j]
            v = d[i] + f0[j] * (d[i + 1] - d[i])
        else:
            v = _cubic(d, i0[j], f0[j])
        o[j] += <real>(w[j] * v)


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
                         const double* iv2, const int* knots, int nknots, Knots* K,
                         Rows* R) noexcept nogil:
    cdef int tr, jlo, jhi
    cdef double px = points[2 * p], py = points[2 * p + 1]
    cdef double dxs, dys, dxr, dyr, mx, my, wa
    cdef const double* iv = iv2 + <Py_ssize_t>p * P.nt
    cdef real* o = out + <Py_ssize_t>p * P.nt
    cdef bint f32 = False
    if real is float:
        f32 = True
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
        if nknots == 0:
            _exact(P, a, a2, iv, dxs * dxs + dys * dys, dxr * dxr + dyr * dyr,
                   dxs, dys, dxr, dyr, wa, R, &jlo, &jhi, f32)
        else:
            _sparse(P, a, a2, iv, dxs * dxs + dys * dys, dxr * dxr + dyr * dyr,
                    dxs, dys, dxr, dyr, knots, nknots, K, R, wa, &jlo, &jhi)
        if jlo < jhi:
            _read_pair(P, data + <Py_ssize_t>tr * P.ns,
                       s2 + <Py_ssize_t>tr * P.ltrace if P.antialias else s2, o, R,
                       jlo, jhi)


cdef Params _params(const Settings* S, int ns, int nt, int j0, bint migration):
    """The kernel's parameters from the caller's ``S``; ``migration`` False: modelling (no
    mute, no AA)."""
    cdef Params P
    cdef double taper = S.taper, max_angle_rad = S.max_angle_rad
    P.dt = S.dt
    P.idt = 1.0 / S.dt
    P.t_start = S.t_start
    P.ns = ns
    P.nt = nt
    P.j0 = j0
    P.aperture = S.aperture
    P.ap_taper0 = (1.0 - taper) * S.aperture
    P.th_max = max_angle_rad
    P.th_taper0 = (1.0 - taper) * max_angle_rad
    P.cos_max = cos(max_angle_rad)
    P.cos2_max = P.cos_max * P.cos_max
    P.cos_taper0 = cos(P.th_taper0) if taper > 0 else -1.0
    P.cos2_taper0 = P.cos_taper0 * P.cos_taper0 if taper > 0 else -1.0
    P.obliquity = S.obliquity
    P.spreading = S.spreading
    P.spread_pow = S.spread_pow
    P.c_mute = S.c_mute if migration else 0.0
    P.thm_max = acos(P.c_mute) if P.c_mute > 0.0 else 0.0
    P.thm_taper0 = (1.0 - taper) * P.thm_max
    P.c_taper0 = cos(P.thm_taper0) if (P.c_mute > 0.0 and taper > 0) else 0.0
    P.interp = S.interp
    P.antialias = S.antialias if migration else 0
    P.aa_scale = S.dx_aa / S.dt if migration else 0.0
    P.aa_max = S.aa_max if migration else 0.0
    P.pad = S.pad if migration else 0
    P.ltrace = ns + 2 * P.pad
    P.m0 = 0
    P.need_inv = (P.obliquity or P.spreading or P.antialias or P.c_mute > 0.0
                  or P.cos_max > 1e-12 or P.cos_taper0 > -1.0)
    return P


def pstm_3d(const real[:, ::1] data, const double[:, ::1] s2, const double[::1] sx,
            const double[::1] sy, const double[::1] rx, const double[::1] ry,
            const double[:, ::1] points, const double[::1] a, const double[::1] a2,
            const double[:, ::1] iv2, real[:, ::1] out, const int[::1] knots, Settings S,
            int block=256):
    """Accumulate the Kirchhoff PSTM of ``data`` into ``out`` (npts, nt); see module doc.

    ``s2`` is the padded double-integrated data (ntr, ns + 2 S.pad), used when
    ``S.antialias``; ``knots`` (sample indices, empty for exact traveltimes) selects sparse-t0
    evaluation; ``S`` the scalar parameters (a dict with the fields of ``Settings``).
    """
    cdef int ntr = data.shape[0], ns = data.shape[1]
    cdef int npts = points.shape[0], nt = a.shape[0]
    cdef int j0 = 0, b, tr0, tr1, p, m, nknots = knots.shape[0]
    cdef double* buf
    cdef Rows R
    cdef Knots K
    while j0 < nt and a[j0] <= 0.0:
        j0 += 1
    cdef Params P = _params(&S, ns, nt, j0, 1)
    cdef int threads = S.threads
    if ntr == 0 or npts == 0 or nt == 0:
        return
    while P.m0 < nknots and knots[P.m0] < j0:
        P.m0 += 1
    cdef const double* s2p = &s2[0, 0]
    cdef const int* kp = &knots[0] if nknots > 0 else NULL
    cdef int nblocks = (ntr + block - 1) // block
    cdef int failed = 0
    cdef int* failed_p = &failed
    buf = NULL
    b = tr0 = tr1 = m = 0
    with nogil, parallel(num_threads=threads):
        # scratch rows, one set per thread: the samples, then the packed knots
        buf = <double*>malloc((_rows_size(nt) + _rows_size(nknots) + 3 * nknots)
                              * sizeof(double))
        # (assigned whole, so that Cython makes R and K private to the thread)
        R = _rows(buf, nt)
        K = _knots(buf + _rows_size(nt), nknots)
        if buf != NULL:
            for m in range(nknots):
                K.a[m] = a[kp[m]]
                K.a2[m] = a2[kp[m]]
        # traces in blocks (outer, serial) so a block of data stays in cache while every
        # thread sweeps its points; each point's traces are always summed in the same order
        for b in range(nblocks):
            tr0 = b * block
            tr1 = tr0 + block if tr0 + block < ntr else ntr
            for p in prange(npts, schedule="dynamic", chunksize=1):
                if buf == NULL:
                    failed_p[0] = 1
                else:
                    _migrate_point(&P, p, tr0, tr1, &data[0, 0], s2p, &out[0, 0],
                                   &points[0, 0], &sx[0], &sy[0], &rx[0], &ry[0], &a[0],
                                   &a2[0], &iv2[0, 0], kp, nknots, &K, &R)
            # no thread may start the next block on a point another is still summing
            seis_barrier()
        free(buf)
    if failed:
        raise MemoryError("pstm_3d: no memory for the per-thread scratch rows")


cdef void _model_trace(const Params* P, real* d, const real* image, const double* points,
                       int npts, double sx, double sy, double rx, double ry, const double* a,
                       const double* a2, const double* iv2, Rows* R) noexcept nogil:
    cdef int p, j, i, jlo, jhi
    cdef double px, py, mx, my, wa, dxs, dys, dxr, dyr, f, v
    cdef const real* m
    cdef bint f32 = False
    if real is float:
        f32 = True
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
        _exact(P, a, a2, iv2 + <Py_ssize_t>p * P.nt, dxs * dxs + dys * dys,
               dxr * dxr + dyr * dyr, dxs, dys, dxr, dyr, wa, R, &jlo, &jhi, f32)
        m = image + <Py_ssize_t>p * P.nt
        # adjoint of the read pass: spread w m into the interpolation stencil
        if P.interp == 1:
            for j in range(jlo, jhi):
                v = R.w[j] * m[j]
                i = R.i0[j]
                f = R.k[j]
                d[i] += <real>((1.0 - f) * v)
                d[i + 1] += <real>(f * v)
        else:
            for j in range(jlo, jhi):
                v = R.w[j] * m[j]
                i = R.i0[j]
                f = R.k[j]
                d[i - 1] += <real>(-f * (f - 1.0) * (f - 2.0) / 6.0 * v)
                d[i] += <real>((f + 1.0) * (f - 1.0) * (f - 2.0) * 0.5 * v)
                d[i + 1] += <real>(-(f + 1.0) * f * (f - 2.0) * 0.5 * v)
                d[i + 2] += <real>((f + 1.0) * f * (f - 1.0) / 6.0 * v)


def model_3d(const real[:, ::1] image, const double[:, ::1] points, const double[::1] a,
             const double[::1] a2, const double[:, ::1] iv2, const double[::1] sx,
             const double[::1] sy, const double[::1] rx, const double[::1] ry,
             real[:, ::1] data, Settings S):
    """Accumulate the Kirchhoff modelling (adjoint of :func:`pstm_3d` without AA) into ``data``;
    ``S`` as for :func:`pstm_3d` (its mute and AA fields are not used)."""
    cdef int ntr = data.shape[0], ns = data.shape[1]
    cdef int npts = points.shape[0], nt = a.shape[0]
    cdef int j0 = 0, tr
    cdef double* buf
    cdef Rows R
    while j0 < nt and a[j0] <= 0.0:
        j0 += 1
    cdef Params P = _params(&S, ns, nt, j0, 0)
    cdef int threads = S.threads
    if ntr == 0 or npts == 0 or nt == 0:
        return
    cdef int failed = 0
    cdef int* failed_p = &failed
    buf = NULL
    with nogil, parallel(num_threads=threads):
        buf = <double*>malloc(_rows_size(nt) * sizeof(double))
        R = _rows(buf, nt)
        for tr in prange(ntr, schedule="dynamic", chunksize=1):
            if buf == NULL:
                failed_p[0] = 1
            else:
                _model_trace(&P, &data[0, 0] + <Py_ssize_t>tr * ns, &image[0, 0],
                             &points[0, 0], npts, sx[tr], sy[tr], rx[tr], ry[tr], &a[0],
                             &a2[0], &iv2[0, 0], &R)
        free(buf)
    if failed:
        raise MemoryError("model_3d: no memory for the per-thread scratch rows")


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
