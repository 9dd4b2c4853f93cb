"""GPU PSTM throughput against one CPU core, all CPU cores and a bare CUDA loop, in one run.

    python benchmarks/bench_gpu.py [--json OUT.json] [--quick]

Needs CuPy and a CUDA GPU, and the Cython kernels built in place (``python setup.py
build_ext --inplace``). Everything is measured in the same run, on the same machine:

1. ceilings of the card: device-memory copy bandwidth, FP32 FMA issue rate (8 independent
   chains per thread), MUFU (rsqrt) rate;
2. accuracy: ``pstm(backend="gpu")`` against the Cython kernel on the CPU benchmark's problem
   (``benchmarks/bench_kernels.py``), relative L2 and max error (target < 1e-4);
3. throughput, in evaluations per second (one evaluation = one (trace, output sample) pair
   inside the aperture with t0 > 0, the definition of bench_kernels.py):
   * the bare CUDA loop (``pstm_bare`` in seis_hpc/gpu/kernels.cu: DSR traveltime, aperture
     test, linear interpolation, accumulate; one thread per output sample; compiled plainly,
     and also with the kernels' options);
   * the full kernel (anti-aliasing + spreading and obliquity weights + aperture and angle
     tapers) at 1, 2 and 4 output samples per thread, and without anti-aliasing;
   * the modelling adjoint; end to end ``pstm(backend="gpu")`` (uploads and preparation);
   * the Cython kernel on one core and on every core (OpenMP), same problem;
   on the CPU benchmark's problem (small for a GPU: 1,200 traces x 400 points) and on a
   scaled one (the same recipe, 48,000 traces x 6,400 points);
4. a floor estimate: the kernel's instruction and byte counts per evaluation against the
   measured ceilings.

Kernel times are CUDA-event times of the launches, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if (ROOT / "seis_hpc").is_dir():  # run from the checkout: its package (seis-hpc bench runs
    sys.path.insert(0, str(ROOT))  # the copy shipped in seis_hpc/_bench, beside its package)
sys.path.insert(0, str(HERE))  # bench_kernels

CEILING_SRC = r"""
extern "C" __global__ void fma_peak(float* out, int iters, float a, float b)
{
    float x0 = threadIdx.x, x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3;
    float x4 = x0 + 4, x5 = x0 + 5, x6 = x0 + 6, x7 = x0 + 7;
    for (int i = 0; i < iters; ++i) {
        x0 = fmaf(x0, a, b); x1 = fmaf(x1, a, b); x2 = fmaf(x2, a, b); x3 = fmaf(x3, a, b);
        x4 = fmaf(x4, a, b); x5 = fmaf(x5, a, b); x6 = fmaf(x6, a, b); x7 = fmaf(x7, a, b);
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;
}
extern "C" __global__ void mufu_peak(float* out, int iters)
{
    float x0 = threadIdx.x + 1, x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3;
    for (int i = 0; i < iters; ++i) {
        x0 = rsqrtf(x0); x1 = rsqrtf(x1); x2 = rsqrtf(x2); x3 = rsqrtf(x3);
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = x0 + x1 + x2 + x3;
}
"""

# Per-evaluation counts for the floor estimate, read off the sm_90 SASS of kernels.cu (nvcc
# 13.0 -cubin -arch=sm_90, then cuobjdump -sass; docs/benchmarks.md): instructions issued per
# evaluation on the hot path of the loop body (full kernel as benchmarked: triangle read,
# -ftz=true, 2 samples per thread, max_angle 90, no stretch mute, angle-taper block not
# taken; bare loop: plain compile, its unrolled-by-2 body halved, the sqrt slow-path calls
# not taken), MUFU operations among them, and bytes loaded through L1 (3 x 16 B triangle
# reads; 2 x 4 B plain reads).
FLOOR_COUNTS = {
    "full": {"instr": 114.0, "mufu": 5.0, "l1_bytes": 48.0},
    "bare": {"instr": 65.0, "mufu": 2.0, "l1_bytes": 8.0},
}


def log(*a):
    print(*a, flush=True)


def events_time(cp, fn, repeat: int) -> float:
    """Best of ``repeat`` CUDA-event times (s) of ``fn`` after one warm-up call."""
    fn()
    cp.cuda.Device().synchronize()
    best = np.inf
    for _ in range(repeat):
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(a, b) / 1e3)
    return best


def wall_time(fn, repeat: int) -> float:
    """Best of ``repeat`` wall-clock times (s) of ``fn`` after one warm-up call."""
    import bench_kernels as bk

    fn()
    return bk.best_time(fn, repeat)


def ceilings(cp, res: dict, quick: bool = False) -> None:
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    n_sm = props["multiProcessorCount"]
    res["device"] = {"name": name, "sms": n_sm, "clock_khz": props.get("clockRate"),
                     "mem_gib": props["totalGlobalMem"] / 2**30,
                     "l2_mib": props.get("l2CacheSize", 0) / 2**20,
                     "cupy": cp.__version__,
                     "cuda_runtime": cp.cuda.runtime.runtimeGetVersion()}
    log(f"device: {name}, {n_sm} SMs, {res['device']['mem_gib']:.0f} GiB, "
        f"L2 {res['device']['l2_mib']:.0f} MiB, CuPy {cp.__version__}")
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.max.sm,clocks.mem,"
                              "power.draw,temperature.gpu", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        res["device"]["nvidia_smi"] = smi
        log(f"nvidia-smi (SM clock, max SM clock, mem clock, power, temp): {smi}")
    except Exception as e:  # informational only
        log(f"nvidia-smi: {e}")
    n = 1 << (22 if quick else 29)  # 2 GiB of float32
    src = cp.ones(n, cp.float32)
    dst = cp.empty_like(src)
    t = events_time(cp, lambda: cp.copyto(dst, src), 5)
    res["ceilings"] = {"copy_bytes_per_s": 2 * 4 * n / t}
    mod = cp.RawModule(code=CEILING_SRC, options=("-std=c++17", "--ftz=true"))
    out = cp.zeros(n_sm * 2048 * 4, cp.float32)
    threads, blocks = 256, n_sm * 8 * 4
    iters = 64 if quick else 16384  # ~4 ms of FMAs on an H200: well past launch overhead
    f = mod.get_function("fma_peak")
    t = events_time(cp, lambda: f((blocks,), (threads,), (out, np.int32(iters), np.float32(0.999),
                                                          np.float32(0.001))), 5)
    fma_rate = blocks * threads * iters * 8 / t
    g = mod.get_function("mufu_peak")
    t = events_time(cp, lambda: g((blocks,), (threads,), (out, np.int32(iters))), 5)
    mufu_rate = blocks * threads * iters * 4 / t
    res["ceilings"].update({"fma_per_s": fma_rate, "fp32_flop_per_s": 2 * fma_rate,
                            "mufu_rsq_per_s": mufu_rate})
    log(f"ceilings: copy {res['ceilings']['copy_bytes_per_s'] / 1e12:.2f} TB/s (read + write), "
        f"FP32 FMA {fma_rate / 1e12:.1f} T/s ({2 * fma_rate / 1e12:.0f} TFLOP/s; one FMA per "
        f"issue slot, so also the instruction issue ceiling), rsqrt {mufu_rate / 1e12:.2f} T/s")


def scaled_problem(ntr: int, grid_n: int, seed: int = 0):
    """bench_kernels.problem()'s recipe on a larger patch: same offsets, times, velocities."""
    import bench_kernels as bk

    rng = np.random.default_rng(seed)
    side = grid_n * bk.GRID_DX + 2 * bk.APERTURE
    mx = rng.uniform(0, side, ntr)
    my = rng.uniform(0, side, ntr)
    off = rng.uniform(100, 3000, ntr)
    az = rng.uniform(-0.2, 0.2, ntr)
    hx, hy = 0.5 * off * np.cos(az), 0.5 * off * np.sin(az)
    sx, sy, rx, ry = mx - hx, my - hy, mx + hx, my + hy
    g = side / 2 + bk.GRID_DX * (np.arange(grid_n) - grid_n / 2)
    pts = np.column_stack([a.ravel() for a in np.meshgrid(g, g)])
    time_axis = np.arange(bk.NT) * bk.DT
    vr = (1500 + 600 * time_axis[None] + 50 * rng.random((len(pts), 1))).astype(np.float32)
    data = rng.standard_normal((ntr, bk.NS)).astype(np.float32)
    return data, sx, sy, rx, ry, pts, time_axis, vr


def kernel_rates(cp, prob, n_eval, repeat, res_rates, tag, spts=(1, 2, 4)):
    """Event-timed launches of the migration kernels on device-resident inputs."""
    import bench_kernels as bk

    from seis_hpc.gpu import get_runtime
    from seis_hpc.gpu import pstm as gp
    from seis_hpc.migration.pstm import _setup, default_dx_aa

    rt = get_runtime()
    data, sx, sy, rx, ry, pts, time_axis, vr = prob
    # the bare loop, compiled plainly (no options) and with the kernels' options
    bare = gp.BareProblem(data, bk.DT, sx, sy, rx, ry, pts, time_axis, vr, bk.APERTURE,
                          runtime=rt)
    src = rt._src
    plain = cp.RawModule(code=src, options=("-std=c++17",)).get_function("pstm_bare")
    n = bare.npts * bare.nt
    t_start, idt, ap2 = bare.scalars
    args = (bare.data, bare.geo, np.int32(bare.ntr), np.int32(bare.ns), bare.pts,
            np.int32(bare.npts), bare.a2, bare.iv2, np.int32(bare.nt), t_start, idt, ap2,
            bare.out)
    t = events_time(cp, lambda: plain((-(-n // 256),), (256,), args), repeat)
    res_rates[f"{tag}: bare CUDA loop (plain compile)"] = n_eval / t
    t = events_time(cp, bare.run, repeat)
    res_rates[f"{tag}: bare CUDA loop (-ftz=true)"] = n_eval / t

    def prepared(antialias: bool, spt: int):
        *_, p = _setup(pts, time_axis, vr, sx, sy, rx, ry, bk.DT, 0.0, bk.APERTURE, 90.0,
                       0.1 if antialias else 0.0,
                       "spreading+obliquity" if antialias else "none", "linear", "gpu", 3, 1)
        if antialias:
            p.update(antialias=1, dx_aa=default_dx_aa(pts), aa_max=32.0, pad=34)
        a = 0.5 * time_axis
        iv2 = (1.0 / vr.astype(np.float64) ** 2) * np.ones((1, len(time_axis)))
        aa = bool(p["antialias"])
        job = gp._Launch(rt, p, pts, sx, sy, rx, ry, time_axis, a, iv2, data.shape[1],
                         len(time_axis), spt, aa, None)
        d = cp.asarray(data)
        s2q = gp.split_double_integral(cp, d, job.pad) if aa else cp.zeros((1, 4), cp.float32)
        img = cp.zeros((len(pts), len(time_axis)), cp.float32)

        def run():
            # the pair pass is part of the work (the bare loop tests the aperture itself)
            for b0, b1, recs, off in job.batches():
                job.run("pstm_migrate", d[b0:b1], s2q[b0:b1] if aa else s2q, recs, off, img)

        return run

    for spt in spts:
        t = events_time(cp, prepared(True, spt), repeat)
        res_rates[f"{tag}: full kernel (AA + weights + tapers), {spt} samples/thread"] = n_eval / t
    t = events_time(cp, prepared(False, 2), repeat)
    res_rates[f"{tag}: no AA, no weights or tapers, 2 samples/thread"] = n_eval / t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small scaled problem (a smoke test)")
    ap.add_argument("--emulate", action="store_true",
                    help="run on tests/fake_cupy.py (CPU emulator): checks this script, not speed")
    args = ap.parse_args(argv)
    if args.emulate:
        sys.path.insert(0, str(ROOT / "tests"))
        import fake_cupy

        sys.modules["cupy"] = fake_cupy
    import bench_kernels as bk

    try:
        import cupy as cp

        cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # no CuPy, no driver or no device
        print(f"bench_gpu: no usable CuPy/GPU here ({type(e).__name__}: {e}); "
              "--emulate checks this script on the CPU", file=sys.stderr)
        return 2

    from seis_hpc.kernels import openmp
    from seis_hpc.migration.pstm import kirchhoff_model, pstm

    res: dict = {"rates": {}}
    rates = res["rates"]
    t_all = time.perf_counter()
    ceilings(cp, res, args.quick)

    # -- accuracy and the CPU references on the CPU benchmark's problem ---------------------
    prob = bk.problem()
    data, sx, sy, rx, ry, pts, time_axis, vr = prob
    n_eval = bk.evaluations(sx, sy, rx, ry, pts, time_axis)
    full = {"aperture": bk.APERTURE, "taper": 0.1, "weights": "spreading+obliquity",
            "antialias": True}
    base = {"aperture": bk.APERTURE, "taper": 0.0, "weights": "none", "antialias": False}
    log(f"CPU benchmark problem: {bk.NTR} traces x {bk.NS} samples -> {len(pts)} points x "
        f"{bk.NT} samples, {n_eval:.3e} evaluations")
    res["accuracy"] = {}
    for name, kw in (("full", full), ("no AA", base)):
        c = pstm(data, bk.DT, sx, sy, rx, ry, pts, time_axis, vr, backend="cython", **kw)
        g = pstm(data, bk.DT, sx, sy, rx, ry, pts, time_axis, vr, backend="gpu", **kw)
        l2 = float(np.linalg.norm(g - c) / np.linalg.norm(c))
        mx = float(np.abs(g - c).max() / np.abs(c).max())
        res["accuracy"][name] = {"rel_l2": l2, "rel_max": mx}
        log(f"accuracy gpu vs cython ({name}): rel L2 {l2:.2e}, rel max {mx:.2e} "
            f"[{'PASS' if max(l2, mx) < 1e-4 else 'FAIL'} < 1e-4]")
    m = kirchhoff_model(c.astype(np.float32), pts, time_axis, vr, sx, sy, rx, ry, bk.NS, bk.DT,
                        backend="cython", aperture=bk.APERTURE)
    mg = kirchhoff_model(c.astype(np.float32), pts, time_axis, vr, sx, sy, rx, ry, bk.NS, bk.DT,
                         backend="gpu", aperture=bk.APERTURE)
    res["accuracy"]["model"] = float(np.linalg.norm(mg - m) / np.linalg.norm(m))
    log(f"accuracy gpu vs cython (modelling): rel L2 {res['accuracy']['model']:.2e}")

    ncpu = os.cpu_count() or 1
    t1 = wall_time(lambda: pstm(data, bk.DT, sx, sy, rx, ry, pts, time_axis, vr, threads=1,
                                **full), 2)
    rates["cpu: cython full kernel, 1 core"] = n_eval / t1
    tn = wall_time(lambda: pstm(data, bk.DT, sx, sy, rx, ry, pts, time_axis, vr,
                                threads=ncpu, **full), 3)
    rates[f"cpu: cython full kernel, {ncpu} cores (OpenMP: "
          f"{'on' if openmp.have_openmp() else 'off'})"] = n_eval / tn
    log(f"CPU: 1 core {n_eval / t1:.3e} evals/s, {ncpu} cores {n_eval / tn:.3e} evals/s "
        f"({t1 / tn:.1f}x)")
    te = wall_time(lambda: pstm(data, bk.DT, sx, sy, rx, ry, pts, time_axis, vr, backend="gpu",
                                **full), args.repeat)
    rates["small: end to end pstm(backend='gpu'), full"] = n_eval / te
    kernel_rates(cp, prob, n_eval, args.repeat, rates, "small", spts=(2,))

    # -- the scaled problem ---------------------------------------------------------------
    ntr, gn = (300, 6) if args.emulate else (6000, 40) if args.quick else (48000, 80)
    big = scaled_problem(ntr, gn)
    # bench_kernels.evaluations in blocks of points (its full distance matrix would be ~2.5 GB)
    n_big = sum(bk.evaluations(*big[1:5], big[5][i:i + 256], big[6])
                for i in range(0, len(big[5]), 256))
    res["scaled_problem"] = {"ntr": ntr, "npts": gn * gn, "nt": bk.NT, "evaluations": n_big}
    log(f"scaled problem: {ntr} traces -> {gn * gn} points x {bk.NT} samples, "
        f"{n_big:.3e} evaluations")
    kernel_rates(cp, big, n_big, args.repeat, rates, "scaled")
    bd, bsx, bsy, brx, bry, bpts, btime, bvr = big
    te = wall_time(lambda: pstm(bd, bk.DT, bsx, bsy, brx, bry, bpts, btime, bvr, backend="gpu",
                                **full), 2)
    rates["scaled: end to end pstm(backend='gpu'), full"] = n_big / te
    img = pstm(bd, bk.DT, bsx, bsy, brx, bry, bpts, btime, bvr, backend="gpu",
               aperture=bk.APERTURE)
    tm = wall_time(lambda: kirchhoff_model(img, bpts, btime, bvr, bsx, bsy, brx, bry, bk.NS,
                                           bk.DT, backend="gpu", aperture=bk.APERTURE), 2)
    rates["scaled: end to end kirchhoff_model(backend='gpu')"] = n_big / tm

    # -- table and ratios -----------------------------------------------------------------
    one = rates["cpu: cython full kernel, 1 core"]
    allc = [v for k, v in rates.items() if k.startswith("cpu: cython full kernel, ") and
            "1 core" not in k][0]
    bare_plain = rates["scaled: bare CUDA loop (plain compile)"]
    best_full_name = max((k for k in rates if k.startswith("scaled: full kernel")),
                         key=rates.get)
    best_full = rates[best_full_name]
    log(f"\n{'variant':66s} {'evals/s':>10s} {'x 1 core':>9s} {'x all':>7s} {'x bare':>7s}")
    for k, v in rates.items():
        log(f"{k:66s} {v:10.3e} {v / one:9.1f} {v / allc:7.2f} {v / bare_plain:7.2f}")
    res["ratios"] = {"best_full_kernel": best_full_name,
                     "full_over_bare_plain": best_full / bare_plain,
                     "full_over_bare_ftz": best_full / rates["scaled: bare CUDA loop (-ftz=true)"],
                     "full_over_one_core": best_full / one, "full_over_all_cores": best_full / allc}
    log(f"\nfull kernel / bare CUDA loop: {best_full / bare_plain:.2f} (target >= 0.5); "
        f"/ one CPU core: {best_full / one:.0f}x (target >= 1000x); / all {ncpu} cores: "
        f"{best_full / allc:.0f}x")

    # -- floor estimate -------------------------------------------------------------------
    c = res["ceilings"]
    res["floor"] = {}
    for key, rate in (("full", best_full), ("bare", bare_plain)):
        f = FLOOR_COUNTS[key]
        issue = c["fma_per_s"] / f["instr"]
        mufu = c["mufu_rsq_per_s"] / f["mufu"]
        floor_rate = min(issue, mufu)
        res["floor"][key] = {"issue_bound": issue, "mufu_bound": mufu,
                             "achieved_fraction": rate / floor_rate, **f}
        log(f"floor ({key}): {f['instr']:.0f} instructions/eval -> {issue:.2e} evals/s at the "
            f"measured issue rate; {f['mufu']:.0f} MUFU/eval -> {mufu:.2e}; achieved "
            f"{rate:.2e} = {rate / floor_rate:.0%} of the lower bound; L1 traffic "
            f"{f['l1_bytes'] * rate / 1e12:.1f} TB/s; device memory: the traces are read once "
            f"per launch ({bk.NS * 4 + 16 * (bk.NS + 68)} B/trace), negligible per evaluation")
    res["seconds"] = time.perf_counter() - t_all
    log(f"total {res['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
