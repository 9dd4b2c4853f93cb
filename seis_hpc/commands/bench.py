"""``seis-hpc bench``: throughput of the PSTM kernels (runs ``benchmarks/bench_kernels.py``)."""

HELP = "measure PSTM kernel throughput against a float32 SIMD plain C loop (the ceiling)"
DESCRIPTION = """Measure the Kirchhoff PSTM kernels on a fixed 3D problem (printed) and report
evaluations per second per core (one evaluation = one (trace, output sample) pair inside the
aperture) for: the NumPy reference, the Cython kernel without and with anti-aliasing, weights
and tapers, with sparse-t0 traveltimes, and with 1 and 2 OpenMP threads, plus two plain C loops
of the same DSR + linear interpolation compiled now with gcc: float32 with the output samples
vectorised (the ceiling, -O3 -march=native -ffast-math) and float64 scalar (the former
ceiling); each rate's ratio to the ceiling of the same run and to Seismic Unix suktmig2d's
rate (5.4e6 evaluations/s, measured once, not run here).

Parameters:
  --repeat N   runs per variant, the best is kept (default 3)
  --json       print the figures as JSON
  --gpu        the GPU backend instead (benchmarks/bench_gpu.py: the card's ceilings, accuracy
               against the Cython kernel, the full kernel against a bare CUDA loop, one core
               and all cores; needs CuPy and a CUDA GPU; a few minutes)

The benchmark scripts ship inside the package (seis_hpc/_bench; benchmarks/ of the checkout
in an editable install); gcc builds the C ceiling.
Takes about a minute on one core."""
NEEDS_ARGS = False


def add_arguments(parser) -> None:
    """``--repeat``, ``--json``, ``--gpu``."""
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--gpu", action="store_true",
                        help="benchmark the GPU backend (benchmarks/bench_gpu.py)")


def bench_script(name: str):
    """Path of the benchmark script ``name`` (``bench_kernels``, ``bench_gpu``): the copy a
    wheel carries in ``seis_hpc/_bench``, else ``benchmarks/`` of the source checkout.

    Raises
    ------
    SeisError
        Neither exists.
    """
    from importlib import resources
    from pathlib import Path

    from seis_hpc.errors import SeisError

    shipped = resources.files("seis_hpc").joinpath("_bench", f"{name}.py")
    if isinstance(shipped, Path) and shipped.is_file():
        return shipped
    script = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    if not script.is_file():
        raise SeisError("benchmark script not found (neither in the package nor in a "
                        "checkout)", script)
    return script


def run(args) -> int:
    import importlib.util

    from seis_hpc.errors import SeisError

    if args.repeat < 1:
        raise SeisError(f"--repeat: must be >= 1 (got {args.repeat})")
    if args.gpu and args.json:
        raise SeisError("--json with --gpu: run benchmarks/bench_gpu.py --json FILE")
    name = "bench_gpu" if args.gpu else "bench_kernels"
    script = bench_script(name)
    spec = importlib.util.spec_from_file_location(name, script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if args.gpu:
        # bench_gpu writes its figures to a file with --json FILE; here they go to stdout
        return mod.main(["--repeat", str(args.repeat)])
    argv = ["--repeat", str(args.repeat)] + (["--json"] if args.json else [])
    return mod.main(argv)
