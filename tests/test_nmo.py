"""NMO correction, inverse NMO and NMO stack against the physics of a synthetic CMP gather.

The gather holds Ricker wavelets on exact hyperbolae t(x) = sqrt(t0² + x²/v²) at known (t0, v).
Interpolation tolerances come from the linear-interpolation error bound |f - I f| <= h²/8 max|f''|.
"""

from __future__ import annotations

import numpy as np
import pytest

from seis_hpc.errors import SeisError
from seis_hpc.velocity.nmo import inverse_nmo, nmo_correct, nmo_stack

FPEAK = 20.0  # Hz
B = (np.pi * FPEAK) ** 2
EVENTS = [(0.4, 1700.0), (0.8, 2100.0), (1.2, 2500.0)]  # (t0 s, vnmo m/s)


def ricker(t):
    a = B * t * t
    return (1.0 - 2.0 * a) * np.exp(-a)


def ricker_d1_max():
    t = np.linspace(-0.1, 0.1, 20001)
    return np.abs((-6.0 * B * t + 4.0 * B**2 * t**3) * np.exp(-B * t * t)).max()


RICKER_D2_MAX = 6.0 * B  # |r''| peaks at t = 0


def cmp_gather(dt=0.004, ns=500, ntr=32, events=EVENTS, eta=0.0, amp=None):
    """Synthetic CMP: offsets 50..2375 m, hyperbolic (or quartic with eta) events."""
    x = 50.0 + 75.0 * np.arange(ntr)
    t = np.arange(ns) * dt
    d = np.zeros((ntr, ns))
    for t0, v in events:
        t2 = t0**2 + x**2 / v**2
        if eta:
            t2 -= 2 * eta * x**4 / (v**2 * (t0**2 * v**2 + (1 + 2 * eta) * x**2))
        a = np.ones(ntr) if amp is None else amp
        d += a[:, None] * ricker(t[None, :] - np.sqrt(t2)[:, None])
    return d.astype(np.float32), x


def vnmo_of_t0(ns, dt, events=EVENTS):
    t0s, vs = zip(*events, strict=True)
    return np.interp(np.arange(ns) * dt, t0s, vs)


@pytest.mark.parametrize("interp", ["linear", "cubic"])
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_true_velocity_flattens_events(interp, backend):
    dt, ns = 0.004, 500
    d, x = cmp_gather(dt, ns)
    v = vnmo_of_t0(ns, dt)
    out = nmo_correct(d, x, dt, v, interp=interp, backend=backend)
    live = nmo_correct(np.ones_like(d), x, dt, v, interp=interp, backend=backend) == 1.0
    # Linear interpolation of the wavelet peak: error <= dt²/8 max|r''| (= 0.047 here).
    amp_tol = dt**2 / 8 * RICKER_D2_MAX
    for t0, _ in EVENTS:
        j = int(round(t0 / dt))
        whole = live[:, j - 10:j + 11].all(axis=1)  # traces with the full wavelet unmuted
        assert whole.sum() >= 5  # at 0.4 s the 30 % stretch mute keeps x <= ~560 m
        seg = out[whole, j - 10:j + 11]
        peak = np.argmax(seg, axis=1) + j - 10
        assert np.all(np.abs(peak - j) <= 1), (t0, peak)
        np.testing.assert_array_less(np.abs(seg.max(axis=1) - 1.0), amp_tol)


def test_wrong_velocity_moves_event_to_predicted_time():
    dt, ns, t0, v = 0.004, 500, 1.2, 2500.0
    d, x = cmp_gather(dt, ns, events=[(t0, v)])
    out = nmo_correct(d, x, dt, 0.9 * v, stretch_mute=None)
    # Too slow a velocity over-corrects: the far event at t(x) lands at
    # t0' = sqrt(t(x)² - x²/(0.9 v)²) < t0 (23 samples early here).
    tx = np.sqrt(t0**2 + (x[-1] / v) ** 2)
    expect = np.sqrt(tx**2 - (x[-1] / (0.9 * v)) ** 2)
    assert (t0 - expect) / dt > 20
    assert abs(np.argmax(out[-1]) * dt - expect) <= dt


