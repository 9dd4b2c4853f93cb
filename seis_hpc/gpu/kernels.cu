// Kirchhoff PSTM, its modelling adjoint and the bare PSTM loop, as CUDA kernels.
//
// Compiled by NVRTC through CuPy on a GPU (seis_hpc.gpu.runtime.CudaRuntime), or by the host
// C++ compiler with emulate.h, which runs every (block, thread) in turn on the CPU
// (seis_hpc.gpu.runtime.EmulatorRuntime): the same source is then tested without a GPU.
// No shared memory and no barriers, so that a thread-by-thread emulation is exact.
//
// Conventions are those of kernels/pstm.pyx (times in s, distances in m, iv2 = 1 / vrms^2,
// a = t0 / 2, a2 = a^2); only the arithmetic differs, float32 throughout, arranged so that
// float32 keeps the precision that matters:
//
// * coordinates relative to a tile origin, each split hi + lo with hi on a 1/16 m grid, so
//   that a difference of two hi parts is exact and a distance is accurate to its own rounding;
// * the data position k = (t0 - t_start)/dt + moveout/dt, its first term split on the host
//   into an integer and a fraction and the moveout ts - a = ds^2 iv2 / (ts + a) free of
//   cancellation: k is accurate to the rounding of the moveout, not of t;
// * floor by the 1.5 * 2^23 rounding trick (plain adds; a float->int conversion issues at a
//   quarter of the arithmetic rate);
// * the anti-aliasing triangle reads the double-integrated trace S = H + Lo with H on a per-trace
//   power-of-two grid (differences of H exact), Lo the rest, and D[m] = S[m+1] - S[m]:
//   2 S(x0) - S(x1) - S(x2) = (H0 - H1) + (H0 - H2) + (2 Lo0 - Lo1 - Lo2)
//                             + 2 f0 D0 - f1 D1 - f2 D2,
//   which float32 evaluates to ~1e-7 of the filtered value (float32 S would lose 15 bits).
//
// Compile-time options (-D): SEIS_AA (anti-aliasing), SEIS_INTERP (1 linear, 3 cubic),
// SEIS_OBL (obliquity), SEIS_SPREAD (0 none, 1: p = 1 (3D), 2: p = 1/2 (2D)), SEIS_NEED_INV
// (anything beyond the traveltime), SEIS_ANGLE_TAPER, SEIS_ANGLE_LIMIT (max_angle < 90),
// SEIS_MUTE (stretch mute), SEIS_SPT (output samples per thread).

#ifndef __CUDACC__
#include "emulate.h"
#endif

#ifndef SEIS_AA
#define SEIS_AA 0
#endif
#ifndef SEIS_INTERP
#define SEIS_INTERP 1
#endif
#ifndef SEIS_OBL
#define SEIS_OBL 0
#endif
#ifndef SEIS_SPREAD
#define SEIS_SPREAD 0
#endif
#ifndef SEIS_NEED_INV
#define SEIS_NEED_INV 0
#endif
#ifndef SEIS_ANGLE_TAPER
#define SEIS_ANGLE_TAPER 0
#endif
#ifndef SEIS_ANGLE_LIMIT
#define SEIS_ANGLE_LIMIT 1
#endif
#ifndef SEIS_MUTE
#define SEIS_MUTE 1
#endif
#ifndef SEIS_SPT
#define SEIS_SPT 1
#endif

// Index checks of every read and write, compiled in the emulator only (a GPU build carries
// none): an out-of-range index aborts the emulated launch with the condition and line.
#ifdef SEIS_EMULATE
#define SEIS_CHECK(c) ((c) ? (void)0 : seis_emu_fail(#c, __LINE__))
#else
#define SEIS_CHECK(c) ((void)0)
#endif

#define SEIS_BIG 12582912.0f   // 1.5 * 2^23: x + BIG rounds x to an integer for |x| < 2^22
#define SEIS_XMAX 2097152.0f   // positions are clamped to +-2^21 samples (far outside any trace)

// floor(x) and x - floor(x) in [0, 1] (1 only at an exact integer: the same read), for
// |x| < 2^22
__device__ __forceinline__ int seis_floor_small(float x, float* frac)
{
    const float r = (x - 0.5f) + SEIS_BIG;
    const float fl = r - SEIS_BIG;
    *frac = x - fl;
    return __float_as_int(r) - 0x4B400000;
}

