"""Build the Cython kernels in ``kernels/*.pyx`` into ``seis_hpc.kernels.<name>``.

Compiler flags: ``-O3 -ffp-contract=fast -fno-math-errno -fno-trapping-math`` always (the
last two change no computed value: they let ``sqrt`` compile to the SIMD instruction and loops
with selects vectorise; no ``-ffast-math``); ``-march=native`` unless ``SEIS_HPC_PORTABLE=1``
(set it when the login node that builds differs from the compute nodes that run); OpenMP when
the compiler links a test program with ``-fopenmp`` (``SEIS_HPC_OPENMP=0`` turns it off);
``--param=inline-unit-growth=400`` where the compiler takes it (gcc: see ``_flags``).
Without OpenMP, ``prange`` loops run serially and give the same result.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent


def _compiler() -> str:
    return os.environ.get("CC") or sysconfig.get_config_var("CC").split()[0] or "cc"


def _links_with(flags: list[str]) -> bool:
    """True when a tiny C program using OpenMP compiles and links with ``flags``."""
    cc = shutil.which(_compiler())
    if cc is None:
        return False
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "t.c"
        c.write_text(src)
        cmd = [cc, str(c), "-o", str(Path(tmp) / "t"), *flags]
        return subprocess.run(cmd, capture_output=True).returncode == 0


def _accepts(flag: str) -> bool:
    """True when the compiler builds a trivial C program with ``flag`` without a warning."""
    cc = shutil.which(_compiler())
    if cc is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "t.c"
        c.write_text("int main(void){return 0;}\n")
        cmd = [cc, str(c), "-o", str(Path(tmp) / "t"), "-Werror", flag]
        return subprocess.run(cmd, capture_output=True).returncode == 0


def _flags() -> tuple[list[str], list[str]]:
    compile_args = ["-O3", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math"]
    # gcc: let the PSTM kernel's per-sample loop be inlined at each of its constant-flag call
    # sites (the default unit-growth limit leaves most copies out of line, where the loop
    # does not vectorise); changes no computed value
    if _accepts("--param=inline-unit-growth=400"):
        compile_args.append("--param=inline-unit-growth=400")
    if os.environ.get("SEIS_HPC_PORTABLE", "0") != "1":
        compile_args.append("-march=native")
    link_args: list[str] = []
    if os.environ.get("SEIS_HPC_OPENMP", "1") != "0" and _links_with(["-fopenmp"]):
        compile_args.append("-fopenmp")
        link_args.append("-fopenmp")
    else:
        print("seis_hpc setup: building without OpenMP (kernels run on one thread)",
              file=sys.stderr)
    return compile_args, link_args


def _extensions() -> list[Extension]:
    compile_args, link_args = _flags()
    exts = []
    for pyx in sorted((HERE / "kernels").glob("*.pyx")):
        exts.append(
            Extension(
                f"seis_hpc.kernels.{pyx.stem}",
                [str(pyx.relative_to(HERE))],
                include_dirs=[np.get_include(), "kernels"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=compile_args,
                extra_link_args=link_args,
            )
        )
    return cythonize(
        exts,
        include_path=["kernels"],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


setup(ext_modules=_extensions())
