"""Compile ``kernels.cu`` with NVRTC, without a GPU: a build check of the CUDA source.

NVRTC (NVIDIA's runtime compiler, the one CuPy uses) compiles CUDA C++ to PTX on any
x86-64 Linux machine; a GPU is needed only to run the result. CI installs it from PyPI
(``nvidia-cuda-nvrtc-cu12``) so that every variant of the kernels is compiled for Hopper
(``compute_90``) on each run, where no GPU exists to run them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from pathlib import Path

from seis_hpc.gpu.runtime import NVRTC_OPTIONS, defines_options, source


def find_library() -> str | None:
    """Path of libnvrtc: the ``nvidia-cuda-nvrtc`` wheel, a CUDA toolkit, or the linker path."""
    cands = []
    try:
        import nvidia.cuda_nvrtc as pkg  # nvidia-cuda-nvrtc-cu12

        for base in pkg.__path__:
            cands += sorted(glob.glob(os.path.join(base, "lib", "libnvrtc.so*")))
    except ImportError:
        pass
    for root in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root:
            cands += sorted(glob.glob(os.path.join(root, "lib64", "libnvrtc.so*")))
    found = ctypes.util.find_library("nvrtc")
    if found:
        cands.append(found)
    for c in cands:
        if "alt" not in Path(c).name and "builtins" not in Path(c).name:
            try:
                ctypes.CDLL(c)
                return c
            except OSError:
                continue
    return None


class NvrtcError(RuntimeError):
    """The CUDA source did not compile; the message holds NVRTC's log."""


def compile_ptx(defines: dict, arch: str = "compute_90", lib: str | None = None,
                extra: tuple[str, ...] = ()) -> tuple[str, str]:
    """Compile the kernels with these ``-D`` options; return (PTX, compiler log).

    Raises :class:`NvrtcError` with the log when compilation fails, ``OSError`` when no
    libnvrtc is found.
    """
    path = lib or find_library()
    if path is None:
        raise OSError("libnvrtc not found (pip install nvidia-cuda-nvrtc-cu12)")
    nv = ctypes.CDLL(path)
    prog = ctypes.c_void_p()
    src = source().encode()
    rc = nv.nvrtcCreateProgram(ctypes.byref(prog), ctypes.c_char_p(src),
                               ctypes.c_char_p(b"kernels.cu"), 0, None, None)
    if rc != 0:
        raise NvrtcError(f"nvrtcCreateProgram returned {rc}")
    opts = [f"--gpu-architecture={arch}", *NVRTC_OPTIONS, *defines_options(defines), *extra]
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    try:
        rc = nv.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        nv.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace").strip()
        if rc != 0:
            raise NvrtcError(f"NVRTC failed ({' '.join(opts)}):\n{log}")
        nv.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        nv.nvrtcGetPTX(prog, ptx)
        return ptx.value.decode(), log
    finally:
        nv.nvrtcDestroyProgram(ctypes.byref(prog))
