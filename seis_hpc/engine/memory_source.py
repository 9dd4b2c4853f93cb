"""Traces held in memory behind the same interface as a survey's trace index.

Used by the scaling benchmark (no SEG-Y needed) and by programs that build a survey on the fly.
"""

from __future__ import annotations

import numpy as np

HEADERS = ("sx", "sy", "rx", "ry", "mx", "my", "offset", "source_id", "ffid", "byte_offset")


class ArraySource:
    """Traces in a float32 array with their geometry, read by trace number.

    Parameters
    ----------
    data : numpy.ndarray
        float32 ``(n_traces, ns)``.
    dt : float
        Sample interval (s).
    sx, sy, rx, ry : array_like
        Source and receiver coordinates (m); midpoints and offsets follow.
    source_id : array_like, optional
        Shot number of each trace (default: one shot per distinct source position).
    t_start : float
        Time of the first sample (s).
    """

    def __init__(self, data: np.ndarray, dt: float, sx: np.ndarray, sy: np.ndarray,
                 rx: np.ndarray, ry: np.ndarray, source_id: np.ndarray | None = None,
                 t_start: float = 0.0):
        self.data = np.asarray(data, dtype=np.float32)
        self.n_traces, self.ns = self.data.shape
        self.dt = float(dt)
        self.t_start = float(t_start)
        sx, sy, rx, ry = (np.asarray(a, dtype=np.float64) for a in (sx, sy, rx, ry))
        if source_id is None:
            _, source_id = np.unique(np.column_stack([sx, sy]), axis=0, return_inverse=True)
        self._h = {
            "sx": sx, "sy": sy, "rx": rx, "ry": ry,
            "mx": 0.5 * (sx + rx), "my": 0.5 * (sy + ry),
            "offset": np.hypot(rx - sx, ry - sy),
            "source_id": np.asarray(source_id).ravel().astype(np.int64),
            "ffid": np.asarray(source_id).ravel().astype(np.int64),
            "byte_offset": 3600 + np.arange(self.n_traces, dtype=np.int64) * (240 + 4 * self.ns),
        }

    def __getitem__(self, name: str) -> np.ndarray:
        return self._h[name]

    def keys(self) -> tuple[str, ...]:
        """Header names."""
        return HEADERS

    def read_traces(self, ids: np.ndarray) -> np.ndarray:
        """float32 ``(len(ids), ns)`` copies of the traces ``ids``."""
        return self.data[np.asarray(ids, dtype=np.int64)]
