"""Built-in synthetic marine surveys with known truth, for the demo, the tests and benchmarks.

A survey is made from acquisition parameters like the target survey's (dual flip-flop sources,
N streamers x length x group interval, shot interval, sail lines, 2 ms sampling) and a v(z)
medium with about 100 m of water. Events:

* **diffractors** at known (x, y, t0), modelled by :func:`seis_hpc.migration.pstm.kirchhoff_model`
  with ``rho=True`` (the adjoint of the PSTM operator with its rho filter, as ``seis-hpc pstm``
  migrates by default), so a correct migration collapses them to their position, zero-phase
  at their t0 (their wavelet on the traces is :func:`diffractor_wavelet`);
* **flat and dipping reflectors**, modelled analytically: a flat reflector at two-way time t0
  arrives at ``t = sqrt(t0^2 + h^2 / vrms(t0)^2)`` (h = source-receiver offset, m); a dipping
  plane by the image-source construction in a constant velocity ``vrms(t0)``;
* optionally the **water-bottom reflection, its free-surface multiples and peg-legs**, and
  **noise** (random, swell bursts below 15 Hz, spikes, dead traces) on recorded traces;
* optionally (``Acquisition.ghosts``, on in the ``marine2d-ghost`` preset) the **source and
  receiver ghosts** of every event: the free-surface reflection (coefficient -1) above the
  source (depth ``source_depth``, 6 m) and the streamer (``streamer_depth``, 8 m), delayed by
  ``2 z cos(theta) / v_water`` with theta the event's emergence angle at that end
  (``sin theta = v_water * |horizontal slowness|``). The truth times stay those of the
  primary; :func:`ghost_wavelet` gives the ghosted wavelet an event carries.

All times are two-way (s), distances m, velocities m/s. :func:`make_survey` returns the traces,
headers and a ``truth`` dictionary; :func:`write_survey` writes ``shots.sgy``, ``truth.json``
and ``velocity.csv`` (``time_s,vrms_mps``) into a folder.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from seis_hpc.errors import SeisError
from seis_hpc.geometry import BinGrid

# --------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class Acquisition:
    """Towed-streamer acquisition (m, s).

    ``n_sources`` sources fire in turn (flip-flop for 2), ``source_separation`` apart across
    the sail line; each shot records ``n_streamers`` streamers ``streamer_separation`` apart,
    each with ``n_channels`` groups every ``group_interval`` starting ``near_offset`` behind
    the source. ``shot_interval`` is the distance the vessel sails between consecutive shots
    (any source). Sail lines are ``sail_line_spacing`` apart.
    """

    n_sail_lines: int = 1
    shots_per_line: int = 40
    shot_interval: float = 25.0
    n_sources: int = 1
    source_separation: float = 0.0
    n_streamers: int = 1
    streamer_separation: float = 100.0
    n_channels: int = 96
    group_interval: float = 12.5
    near_offset: float = 50.0
    sail_line_spacing: float = 400.0
    source_depth: float = 6.0
    streamer_depth: float = 8.0
    # Source and receiver ghosts: the free-surface reflections (coefficient -1) above the
    # source and the streamer, delayed by 2 depth cos(emergence angle) / water velocity.
    # On in the marine2d-ghost preset (real towed-streamer wavelets have them); off in the
    # others, whose water-bottom picking, demultiple, RMO and timing tests were tuned on a
    # zero-phase wavelet (see docs/test-data.md).
    ghosts: bool = False
    # Receivers off their nominal place (m): across the line +-feather, along it
    # +-jitter_along, alternating every second shot (flip-flop: every shot of one source) and,
    # across, channel by channel - every bin then holds midpoints +-half that on both sides
    # of its centre (the grid stays the nominal one).
    feather: float = 0.0
    jitter_along: float = 0.0
    dt: float = 0.002
    record_length: float = 3.0
    azimuth: float = 30.0
    x0: float = 500_000.0
    y0: float = 3_650_000.0


@dataclass(frozen=True)
class Medium:
    """A layered v(z) medium: water over sediments with velocity increasing with depth.

    ``layers`` lists (top depth m, interval velocity m/s), the first being the water.
    """

    water_depth: float = 100.0
    layers: tuple[tuple[float, float], ...] = (
        (0.0, 1500.0), (100.0, 1700.0), (400.0, 1900.0), (900.0, 2200.0), (1600.0, 2600.0),
    )
    water_bottom_reflectivity: float = 0.3
    # Lateral variation (the v(x, z) case): reflection times and diffractors use
    # Vrms(t0) * (1 + vrms_gradient * (a - vrms_gradient_origin)), a = along-line position (m)
    # of the trace's midpoint (of the diffractor). Water multiples keep the water velocity.
    vrms_gradient: float = 0.0
    vrms_gradient_origin: float = 0.0


@dataclass(frozen=True)
class Events:
    """Subsurface events. Diffractors: (x_along m, y_across m, depth m, amplitude) relative to
    the survey origin in sail coordinates; reflectors: (depth at origin m, dip along the sail
    line in degrees, reflection coefficient)."""

    diffractors: tuple[tuple[float, float, float, float], ...] = ()
    reflectors: tuple[tuple[float, float, float], ...] = ()
    multiples: bool = False
    multiple_orders: int = 3
    wavelet_peak_hz: float = 30.0


@dataclass(frozen=True)
class Noise:
    """Noise planted on the recorded traces; the truth lists every damaged trace."""

    random_snr: float | None = None
    swell_bursts: int = 0
    spikes: int = 0
    dead: int = 0
    seed: int = 12345
    # Kinds for bad-trace editing tests, planted after the others (their draws come later, so
    # the traces chosen above do not change): broadband noise of 5x the data RMS, reversed
    # polarity, NaN samples.
    noisy: int = 0
    reversed: int = 0
    nan: int = 0


@dataclass(frozen=True)
class Preset:
    """A named survey: acquisition, medium, events and noise."""

    name: str
    description: str
    acquisition: Acquisition
    medium: Medium = field(default_factory=Medium)
    events: Events = field(default_factory=Events)
    noise: Noise = field(default_factory=Noise)
    is_2d: bool = False
    # CDP_X/CDP_Y: False writes the bin centre (SEG-Y rev 1), True each trace's true
    # source-receiver midpoint (scattered inside its bin), as many contractors deliver 3D
    midpoints_in_cdp: bool = False


# The built-in 2D line's events (marine2d and the presets built on it).
_MARINE2D_EVENTS = Events(
    diffractors=((1000.0, 0.0, 500.0, 1.0), (1500.0, 0.0, 800.0, 1.0),
                 (2000.0, 0.0, 1100.0, 1.0)),
    reflectors=((300.0, 0.0, 0.15), (650.0, 3.0, 0.12), (1000.0, 0.0, 0.15)),
    multiples=True,
)

PRESETS: dict[str, Preset] = {
    "marine2d": Preset(
        "marine2d",
        "2D line like the target survey's: 96 x 12.5 m channels (1.2 km streamer), shots every "
        "25 m (fold 24), CMP interval 6.25 m, 2 ms, 3.0 s; water 100 m, diffractors and flat "
        "and dipping reflectors 500-1000 m below the seafloor, water-bottom multiples.",
        Acquisition(shots_per_line=120, n_channels=96, record_length=3.0),
        events=_MARINE2D_EVENTS,
        is_2d=True,
    ),
    "marine2d-ghost": Preset(
        "marine2d-ghost",
        "marine2d with source and receiver ghosts: the free-surface reflection (-1) above "
        "the source at 6 m and the streamer at 8 m, delayed by 2 z cos(emergence angle) / "
        "1500 m/s (a 30 Hz event's largest lobe is then negative, 9.3 ms after its time).",
        Acquisition(shots_per_line=120, n_channels=96, record_length=3.0, ghosts=True),
        events=_MARINE2D_EVENTS,
        is_2d=True,
    ),
    "marine2d-vxz": Preset(
        "marine2d-vxz",
        "marine2d with a laterally varying velocity: Vrms(x, t0) = Vrms(t0) * (1 + 5e-5/m * "
        "(x - 1000 m)) along the line (5 % per km), applied to reflection times and "
        "diffractors; water-bottom multiples at the water velocity.",
        Acquisition(shots_per_line=120, n_channels=96, record_length=3.0),
        medium=Medium(vrms_gradient=5e-5, vrms_gradient_origin=1000.0),
        events=_MARINE2D_EVENTS,
        is_2d=True,
    ),
    "marine3d-small": Preset(
        "marine3d-small",
        "Small 3D patch (the demo's survey): dual flip-flop sources 50 m apart, 4 streamers x "
        "32 x 12.5 m (400 m), streamers 100 m apart, shots every 25 m, 2 sail lines 200 m apart, "
        "bins 6.25 x 25 m, 2 ms, 1.2 s; three diffractors and a flat reflector.",
        Acquisition(n_sail_lines=2, shots_per_line=32, n_sources=2, source_separation=50.0,
                    n_streamers=4, n_channels=32, sail_line_spacing=200.0, record_length=1.2,
                    near_offset=50.0),
        events=Events(
            # across positions on bin centres (the midpoint lattice is offset by 12.5 m)
            diffractors=((300.0, -12.5, 350.0, 1.0), (450.0, 87.5, 500.0, 1.0),
                         (550.0, 162.5, 600.0, 1.0)),
            reflectors=((750.0, 0.0, 0.15),),
        ),
    ),
    "tiny3d": Preset(
        "tiny3d",
        "Tiny 3D survey for tests: 2 sources, 2 streamers x 24 x 12.5 m, 2 sail lines, 1.0 s "
        "at 4 ms; one diffractor.",
        Acquisition(n_sail_lines=2, shots_per_line=16, shot_interval=25.0, n_sources=2,
                    source_separation=50.0, n_streamers=2, streamer_separation=100.0,
                    n_channels=24, sail_line_spacing=150.0, record_length=1.0, dt=0.004,
                    near_offset=25.0),
        events=Events(diffractors=((250.0, 0.0, 400.0, 1.0),), wavelet_peak_hz=20.0),
    ),
    "tiny3d-midpoints": Preset(
        "tiny3d-midpoints",
        "tiny3d with feathered receivers (+-10 m across, +-4 m along), so midpoints scatter "
        "+-0.2 bin across and +-0.32 bin along their 6.25 x 25 m bins, and the true midpoints "
        "in CDP_X/CDP_Y (bin numbers in INLINE_3D/CROSSLINE_3D), as contractors deliver "
        "prestack 3D; one diffractor on a bin centre.",
        Acquisition(n_sail_lines=2, shots_per_line=16, shot_interval=25.0, n_sources=2,
                    source_separation=50.0, n_streamers=2, streamer_separation=100.0,
                    n_channels=24, sail_line_spacing=150.0, record_length=1.0, dt=0.004,
                    near_offset=25.0, feather=10.0, jitter_along=4.0),
        # across 12.5 m: a bin centre (the midpoint lattice sits 12.5 m off the sail line)
        events=Events(diffractors=((250.0, 12.5, 400.0, 1.0),), wavelet_peak_hz=20.0),
        midpoints_in_cdp=True,
    ),
}


def preset(name: str, **overrides) -> Preset:
    """Look up a preset by name, optionally replacing top-level fields (``noise=...``)."""
    if name not in PRESETS:
        raise SeisError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def configure(name: str, *, shots: int | None = None, channels: int | None = None,
              record_length: float | None = None, multiples: bool | None = None,
              ghosts: bool | None = None, snr: float | None = None, swell: int = 0,
              spikes: int = 0, dead: int = 0, seed: int = 12345,
              midpoints_in_cdp: bool = False) -> Preset:
    """A preset with the changes ``seis-hpc synth`` offers, each checked.

    Parameters
    ----------
    name : str
        Preset name (:data:`PRESETS`).
    shots, channels : int, optional
        Shots per sail line and channels per streamer instead of the preset's.
    record_length : float, optional
        Record length (s) instead of the preset's; diffractors below it are left out.
    multiples, ghosts : bool, optional
        Force water-bottom multiples / source and receiver ghosts on or off.
    snr : float, optional
        Random noise, signal RMS over noise RMS.
    swell, spikes, dead : int
        Swell-noise bursts, spiky traces and dead traces to plant.
    seed : int
        Noise random seed.
    midpoints_in_cdp : bool
        Write each trace's true midpoint in CDP_X/CDP_Y.

    Raises
    ------
    SeisError
        An impossible value, naming the option.
    """
    p = preset(name)
    for opt, value in (("swell", swell), ("spikes", spikes), ("dead", dead)):
        if value < 0:
            raise SeisError(f"--{opt} must be >= 0 (got {value})")
    if snr is not None and snr <= 0:
        raise SeisError(f"--snr must be > 0 (got {snr})")
    acq = p.acquisition
    for opt, fld, value in (("shots", "shots_per_line", shots),
                            ("channels", "n_channels", channels),
                            ("record-length", "record_length", record_length)):
        if value is not None:
            if not value > 0:
                raise SeisError(f"--{opt} must be > 0 (got {value})")
            acq = replace(acq, **{fld: value})
    if acq.record_length < 10 * acq.dt:
        raise SeisError(f"--record-length {acq.record_length:g} s: shorter than ten samples "
                        f"({acq.dt * 1000:g} ms)")
    if ghosts is not None:
        acq = replace(acq, ghosts=bool(ghosts))
    events = p.events
    if multiples is not None:
        events = replace(events, multiples=bool(multiples))
    if record_length is not None and events.diffractors:
        # a shortened record keeps the diffractors it records (the truth lists only those)
        t0 = vertical_time(p.medium, [d[2] for d in events.diffractors])
        last = acq.record_length - acq.dt
        events = replace(events, diffractors=tuple(
            d for d, t in zip(events.diffractors, t0, strict=True) if t <= last))
    noise = Noise(random_snr=snr, swell_bursts=swell, spikes=spikes, dead=dead, seed=seed)
    return replace(p, acquisition=acq, events=events, noise=noise,
                   midpoints_in_cdp=p.midpoints_in_cdp or midpoints_in_cdp)


# --------------------------------------------------------------------------------------------
# Medium


def vertical_time(medium: Medium, depth) -> np.ndarray:
    """Two-way vertical time (s) to ``depth`` (m) in the layered medium."""
    depth = np.asarray(depth, dtype=np.float64)
    tops = np.array([t for t, _ in medium.layers])
    vint = np.array([v for _, v in medium.layers])
    bottoms = np.append(tops[1:], np.inf)
    thick = np.clip(depth[..., None] - tops, 0.0, bottoms - tops)
    return 2.0 * np.sum(thick / vint, axis=-1)


def vrms_function(medium: Medium, tmax: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Vrms(t0) of the layered medium on the time axis ``0, dt, ..., tmax`` (s, m/s)."""
    t = np.arange(0.0, tmax + 0.5 * dt, dt)
    tops = np.array([tp for tp, _ in medium.layers])
    vint = np.array([v for _, v in medium.layers])
    t_tops = vertical_time(medium, tops)
    layer = np.clip(np.searchsorted(t_tops, t, side="right") - 1, 0, len(vint) - 1)
    v_t = vint[layer]  # interval velocity at each time
    # Vrms^2(t) = (1/t) * integral_0^t v^2 dtau, integrated exactly per sample.
    cum = np.concatenate([[0.0], np.cumsum(v_t[:-1] ** 2 * dt)])
    vrms = np.empty_like(t)
    vrms[0] = v_t[0]
    vrms[1:] = np.sqrt(cum[1:] / t[1:])
    return t, vrms


