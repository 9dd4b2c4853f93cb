# cython: language_level=3
"""NMO correction, inverse NMO and semblance velocity scans: the native loops.

Plain loops over typed memoryviews, ``nogil``, ``prange`` over traces (NMO) or velocities
(semblance). Validation, broadcasting and the documented API live in ``seis_hpc.velocity.nmo`` and
``seis_hpc.velocity.semblance``; the NumPy references there define what these loops must return.

Conventions shared with the references:

* times are in samples relative to ``t_start``: ``u = (t - t_start) / dt``;
* ``interp``: 0 = linear, 1 = cubic convolution (Keys, a = -0.5, edge samples replicated);
  an input time is live when ``0 <= u <= ns - 1``;
* NMO stretch of output sample j is ``1 / (dt/dt0) - 1``, with ``dt/dt0`` from centred
  differences of the traveltime map (one-sided at the ends); samples with a non-positive
  slope or stretch above the limit are muted.
"""

from cython.parallel import parallel, prange

from libc.math cimport floor, sqrt
from libc.stdlib cimport free, malloc


cdef inline double _sample(const float[:] trace, double u, int ns, int interp) noexcept nogil:
    """Trace value at fractional sample ``u`` (caller checked 0 <= u <= ns - 1)."""
    cdef int i0 = <int> floor(u)
    cdef double f, a, w0, w1, w2, w3, fm, f1, f2
    cdef int im, i1, i2
    if i0 >= ns - 1:
        i0 = ns - 1
        f = 0.0
    else:
        f = u - i0
    if interp == 0:
        if f == 0.0:
            return trace[i0]
        return (1.0 - f) * trace[i0] + f * trace[i0 + 1]
    # Keys cubic convolution, a = -0.5: exact for quadratics, C1 continuous.
    a = -0.5
    fm = 1.0 + f
    f1 = 1.0 - f
    f2 = 2.0 - f
    w0 = a * fm * fm * fm - 5.0 * a * fm * fm + 8.0 * a * fm - 4.0 * a
    w1 = (a + 2.0) * f * f * f - (a + 3.0) * f * f + 1.0
    w2 = (a + 2.0) * f1 * f1 * f1 - (a + 3.0) * f1 * f1 + 1.0
    w3 = a * f2 * f2 * f2 - 5.0 * a * f2 * f2 + 8.0 * a * f2 - 4.0 * a
    im = i0 - 1 if i0 > 0 else 0
    i1 = i0 + 1 if i0 + 1 < ns else ns - 1
    i2 = i0 + 2 if i0 + 2 < ns else ns - 1
    return w0 * trace[im] + w1 * trace[i0] + w2 * trace[i1] + w3 * trace[i2]


cdef inline double _traveltime(double t0, double x2, double v, double eta,
                               int has_eta) noexcept nogil:
    """Two-way time (s) at offset² ``x2`` (m²) for zero-offset time ``t0`` (s), velocity v."""
    cdef double v2 = v * v
    cdef double t2 = t0 * t0 + x2 / v2
    cdef double den
    if has_eta and x2 > 0.0:
        # Alkhalifah-Tsvankin (1995) quartic term for VTI media.
        den = v2 * (t0 * t0 * v2 + (1.0 + 2.0 * eta) * x2)
        t2 = t2 - 2.0 * eta * x2 * x2 / den
    if t2 < 0.0:
        t2 = 0.0
    return sqrt(t2)


cdef inline void _trace_map(double* tt, double x2, const double[:] v, const double[:] eta,
                            int has_eta, double dt, double t_start, int ns) noexcept nogil:
    """Fill ``tt[j]`` with the input time (in samples) feeding output sample j."""
    cdef int j
    cdef double t0, e = 0.0
    for j in range(ns):
        t0 = t_start + j * dt
        if has_eta:
            e = eta[j]
        tt[j] = (_traveltime(t0, x2, v[j], e, has_eta) - t_start) / dt


