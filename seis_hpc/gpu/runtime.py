"""Where the CUDA kernels of :mod:`seis_hpc.gpu` run: a GPU through CuPy, or the CPU emulator.

Both runtimes compile ``kernels.cu`` with the same ``-D`` options and launch a kernel as
``launch(name, grid, block, args)``, ``args`` being device arrays (``runtime.xp`` arrays) and
NumPy scalars in the kernel's parameter order. :class:`EmulatorRuntime` builds the source with
the host C++ compiler and runs every (block, thread) in turn (see ``emulate.h``): slow, exact,
and available wherever a C++ compiler is, so that tests exercise the very kernels a GPU runs.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from seis_hpc.errors import SeisError

EMULATE_ENV = "SEIS_HPC_GPU_EMULATE"
# Denormals flushed to zero: no seismic amplitude or traveltime term lives below 1e-38, and
# without it every rsqrtf and division carries a rescaling branch.
NVRTC_OPTIONS = ("-std=c++17", "--ftz=true")


def source() -> str:
    """The CUDA source text of the kernels (``seis_hpc/gpu/kernels.cu``)."""
    return resources.files("seis_hpc.gpu").joinpath("kernels.cu").read_text()


def defines_options(defines: dict) -> tuple[str, ...]:
    """``-DNAME=VALUE`` options, sorted so that equal sets give equal cache keys."""
    return tuple(f"-D{k}={int(v)}" for k, v in sorted(defines.items()))


def _local_rank() -> int:
    """This process's rank on its node, from the launcher's environment (0 if none)."""
    for var in ("SEIS_HPC_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                "PMI_LOCAL_RANK", "PALS_LOCAL_RANKID", "SLURM_LOCALID"):
        v = os.environ.get(var)
        if v is not None and v.strip().isdigit():
            return int(v)
    return 0


class CudaRuntime:
    """Kernels compiled by NVRTC through CuPy, run on the GPU of this rank.

    With several GPUs visible, local rank r uses GPU ``r % n_gpus`` (one MPI rank per GPU);
    under SLURM with ``--gpus-per-task=1`` each rank sees one GPU and uses it.
    """

    name = "cuda"

    def __init__(self):
        import cupy

        self.cupy = cupy
        self.xp = cupy
        n = cupy.cuda.runtime.getDeviceCount()
        if n < 1:
            raise SeisError("backend gpu: CuPy sees no CUDA device")
        self.device_id = _local_rank() % n
        self.device = cupy.cuda.Device(self.device_id)
        self.device.use()
        self._src = source()
        self._modules: dict[tuple, object] = {}

    def function(self, name: str, defines: dict):
        opts = NVRTC_OPTIONS + defines_options(defines)
        mod = self._modules.get(opts)
        if mod is None:
            mod = self.cupy.RawModule(code=self._src, options=opts)
            self._modules[opts] = mod
        return mod.get_function(name)

    def launch(self, name: str, defines: dict, grid, block, args) -> None:
        with self.device:
            self.function(name, defines)(tuple(grid), tuple(block), tuple(args))

    def asarray(self, a, dtype=None):
        with self.device:
            return self.cupy.asarray(a, dtype=dtype)

    def asnumpy(self, a) -> np.ndarray:
        return self.cupy.asnumpy(a)

    def synchronize(self) -> None:
        self.device.synchronize()

    def describe(self) -> str:
        p = self.cupy.cuda.runtime.getDeviceProperties(self.device_id)
        name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
        return (f"{name} (device {self.device_id}, {p['multiProcessorCount']} SMs, "
                f"{p['totalGlobalMem'] / 2**30:.0f} GiB)")


def _cxx() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise SeisError("backend gpu (emulator): no C++ compiler (g++) found")
    return cxx


EMULATOR_CACHE = "gpu-emulator"


def emulator_cache_dir() -> Path:
    """The per-user folder of compiled emulator kernels: ``gpu-emulator`` in
    ``$SEIS_HPC_CACHE``, ``$XDG_CACHE_HOME/seis_hpc`` or ``~/.cache/seis_hpc``."""
    base = os.environ.get("SEIS_HPC_CACHE")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "seis_hpc"
    return Path(base) / EMULATOR_CACHE


def _private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700 (the XDG rule for caches)."""
    missing = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:  # another rank made it meanwhile; checked below
            pass