// the same for any x (NaN included): clamped first, far outside any trace
__device__ __forceinline__ int seis_floor(float x, float* frac)
{
    return seis_floor_small(fminf(fmaxf(x, -SEIS_XMAX), SEIS_XMAX), frac);
}

// 4-point Lagrange interpolation at i + f (stencil i-1 .. i+2)
__device__ __forceinline__ float seis_cubic(const float* __restrict__ d, int i, float f)
{
    return (-f * (f - 1.0f) * (f - 2.0f) * (1.0f / 6.0f) * d[i - 1]
            + (f + 1.0f) * (f - 1.0f) * (f - 2.0f) * 0.5f * d[i]
            - (f + 1.0f) * f * (f - 2.0f) * 0.5f * d[i + 1]
            + (f + 1.0f) * f * (f - 1.0f) * (1.0f / 6.0f) * d[i + 2]);
}

// Per-run parameters (all float32 or int; see seis_hpc.gpu.pstm for their definitions),
// passed as a pointer to a small device array (the same on every path, emulator included);
// cos_max and cos_t0 are the squared cosines of the dip-angle limit and taper start; c_t0 the
// obliquity where the stretch-mute taper starts (0: none), thm_t0 its acos and thm_scale
// 1 / (acos(c_mute) - thm_t0)
struct SeisPar {
    int ns, ltrace, pad, nt, j0, nchunk, chunk;
    float idt, ap2, ap_t0, ap_scale, cos_max, cos_t0, th_t0, th_scale, c_mute, aa_scale2,
        aa_max, inv_aa2, c_t0, thm_t0, thm_scale;
};

// One (output sample, trace) pair: the weight w (0: nothing read), the read position
// (integer i, fraction f) and, for a triangle read, the two other positions and 1 / L^2.
struct SeisPair {
    float w, f, f1, f2, il2;
    int i, i1, i2;
    bool tri;
};

__device__ __forceinline__ SeisPair seis_pair(const SeisPar& P, float wa, float dxs, float dys,
                                              float dxr, float dyr, float ds2, float dr2,
                                              float a, float ha, float a2, float fb, int ib,
                                              float iv2, float kaa, bool antialias)
{
    // ha = a / 2 and kaa = iv2^2 (dx_aa / dt)^2 are per-thread constants
    SeisPair q;
    const float us = ds2 * iv2, ur = dr2 * iv2;
    const float xs = a2 + us, xr = a2 + ur;
    const float rs = rsqrtf(xs), rr = rsqrtf(xr);   // 1 / ts, 1 / tr
    const float ts = xs * rs, tr = xr * rr;
    const float sa = ts + a, ra = tr + a;
    // moveout ts + tr - 2a = us / (ts + a) + ur / (tr + a), in samples
    const float mo = (us * ra + ur * sa) * __fdividef(1.0f, sa * ra);
    q.i = ib + seis_floor(fb + mo * P.idt, &q.f);
    // i1, i2, f1, f2 and il2 are set, and read, only for a triangle read (tri)
    q.tri = false;
    bool ok = true;
    float w = 1.0f;
    if (SEIS_NEED_INV) {
        // cos^2 of the dip (operator) angle: tan = |midpoint - point| / (v t0 / 2)
        const float mx = 0.5f * (dxs + dxr), my = 0.5f * (dys + dyr);
        const float cmin = a2 * __fdividef(1.0f, a2 + (mx * mx + my * my) * iv2);
        const float c = ha * (rs + rr);
        w = SEIS_OBL ? c : 1.0f;
        if (SEIS_SPREAD) {
            float sp = a * rsqrtf(ts * tr);
            if (SEIS_SPREAD == 2)
                sp = sqrtf(sp);
            w *= sp;
        }
        if (SEIS_ANGLE_LIMIT)
            ok = cmin >= P.cos_max;
        if (SEIS_MUTE)
            ok = ok && (c >= P.c_mute);
        if (SEIS_MUTE && ok && c < P.c_t0)
            w *= 0.5f * (1.0f + cospif((acosf(c) - P.thm_t0) * P.thm_scale));
        if (SEIS_ANGLE_TAPER && ok && cmin < P.cos_t0)
            w *= 0.5f * (1.0f + cospif((acosf(sqrtf(cmin)) - P.th_t0) * P.th_scale));
        if (SEIS_AA && antialias) {
            // L = |grad t| dx_aa / dt, grad t = iv2 (d_s / ts + d_r / tr); the host switches
            // SEIS_AA off when aa_max <= 1 (no triangle is then ever read)
            const float gx = dxs * rs + dxr * rr;
            const float gy = dys * rs + dyr * rr;
            const float g2 = (gx * gx + gy * gy) * kaa;   // L^2 before the cap
            if (g2 > 1.0f) {
                const float rg = rsqrtf(g2);
                const float L = fminf(g2 * rg, P.aa_max);
                q.tri = true;
                q.il2 = fmaxf(rg * rg, P.inv_aa2);
                const int i0 = q.i + P.pad;
                q.i1 = i0 + seis_floor_small(q.f - L, &q.f1);   // |f - L| <= aa_max + 1
                q.i2 = i0 + seis_floor_small(q.f + L, &q.f2);
                q.i = i0;
                ok = ok && (q.i1 >= 0) && (q.i2 < P.ltrace - 1);
            }
        }
    }
    if (!q.tri) {
        const int lo = SEIS_INTERP == 1 ? 0 : 1;
        const int hi = SEIS_INTERP == 1 ? P.ns - 1 : P.ns - 2;
        ok = ok && (q.i >= lo) && (q.i < hi);
    }
    q.w = ok ? wa * w : 0.0f;
    return q;
}

