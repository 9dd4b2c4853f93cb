"""The GPU emulator's kernel cache runs only libraries this user built: a folder planted by
someone else (or writable by others) is never loaded from, and the cache is private (0700)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seis_hpc.gpu import runtime
from seis_hpc.gpu.runtime import emulator_launch, emulator_library

pytestmark = pytest.mark.skipif(shutil.which("g++") is None and not os.environ.get("CXX"),
                                reason="no C++ compiler for the emulator")

SRC = """extern "C" __global__ void twice(float* a, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) a[i] *= 2.0f;
}
"""
# Another user's library: loading it (dlopen runs its constructor) leaves a marker file.
PLANT = """#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void)
{
    int fd = open("%s", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
}
"""


def works(lib) -> bool:
    a = np.arange(5, dtype=np.float32)
    emulator_launch(lib, "twice", (2,), (4,), [a, np.int32(5)])
    return np.array_equal(a, 2 * np.arange(5, dtype=np.float32))


@pytest.fixture(scope="module")
def so_name(tmp_path_factory) -> str:
    """The file name the emulator gives SRC's library (its cache key)."""
    d = tmp_path_factory.mktemp("ref") / "cache"
    assert works(emulator_library(SRC, cache_dir=d))
    (name,) = [p.name for p in d.glob("kernels-*.so")]
    return name


@pytest.fixture
def plant(tmp_path):
    """plant(folder, name): put a library that creates ``marker`` when loaded at
    folder/name; returns the marker's path (absent)."""
    marker = tmp_path / "PLANTED-LIBRARY-WAS-LOADED"
    src = tmp_path / "plant.c"
    src.write_text(PLANT % marker)
    lib = tmp_path / "plant.so"
    subprocess.run([os.environ.get("CXX") or "g++", "-x", "c", "-shared", "-fPIC", str(src),
                    "-o", str(lib)], check=True, capture_output=True)
    # The plant is effective: loading it does leave the marker.
    subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(lib)!r})"],
                   check=True)
    assert marker.exists()
    marker.unlink()

    def put(folder: Path, name: str) -> Path:
        shutil.copy(lib, folder / name)
        return marker

    return put


@pytest.fixture
def private_env(tmp_path, monkeypatch):
    """A fresh XDG cache home; no SEIS_HPC_CACHE."""
    monkeypatch.delenv("SEIS_HPC_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "seis_hpc" / "gpu-emulator"


def test_cache_is_private_and_reused(private_env, monkeypatch, so_name):
    assert runtime.emulator_cache_dir() == private_env
    assert works(emulator_library(SRC))
    for d in (private_env, private_env.parent, private_env.parent.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    so = private_env / so_name
    assert so.is_file() and not so.stat().st_mode & 0o022
    assert [p.name for p in private_env.iterdir()] == [so_name]  # no build folder left

    def no_compiler(*a, **k):
        raise AssertionError("the cached library was built again")

    monkeypatch.setattr(runtime.subprocess, "run", no_compiler)
    assert works(emulator_library(SRC))


def test_folder_writable_by_others_is_not_loaded_from(private_env, plant, so_name):
    private_env.mkdir(parents=True)
    private_env.chmod(0o777)  # pre-created by someone else for everybody
    marker = plant(private_env, so_name)
    with pytest.warns(RuntimeWarning, match="writable by other users"):
        lib = emulator_library(SRC)
    assert works(lib)
    assert not marker.exists()


def test_old_temp_folder_is_not_used(tmp_path, monkeypatch, private_env, plant, so_name):
    """The former cache, $TMPDIR/seis_hpc-gpu-emulator-UID, is shared by all users."""
    import tempfile

    tmp = tmp_path / "tmp"
    old = tmp / f"seis_hpc-gpu-emulator-{os.getuid()}"
    old.mkdir(parents=True)
    old.chmod(0o777)
    marker = plant(old, so_name)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    assert works(emulator_library(SRC))
    assert not marker.exists()


def test_folder_of_another_user_is_not_loaded_from(tmp_path, plant, so_name):
    if os.geteuid() != 0:
        pytest.skip("only root can give a folder to another user")
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o755)
    marker = plant(folder, so_name)
    os.chown(folder / so_name, 65534, 65534)
    os.chown(folder, 65534, 65534)
    with pytest.warns(RuntimeWarning, match="belongs to uid 65534"):
        lib = emulator_library(SRC, cache_dir=folder)
    assert works(lib)
    assert not marker.exists()


def test_library_not_ours_is_rebuilt(private_env, plant, so_name):
    """A private folder, but a library in it that others may write: built again, replaced."""
    private_env.mkdir(parents=True, mode=0o700)
    marker = plant(private_env, so_name)
    (private_env / so_name).chmod(0o777)
    assert works(emulator_library(SRC))
    assert not marker.exists()
    assert not (private_env / so_name).stat().st_mode & 0o022