cdef inline double _slope(double* tt, int j, int ns) noexcept nogil:
    """d(input sample)/d(output sample): centred inside, one-sided at the ends."""
    if j == 0:
        return tt[1] - tt[0]
    if j == ns - 1:
        return tt[ns - 1] - tt[ns - 2]
    return 0.5 * (tt[j + 1] - tt[j - 1])


cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int seis_nmo_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int seis_nmo_max_threads(void) { return 1; }
    #endif
    """
    int seis_nmo_max_threads() nogil


cdef int _threads_for(double samples) noexcept:
    """One thread below ~1e6 samples: a parallel region costs more than such a gather's NMO
    (and far more when the other cores are busy); above it, all of them."""
    return 1 if samples < 1e6 else seis_nmo_max_threads()


def nmo_correct(const float[:, :] gather, const double[:] offset, const double[:, :] vnmo,
                const double[:, :] eta, int has_eta, double dt, double t_start,
                double stretch_mute, int interp, float[:, :] out, float[:, :] live):
    """Forward NMO of every trace into ``out``; ``live`` gets 1 where a sample survived.

    ``stretch_mute <= 0`` disables the stretch mute. ``vnmo`` and ``eta`` are (ntr, ns),
    broadcast views are fine (stride 0).
    """
    cdef int ntr = gather.shape[0]
    cdef int ns = gather.shape[1]
    cdef int i, j
    cdef double x2, u, s, smax = stretch_mute
    cdef double* tt = NULL
    cdef int nthreads = _threads_for(<double>ntr * ns)
    with nogil, parallel(num_threads=nthreads):
        tt = <double*> malloc(ns * sizeof(double))
        for i in prange(ntr, schedule="static"):
            x2 = offset[i] * offset[i]
            _trace_map(tt, x2, vnmo[i], eta[i], has_eta, dt, t_start, ns)
            for j in range(ns):
                out[i, j] = 0.0
                live[i, j] = 0.0
                u = tt[j]
                if u < 0.0 or u > ns - 1:
                    continue
                s = _slope(tt, j, ns)
                if s <= 0.0:
                    continue
                if smax > 0.0 and 1.0 / s - 1.0 > smax:
                    continue
                out[i, j] = <float> _sample(gather[i], u, ns, interp)
                live[i, j] = 1.0
        free(tt)


def inverse_nmo(const float[:, :] gather, const double[:] offset, const double[:, :] vnmo,
                const double[:, :] eta, int has_eta, double dt, double t_start, int interp,
                float[:, :] out):
    """Inverse NMO: output sample at time t takes the input at t0(t) (first branch)."""
    cdef int ntr = gather.shape[0]
    cdef int ns = gather.shape[1]
    cdef int i, j, k
    cdef double x2, tk, u
    cdef double* tt = NULL
    cdef int nthreads = _threads_for(<double>ntr * ns)
    with nogil, parallel(num_threads=nthreads):
        tt = <double*> malloc(ns * sizeof(double))
        for i in prange(ntr, schedule="static"):
            x2 = offset[i] * offset[i]
            _trace_map(tt, x2, vnmo[i], eta[i], has_eta, dt, t_start, ns)
            j = 0
            for k in range(ns):
                out[i, k] = 0.0
                tk = k
                # j = (first m >= 1 with tt[m] > tk) - 1; tk increases, so j only advances.
                while j < ns - 1 and tt[j + 1] <= tk:
                    j = j + 1
                if j >= ns - 1 or tt[j] > tk:
                    continue
                u = j + (tk - tt[j]) / (tt[j + 1] - tt[j])
                out[i, k] = <float> _sample(gather[i], u, ns, interp)
        free(tt)


def semblance_scan(const float[:, :] gather, const double[:] offset,
                   const double[:] velocities, double dt, double t_start, double stretch_mute,
                   int interp, int half, int ab, double[:, :] out, double[:, :] num,
                   double[:, :] den):
    """Semblance (nv, ns) into ``out``; ``num``/``den`` are (nv, ns) work arrays.

    Per output sample the live traces give sums R0 = Σc, R1 = Σφc, E = Σc², N, S1 = Σφ,
    S2 = Σφ² with φ = (x / max|x|)². Fitted energy: R0²/N (conventional) or the least-squares
    projection onto span{1, φ} (AB). Both are summed over the ±half window and divided by the
    windowed E.
    """
    cdef int ntr = gather.shape[0]
    cdef int ns = gather.shape[1]
    cdef int nv = velocities.shape[0]
    cdef int iv, i, j, w, lo, hi
    cdef double xmax = 0.0, x2, u, s, c, phi, v, t0, tj, tjm, tjp
    cdef double n, s1, s2, r0, r1, det, fit, a_num, a_den
    cdef double* acc = NULL
    for i in range(ntr):
        if offset[i] * offset[i] > xmax:
            xmax = offset[i] * offset[i]
    with nogil, parallel():
        # Six running sums per output sample, private to the thread.
        acc = <double*> malloc(6 * ns * sizeof(double))
        for iv in prange(nv, schedule="dynamic"):
            v = velocities[iv]
            for j in range(6 * ns):
                acc[j] = 0.0
            for i in range(ntr):
                x2 = offset[i] * offset[i]
                phi = x2 / xmax if xmax > 0.0 else 0.0
                tjm = 0.0
                tj = (_traveltime(t_start, x2, v, 0.0, 0) - t_start) / dt
                for j in range(ns):
                    tjp = tj
                    if j < ns - 1:
                        tjp = (_traveltime(t_start + (j + 1) * dt, x2, v, 0.0, 0) - t_start) / dt
                    # Same slope rule as _slope, from the three neighbouring map values.
                    if ns == 1:
                        s = 1.0
                    elif j == 0:
                        s = tjp - tj
                    elif j == ns - 1:
                        s = tj - tjm
                    else:
                        s = 0.5 * (tjp - tjm)
                    u = tj
                    tjm = tj
                    tj = tjp
                    if u < 0.0 or u > ns - 1 or s <= 0.0:
                        continue
                    if stretch_mute > 0.0 and 1.0 / s - 1.0 > stretch_mute:
                        continue
                    c = <float> _sample(gather[i], u, ns, interp)
                    acc[j] += c
                    acc[ns + j] += phi * c
                    acc[2 * ns + j] += c * c
                    acc[3 * ns + j] += 1.0
                    acc[4 * ns + j] += phi
                    acc[5 * ns + j] += phi * phi
            for j in range(ns):
                n = acc[3 * ns + j]
                r0 = acc[j]
                fit = 0.0
                if n > 0.0:
                    fit = r0 * r0 / n
                    if ab:
                        s1 = acc[4 * ns + j]
                        s2 = acc[5 * ns + j]
                        r1 = acc[ns + j]
                        det = n * s2 - s1 * s1
                        # A rank-deficient fit (all live φ equal) falls back to the mean.
                        if det > 1e-9 * n * s2:
                            fit = (s2 * r0 * r0 - 2.0 * s1 * r0 * r1 + n * r1 * r1) / det
                num[iv, j] = fit
                den[iv, j] = acc[2 * ns + j]
            for j in range(ns):
                lo = j - half if j - half > 0 else 0
                hi = j + half if j + half < ns - 1 else ns - 1
                a_num = 0.0
                a_den = 0.0
                for w in range(lo, hi + 1):
                    a_num = a_num + num[iv, w]
                    a_den = a_den + den[iv, w]
                if a_den > 0.0:
                    c = a_num / a_den
                    out[iv, j] = 0.0 if c < 0.0 else (1.0 if c > 1.0 else c)
                else:
                    out[iv, j] = 0.0
        free(acc)
