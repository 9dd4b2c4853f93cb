"""Parabolic Radon demultiple: ``seis-hpc radon`` on 20 shots of the built-in marine2d line
(1,920 traces x 1,501 samples, Vrms from an HDF5 field), and the transform against a plain
NumPy least-squares Radon in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_radon.py [--shots 20] [--ref-cmps 6]
        [--json OUT.json]

1. The whole step on one core (``run_step``, as ``seis-hpc radon IN --out OUT --velocity
   vrms.h5`` runs it), wall time against the 120 s target.
2. The plain reference: per frequency, the model-space damped least squares
   ``(L^H L + lam I) m = L^H d`` with ``n_q x n_q`` solves and the same reweighting (what
   ``seis_hpc.flows.decon._radon`` did before it solved in the data space), timed on
   ``--ref-cmps`` full-fold CMP gathers of the same line together with the current transform;
   the demultiple outputs of both are compared (relative max difference) and the reference's
   time for the whole line is extrapolated per CMP.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if (ROOT / "seis_hpc").is_dir():
    sys.path.insert(0, str(ROOT))


def plain_radon(gather, dt, x, q, damping, power, sparse_iterations=0, fmax=90.0):
    """Plain NumPy least-squares Radon: one ``n_q x n_q`` system per frequency."""
    from scipy.fft import irfft, next_fast_len, rfft

    g = np.asarray(gather, np.float64)
    ns = g.shape[1]
    nfft = next_fast_len(2 * ns, real=True)
    spec = rfft(g, nfft, axis=1)
    w = 2 * np.pi * np.fft.rfftfreq(nfft, dt)
    m = np.zeros((len(q), len(w)), complex)
    xp = x[:, None] ** power * q[None, :]
    eye = np.eye(len(q))
    for k in range(1, int(np.searchsorted(w, 2 * np.pi * fmax, side="right"))):
        L = np.exp(-1j * w[k] * xp)
        d = spec[:, k]
        wts = np.ones(len(q))
        mk = np.zeros(len(q), complex)
        for it in range(sparse_iterations + 1):
            if it:
                wts = np.abs(mk) + 1e-3 * np.abs(mk).max() + 1e-30
            Lw = L * wts
            A = Lw.conj().T @ Lw
            lam = damping * np.real(np.trace(A)) / len(q)
            mk = wts * np.linalg.solve(A + lam * eye, Lw.conj().T @ d)
        m[:, k] = mk
    return irfft(m, nfft, axis=1)[:, :ns].astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--ref-cmps", type=int, default=6)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from seis_hpc.engine.gather_run import group_traces, run_step
    from seis_hpc.flows import radon as radon_mod
    from seis_hpc.flows.steps import STEPS
    from seis_hpc.io.segy import write_segy
    from seis_hpc.survey import Survey, open_traces
    from seis_hpc.synth import make_survey, preset, vrms_function
    from seis_hpc.velocity.field import write_vrms

    p = preset("marine2d")
    p = replace(p, acquisition=replace(p.acquisition, shots_per_line=args.shots))
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        data, h, _ = make_survey(p)
        dt = p.acquisition.dt
        src = tmp / "shots.sgy"
        write_segy(src, data, h, dt)
        res["synth_s"] = time.perf_counter() - t0
        ntr, ns = data.shape
        grid = Survey.open(src, save=False).grid
        t, v = vrms_function(p.medium, (ns - 1) * dt, dt)
        vel = tmp / "vrms.h5"
        write_vrms(vel, np.broadcast_to(v, grid.shape + (len(v),)), grid, t)
        spec = STEPS["radon"]
        params = spec.resolve({"velocity": str(vel)}, "bench")
        t0 = time.perf_counter()
        summary = run_step(spec, params, src, tmp / "radon.sgy", quiet=True)
        res["step_s"] = time.perf_counter() - t0
        res.update(traces=ntr, samples=ns, gathers=summary["gathers"])
        print(f"marine2d {args.shots} shots: {ntr} traces x {ns} samples, "
              f"{summary['gathers']} CMP gathers")
        print(f"seis-hpc radon --velocity vrms.h5, one core: {res['step_s']:.1f} s "
              f"(target <= 120 s)")

        # The transform against the plain reference on full-fold CMPs.
        rd = open_traces(src, bin_cmps=True)
        groups = group_traces(rd.index, "cmp")
        fold = max(len(g) for g in groups)
        full = [g for g in groups if len(g) == fold][:args.ref_cmps]
        cur = radon_mod._radon
        times = {"current": 0.0, "plain": 0.0}
        diffs = []
        for ids in full:
            g = rd.read(ids)
            x = rd.columns(ids)["offset"]
            vt = np.interp(rd.t_start + dt * np.arange(ns), t, v)
            outs = {}
            for name, fn in (("current", cur), ("plain", plain_radon)):
                radon_mod._radon = fn
                t0 = time.perf_counter()
                outs[name] = radon_mod.radon_demultiple(g, dt, x, vt)[0]
                times[name] += time.perf_counter() - t0
            radon_mod._radon = cur
            diffs.append(float(np.abs(outs["current"] - outs["plain"]).max()
                               / np.abs(outs["plain"]).max()))
        n = len(full)
        res.update(ref_cmps=n, fold=fold, current_per_cmp_s=times["current"] / n,
                   plain_per_cmp_s=times["plain"] / n, max_rel_diff=max(diffs),
                   plain_line_estimate_s=times["plain"] / n * ntr / fold)
        print(f"{n} full-fold CMPs ({fold} traces): current {times['current'] / n:.3f} s/CMP, "
              f"plain NumPy least squares {times['plain'] / n:.3f} s/CMP "
              f"(x{times['plain'] / times['current']:.1f}); outputs differ by "
              f"{max(diffs):.1e} of their peak")
        print(f"plain reference, whole line (extrapolated by traces): "
              f"{res['plain_line_estimate_s']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