def test_eta_flattens_quartic_moveout():
    dt, ns, eta = 0.004, 500, 0.15
    d, x = cmp_gather(dt, ns, events=[(0.8, 2100.0)], eta=eta)
    j = int(round(0.8 / dt))
    with_eta = nmo_correct(d, x, dt, 2100.0, eta=eta, stretch_mute=None)
    without = nmo_correct(d, x, dt, 2100.0, stretch_mute=None)
    far = -1
    assert abs(np.argmax(with_eta[far, j - 40:j + 41]) - 40) <= 1
    # Hyperbolic NMO leaves the far trace's event late (eta reduces traveltime at far offsets,
    # so it is over-corrected: early) by many samples.
    assert np.argmax(without[far, j - 40:j + 41]) - 40 < -3


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_stretch_mute_zeroes_where_stretch_exceeds_limit(backend):
    dt, ns, v, limit = 0.004, 500, 2000.0, 0.3
    x = np.array([0.0, 500.0, 1200.0, 2400.0])
    ones = np.ones((x.size, ns), np.float32)
    out = nmo_correct(ones, x, dt, v, stretch_mute=limit, backend=backend)
    t0 = np.arange(ns) * dt
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.sqrt(t0**2 + (x[:, None] / v) ** 2)
        stretch = tx / t0 - 1.0  # exact for constant v: 1/(dt/dt0) - 1 = t/t0 - 1
    inside = tx <= (ns - 1) * dt
    # The kernel differentiates the sampled map: allow 1 % of the limit either side.
    assert np.all(out[stretch > limit * 1.01] == 0.0)
    keep = (stretch < limit * 0.99) & inside
    assert keep.sum() > 100
    assert np.all(out[keep] == 1.0)
    # Zero offset is never stretched, and without a limit every in-range sample survives.
    assert np.all(out[0] == 1.0)
    free = nmo_correct(ones, x, dt, v, stretch_mute=None, backend=backend)
    assert np.all(free[inside & (t0 > 0)] == 1.0)
    assert np.all(free[~inside] == 0.0)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_inverse_nmo_recovers_gather_where_unmuted(backend):
    dt, ns, v = 0.002, 1000, 2000.0
    events = [(0.4, v), (0.9, v), (1.4, v)]
    d, x = cmp_gather(dt, ns, events=events)
    back = inverse_nmo(nmo_correct(d, x, dt, v, backend=backend), x, dt, v, backend=backend)
    ones = np.ones_like(d)
    valid_t0 = nmo_correct(ones, x, dt, v, backend=backend) == 1.0
    valid = inverse_nmo(valid_t0.astype(np.float32), x, dt, v, backend=backend) > 1.0 - 1e-6
    assert valid.sum() > 0.4 * valid.size
    # Two linear interpolations: the first, of d(t), errs by <= dt²/8 max|d''|; the second
    # interpolates c(t0) = d(t(t0)) whose second derivative is d''·t'² + d'·t'' with t' <= 1
    # and t'' = x²/(v² t³). So |error| <= dt²/8 (2 max|r''| + max|r'| max t'') for unit events.
    t0 = np.arange(ns) * dt
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = np.sqrt(t0**2 + (x[:, None] / v) ** 2)
        tpp = np.where(valid_t0, (x[:, None] / v) ** 2 / tt**3, 0.0)
    bound = dt**2 / 8 * (2 * RICKER_D2_MAX + ricker_d1_max() * tpp.max())
    err = np.abs(back - d)[valid]
    assert err.max() <= bound, (err.max(), bound)
    # The bound is tight to within a factor of a few, i.e. the inverse is not trivially loose.
    assert err.max() > bound / 10
    # Cubic convolution (third-order accurate) does better, where its 4-sample stencil stays
    # clear of the mute (cubic interpolation of the live mask is still 1 there).
    back3 = inverse_nmo(nmo_correct(d, x, dt, v, interp="cubic", backend=backend), x, dt, v,
                        interp="cubic", backend=backend)
    mask3 = inverse_nmo(valid_t0.astype(np.float32), x, dt, v, interp="cubic", backend=backend)
    valid3 = valid & (np.abs(mask3 - 1.0) < 1e-6)
    assert np.abs(back3 - d)[valid3].max() < np.abs(back - d)[valid3].max()


