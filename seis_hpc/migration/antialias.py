"""The anti-alias integral of the traces (triangle filters by differences of a double
running sum), shared by the Cython path and the NumPy reference.
"""

from __future__ import annotations

import numpy as np


def double_integral(data, pad):
    """Causal then anticausal running sums of each zero-padded trace, float64 (ntr, ns+2pad).

    The second difference ``2 S(k) - S(k-L) - S(k+L)`` of the result is the trace filtered by
    the triangle of half-length L samples and area L^2 (Lumley, Claerbout and Bevc, 1994).
    """
    ntr, ns = data.shape
    d = np.zeros((ntr, ns + 2 * pad))
    d[:, pad:pad + ns] = data
    s1 = np.cumsum(d, axis=1)
    return np.ascontiguousarray(np.cumsum(s1[:, ::-1], axis=1)[:, ::-1])