// Aperture weight of the trace midpoint and the source/receiver offsets from the point;
// false when the midpoint is outside the aperture. hi/lo coordinates, see the file header.
__device__ __forceinline__ bool seis_geometry(const SeisPar& P, float4 pt, float4 gh, float4 gl,
                                              float* wa, float* dxs, float* dys, float* dxr,
                                              float* dyr)
{
    const float mx = (0.5f * (gh.x + gh.z) - pt.x) + (0.5f * (gl.x + gl.z) - pt.z);
    const float my = (0.5f * (gh.y + gh.w) - pt.y) + (0.5f * (gl.y + gl.w) - pt.w);
    const float dm2 = mx * mx + my * my;
    if (!(dm2 <= P.ap2))
        return false;
    *wa = 1.0f;
    if (dm2 > P.ap_t0 * P.ap_t0)
        *wa = 0.5f * (1.0f + cospif((sqrtf(dm2) - P.ap_t0) * P.ap_scale));
    *dxs = (pt.x - gh.x) + (pt.z - gl.x);
    *dys = (pt.y - gh.y) + (pt.w - gl.y);
    *dxr = (pt.x - gh.z) + (pt.z - gl.z);
    *dyr = (pt.y - gh.w) + (pt.w - gl.w);
    return true;
}

// (point, trace) pairs inside the aperture, one thread per pair: rec[2 k] = (dxs, dys, dxr,
// dyr), rec[2 k + 1] = (ds2, dr2, wa, trace index as int bits), live[k] = 1 (k = p ntr + t);
// the host packs the live ones per point (in trace order) for the kernels below, so that the
// geometry is computed once per pair, not once per pair and output sample, and a trace
// outside the aperture costs the migration nothing.
extern "C" __global__ void pstm_pairs(const float4* __restrict__ geo_hi,
                                      const float4* __restrict__ geo_lo, int ntr,
                                      const float4* __restrict__ pts, int npts,
                                      const SeisPar* __restrict__ Pp, float4* __restrict__ rec,
                                      int* __restrict__ live)
{
    const SeisPar P = *Pp;
    const long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (long long)npts * ntr)
        return;
    const int p = (int)(k / ntr), t = (int)(k - (long long)p * ntr);
    float wa, dxs, dys, dxr, dyr;
    const bool in = seis_geometry(P, pts[p], geo_hi[t], geo_lo[t], &wa, &dxs, &dys, &dxr, &dyr);
    live[k] = in ? 1 : 0;
    if (in) {
        rec[2 * k] = make_float4(dxs, dys, dxr, dyr);
        rec[2 * k + 1] = make_float4(dxs * dxs + dys * dys, dxr * dxr + dyr * dyr, wa,
                                     __int_as_float(t));
    }
}

