"""A stand-in for CuPy over NumPy and the CPU emulator, for testing code written for CuPy.

Only what seis_hpc.gpu.runtime.CudaRuntime and benchmarks/bench_gpu.py use: NumPy's array
functions, ``RawModule`` (kernels built by the emulator, see ``emulate.h``), ``cuda.Device``,
``cuda.Event``, ``cuda.get_elapsed_time`` and ``cuda.runtime``. It checks that code's logic
and its calls, not CuPy itself nor any timing (events read the wall clock).
"""

from __future__ import annotations

import builtins
import time
import types

import numpy as np
from numpy import *  # noqa: F403  (the array functions CuPy mirrors)

from seis_hpc.gpu.runtime import emulator_launch, emulator_library

__version__ = "0.0-fake"


def asnumpy(a):
    return np.asarray(a)


def asarray(a, dtype=None):
    return np.ascontiguousarray(a, dtype=dtype)


class RawModule:
    def __init__(self, code: str, options=()):
        self.lib = emulator_library(code, options)

    def get_function(self, name: str):
        lib = self.lib

        def launch(grid, block, args, **kw):
            emulator_launch(lib, name, grid, block, args)

        return launch


class _Device:
    def __init__(self, i: int = 0):
        self.id = i

    def use(self):
        return self

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Event:
    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass


def _elapsed_ms(a: _Event, b: _Event) -> float:
    return builtins.max(1e-6, (b.t - a.t) * 1e3)


_runtime = types.SimpleNamespace(
    getDeviceCount=lambda: 1,
    getDeviceProperties=lambda i: {"name": b"CPU emulator", "multiProcessorCount": 2,
                                   "totalGlobalMem": 2**30, "clockRate": 0, "l2CacheSize": 0},
    runtimeGetVersion=lambda: 0,
)
cuda = types.SimpleNamespace(Device=_Device, Event=_Event, get_elapsed_time=_elapsed_ms,
                             runtime=_runtime)
