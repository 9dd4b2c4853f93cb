"""SEG-Y revision 2 binary header fields that change the file layout.

Binary header (1-based file bytes, big- or little-endian like the rest of the file):

* 3269-3272  samples per trace (int32), used when bytes 3221-3222 hold 0 (more than 65535);
* 3273-3280  sample interval (IEEE double, same units as bytes 3217-3218: us for time data),
  used when bytes 3217-3218 hold 0;
* 3501-3502  revision (major byte, minor byte);
* 3505-3506  number of 3200-byte extended textual headers (-1: count up to ``EndText``);
* 3507-3510  maximum number of additional 240-byte trace headers (trace header extensions)
  after each standard trace header.

Writers disagree on 3507-3510: segyio stores the count as a 2-byte integer in 3507-3508 (a
4-byte read gives ``count << 16``). :func:`trace_extensions` takes whichever reading makes the
file a whole number of traces.
"""

from __future__ import annotations

import numpy as np

TRACE_HEADER_BYTES = 240


def rev2_samples(head: bytes, bo: str) -> int:
    """Samples per trace from bytes 3269-3272 (0 when unset or negative)."""
    return max(int(np.frombuffer(head, f"{bo}i4", 1, 3268)[0]), 0)


def rev2_interval_us(head: bytes, bo: str) -> int:
    """Sample interval (us, rounded) from bytes 3273-3280 (0 when unset or not finite)."""
    v = float(np.frombuffer(head, f"{bo}f8", 1, 3272)[0])
    return int(round(v)) if np.isfinite(v) and 0 < v < 1e9 else 0


def trace_extensions(head: bytes, bo: str, body: int, ns: int, sample_bytes: int) -> int:
    """Number of 240-byte trace header extensions per trace (bytes 3507-3510).

    Parameters
    ----------
    head : bytes
        At least the 3600-byte file header.
    bo : str
        ``">"`` or ``"<"``.
    body : int
        Bytes after the file header and extended textual headers.
    ns, sample_bytes : int
        Samples per trace and bytes per sample.

    Returns
    -------
    int
        The reading of bytes 3507-3510 (4-byte, or 2-byte at 3507) that makes ``body`` a whole
        number of traces; 0 when none does (the caller then reports the size mismatch).
    """
    v32 = int(np.frombuffer(head, f"{bo}u4", 1, 3506)[0])
    v16 = int(np.frombuffer(head, f"{bo}u2", 1, 3506)[0])
    for n in dict.fromkeys((v32, v16)):
        if 0 < n < 1000:
            tb = TRACE_HEADER_BYTES * (1 + n) + ns * sample_bytes
            if body >= tb and body % tb == 0:
                return n
    return 0