// Samples of this thread: j = j0 + c * chunk + threadIdx.x + s * blockDim.x, s < SEIS_SPT,
// inside the chunk c of point p; warps read consecutive samples of a trace (coalesced).
#define SEIS_THREAD_SAMPLES                                                                   \
    const SeisPar P = *Pp;                                                                    \
    const int p = blockIdx.x / P.nchunk;                                                      \
    const int cidx = blockIdx.x - p * P.nchunk;                                               \
    const int jb = P.j0 + cidx * P.chunk;                                                     \
    int je = jb + P.chunk;                                                                    \
    if (je > P.nt)                                                                            \
        je = P.nt;                                                                            \
    float A[SEIS_SPT], HA[SEIS_SPT], A2[SEIS_SPT], FB[SEIS_SPT], IV[SEIS_SPT], KAA[SEIS_SPT]; \
    int IB[SEIS_SPT], J[SEIS_SPT];                                                            \
    _Pragma("unroll") for (int s = 0; s < SEIS_SPT; ++s)                                      \
    {                                                                                         \
        const int j = jb + threadIdx.x + s * blockDim.x;                                      \
        J[s] = j;                                                                             \
        const int jj = j < je ? j : P.j0; /* inactive samples compute on a valid one */      \
        A[s] = tab[jj];                                                                       \
        HA[s] = 0.5f * A[s];                                                                  \
        A2[s] = tab[P.nt + jj];                                                               \
        FB[s] = tab[2 * P.nt + jj];                                                           \
        IB[s] = ib[jj];                                                                       \
        IV[s] = iv2[(long long)p * P.nt + jj];                                                \
        KAA[s] = IV[s] * IV[s] * P.aa_scale2;                                                 \
    }

extern "C" __global__ void pstm_migrate(const float* __restrict__ data,
                                        const float4* __restrict__ s2q,
                                        const float4* __restrict__ pairs,
                                        const int* __restrict__ off,
                                        const float* __restrict__ tab,
                                        const int* __restrict__ ib,
                                        const float* __restrict__ iv2,
                                        const SeisPar* __restrict__ Pp,
                                        float* __restrict__ out)
{
    SEIS_THREAD_SAMPLES
    float ACC[SEIS_SPT];
#pragma unroll
    for (int s = 0; s < SEIS_SPT; ++s)
        ACC[s] = 0.0f;
    const int k1 = off[p + 1];
    for (int k = off[p]; k < k1; ++k) {
        const float4 g = pairs[2 * k], h = pairs[2 * k + 1];
        const unsigned t = (unsigned)__float_as_int(h.w);
        // 32-bit element offsets (a batch holds < 2^32 samples, see seis_hpc.gpu.pstm):
        // one add and one wide multiply-add per read address
        const unsigned td = t * (unsigned)P.ns, ts2 = t * (unsigned)P.ltrace;
#pragma unroll
        for (int s = 0; s < SEIS_SPT; ++s) {
            const SeisPair q = seis_pair(P, h.z, g.x, g.y, g.z, g.w, h.x, h.y, A[s], HA[s],
                                         A2[s], FB[s], IB[s], IV[s], KAA[s], true);
            if (q.w == 0.0f)
                continue;
            float v;
            // indices of live reads are >= 0: unsigned offsets take one instruction each
            if (SEIS_AA && q.tri) {
                SEIS_CHECK(q.i1 >= 0 && q.i1 <= q.i && q.i <= q.i2 && q.i2 < P.ltrace - 1);
                const float4 s0 = s2q[ts2 + (unsigned)q.i], s1 = s2q[ts2 + (unsigned)q.i1],
                             s2 = s2q[ts2 + (unsigned)q.i2];
                v = (((s0.x - s1.x) + (s0.x - s2.x)) + ((2.0f * s0.y - s1.y) - s2.y)
                     + ((2.0f * q.f * s0.z - q.f1 * s1.z) - q.f2 * s2.z)) * q.il2;
            } else if (SEIS_INTERP == 1) {
                SEIS_CHECK(q.i >= 0 && q.i + 1 < P.ns);
                const float* __restrict__ di = data + (td + (unsigned)q.i);
                v = di[0] + q.f * (di[1] - di[0]);
            } else {
                SEIS_CHECK(q.i >= 1 && q.i + 2 < P.ns);
                v = seis_cubic(data + td, q.i, q.f);
            }
            ACC[s] += q.w * v;
        }
    }
#pragma unroll
    for (int s = 0; s < SEIS_SPT; ++s)
        if (J[s] < je)
            out[(long long)p * P.nt + J[s]] += ACC[s];
}

