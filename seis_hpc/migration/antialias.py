"""The anti-alias integral of the traces (triangle filters by differences of a double
running sum), shared by the Cython path and the NumPy reference.
"""

from __future__ import annotations

import numpy as np

# traces integrated at a time (double_integral): bounds the temporaries
BLOCK = 64


def double_integral(data, pad):
    """Causal then anticausal running sums of each zero-padded trace, float64 (ntr, ns+2pad).

    The second difference ``2 S(k) - S(k-L) - S(k+L)`` of the result is the trace filtered by
    the triangle of half-length L samples and area L^2 (Lumley, Claerbout and Bevc, 1994).
    """
    ntr, ns = data.shape
    out = np.empty((ntr, ns + 2 * pad))
    # BLOCK traces at a time: the padded copy and the first sum of a whole chunk of 4096
    # traces took twice the result again (~70 MB); each trace is summed alone, so the
    # result is the same bit for bit
    for a in range(0, ntr, BLOCK):
        d = np.zeros((min(BLOCK, ntr - a), ns + 2 * pad))
        d[:, pad:pad + ns] = data[a:a + BLOCK]
        s1 = np.cumsum(d, axis=1)
        out[a:a + BLOCK] = np.cumsum(s1[:, ::-1], axis=1)[:, ::-1]
    return out
