"""Physical limits of the input, and the checks that refuse values beyond them.

A value outside these limits is not a processing choice but a broken file or a typo (a
coordinate scalar of +10000 instead of -100, a velocity in km/s or mm/s, a sample interval in
the wrong unit): it is refused with one :class:`~seis_hpc.errors.SeisError` naming the file
and the field, instead of producing an all-zero image. The limits are generous: every real
survey lies well inside them.
"""

from __future__ import annotations

import os

import numpy as np

from seis_hpc.errors import SeisError

#: Lowest and highest RMS velocity (m/s) accepted: below the slowest near-surface sediments
#: (~300 m/s, slower than sound in air is impossible for a P wave in rock or water) and above
#: any Vrms met in the crust.
VRMS_MIN, VRMS_MAX = 300.0, 10_000.0
#: Largest coordinate (m) after the SEG-Y scalar: 1e8 m is 2.5 times round the Earth.
COORD_MAX = 1e8
#: Shortest sample interval (s): 10 us, five times finer than any seismic recorder.
DT_MIN = 1e-5


def read_text(path: str | os.PathLike, what: str) -> str:
    """The text of a UTF-8 file; a file that is not UTF-8 text is a :class:`SeisError`.

    Parameters
    ----------
    path : path-like
        The file.
    what : str
        What the file should be (``"flow file (TOML)"``), for the message.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SeisError(f"line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                        f"{exc.start}); expected a {what}", path) from None


def check_vrms(value: float, where: str, path) -> None:
    """Refuse an RMS velocity (m/s) outside :data:`VRMS_MIN`..:data:`VRMS_MAX`."""
    if not VRMS_MIN <= value <= VRMS_MAX:
        raise SeisError(f"{where}: vrms {value:g} m/s is outside the physical range "
                        f"{VRMS_MIN:g}..{VRMS_MAX:g} m/s (wrong unit?)", path)


def check_output_axis(dt, tmax, *, dt_name: str = "--dt", tmax_name: str = "--tmax") -> int:
    """Number of samples of an output time axis 0..tmax step dt, refusing impossible values.

    Parameters
    ----------
    dt, tmax : float
        Sample interval and last time (s).
    dt_name, tmax_name : str
        The parameters' names, for the message.

    Returns
    -------
    int
        Samples of the axis (``floor(tmax / dt) + 1``).
    """
    if not (np.isfinite(dt) and dt > 0):
        raise SeisError(f"{dt_name} must be > 0 s (got {dt:g})")
    if dt < DT_MIN:
        raise SeisError(f"{dt_name} {dt:g} s is below the shortest sample interval "
                        f"{DT_MIN * 1e6:g} us (wrong unit?)")
    if not (np.isfinite(tmax) and tmax > 0):
        raise SeisError(f"{tmax_name} must be > 0 s (got {tmax:g})")
    return int(np.floor(tmax / dt + 1e-9)) + 1


def gib(n: float) -> str:
    """``n`` bytes in GiB, one decimal (``"19.2 GiB"``)."""
    return f"{n / 2**30:.1f} GiB"


def available_memory() -> int:
    """Bytes of memory this process may still use (``MemAvailable``; physical memory where
    /proc is missing)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # pragma: no cover - neither /proc nor sysconf
        return 1 << 62


def check_in_memory(nbytes: int, what: str, shape: str, advice: str = "") -> None:
    """Refuse an array of ``nbytes`` that this machine's free memory cannot hold.

    Parameters
    ----------
    nbytes : int
        Estimated bytes (all arrays the step holds at once).
    what : str
        What they are (``"the stack"``).
    shape : str
        How the figure comes about (``"4000 bins x 1501 samples x 4 bytes x 3"``).
    advice : str
        What to change, appended after ``;``.
    """
    free = available_memory()
    if nbytes > free:
        raise SeisError(f"would need {gib(nbytes)} for {what} ({shape}); only {gib(free)} of "
                        f"memory is available" + (f"; {advice}" if advice else ""))