// Kirchhoff modelling: the adjoint of pstm_migrate without anti-aliasing, spreading each
// image sample into the interpolation stencil of every trace (atomic adds: many output
// samples of many points land on one trace).
extern "C" __global__ void pstm_model(const float* __restrict__ image,
                                      const float4* __restrict__ pairs,
                                      const int* __restrict__ off,
                                      const float* __restrict__ tab,
                                      const int* __restrict__ ib,
                                      const float* __restrict__ iv2,
                                      const SeisPar* __restrict__ Pp,
                                      float* __restrict__ data)
{
    SEIS_THREAD_SAMPLES
    float M[SEIS_SPT];
    bool any = false;
#pragma unroll
    for (int s = 0; s < SEIS_SPT; ++s) {
        M[s] = J[s] < je ? image[(long long)p * P.nt + J[s]] : 0.0f;
        any = any || M[s] != 0.0f;
    }
    if (!any)
        return;
    const int k1 = off[p + 1];
    for (int k = off[p]; k < k1; ++k) {
        const float4 g = pairs[2 * k], h = pairs[2 * k + 1];
        const unsigned t = (unsigned)__float_as_int(h.w);
        float* d = data + (unsigned long long)t * (unsigned)P.ns;
#pragma unroll
        for (int s = 0; s < SEIS_SPT; ++s) {
            if (M[s] == 0.0f)
                continue;
            const SeisPair q = seis_pair(P, h.z, g.x, g.y, g.z, g.w, h.x, h.y, A[s], HA[s],
                                         A2[s], FB[s], IB[s], IV[s], KAA[s], false);
            const float v = q.w * M[s];
            if (v == 0.0f)
                continue;
            const float f = q.f;
            SEIS_CHECK(SEIS_INTERP == 1 ? q.i >= 0 && q.i + 1 < P.ns : q.i >= 1 && q.i + 2 < P.ns);
            if (SEIS_INTERP == 1) {
                atomicAdd(d + q.i, (1.0f - f) * v);
                atomicAdd(d + q.i + 1, f * v);
            } else {
                atomicAdd(d + q.i - 1, -f * (f - 1.0f) * (f - 2.0f) * (1.0f / 6.0f) * v);
                atomicAdd(d + q.i, (f + 1.0f) * (f - 1.0f) * (f - 2.0f) * 0.5f * v);
                atomicAdd(d + q.i + 1, -(f + 1.0f) * f * (f - 2.0f) * 0.5f * v);
                atomicAdd(d + q.i + 2, (f + 1.0f) * f * (f - 1.0f) * (1.0f / 6.0f) * v);
            }
        }
    }
}

// The bare inner step, written plainly as the yardstick of benchmarks/bench_gpu.py: one
// thread per output sample looping over traces; DSR traveltime, aperture test, linear
// interpolation, accumulate; no anti-aliasing, weights or tapers; plain float coordinates.
extern "C" __global__ void pstm_bare(const float* __restrict__ data, const float4* __restrict__ geo,
                                     int ntr, int ns, const float2* __restrict__ pts, int npts,
                                     const float* __restrict__ a2, const float* __restrict__ iv2,
                                     int nt, float t_start, float idt, float ap2,
                                     float* __restrict__ out)
{
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)npts * nt)
        return;
    const int p = (int)(idx / nt), j = (int)(idx - (long long)p * nt);
    const float px = pts[p].x, py = pts[p].y, aa = a2[j], iv = iv2[idx];
    float acc = 0.0f;
    for (int t = 0; t < ntr; ++t) {
        const float4 g = geo[t];
        const float mx = 0.5f * (g.x + g.z) - px, my = 0.5f * (g.y + g.w) - py;
        if (mx * mx + my * my > ap2)
            continue;
        const float dxs = px - g.x, dys = py - g.y, dxr = px - g.z, dyr = py - g.w;
        const float k = (sqrtf(aa + (dxs * dxs + dys * dys) * iv)
                         + sqrtf(aa + (dxr * dxr + dyr * dyr) * iv) - t_start) * idt;
        if (k < 0.0f || k >= ns - 1)
            continue;
        const int i = (int)k;
        const float f = k - i;
        const float* d = data + (long long)t * ns;
        acc += d[i] + f * (d[i + 1] - d[i]);
    }
    out[idx] += acc;
}

#ifdef SEIS_EMULATE
SEIS_EMU_ENTRY(pstm_pairs)
SEIS_EMU_ENTRY(pstm_migrate)
SEIS_EMU_ENTRY(pstm_model)
SEIS_EMU_ENTRY(pstm_bare)
#endif
