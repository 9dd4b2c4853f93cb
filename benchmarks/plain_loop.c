/* The plain C ceiling of the PSTM inner loop: DSR traveltime + linear interpolation +
 * accumulate, one thread, no anti-aliasing, weights or tapers (aperture test only).
 * Built by benchmarks/bench_kernels.py with the kernels' flags:
 *     gcc -O3 -march=native -ffp-contract=fast -fno-math-errno -fno-trapping-math -fPIC -shared
 * (no -ffast-math; -fno-math-errno lets sqrt compile to the instruction, without a call for
 * negative arguments, and -fno-trapping-math lets the compiler if-convert; neither changes a
 * computed value).
 * Same conventions as kernels/pstm.pyx: a2[j] = (t0/2)^2, iv2[p*nt + j] = 1/v^2. */
#include <math.h>

void plain_pstm(const float *data, int ntr, int ns, double dt, double t_start,
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