def _untrusted(st: os.stat_result, what: str, path: Path) -> str | None:
    """Why ``path`` (its ``lstat``) must not be trusted with code this process runs, or None."""
    import stat

    if stat.S_ISLNK(st.st_mode):
        return f"{what} {path} is a symbolic link"
    if st.st_uid != os.geteuid():
        return f"{what} {path} belongs to uid {st.st_uid}, not to this user ({os.geteuid()})"
    if st.st_mode & 0o022:
        return f"{what} {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _check_cache(cache: Path) -> str | None:
    """Why the cache folder is unsafe to load libraries from, or None: it must be a real
    folder of this user that nobody else may write, in a parent that nobody else may rename
    it in (owned by this user or root, and not writable by others unless sticky)."""
    import stat

    try:
        st = os.lstat(cache)
    except OSError as e:
        return f"cache folder {cache}: {e.strerror}"
    why = _untrusted(st, "cache folder", cache)
    if why is None and not stat.S_ISDIR(st.st_mode):
        why = f"cache folder {cache} is not a folder"
    if why:
        return why
    parent = cache.resolve().parent
    pst = os.stat(parent)
    if pst.st_uid not in (os.geteuid(), 0) or (pst.st_mode & 0o022
                                               and not pst.st_mode & stat.S_ISVTX):
        return f"its parent {parent} may be changed by other users"
    return None


