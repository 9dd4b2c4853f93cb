"""Kirchhoff prestack time migration (PSTM) and its exact adjoint, Kirchhoff modelling.

The image at output point x and two-way time t0 is the weighted sum over traces of the data
read at the DSR traveltime (see :mod:`seis_hpc.migration.traveltime`):

    I(x, t0) = sum_traces  A(m) W(x, t0) F_L[d](t_dsr(x, t0))

* **Aperture** ``A``: horizontal distance (m) from the output point to the trace *midpoint*
  (s + r)/2, cosine-tapered over the outer ``taper`` fraction of ``aperture``.
* **Dip (operator) angle**: ``tan(theta) = |dm| / (v t0 / 2)`` with dm the horizontal distance
  from the output point to the trace midpoint (the straight-ray angle to a point at depth
  v t0 / 2 seen from the midpoint), limited to ``max_angle`` (degrees from vertical) and
  cosine-tapered over the outer ``taper`` fraction of it: a time-dependent aperture
  ``v (t0/2) tan(max_angle)`` that bounds the operator dips (aliasing, steep noise) without
  touching the offsets. A flat reflector's stationary point (dm = 0) is inside it at every
  offset and time, so shallow reflectors keep their far offsets. (Before issue 16 the larger
  leg's *emergence* angle was limited, which in 100 m of water removed most offsets'
  specular energy from the seafloor.)
* **Weights** ``W``: ``"obliquity"`` factor ``c = (cos theta_s + cos theta_r) / 2`` (which is
  also dt/dt0) and ``"spreading"`` factor ``(t0 / (2 sqrt(t_s t_r)))^p`` with p = 1 in 3D and
  p = 1/2 in 2D. At the stationary point of a flat reflector (t_s = t_r = t/2) they give
  W = (t0/t)^(1+p), which cancels the offset dependence of the stationary-phase amplitude of
  the summation (t^(1+p)/t0 up to factors of t0 and v): with ``"spreading+obliquity"`` a flat
  reflector of constant data amplitude (data after divergence correction) images with the
  same amplitude in every offset class. Both factors are 1 for a vertical zero-offset ray.
* **Stretch mute** (the offset limit): the operator stretches the wavelet by 1/c; a sample is
  muted when ``1/c - 1 > stretch_mute``, cosine-tapered over the outer ``taper`` fraction of
  the obliquity angle ``acos(c)`` (with 1.0 the former 54-60 degree emergence taper of a flat
  reflector's stationary ray). At a flat reflector's stationary point 1/c = t / t0, so a
  reflector uses every offset whose NMO stretch ``t/t0 - 1`` is below the mute (the seafloor
  in 100 m of water with 0.5: offsets up to 224 m).
* **Anti-aliasing** ``F_L`` (Lumley, Claerbout & Bevc, 1994): a triangle filter of half-length
  ``L = |grad_x t_dsr| dx_aa / dt`` samples (the operator's local time dip times the output
  bin spacing), applied as a combination of three samples of the trace integrated causally
  and then anticausally, normalised by L^2. For L <= 1 the data are read directly (the two
  coincide at L = 1). L is capped at ``aa_max`` samples.
* **Rho filter** (``rho=True``; on by default in :func:`seis_hpc.migration.job.migrate` and
  ``seis-hpc pstm``): the data are first filtered by :func:`rho_filter`, so that a zero-phase
  reflection images zero-phase at its time (without it the summation rotates the wavelet by
  45 degrees in 2D, 90 in 3D: -2.4 to -3 ms on every reflector of a 30 Hz 2D line).
  :func:`kirchhoff_model` with ``rho=True`` applies the adjoint filter after modelling, so the
  pair stays exact adjoints.
* **Timing**: data sample k is at ``t_start + k dt``; the data are read at exactly the DSR
  time (linear or 4-point Lagrange interpolation), so a diffractor at (x, t0) images at t0.
  The t0 = 0 sample (and any t0 <= 0) is not imaged.

The image is the plain sum over traces, not normalised by fold: this is the raw operator
(the adjoint of :func:`kirchhoff_model`). The deliverables (``seis-hpc pstm``, ``migstack``,
:func:`seis_hpc.migrate`) divide it, when they write it, by the operator's measured response
to a flat reflector of unit amplitude (a diagonal scaling, :mod:`seis_hpc.engine.normalise`),
so that a flat reflector has the amplitude of its NMO stack; ``normalise="none"`` gives this
sum. 2D is the same call with all y = 0 (more generally, collinear points, sources and
receivers: detected automatically).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.geometry import offset_classes
from seis_hpc.migration.traveltime import (
    check_geometry,
    max_distance,
    sparse_knots,
)

WEIGHTS = ("none", "spreading", "obliquity", "spreading+obliquity")
INTERP = {"linear": 1, "cubic": 3}
BACKENDS = ("cython", "numpy", "gpu")
# Trace blocks of the Cython migration kernel: a block of float32 traces (256 x ns x 4 bytes,
# about 1 MiB for 1000 samples) stays in L2/L3 while all threads sweep their output points.
TRACE_BLOCK = 256


# traces rho-filtered at a time (rho_filter): bounds the FFT's temporaries
RHO_CHUNK = 64


def rho_filter(data, dt, dims=3, adjoint=False) -> np.ndarray:
    """Kirchhoff pre-filter for reflectors: ``(-i omega)^((dims-1)/2)`` applied to each trace.

    Around the stationary point of a reflection the summation of :func:`pstm` over one (2D)
    or two (3D) midpoint directions is an anticausal (half-)integration of the wavelet, i.e.
    a spectral factor ``(-i omega)^-((dims-1)/2)`` (with ``d/dt <-> +i omega``); filtering the
    data first makes a zero-phase reflection wavelet image zero-phase at the right time. In
    3D the filter is ``-d/dt``. (A point diffractor focuses without it: at its apex all traces
    add in phase.)

    Parameters
    ----------
    data : array_like, shape (ntr, ns)
        Traces.
    dt : float
        Sample interval (s).
    dims : {2, 3}
        Dimensionality of the migration.
    adjoint : bool
        Apply the exact adjoint (the conjugate filter ``(i omega)^((dims-1)/2)``, with the same
        zero padding), as :func:`kirchhoff_model` does with ``rho=True``.

    Returns
    -------
    numpy.ndarray, shape (ntr, ns)
        Filtered traces, same dtype as float ``data`` (float32 otherwise); units of data per
        s^((dims-1)/2).
    """
    d = np.asarray(data)
    if d.ndim != 2:
        raise SeisError(f"data: expected shape (ntr, ns), got {d.shape}")
    if dims not in (2, 3):
        raise SeisError(f"dims: expected 2 or 3, got {dims!r}")
    if not (np.isfinite(dt) and dt > 0):
        raise SeisError(f"dt: sample interval must be > 0 s (got {dt})")
    dtype = d.dtype if d.dtype in (np.float32, np.float64) else np.float32
    ns = d.shape[1]
    nfft = 2 * ns  # zero padding keeps the wrap-around of the filter off the trace
    omega = 2 * np.pi * np.fft.rfftfreq(nfft, dt)
    filt = (-1j * omega) ** ((dims - 1) / 2)
    if adjoint:
        filt = np.conj(filt)
    # RHO_CHUNK traces at a time: the FFT's temporaries are ~12x the
    # float32 traces (whole, a 4096-trace chunk of 1,000 samples took ~200 MB more). Each
    # trace is transformed alone, so the result is the same bit for bit.
    out = np.empty((d.shape[0], ns), dtype)
    for a in range(0, d.shape[0], RHO_CHUNK):
        spec = np.fft.rfft(d[a:a + RHO_CHUNK], nfft, axis=1) * filt
        out[a:a + RHO_CHUNK] = np.fft.irfft(spec, nfft, axis=1)[:, :ns]
    return out


def default_dx_aa(points: np.ndarray) -> float:
    """Output bin spacing (m) for anti-aliasing: median distance between consecutive points."""
    if points.shape[0] < 2:
        raise SeisError("dx_aa: give the output bin spacing (m) for anti-aliasing a single point")
    d = np.hypot(*np.diff(points, axis=0).T)
    d = d[d > 0]
    if d.size == 0:
        raise SeisError("dx_aa: all output points coincide; give the bin spacing (m)")
    return float(np.median(d))


def is_2d(points, sx, sy, rx, ry) -> bool:
    """True when all output points, sources and receivers lie on one straight line."""
    xy = np.concatenate([points, np.column_stack([sx, sy]), np.column_stack([rx, ry])])
    xy = xy - xy.mean(axis=0)
    sv = np.linalg.svd(xy, compute_uv=False)
    return bool(sv.size < 2 or sv[1] <= 1e-9 * max(sv[0], 1e-300))


@dataclass(frozen=True)
class PstmParams:
    """The migration parameters of :func:`pstm` that do not depend on the data, checked once.

    A job validates them on one rank before any work (:meth:`check`), then hands
    :meth:`kernel_args` to every rank's :func:`pstm` calls.

    Parameters
    ----------
    aperture : float
        Maximum distance (m) from output point to trace midpoint (inf: unlimited).
    max_angle : float
        Maximum dip (operator) angle (degrees from vertical), in (0, 90]: ``tan = |midpoint -
        output point| / (v t0 / 2)``.
    taper : float
        Fraction of the aperture, of the dip-angle range and of the stretch mute's obliquity
        angle ``acos(c)`` tapered by a half cosine, in [0, 1).
    antialias : bool
        Apply the triangle anti-aliasing filter.
    weights : {"none", "spreading", "obliquity", "spreading+obliquity"}
        Amplitude weights.
    interp : {"linear", "cubic"}
        Interpolation of the data at the traveltime.
    stretch_mute : float, optional
        Maximum wavelet stretch fraction ``1/c - 1`` (> 0); None for no mute.
    backend : {"cython", "numpy", "gpu"}
        Kernel backend.
    threads : int, optional
        OpenMP threads per process (>= 1); None: the OpenMP default.
    rho : bool
        Rho-filter the data before migrating (see :func:`rho_filter`).
    """

    aperture: float = np.inf
    max_angle: float = 90.0
    taper: float = 0.1
    antialias: bool = True
    weights: str = "spreading+obliquity"
    interp: str = "linear"
    stretch_mute: float | None = None
    backend: str = "cython"
    threads: int | None = None
    rho: bool = False

    def validate(self) -> PstmParams:
        """Raise :class:`SeisError` naming the first bad parameter; return ``self``."""
        if not self.aperture > 0:
            raise SeisError(f"aperture: must be > 0 m (got {self.aperture})")
        if not 0 < self.max_angle <= 90:
            raise SeisError(f"max_angle: must be in (0, 90] degrees (got {self.max_angle})")
        if not 0 <= self.taper < 1:
            raise SeisError(f"taper: fraction must be in [0, 1) (got {self.taper})")
        if self.weights not in WEIGHTS:
            raise SeisError(f"weights: expected one of {', '.join(WEIGHTS)}, "
                            f"got {self.weights!r}")
        if self.interp not in INTERP:
            raise SeisError(f"interp: expected one of {', '.join(INTERP)}, got {self.interp!r}")
        if self.backend not in BACKENDS:
            raise SeisError(f"backend: expected one of {', '.join(BACKENDS)}, "
                            f"got {self.backend!r}")
        if self.threads is not None and int(self.threads) < 1:
            raise SeisError(f"threads: must be >= 1 (got {self.threads})")
        if self.stretch_mute is not None and not self.stretch_mute > 0:
            raise SeisError(f"stretch_mute: must be > 0 (got {self.stretch_mute})")
        return self

    def check(self, points, time, vrms, dt: float, t_start: float = 0.0) -> PstmParams:
        """:meth:`validate`, and check the output points (m), times (s), Vrms (m/s) of shape
        (npts, nt) and the input's sample interval ``dt`` and first time ``t_start`` (s) as
        :func:`pstm` would (a job checks a few points once, before any work)."""
        _setup(points, time, vrms, [0.0], [0.0], [0.0], [0.0], dt, t_start, self.aperture,
               self.max_angle, self.taper, self.weights, self.interp, self.backend, None,
               self.threads)
        return self.validate()

    def kernel_args(self) -> dict:
        """Keyword arguments of :func:`pstm` (``threads`` only when set, ``backend`` only when
        not the default: the job's parameter hash is the same as before either existed)."""
        args = {"aperture": self.aperture, "max_angle": self.max_angle, "taper": self.taper,
                "antialias": self.antialias, "weights": self.weights, "interp": self.interp,
                "stretch_mute": self.stretch_mute}
        if self.rho:
            args["rho"] = True
        if self.threads:
            args["threads"] = self.threads
        if self.backend != "cython":
            args["backend"] = self.backend
        return args


def _setup(points, time, vrms, sx, sy, rx, ry, dt, t_start, aperture, max_angle, taper,
           weights, interp, backend, dims, threads):
    """Check the shared inputs; return arrays and the parameter dict of the kernels."""
    pts, t, sx, sy, rx, ry, iv2 = check_geometry(points, time, vrms, sx, sy, rx, ry)
    if not (np.isfinite(dt) and dt > 0):
        raise SeisError(f"dt: sample interval must be > 0 s (got {dt})")
    if not np.isfinite(t_start):
        raise SeisError(f"t_start: must be finite (got {t_start})")
    PstmParams(aperture=aperture, max_angle=max_angle, taper=taper, weights=weights,
               interp=interp, backend=backend).validate()
    if dims is None:
        dims = 2 if is_2d(pts, sx, sy, rx, ry) else 3
    if dims not in (2, 3):
        raise SeisError(f"dims: expected 2 or 3, got {dims!r}")
    if threads is None:
        from seis_hpc.kernels import openmp

        threads = openmp.max_threads()
    if int(threads) < 1:
        raise SeisError(f"threads: must be >= 1 (got {threads})")
    p = {
        "dt": float(dt), "t_start": float(t_start), "aperture": float(aperture),
        "taper": float(taper), "max_angle_rad": math.radians(max_angle),
        "obliquity": int("obliquity" in weights), "spreading": int("spreading" in weights),
        "spread_pow": 1.0 if dims == 3 else 0.5, "interp": INTERP[interp],
        "c_mute": 0.0, "antialias": 0, "dx_aa": 0.0, "aa_max": 0.0, "pad": 0,
        "threads": int(threads), "dims": int(dims),
    }
    a = 0.5 * t
    return pts, t, a, a * a, iv2, sx, sy, rx, ry, p


def _float_array(name, arr, shape, dtype=None) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise SeisError(f"{name}: expected shape {shape}, got {arr.shape}")
    if dtype is None:
        dtype = np.float64 if arr.dtype == np.float64 else np.float32
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise SeisError(f"{name}: trace/point {bad[0]}, sample {bad[1]}: value is not finite")
    return arr


def pstm(data, dt, sx, sy, rx, ry, points, time, vrms, *, t_start=0.0, aperture=np.inf,
         max_angle=90.0, taper=0.1, antialias=True, weights="spreading+obliquity",
         interp="linear", stretch_mute=None, out=None, backend="cython", threads=None,
         dx_aa=None, aa_max=32.0, sparse_t0=None, dims=None, rho=False) -> np.ndarray:
    """Kirchhoff prestack time migration of traces into output points (see module doc).

    Parameters
    ----------
    data : array_like, shape (ntr, ns)
        Input traces, float32 (float64 keeps float64 throughout, for adjoint tests).
    dt : float
        Sample interval (s).
    sx, sy, rx, ry : array_like, shape (ntr,)
        Source and receiver coordinates (m).
    points : array_like, shape (npts, 2)
        Output positions x, y (m), e.g. ``BinGrid.points()`` or a tile of it.
    time : array_like, shape (nt,)
        Output two-way vertical times t0 (s), increasing (regular in practice).
    vrms : array_like, shape (npts, nt)
        RMS velocity (m/s) at each output sample.
    t_start : float
        Time of the first data sample (s).
    aperture : float
        Maximum distance (m) from output point to trace midpoint.
    max_angle : float
        Maximum dip (operator) angle (degrees from vertical), see the module doc.
    taper : float
        Fraction of the aperture, of the dip-angle range and of the stretch mute's obliquity
        angle ``acos(c)`` tapered by a half cosine.
    antialias : bool
        Apply the triangle anti-aliasing filter.
    weights : {"none", "spreading", "obliquity", "spreading+obliquity"}
        Amplitude weights.
    interp : {"linear", "cubic"}
        Interpolation of the data at the traveltime (cubic: 4-point Lagrange).
    stretch_mute : float, optional
        Maximum wavelet stretch fraction ``1/c - 1``; None for no mute.
    out : numpy.ndarray, shape (npts, nt), optional
        Image (dtype of the computation) to accumulate into; returned.
    backend : {"cython", "numpy", "gpu"}
        Cython kernel, NumPy reference, or the CUDA kernels of :mod:`seis_hpc.gpu` (float32
        data only; needs CuPy and a GPU, or ``SEIS_HPC_GPU_EMULATE=1`` for the CPU emulator).
    threads : int, optional
        OpenMP threads (None: the OpenMP default, i.e. ``OMP_NUM_THREADS``; not used by "gpu").
    dx_aa : float, optional
        Output bin spacing (m) for anti-aliasing; default: median spacing of ``points``.
    aa_max : float
        Maximum triangle half-length (samples).
    sparse_t0 : int or "auto", optional
        Evaluate traveltimes, weights and AA lengths exactly on the knots of
        :func:`seis_hpc.migration.traveltime.sparse_knots` and linearly in between. A CPU economy:
        ``backend="gpu"`` always evaluates exactly (what the knots approximate).
    dims : {2, 3}, optional
        Spreading law and rho filter; default: 2 when points and traces are collinear, else 3.
    rho : bool
        Filter the data by :func:`rho_filter` first (``dims``), for zero-phase reflector
        images; leave False for data filtered already.

    Returns
    -------
    numpy.ndarray, shape (npts, nt)
        The image summed over traces (float32 for float32 data).
    """
    pts, t, a, a2, iv2, sx, sy, rx, ry, p = _setup(
        points, time, vrms, sx, sy, rx, ry, dt, t_start, aperture, max_angle, taper, weights,
        interp, backend, dims, threads)
    d = np.asarray(data)
    if d.ndim != 2 or d.shape[0] != sx.size:
        raise SeisError(f"data: expected shape (ntr={sx.size}, ns), got {d.shape}")
    d = _float_array("data", d, d.shape)
    if rho:
        d = rho_filter(d, p["dt"], dims=p["dims"])
    if stretch_mute is not None:
        if not stretch_mute > 0:
            raise SeisError(f"stretch_mute: must be > 0 (got {stretch_mute})")
        p["c_mute"] = 1.0 / (1.0 + float(stretch_mute))
    if antialias:
        p["antialias"] = 1
        p["dx_aa"] = float(dx_aa) if dx_aa is not None else default_dx_aa(pts)
        if not p["dx_aa"] >= 0:
            raise SeisError(f"dx_aa: must be >= 0 m (got {dx_aa})")
        if not 1 <= aa_max <= 4096:
            raise SeisError(f"aa_max: must be in [1, 4096] samples (got {aa_max})")
        p["aa_max"] = float(aa_max)
        p["pad"] = int(math.ceil(aa_max)) + 2
    max_offset = float(np.hypot(rx - sx, ry - sy).max()) if sx.size else 0.0
    knots = (np.zeros(0, np.int32) if sparse_t0 is None
             else sparse_knots(t, p["dt"], sparse_t0, iv2=iv2,
                               d_max=min(max_distance(pts, sx, sy, rx, ry),
                                         p["aperture"] + 0.5 * max_offset)))
    shape = (pts.shape[0], t.size)
    if out is None:
        out = np.zeros(shape, dtype=d.dtype)
    elif (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != d.dtype
          or not out.flags.c_contiguous):
        raise SeisError(f"out: expected a C-contiguous {d.dtype} array of shape {shape}")
    if backend == "gpu":
        from seis_hpc.gpu import pstm as gpu_pstm

        if d.dtype != np.float32:
            raise SeisError("data: backend 'gpu' computes in float32; give float32 data")
        return gpu_pstm.migrate(p, d, sx, sy, rx, ry, pts, t, a, iv2, out)
    if backend == "numpy":
        from seis_hpc.migration import reference as _reference

        out += _reference.pstm_numpy(p, d, sx, sy, rx, ry, pts, a, a2, iv2,
                                     knots if knots.size else None).astype(out.dtype)
        return out
    from seis_hpc.kernels import pstm as kern
    from seis_hpc.migration.antialias import double_integral

    s2 = (double_integral(d, p["pad"]) if p["antialias"]
          else np.zeros((1, 1)))
    kern.pstm_3d(d, s2, sx, sy, rx, ry, pts, a, a2, iv2, out, knots, p, TRACE_BLOCK)
    return out


def pstm_gathers(data, dt, sx, sy, rx, ry, points, time, vrms, offset_edges,
                 **kwargs) -> np.ndarray:
    """Offset-class common-image gathers: :func:`pstm` of each offset class separately.

    Parameters
    ----------
    data, dt, sx, sy, rx, ry, points, time, vrms
        As for :func:`pstm`.
    offset_edges : array_like, shape (n_class + 1,)
        Class edges (m) of the source-receiver offset, see :func:`offset_classes`.
    **kwargs
        Any keyword of :func:`pstm` except ``out``.

    Returns
    -------
    numpy.ndarray, shape (n_class, npts, nt)
        One image per offset class; traces outside the edges are not migrated.
    """
    if "out" in kwargs:
        raise SeisError("pstm_gathers: 'out' is not accepted (one image per class)")
    sx, sy, rx, ry = (np.asarray(v, dtype=np.float64) for v in (sx, sy, rx, ry))
    cls = offset_classes(np.hypot(rx - sx, ry - sy), offset_edges)
    d = np.asarray(data)
    n_class = len(offset_edges) - 1
    images = []
    for c in range(n_class):
        sel = np.flatnonzero(cls == c)
        images.append(pstm(d[sel], dt, sx[sel], sy[sel], rx[sel], ry[sel], points, time, vrms,
                           **kwargs))
    return np.stack(images)


def kirchhoff_model(image, points, time, vrms, sx, sy, rx, ry, ns, dt, *, t_start=0.0,
                    aperture=np.inf, max_angle=90.0, taper=0.1, weights="spreading+obliquity",
                    interp="linear", backend="cython", threads=None, dims=None,
                    rho=False) -> np.ndarray:
    """Kirchhoff modelling: the exact adjoint of :func:`pstm` with ``antialias=False``.

    Parameters
    ----------
    image : array_like, shape (npts, nt)
        Reflectivity image (float32; float64 keeps float64).
    points, time, vrms, sx, sy, rx, ry
        As for :func:`pstm`.
    ns : int
        Samples per output trace.
    dt : float
        Output sample interval (s).
    t_start, aperture, max_angle, taper, weights, interp, backend, threads, dims, rho
        As for :func:`pstm` (same values give the adjoint pair; ``rho`` applies the adjoint
        of the rho filter to the modelled traces).

    Returns
    -------
    numpy.ndarray, shape (ntr, ns)
        Modelled traces (float32 for a float32 image).
    """
    pts, t, a, a2, iv2, sx, sy, rx, ry, p = _setup(
        points, time, vrms, sx, sy, rx, ry, dt, t_start, aperture, max_angle, taper, weights,
        interp, backend, dims, threads)
    m = _float_array("image", image, (pts.shape[0], t.size))
    if int(ns) != ns or ns < 1:
        raise SeisError(f"ns: number of samples must be >= 1 (got {ns})")
    ns = int(ns)
    if backend == "gpu":
        from seis_hpc.gpu import pstm as gpu_pstm

        if m.dtype != np.float32:
            raise SeisError("image: backend 'gpu' computes in float32; give a float32 image")
        data = gpu_pstm.model(p, m, pts, t, a, iv2, sx, sy, rx, ry, ns)
    elif backend == "numpy":
        from seis_hpc.migration import reference as _reference

        data = _reference.model_numpy(p, m, pts, a, a2, iv2, sx, sy, rx, ry, ns).astype(m.dtype)
    else:
        from seis_hpc.kernels import pstm as kern

        data = np.zeros((sx.size, ns), dtype=m.dtype)
        kern.model_3d(m, pts, a, a2, iv2, sx, sy, rx, ry, data, p)
    if rho:
        data = rho_filter(data, p["dt"], dims=p["dims"], adjoint=True)
    return data
