"""Build the Cython kernels in ``kernels/*.pyx`` into ``seis_hpc.kernels.<name>``.

Compiler flags: ``-O3 -ffp-contract=fast -fno-math-errno -fno-trapping-math`` always (the
last two change no computed value: they let ``sqrt`` compile to the SIMD instruction and loops
with selects vectorise; no ``-ffast-math``); ``-march=native`` unless ``SEIS_HPC_PORTABLE=1``
(set it when the login node that builds differs from the compute nodes that run); OpenMP when
the compiler links a test program with ``-fopenmp`` (``SEIS_HPC_OPENMP=0`` turns it off);
``--param=inline-unit-growth=400`` where the compiler takes it (gcc: see ``_flags``).
Without OpenMP, ``prange`` loops run serially and give the same result.

Package data copied into the build (so a wheel needs no checkout; not kept twice in git):
``slurm/templates/*`` and ``jobs/lib.sh`` into ``seis_hpc/cluster/data/`` (what ``seis-hpc
slurm render`` fills in and what the rendered scripts source), the benchmark scripts that
``seis-hpc bench`` runs into ``seis_hpc/_bench/``, and the example flow files ``flows/*.toml``
(what ``seis-hpc example`` copies into a run folder) into ``seis_hpc/flows/examples/``. An
editable install reads them from the checkout instead.

``SEIS_HPC_REUSE_INPLACE=1`` packs the kernels already built in place (``make build``) instead
of compiling them again when they are newer than their ``.pyx``/``.pxd`` sources (the wheel
test of the test suite uses it; not for a portable build: the in-place kernels carry the
flags they were built with).
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
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# (source in the checkout, destination in the package): the run-time files of the commands.
PACKAGE_DATA = [
    ("slurm/templates", "seis_hpc/cluster/data/templates"),
    ("jobs/lib.sh", "seis_hpc/cluster/data/jobs/lib.sh"),
    ("benchmarks/bench_kernels.py", "seis_hpc/_bench/bench_kernels.py"),
    ("benchmarks/bench_gpu.py", "seis_hpc/_bench/bench_gpu.py"),
    ("benchmarks/plain_loop.c", "seis_hpc/_bench/plain_loop.c"),
    ("flows", "seis_hpc/flows/examples"),
]


class BuildPyWithData(build_py):
    """``build_py`` that also copies :data:`PACKAGE_DATA` into the build folder."""

    def run(self):
        super().run()
        if self.editable_mode:  # the package reads them from the checkout
            return
        for src, dest in PACKAGE_DATA:
            src, dest = HERE / src, Path(self.build_lib) / dest
            if src.is_dir():
                self.copy_tree(str(src), str(dest))
            else:
                self.mkpath(str(dest.parent))
                self.copy_file(str(src), str(dest))


def _inplace_kernel(stem: str) -> Path | None:
    """The kernel ``stem`` built in place, when SEIS_HPC_REUSE_INPLACE=1 and it is up to date."""
    if os.environ.get("SEIS_HPC_REUSE_INPLACE", "0") != "1":
        return None
    so = HERE / "seis_hpc" / "kernels" / f"{stem}{sysconfig.get_config_var('EXT_SUFFIX')}"
    sources = [HERE / "kernels" / f"{stem}.pyx", *(HERE / "kernels").glob("*.pxd")]
    if so.is_file() and all(so.stat().st_mtime >= s.stat().st_mtime for s in sources):
        return so
    return None


class BuildExtReusing(build_ext):
    """``build_ext`` that copies an up-to-date in-place kernel (:func:`_inplace_kernel`)."""

    def build_extension(self, ext):
        so = _inplace_kernel(ext.name.rpartition(".")[2])
        if so is None or self.inplace:
            return super().build_extension(ext)
        dest = Path(self.get_ext_fullpath(ext.name))
        self.mkpath(str(dest.parent))
        self.copy_file(str(so), str(dest))


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
    pyx = sorted((HERE / "kernels").glob("*.pyx"))
    if pyx and all(_inplace_kernel(p.stem) for p in pyx):
        # Nothing to compile: skip Cython and the compiler probe.
        return [Extension(f"seis_hpc.kernels.{p.stem}", [str(p.relative_to(HERE))]) for p in pyx]
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


setup(ext_modules=_extensions(),
      cmdclass={"build_py": BuildPyWithData, "build_ext": BuildExtReusing})