def _compile(cxx: str, code: str, hdr: str, opts, folder: Path) -> Path:
    """Build ``code`` into ``folder/k.so`` (a private folder: nobody else can write there)."""
    (folder / "kernels.cu").write_text(code)
    (folder / "emulate.h").write_text(hdr)
    out = folder / "k.so"
    cmd = [cxx, "-std=c++17", "-O2", "-shared", "-fPIC", "-Wno-unknown-pragmas",
           "-x", "c++", "-DSEIS_EMULATE", *opts, str(folder / "kernels.cu"), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        first = r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""
        raise SeisError(f"backend gpu (emulator): {cxx} failed on kernels.cu: {first}")
    os.chmod(out, 0o700)
    return out


def emulator_library(code: str, options=(), cache_dir: str | os.PathLike | None = None
                     ) -> ctypes.CDLL:
    """Build CUDA source ``code`` for the CPU emulator (``emulate.h``); return the library.

    Every ``extern "C" __global__`` kernel NAME gets an entry ``emu_NAME(grid, block, args)``
    (kernels.cu declares its own; other sources get them appended). Built once per source
    and options into ``cache_dir`` (default :func:`emulator_cache_dir`, created mode 0700).

    A library is loaded, that is run, only from a folder that this user owns and nobody else
    can write, and only if this user owns it: otherwise (a folder planted by someone else,
    or made writable by others) the kernels are built in a private temporary folder, used
    once, with a warning. A library is written under a temporary name and renamed, so a
    half-written one is never loaded (MPI ranks building the same variant do not collide).
    """
    import warnings

    cxx = _cxx()
    hdr = resources.files("seis_hpc.gpu").joinpath("emulate.h").read_text()
    if "emulate.h" not in code:
        code = '#include "emulate.h"\n' + code
    if "SEIS_EMU_ENTRY" not in code:
        names = re.findall(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(', code)
        code += "\n" + "".join(f"SEIS_EMU_ENTRY({n})\n" for n in names)
    opts = tuple(o for o in options if o.startswith("-D"))
    key = hashlib.sha256("\0".join((code, hdr, cxx, *opts)).encode()).hexdigest()[:20]
    cache = Path(cache_dir) if cache_dir else emulator_cache_dir()
    _private_dir(cache)
    why = _check_cache(cache)
    if why is not None:
        warnings.warn(f"seis_hpc GPU emulator: not using {cache} ({why}); building the "
                      "kernels in a private temporary folder", RuntimeWarning, stacklevel=2)
        with tempfile.TemporaryDirectory(prefix="seis_hpc-emu-") as tmp:
            # The library stays mapped after its file and folder are removed.
            return ctypes.CDLL(str(_compile(cxx, code, hdr, opts, Path(tmp))))
    so = cache / f"kernels-{key}.so"
    try:
        bad = _untrusted(os.lstat(so), "library", so)
    except FileNotFoundError:
        bad = "absent"
    if bad is not None:  # absent, or not this user's: (re)build it
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            os.replace(_compile(cxx, code, hdr, opts, Path(tmp)), so)
    return ctypes.CDLL(str(so))


def emulator_launch(lib: ctypes.CDLL, name: str, grid, block, args) -> None:
    """Run kernel ``name`` of an emulator library over ``grid`` x ``block`` threads.

    ``args`` in the kernel's parameter order: NumPy arrays (passed as pointers),
    ``numpy.float32`` and ``numpy.int32`` scalars.
    """
    fn = getattr(lib, f"emu_{name}")
    fn.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                   ctypes.POINTER(ctypes.c_void_p)]
    fn.restype = None
    g = (ctypes.c_uint * 3)(*(list(grid) + [1, 1, 1])[:3])
    b = (ctypes.c_uint * 3)(*(list(block) + [1, 1, 1])[:3])
    keep = []
    ptrs = (ctypes.c_void_p * max(1, len(args)))()
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            if not a.flags.c_contiguous:
                raise ValueError(f"kernel argument {i} is not contiguous")
            obj = ctypes.c_void_p(a.ctypes.data)
        elif isinstance(a, np.float32):
            obj = ctypes.c_float(a)
        elif isinstance(a, np.int32):
            obj = ctypes.c_int(a)
        else:
            raise TypeError(f"kernel argument {i}: {type(a).__name__} (want an array, "
                            "numpy.float32 or numpy.int32)")
        keep.append(obj)
        ptrs[i] = ctypes.cast(ctypes.pointer(obj), ctypes.c_void_p)
    fn(g, b, ptrs)


class EmulatorRuntime:
    """Kernels built by the host C++ compiler and run one thread after another on the CPU."""

    name = "emulator"
    xp = np

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.cxx = _cxx()
        self.cache_dir = cache_dir
        self._src = source()
        self._libs: dict[tuple, ctypes.CDLL] = {}

    def launch(self, name: str, defines: dict, grid, block, args) -> None:
        opts = defines_options(defines)
        lib = self._libs.get(opts)
        if lib is None:
            lib = self._libs[opts] = emulator_library(self._src, opts, self.cache_dir)
        emulator_launch(lib, name, grid, block, args)

    def asarray(self, a, dtype=None):
        return np.ascontiguousarray(a, dtype=dtype)

    def asnumpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def synchronize(self) -> None:
        pass

    def describe(self) -> str:
        return f"CPU emulator ({self.cxx})"


_RUNTIME = None


def get_runtime():
    """The runtime of ``backend="gpu"``: CuPy on a CUDA GPU, or the emulator when
    ``SEIS_HPC_GPU_EMULATE=1``. Raises :class:`SeisError` when neither is available."""
    global _RUNTIME
    want_emu = os.environ.get(EMULATE_ENV, "") not in ("", "0")
    if _RUNTIME is not None and (_RUNTIME.name == "emulator") == want_emu:
        return _RUNTIME
    if want_emu:
        _RUNTIME = EmulatorRuntime()
        return _RUNTIME
    try:
        import cupy  # noqa: F401
    except ImportError:
        raise SeisError("backend gpu: CuPy is not installed (pip install cupy-cuda12x or "
                        "cupy-cuda13x to match the CUDA driver); use backend cython") from None
    try:
        _RUNTIME = CudaRuntime()
    except SeisError:
        raise
    except Exception as e:  # CUDA driver or runtime errors come in several types
        raise SeisError(f"backend gpu: no usable CUDA device ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); use backend cython") \
            from None
    return _RUNTIME


def available() -> bool:
    """True when ``backend="gpu"`` can run here on a real GPU (CuPy and a CUDA device)."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False