def test_inverse_nmo_of_flat_events_restores_hyperbolae():
    dt, ns, v = 0.004, 500, 2200.0
    x = np.array([0.0, 800.0, 1600.0, 2400.0])
    t = np.arange(ns) * dt
    flat = np.repeat(ricker(t - 0.6)[None, :], x.size, axis=0).astype(np.float32)
    out = inverse_nmo(flat, x, dt, v)
    expect = np.sqrt(0.6**2 + (x / v) ** 2)
    assert np.all(np.abs(np.argmax(out, axis=1) * dt - expect) <= dt)


@pytest.mark.parametrize("interp", ["linear", "cubic"])
def test_backends_agree(interp):
    dt, ns = 0.004, 400
    d, x = cmp_gather(dt, ns)
    x = x - 800.0  # split spread: negative offsets too
    rng = np.random.default_rng(3)
    v = vnmo_of_t0(ns, dt)[None, :] * (1.0 + 0.05 * rng.random((x.size, 1)))  # (ntr, ns)
    kw = dict(t_start=0.1, interp=interp)
    for eta in (None, 0.1):
        a = nmo_correct(d, x, dt, v, eta=eta, backend="cython", **kw)
        b = nmo_correct(d, x, dt, v, eta=eta, backend="numpy", **kw)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
        a = inverse_nmo(d, x, dt, v, eta=eta, backend="cython", **kw)
        b = inverse_nmo(d, x, dt, v, eta=eta, backend="numpy", **kw)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    a = nmo_stack(d, x, dt, v, backend="cython", **kw)
    b = nmo_stack(d, x, dt, v, backend="numpy", **kw)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_nmo_stack_normalises_by_live_fold():
    dt, ns = 0.004, 500
    d, x = cmp_gather(dt, ns)
    v = vnmo_of_t0(ns, dt)
    dead = d.copy()
    dead[::2] = 0.0  # every other trace dead: must not halve the stack
    full = nmo_stack(d, x, dt, v)
    half = nmo_stack(dead, x, dt, v)
    amp_tol = dt**2 / 8 * RICKER_D2_MAX
    for t0, _ in EVENTS:
        j = int(round(t0 / dt))
        # Flat unit events stack to ~1 whatever the fold (far traces are muted at 0.4 s).
        assert abs(full[j] - 1.0) <= amp_tol
        assert abs(half[j] - 1.0) <= amp_tol
    out = nmo_correct(d, x, dt, v)
    fold = (out != 0).sum(axis=0)
    expect = np.where(fold > 0, out.sum(axis=0) / np.maximum(fold, 1), 0.0)
    np.testing.assert_allclose(full, expect, rtol=1e-5, atol=1e-6)


GOOD = dict(gather=np.zeros((3, 10), np.float32), offset=np.zeros(3), dt=0.004,
            vnmo=np.full(10, 2000.0))


BAD = [
    (dict(vnmo=np.full(10, -2000.0)), "vnmo must be finite and > 0"),
    (dict(vnmo=np.full(10, 0.0)), "vnmo must be finite and > 0"),
    (dict(dt=0.0), "dt must be a finite number > 0"),
    (dict(dt=-0.004), "dt must be a finite number > 0"),
    (dict(dt="x"), "dt must be a number"),
    (dict(offset=np.zeros(4)), "offset must have shape (3,)"),
    (dict(vnmo=np.full(11, 2000.0)), "vnmo must have shape (10,) or (3, 10)"),
    (dict(gather=np.zeros(10, np.float32)), "gather must be 2-D"),
    (dict(gather=np.full((3, 10), np.nan, np.float32)), "trace 0, sample 0 is not finite"),
    (dict(eta=-0.6), "eta must be finite and > -0.5"),
    (dict(interp="sinc"), "interp must be one of"),
    (dict(backend="gpu"), "backend must be one of"),
]
MUTE_BAD = [(dict(stretch_mute=-0.1), "stretch_mute must be a finite number > 0")]


@pytest.mark.parametrize(
    "func, change, words",
    [(f, c, w) for f in (nmo_correct, inverse_nmo, nmo_stack) for c, w in BAD]
    + [(f, c, w) for f in (nmo_correct, nmo_stack) for c, w in MUTE_BAD],
)
def test_bad_parameters_raise_one_line_seiserror(func, change, words):
    kw = {**GOOD, **change}
    args = [kw.pop(k) for k in ("gather", "offset", "dt", "vnmo")]
    with pytest.raises(SeisError) as exc:
        func(*args, **kw)
    msg = str(exc.value)
    assert words in msg and "\n" not in msg
    assert msg.startswith(func.__name__)