def ghost_delays(acq: Acquisition, v_water: float, sin_s, sin_r) -> tuple:
    """Source and receiver ghost delays (s) for emergence angles given by their sines.

    The ghost's extra path is ``2 z cos(theta)`` (plane wave reflected at the free surface
    above a source or receiver at depth z), travelled at the water velocity.
    """
    cos_s = np.sqrt(np.clip(1.0 - np.asarray(sin_s, np.float64) ** 2, 0.0, 1.0))
    cos_r = np.sqrt(np.clip(1.0 - np.asarray(sin_r, np.float64) ** 2, 0.0, 1.0))
    return (2.0 * acq.source_depth * cos_s / v_water,
            2.0 * acq.streamer_depth * cos_r / v_water)


def ghost_wavelet(peak_hz: float, dt: float, source_depth: float = 6.0,
                  receiver_depth: float = 8.0, v_water: float = 1500.0, cos_s: float = 1.0,
                  cos_r: float = 1.0, oversample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The Ricker wavelet with its source and receiver ghosts, as :func:`make_survey` models it.

    ``w(t) - w(t - ts) - w(t - tr) + w(t - ts - tr)`` with ``ts = 2 source_depth cos_s /
    v_water`` and ``tr = 2 receiver_depth cos_r / v_water`` (free-surface coefficient -1).

    Parameters
    ----------
    peak_hz : float
        Ricker peak frequency (Hz).
    dt : float
        Sample interval (s) of the data.
    source_depth, receiver_depth : float
        Depths (m) below the free surface.
    v_water : float
        Water velocity (m/s).
    cos_s, cos_r : float
        Cosines of the emergence angles (1: vertical).
    oversample : int
        Return the wavelet on ``dt / oversample`` (for sub-sample timing).

    Returns
    -------
    t : numpy.ndarray
        Times (s) relative to the primary arrival.
    w : numpy.ndarray
        The ghosted wavelet (float64; the primary Ricker has peak 1).
    """
    ts = 2.0 * source_depth * cos_s / v_water
    tr = 2.0 * receiver_depth * cos_r / v_water
    half = 1.5 / peak_hz
    h = dt / oversample
    t = np.arange(int(math.floor(-half / h)), int(math.ceil((half + ts + tr) / h)) + 1) * h

    def r(x):
        a = (math.pi * peak_hz * x) ** 2
        return (1.0 - 2.0 * a) * np.exp(-a)

    return t, r(t) - r(t - ts) - r(t - tr) + r(t - ts - tr)


def diffractor_wavelet(peak_hz: float, dt: float, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The wavelet of a diffraction on the traces of :func:`make_survey` (without ghosts).

    The Ricker wavelet filtered by the adjoint of the rho filter, ``(i omega)^((dims-1)/2)``
    (the diffractors are modelled by the adjoint of the rho-filtered PSTM).

    Returns
    -------
    t : numpy.ndarray
        Times (s) relative to the diffraction time.
    w : numpy.ndarray
        The wavelet (float64), in units of the Ricker per s^((dims-1)/2).
    """
    from seis_hpc.migration.pstm import rho_filter

    r = ricker(peak_hz, dt).astype(np.float64)
    n = 4 * len(r)
    x = np.zeros((1, 2 * n + 1))
    x[0, n - len(r) // 2:n + len(r) // 2 + 1] = r
    w = rho_filter(x, dt, dims=dims, adjoint=True)[0]
    return (np.arange(2 * n + 1) - n) * dt, w


def wavelet_peak(truth: dict) -> tuple[float, float]:
    """Where a reflection of positive coefficient peaks in a survey's data, from its truth.

    Returns ``(lag, sign)``: the largest lobe of the events' wavelet at vertical incidence is
    ``lag`` s after the primary's time (the truth time) with the sign ``sign`` (+1 or -1).
    Without ghosts the zero-phase Ricker: ``(0.0, 1.0)``. With the marine2d ghosts (6 m and
    8 m, 30 Hz) the ghosts turn the wavelet into about its second derivative: a negative lobe
    9.3 ms late. Time an event as ``argmax(sign * trace)`` near ``t0 + lag``, minus ``lag``.
    """
    g = truth.get("ghosts")
    if not g:
        return 0.0, 1.0
    t, w = ghost_wavelet(truth["wavelet_peak_hz"], truth["dt_s"], g["source_depth_m"],
                         g["receiver_depth_m"], g["water_velocity_mps"], oversample=200)
    k = int(np.argmax(np.abs(w)))
    return float(t[k]), float(np.sign(w[k]))


def ricker(peak_hz: float, dt: float) -> np.ndarray:
    """Zero-phase Ricker wavelet sampled at ``dt`` (s), odd length, centred, peak 1."""
    half = int(math.ceil(1.5 / peak_hz / dt))
    t = np.arange(-half, half + 1) * dt
    a = (math.pi * peak_hz * t) ** 2
    return ((1.0 - 2.0 * a) * np.exp(-a)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Geometry


def _layout(acq: Acquisition, is_2d: bool) -> dict[str, np.ndarray]:
    """Source/receiver coordinates of every trace, in sail coordinates (along, across) m."""
    rows = {k: [] for k in ("ffid", "source", "line", "channel", "streamer", "sa", "sc", "ra",
                            "rc", "ra0", "rc0")}
    ffid = 0
    n_str = 1 if is_2d else acq.n_streamers
    for line in range(1 if is_2d else acq.n_sail_lines):
        line_c = line * acq.sail_line_spacing
        for shot in range(acq.shots_per_line):
            ffid += 1
            src = shot % max(acq.n_sources, 1)
            sc = line_c + (src - (acq.n_sources - 1) / 2.0) * acq.source_separation
            sa = shot * acq.shot_interval
            for s in range(n_str):
                rc = line_c + (s - (n_str - 1) / 2.0) * acq.streamer_separation
                for ch in range(acq.n_channels):
                    rows["ffid"].append(ffid)
                    rows["source"].append(src + 1)
                    rows["line"].append(line + 1)
                    rows["channel"].append(s * acq.n_channels + ch + 1)
                    rows["streamer"].append(s + 1)
                    rows["sa"].append(sa)
                    rows["sc"].append(0.0 if is_2d else sc)
                    # Streamer towed behind the vessel: receivers trail the source.
                    ra = sa - acq.near_offset - ch * acq.group_interval
                    rows["ra0"].append(ra)
                    rows["ra"].append(ra + acq.jitter_along * (-1) ** (shot // 2))
                    rows["rc0"].append(0.0 if is_2d else rc)
                    rows["rc"].append(0.0 if is_2d else
                                      rc + acq.feather * (-1) ** (ch + shot // 2))
    return {k: np.asarray(v) for k, v in rows.items()}


def survey_grid(acq: Acquisition, is_2d: bool, lay: dict[str, np.ndarray]) -> BinGrid:
    """The bin grid the survey was designed for: CMP interval half the group interval;
    crossline bins a quarter of the streamer separation for dual sources (else a half)."""
    bin_in = acq.group_interval / 2.0
    ma = 0.5 * (lay["sa"] + lay.get("ra0", lay["ra"]))  # nominal positions (no feathering)
    mc = 0.5 * (lay["sc"] + lay.get("rc0", lay["rc"]))
    # Midpoints of this layout lie on the bin lattice: the extreme midpoints are bin centres.
    a0 = float(ma.min())
    n_in = int(round((ma.max() - a0) / bin_in)) + 1
    ux, uy = math.sin(math.radians(acq.azimuth)), math.cos(math.radians(acq.azimuth))
    x0, y0 = acq.x0 + a0 * ux, acq.y0 + a0 * uy
    if is_2d:
        return BinGrid.line(x0, y0, acq.azimuth, bin_in, 1, n_in)
    bin_cr = acq.streamer_separation / (2.0 * max(acq.n_sources, 1))
    c0 = float(mc.min())
    n_cr = int(round((mc.max() - c0) / bin_cr)) + 1
    # Inline numbers increase across the sail lines (azimuth + 90 deg, handedness +1).
    cx, cy = math.cos(math.radians(acq.azimuth)), -math.sin(math.radians(acq.azimuth))
    return BinGrid(x0 + c0 * cx, y0 + c0 * cy, acq.azimuth, bin_in, bin_cr, 1, 1, n_cr, n_in)


def _to_world(acq: Acquisition, along, across) -> tuple[np.ndarray, np.ndarray]:
    a = math.radians(acq.azimuth)
    ux, uy = math.sin(a), math.cos(a)
    vx, vy = math.cos(a), -math.sin(a)
    along = np.asarray(along, dtype=np.float64)
    across = np.asarray(across, dtype=np.float64)
    return acq.x0 + along * ux + across * vx, acq.y0 + along * uy + across * vy


# --------------------------------------------------------------------------------------------
# Modelling


def _add_events(data: np.ndarray, times: np.ndarray, amps: np.ndarray, dt: float) -> None:
    """Add one spike per trace at ``times`` (s) with linear interpolation (exact sub-sample)."""
    ns = data.shape[1]
    pos = times / dt
    i0 = np.floor(pos).astype(np.int64)
    w = (pos - i0).astype(np.float32)
    rows = np.arange(data.shape[0])
    ok = (i0 >= 0) & (i0 + 1 < ns) & np.isfinite(times)
    np.add.at(data, (rows[ok], i0[ok]), (amps[ok] * (1.0 - w[ok])).astype(np.float32))
    np.add.at(data, (rows[ok], i0[ok] + 1), (amps[ok] * w[ok]).astype(np.float32))


def _interp_vrms(t_axis, vrms, t0):
    return np.interp(t0, t_axis, vrms)


def _lateral(med: Medium, along) -> np.ndarray | float:
    """Vrms scale factor at along-line positions (m); exactly 1.0 without a gradient."""
    if med.vrms_gradient == 0.0:
        return 1.0
    return 1.0 + med.vrms_gradient * (np.asarray(along, dtype=np.float64)
                                      - med.vrms_gradient_origin)


def lateral_factor(truth: dict, cmp) -> np.ndarray:
    """Vrms scale factor of a survey's truth at 2D CMP numbers (1 without lateral variation).

    The true Vrms at CMP ``c`` and time ``t0`` is ``truth["vrms"](t0) * lateral_factor``.
    """
    med = truth["medium"]
    grad = float(med.get("vrms_gradient", 0.0))
    c = np.asarray(cmp, dtype=np.float64)
    if grad == 0.0:
        return np.ones_like(c)
    g = truth["grid"]
    along = truth["along_of_first_cmp_m"] + (c - g["crossline0"]) * g["bin_inline"]
    return 1.0 + grad * (along - float(med.get("vrms_gradient_origin", 0.0)))


def make_survey(p: Preset, backend: str = "cython") -> tuple[np.ndarray, dict, dict]:
    """Model a survey.

    Parameters
    ----------
    p : Preset
        Acquisition, medium, events and noise.
    backend : str
        Backend of :func:`seis_hpc.migration.pstm.kirchhoff_model` for the diffractors.

    Returns
    -------
    data : numpy.ndarray
        float32 (n_traces, ns) recorded traces.
    headers : dict of numpy.ndarray
        Trace headers keyed by segyio ``TraceField`` names; coordinates in m.
    truth : dict
        Everything the survey was made from: acquisition, grid, Vrms(t0), diffractors with
        their world position, bin and t0, reflectors, and the planted noise by trace index.
    """
    from seis_hpc.migration.pstm import kirchhoff_model

    acq, med, ev = p.acquisition, p.medium, p.events
    lay = _layout(acq, p.is_2d)
    ntr = len(lay["ffid"])
    ns = int(round(acq.record_length / acq.dt)) + 1
    if ntr == 0 or ns < 2:
        raise SeisError(f"preset {p.name}: empty survey ({ntr} traces, {ns} samples)")
    dt = acq.dt
    sx, sy = _to_world(acq, lay["sa"], lay["sc"])
    rx, ry = _to_world(acq, lay["ra"], lay["rc"])
    h = np.hypot(rx - sx, ry - sy)
    t_axis, vrms_t = vrms_function(med, acq.record_length, dt)
    grid = survey_grid(acq, p.is_2d, lay)
    spikes = np.zeros((ntr, ns), np.float32)
    lat = _lateral(med, 0.5 * (lay["sa"] + lay["ra"]))  # per-trace Vrms factor (v(x, z) case)
    vw = med.layers[0][1]

    def add(t, amp, sin_s, sin_r=None):
        """An event at times ``t`` (s) and, with ghosts, its source and receiver ghosts for
        emergence angles of sines ``sin_s`` and ``sin_r`` (default ``sin_s``)."""
        amp = np.broadcast_to(np.asarray(amp, np.float32), t.shape)
        _add_events(spikes, t, amp, dt)
        if acq.ghosts:
            gs, gr = ghost_delays(acq, vw, sin_s, sin_s if sin_r is None else sin_r)
            for delay, sign in ((gs, -1.0), (gr, -1.0), (gs + gr, 1.0)):
                _add_events(spikes, t + delay, (sign * amp).astype(np.float32), dt)

    # Reflectors, analytic. Flat: hyperbola in Vrms; dipping: image source in v = Vrms(t0).
    reflectors = []
    for depth0, dip, refl in ev.reflectors:
        t00 = float(vertical_time(med, depth0))
        v = float(_interp_vrms(t_axis, vrms_t, t00))
        if dip == 0.0:
            t = np.sqrt(t00**2 + (h / (v * lat)) ** 2)
            sin_s = sin_r = vw * h / ((v * lat) ** 2 * t)  # horizontal slowness x v_water
        else:
            v = v * lat
            # Plane z = z0 + tan(dip) * along, in a medium of constant v (vertical time scaled).
            z0 = 0.5 * v * t00
            n = np.array([-math.sin(math.radians(dip)), math.cos(math.radians(dip))])
            s = np.stack([lay["sa"], np.zeros(ntr)], axis=1)
            r = np.stack([lay["ra"], np.zeros(ntr)], axis=1)
            dist = s @ n - z0 * n[1]
            mirror = s - 2.0 * dist[:, None] * n
            d = mirror - r
            dc = lay["sc"] - lay["rc"]
            length = np.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2 + dc**2)
            t = length / v
            # ray directions at the receiver (from the image source) and at the source (from
            # the receiver's image): horizontal slowness = horizontal direction / v
            mirror_r = r - 2.0 * (r @ n - z0 * n[1])[:, None] * n
            ds = mirror_r - s
            sin_r = vw * np.hypot(d[:, 0], dc) / (v * np.maximum(length, 1e-9))
            sin_s = vw * np.hypot(ds[:, 0], dc) / (v * np.maximum(length, 1e-9))
        amp = refl * (t00 / np.maximum(t, 1e-6))  # spherical spreading relative to t0
        add(t, amp, sin_s, sin_r)
        reflectors.append({"depth_m": depth0, "dip_deg": dip, "reflectivity": refl,
                           "t0_s": t00, "vrms_mps": float(_interp_vrms(t_axis, vrms_t, t00))})

    # Water bottom, free-surface multiples and peg-legs of the reflectors.
    t_wb = float(vertical_time(med, med.water_depth))
    multiples = []
    if ev.multiples:
        r_wb = med.water_bottom_reflectivity
        t = np.sqrt(t_wb**2 + (h / vw) ** 2)
        add(t, r_wb, h / (vw * t))
        for order in range(1, ev.multiple_orders + 1):
            t0m = (order + 1) * t_wb
            amp = (-1) ** order * r_wb ** (order + 1)
            t = np.sqrt(t0m**2 + (h / vw) ** 2)
            add(t, amp, h / (vw * t))
            multiples.append({"kind": "water-bottom", "order": order, "t0_s": t0m,
                              "amplitude": amp})
        for ref in reflectors:
            if ref["dip_deg"] != 0.0:
                continue
            t0p = ref["t0_s"] + t_wb
            v = float(_interp_vrms(t_axis, vrms_t, t0p))
            amp = -2.0 * ref["reflectivity"] * r_wb
            t = np.sqrt(t0p**2 + (h / (v * lat)) ** 2)
            add(t, amp, vw * h / ((v * lat) ** 2 * t))
            multiples.append({"kind": "peg-leg", "order": 1, "t0_s": t0p, "amplitude": amp})

    # Diffractors through the Kirchhoff modelling operator (adjoint of PSTM).
    diffractors = []
    if ev.diffractors:
        d_along = np.array([d[0] for d in ev.diffractors])
        d_across = np.array([0.0 if p.is_2d else d[1] for d in ev.diffractors])
        dx, dy = _to_world(acq, d_along, d_across)
        t0 = vertical_time(med, np.array([d[2] for d in ev.diffractors]))
        it0 = np.rint(t0 / dt).astype(np.int64)  # on a sample, so "images at that sample" is exact
        image = np.zeros((len(dx), ns), np.float32)
        image[np.arange(len(dx)), it0] = [d[3] for d in ev.diffractors]
        vr = (vrms_t[None, :] * np.reshape(_lateral(med, d_along), (-1, 1))
              * np.ones((len(dx), 1))).astype(np.float32)
        pts = np.column_stack([dx, dy])
        dims = 2 if p.is_2d else 3
        model = kirchhoff_model(image, pts, t_axis, vr, sx, sy, rx, ry, ns, dt,
                                weights="spreading", backend=backend, dims=dims, rho=True)
        # Scale so a diffractor's apex is as strong as a reflection of coefficient `amplitude`.
        apex = np.abs(model).max(axis=1, keepdims=True)
        scale = 0.3 / max(float(np.percentile(apex, 99)), 1e-30)
        if acq.ghosts:
            # one diffractor at a time: each has its own emergence angles on a trace
            model = np.zeros_like(model)
            for k in range(len(dx)):
                one = kirchhoff_model(image[k:k + 1], pts[k:k + 1], t_axis, vr[k:k + 1], sx, sy,
                                      rx, ry, ns, dt, weights="spreading", backend=backend,
                                      dims=dims, rho=True)
                v = float(vr[k, it0[k]])
                a = 0.5 * float(t0[k])

                def sine(dist, v=v, a=a):  # straight ray in Vrms: horizontal slowness x v_water
                    return vw * dist / (v * v * np.sqrt(a * a + (dist / v) ** 2))

                gs, gr = ghost_delays(acq, vw, sine(np.hypot(sx - dx[k], sy - dy[k])),
                                      sine(np.hypot(rx - dx[k], ry - dy[k])))
                om = 2 * np.pi * np.fft.rfftfreq(2 * ns, dt)
                g = ((1 - np.exp(-1j * om[None] * gs[:, None]))
                     * (1 - np.exp(-1j * om[None] * gr[:, None])))
                model += np.fft.irfft(np.fft.rfft(one, 2 * ns, axis=1) * g, 2 * ns,
                                      axis=1)[:, :ns].astype(np.float32)
        model *= scale
        spikes += model
        il, xl = grid.world_to_grid(dx, dy)
        for k, d in enumerate(ev.diffractors):
            diffractors.append({
                "along_m": d[0], "across_m": float(d_across[k]), "depth_m": d[2],
                "amplitude": d[3], "x": float(dx[k]), "y": float(dy[k]),
                "t0_s": float(it0[k] * dt), "inline": float(il[k]), "crossline": float(xl[k]),
            })

    # Band-limit with a zero-phase wavelet (keeps every event's time).
    from scipy.signal import fftconvolve

    w = ricker(ev.wavelet_peak_hz, dt)
    data = fftconvolve(spikes, w[None, :], mode="same", axes=1).astype(np.float32)

    noise_truth = _plant_noise(data, lay, p.noise, dt)

    il_tr, xl_tr = grid.bin_of(0.5 * (sx + rx), 0.5 * (sy + ry))
    # CDP_X/CDP_Y carry the bin centre (SEG-Y rev 1), or the true midpoint when asked.
    cdp_x, cdp_y = grid.grid_to_world(il_tr, xl_tr)
    if p.midpoints_in_cdp:
        cdp_x, cdp_y = 0.5 * (sx + rx), 0.5 * (sy + ry)
    headers = {
        "TRACE_SEQUENCE_LINE": np.arange(1, ntr + 1),
        "TRACE_SEQUENCE_FILE": np.arange(1, ntr + 1),
        "FieldRecord": lay["ffid"],
        "TraceNumber": lay["channel"],
        "EnergySourcePoint": lay["source"],
        "CDP": xl_tr if p.is_2d else (il_tr - grid.inline0) * grid.n_crossline + xl_tr,
        "CDP_TRACE": lay["channel"],
        "offset": np.rint(h).astype(np.int64),
        "SourceX": sx, "SourceY": sy, "GroupX": rx, "GroupY": ry,
        "CDP_X": cdp_x, "CDP_Y": cdp_y,
        "SourceDepth": np.full(ntr, acq.source_depth),
        "ReceiverGroupElevation": np.full(ntr, -acq.streamer_depth),
        "SourceWaterDepth": np.full(ntr, med.water_depth),
        "GroupWaterDepth": np.full(ntr, med.water_depth),
    }
    if not p.is_2d:
        headers["INLINE_3D"] = il_tr
        headers["CROSSLINE_3D"] = xl_tr

    truth = {
        "preset": p.name,
        "description": p.description,
        "is_2d": p.is_2d,
        "n_traces": ntr,
        "ns": ns,
        "dt_s": dt,
        "acquisition": asdict(acq),
        "grid": {k.removeprefix("grid_"): v for k, v in grid.to_attrs().items()},
        "vrms": {"time_s": t_axis[:: max(1, int(0.02 / dt))].tolist(),
                 "vrms_mps": vrms_t[:: max(1, int(0.02 / dt))].tolist()},
        "medium": asdict(med),
        "water_bottom_t0_s": t_wb,
        "along_of_first_cmp_m": float((0.5 * (lay["sa"] + lay["ra"])).min()),
        "diffractors": diffractors,
        "reflectors": reflectors,
        "multiples": multiples,
        "noise": noise_truth,
        "wavelet_peak_hz": ev.wavelet_peak_hz,
        # the wavelet of every event carries these ghosts (see ghost_wavelet); event times
        # above are those of the primary
        "ghosts": ({"source_depth_m": acq.source_depth, "receiver_depth_m": acq.streamer_depth,
                    "free_surface_coefficient": -1.0, "water_velocity_mps": vw}
                   if acq.ghosts else None),
    }
    return data, headers, truth


def _plant_noise(data: np.ndarray, lay: dict, noise: Noise, dt: float) -> dict:
    """Add the requested noise in place; return the damaged trace indices by kind."""
    rng = np.random.default_rng(noise.seed)
    ntr, ns = data.shape
    out: dict = {"dead": [], "spikes": [], "swell": [], "random_snr": noise.random_snr}
    rms = float(np.sqrt(np.mean(data.astype(np.float64) ** 2))) or 1.0
    peak = float(np.abs(data).max()) or 1.0
    if noise.random_snr:
        data += rng.normal(0.0, rms / noise.random_snr, data.shape).astype(np.float32)
    if noise.swell_bursts:
        from scipy.signal import butter, sosfiltfilt

        sos = butter(4, 12.0, btype="low", fs=1.0 / dt, output="sos")
        shots = np.unique(lay["ffid"])
        for _ in range(noise.swell_bursts):
            shot = rng.choice(shots)
            idx = np.flatnonzero(lay["ffid"] == shot)
            start = rng.integers(0, max(1, len(idx) - 8))
            width = int(rng.integers(4, 9))
            sel = idx[start:start + width]
            burst = sosfiltfilt(sos, rng.normal(0.0, 1.0, (len(sel), ns)), axis=1)
            burst *= 20.0 * rms / (np.std(burst) or 1.0)
            data[sel] += burst.astype(np.float32)
            out["swell"].extend(int(i) for i in sel)
    candidates = rng.permutation(ntr)
    pos = 0
    for kind, count in (("dead", noise.dead), ("spikes", noise.spikes)):
        chosen = candidates[pos:pos + count]
        pos += count
        for i in chosen:
            if kind == "dead":
                data[i] = 0.0
            else:
                k = rng.integers(ns // 10, ns, size=3)
                data[i, k] += (10.0 * peak * rng.choice([-1.0, 1.0], size=3)).astype(np.float32)
            out[kind].append(int(i))
    for kind, count in (("noisy", noise.noisy), ("reversed", noise.reversed),
                        ("nan", noise.nan)):
        chosen = candidates[pos:pos + count]
        pos += count
        out[kind] = sorted(int(i) for i in chosen)
        for i in chosen:
            if kind == "noisy":
                data[i] += rng.normal(0.0, 5.0 * rms, ns).astype(np.float32)
            elif kind == "reversed":
                data[i] *= -1.0
            else:
                data[i, rng.integers(0, ns, size=3)] = np.nan
    for k in ("dead", "spikes", "swell"):
        out[k] = sorted(set(out[k]))
    return out


def write_survey(p: Preset, out_dir: str | os.PathLike, backend: str = "cython",
                 fmt: int = 5, revision: int = 1) -> dict:
    """Model preset ``p`` and write ``shots.sgy``, ``truth.json`` and ``velocity.csv``.

    Parameters
    ----------
    p : Preset
        The survey to make.
    out_dir : path-like
        Output folder (created).
    backend : str
        Modelling backend (``"cython"`` or ``"numpy"``).
    fmt : int
        SEG-Y sample format code (5 IEEE, 1 IBM).
    revision : {1, 2}
        SEG-Y revision of ``shots.sgy``.

    Returns
    -------
    dict
        The truth, with the paths written under ``"files"``.
    """
    from seis_hpc.io.atomic import atomic_output
    from seis_hpc.io.segy import write_segy

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data, headers, truth = make_survey(p, backend=backend)
    text = (f"seis_hpc synthetic survey, preset {p.name}. {p.description} "
            "Coordinates in m (scalar -100). Truth in truth.json beside this file.")
    segy = out / "shots.sgy"
    write_segy(segy, data, headers, p.acquisition.dt, fmt=fmt, text=text, revision=revision)
    vel = out / "velocity.csv"
    with atomic_output(vel) as tmp:
        rows = zip(truth["vrms"]["time_s"], truth["vrms"]["vrms_mps"], strict=True)
        tmp.write_text("time_s,vrms_mps\n" + "".join(f"{t:.4f},{v:.2f}\n" for t, v in rows))
    truth["files"] = {"segy": segy.name, "velocity": vel.name}
    with atomic_output(out / "truth.json") as tmp:
        tmp.write_text(json.dumps(truth, indent=1))
    return truth
