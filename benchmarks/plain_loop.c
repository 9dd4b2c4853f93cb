/* Yardsticks for the PSTM kernel: the plain C loop of its inner physics, DSR traveltime +
 * linear interpolation + accumulate, one thread, no anti-aliasing, weights or tapers
 * (aperture test only). Same conventions as kernels/pstm.pyx: a2[j] = (t0/2)^2,
 * iv2[p*nt + j] = 1/v^2, data sample k at t_start + k dt.
 *
 * plain_pstm_f32 is the ceiling: what a C programmer writes for speed, float32 throughout,
 * the output samples vectorised (omp simd), sqrtf, the read index clamped instead of
 * branched and the sample kept only where the read is inside the trace. Built by
 * benchmarks/bench_kernels.py with whatever flags help it (it is a yardstick, not the
 * product):  gcc -O3 -march=native -ffast-math -fopenmp-simd -fPIC -shared
 *
 * plain_pstm_f64 is the former ceiling, kept as a second line: the same loop in double
 * precision, scalar (the branch on the read position keeps it from vectorising). */
#include <math.h>

void plain_pstm_f32(const float *restrict data, int ntr, int ns, float dt, float t_start,
                    const float *sx, const float *sy, const float *rx, const float *ry,
                    const float *points, int npts, const float *restrict a2, int nt,
                    const float *restrict iv2, float aperture, float *restrict out)
{
    const float idt = 1.0f / dt, ap2 = aperture * aperture, kmax = (float)(ns - 1);
    for (int p = 0; p < npts; p++) {
        const float px = points[2 * p], py = points[2 * p + 1];
        const float *restrict iv = iv2 + (long)p * nt;
        float *restrict o = out + (long)p * nt;
        for (int tr = 0; tr < ntr; tr++) {
            const float mx = 0.5f * (sx[tr] + rx[tr]) - px;
            const float my = 0.5f * (sy[tr] + ry[tr]) - py;
            if (mx * mx + my * my > ap2)
                continue;
            const float dxs = px - sx[tr], dys = py - sy[tr];
            const float dxr = px - rx[tr], dyr = py - ry[tr];
            const float ds2 = dxs * dxs + dys * dys, dr2 = dxr * dxr + dyr * dyr;
            const float *restrict d = data + (long)tr * ns;
#pragma omp simd
            for (int j = 0; j < nt; j++) {
                const float k = (sqrtf(a2[j] + ds2 * iv[j]) + sqrtf(a2[j] + dr2 * iv[j])
                                 - t_start) * idt;
                const int ok = (k >= 0.0f) & (k < kmax);
                const float kc = ok ? k : 0.0f;
                const int i = (int)kc;
                const float f = kc - (float)i;
                const float v = d[i] + f * (d[i + 1] - d[i]);
                o[j] += ok ? v : 0.0f;
            }
        }
    }
}

void plain_pstm_f64(const float *data, int ntr, int ns, double dt, double t_start,
                    const double *sx, const double *sy, const double *rx, const double *ry,
                    const double *points, int npts, const double *a2, int nt,
                    const double *iv2, double aperture, float *out)
{
    const double idt = 1.0 / dt;
    const double ap2 = aperture * aperture;
    for (int p = 0; p < npts; p++) {
        const double px = points[2 * p], py = points[2 * p + 1];
        const double *iv = iv2 + (long)p * nt;
        float *o = out + (long)p * nt;
        for (int tr = 0; tr < ntr; tr++) {
            const double mx = 0.5 * (sx[tr] + rx[tr]) - px;
            const double my = 0.5 * (sy[tr] + ry[tr]) - py;
            if (mx * mx + my * my > ap2)
                continue;
            const double dxs = px - sx[tr], dys = py - sy[tr];
            const double dxr = px - rx[tr], dyr = py - ry[tr];
            const double ds2 = dxs * dxs + dys * dys, dr2 = dxr * dxr + dyr * dyr;
            const float *d = data + (long)tr * ns;
            for (int j = 0; j < nt; j++) {
                const double k = (sqrt(a2[j] + ds2 * iv[j]) + sqrt(a2[j] + dr2 * iv[j])
                                  - t_start) * idt;
                if (k < 0.0 || k >= ns - 1)
                    continue;
                const int i = (int)k;
                const double f = k - i;
                o[j] += (float)(d[i] + f * (d[i + 1] - d[i]));
            }
        }
    }
}
