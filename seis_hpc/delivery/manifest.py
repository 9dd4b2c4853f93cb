"""``MANIFEST.sha256``: size and SHA-256 of every deliverable, and the check against it.

Format: the standard ``sha256sum`` text format (UTF-8, paths relative to the manifest's
folder, ``/``-separated), so anyone can check a delivery without seis_hpc::

    cd RUN && sha256sum -c MANIFEST.sha256

Each file has one ``<64 hex>  <path>`` line, preceded by a ``# size <bytes>  <path>``
comment that ``seis-hpc verify`` also checks (GNU ``sha256sum -c`` skips lines starting with
``#``, even with ``--strict``)::

    # seis_hpc manifest v2 (sha256sum format): cd to this folder, then sha256sum -c MANIFEST.sha256
    # created 2024-05-01T10:00:00+00:00 by seis_hpc 0.1.0
    # size 1914384  image.h5
    9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  image.h5

The path is everything after the two spaces, so it may contain spaces; a path holding a
newline or starting with a backslash (``sha256sum``'s escape mark) is refused. Manifests of
the older v1 format (``sha256  size  path`` rows) are still read.

Scratch (intermediate files of a run, see :mod:`seis_hpc.delivery.report`) is not in the
manifest: it is listed, with sizes and without hashes, in ``SCRATCH.txt`` next to it
(``# ...`` comments, then ``<bytes>  <path>`` lines); :func:`verify_manifest` does not count
the files it lists, nor ``SCRATCH.txt`` itself, as added. A path must stay inside the
manifest's folder: an absolute path, a ``..`` component or a symbolic link leading out is
refused (reading a manifest and building one), so a manifest can never vouch for
``/etc/hostname``. :func:`verify_manifest` also lists every file of the folder that the
manifest does not (an addition to a delivery).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from seis_hpc import __version__
from seis_hpc.errors import SeisError
from seis_hpc.io.atomic import atomic_output

MANIFEST_NAME = "MANIFEST.sha256"
SCRATCH_NAME = "SCRATCH.txt"
HEADER = ("# seis_hpc manifest v2 (sha256sum format): cd to this folder, then "
          "sha256sum -c MANIFEST.sha256")
_V1_HEADER = "# seis_hpc manifest v1:"
_V1_LINE = re.compile(r"^([0-9a-f]{64})  (\d+)  (.+)$")
_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")  # sha256sum text (" ") or binary ("*")
_SIZE = re.compile(r"^# size (\d+)  (.+)$")
_BLOCK = 8 << 20  # bytes read at a time while hashing


@dataclass(frozen=True)
class Entry:
    """One deliverable: its path relative to the manifest, size (bytes; -1 when the manifest
    does not record it) and SHA-256 (hex)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Problem:
    """A deliverable that does not match its entry: ``kind`` is ``"missing"``, ``"changed"``
    or ``"added"`` (a file in the manifest's folder that it does not list; its ``entry`` has
    the file's path, size and an empty SHA-256)."""

    entry: Entry
    kind: str
    detail: str


def sha256_file(path: str | os.PathLike, progress=None) -> tuple[int, str]:
    """Size (bytes) and SHA-256 hex digest of a file, read in 8 MiB blocks.

    Parameters
    ----------
    path : path-like
        File to hash.
    progress : seis_hpc.progress.Progress, optional
        Counts the bytes read.
    """
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
            size += len(block)
            if progress is not None:
                progress.update(len(block))
    return size, h.hexdigest()


def is_inside(path: Path, base: Path) -> bool:
    """Whether ``path`` (symbolic links followed) lies in folder ``base``."""
    real, root = os.path.realpath(path), os.path.realpath(base)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _relative(path: Path, base: Path) -> str:
    if not is_inside(path, base):
        raise SeisError(f"deliverable lies outside the manifest's folder {base}; a manifest "
                        "lists only files under its own folder", path)
    rel = os.path.relpath(path.resolve(), base.resolve())
    if "\n" in rel or "\r" in rel or rel.startswith("\\"):
        raise SeisError("a deliverable's name holds a line break or starts with a backslash "
                        "(sha256sum could not read it); rename it", path)
    return Path(rel).as_posix()


def check_entry_path(path: str, where: str, manifest: str | os.PathLike) -> None:
    """Refuse an entry path that leaves the manifest's folder: absolute, or with a ``..``
    component (SeisError naming the manifest and ``where``, e.g. ``"line 4"``)."""
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path) or ".." in parts:
        raise SeisError(f"{where}: path {path!r} leaves the manifest's folder (absolute or "
                        "'..'); refused", manifest)


def hash_files(files: Iterable[str | os.PathLike], base: str | os.PathLike,
               show_progress: bool = True, skip: Iterable[str | os.PathLike] = ()
               ) -> list[Entry]:
    """Size and SHA-256 of each file, with paths relative to ``base``.

    Parameters
    ----------
    files : iterable of path-like
        The deliverables; duplicates are listed once, in the order given.
    base : path-like
        Folder the entry paths are relative to (the manifest's folder).
    show_progress : bool
        Report bytes hashed (a bar in a terminal, plain lines in batch jobs).
    skip : iterable of path-like
        Files to leave out (the manifest itself).

    Raises
    ------
    SeisError
        A deliverable is missing or is not a regular file.
    """
    from seis_hpc.progress import Progress

    base = Path(base)
    paths: list[Path] = []
    seen = {Path(p).resolve() for p in skip}
    for f in files:
        p = Path(f)
        key = p.resolve()
        if key in seen:
            continue
        seen.add(key)
        if not p.is_file():
            raise SeisError("deliverable missing or not a regular file", p)
        paths.append(p)
    total = sum(p.stat().st_size for p in paths)
    entries = []
    with Progress(total, "manifest", "byte", mode="auto" if show_progress else "off") as prog:
        for p in paths:
            size, digest = sha256_file(p, prog)
            entries.append(Entry(_relative(p, base), size, digest))
    return entries


def write_manifest(entries: Iterable[Entry], manifest: str | os.PathLike) -> Path:
    """Write ``entries`` to ``manifest`` atomically in ``sha256sum`` format (sizes in
    ``# size`` comments); returns its path."""
    manifest = Path(manifest)
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    lines = [HEADER, f"# created {stamp} by seis_hpc {__version__}"]
    for e in entries:
        lines += [f"# size {e.size}  {e.path}", f"{e.sha256}  {e.path}"]
    with atomic_output(manifest) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def write_scratch(files: Iterable[tuple[str, int]], manifest: str | os.PathLike) -> Path:
    """Write ``SCRATCH.txt`` next to ``manifest`` atomically: the intermediate files of a run
    as ``(path relative to the manifest's folder, size in bytes)``; returns its path."""
    path = Path(manifest).parent / SCRATCH_NAME
    lines = ["# seis_hpc scratch: intermediate files of the run (outputs a later step read,",
             "# work/, iter*/), not deliverables and not in the manifest; bytes  path"]
    lines += [f"{size}  {rel}" for rel, size in files]
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_scratch(manifest: str | os.PathLike) -> list[str]:
    """Paths listed in the ``SCRATCH.txt`` next to ``manifest`` (empty when there is none)."""
    path = Path(manifest).parent / SCRATCH_NAME
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n").rstrip("\r")
            if line.strip() and not line.startswith("#"):
                out.append(line.split("  ", 1)[-1])
    return out


def build_manifest(files: Iterable[str | os.PathLike], manifest: str | os.PathLike,
                   show_progress: bool = True) -> list[Entry]:
    """Hash ``files`` (see :func:`hash_files`) and write ``manifest``; return its entries."""
    manifest = Path(manifest)
    entries = hash_files(files, manifest.parent, show_progress, skip=[manifest])
    write_manifest(entries, manifest)
    return entries


def read_manifest(manifest: str | os.PathLike) -> list[Entry]:
    """The entries of a manifest.

    Raises
    ------
    SeisError
        A line that is not ``sha256  path`` (or ``sha256  size  path`` in a v1 manifest), or
        no entry at all.
    """
    manifest = Path(manifest)
    if manifest.is_dir():
        raise SeisError("is a folder; give the MANIFEST.sha256 file", manifest)
    entries, sizes, v1 = [], {}, False
    with open(manifest, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if n == 1 and line.startswith(_V1_HEADER):
                v1 = True
            if line.startswith("#"):
                m = _SIZE.match(line)
                if m:
                    sizes[m.group(2)] = int(m.group(1))
                continue
            if not line.strip():
                continue
            if v1:
                m = _V1_LINE.match(line)
                if not m:
                    raise SeisError(f"line {n}: not 'sha256  size  path'", manifest)
                path, size, digest = m.group(3), int(m.group(2)), m.group(1)
            else:
                m = _LINE.match(line)
                if not m:
                    raise SeisError(f"line {n}: not 'sha256  path'", manifest)
                path, size, digest = m.group(2), sizes.get(m.group(2), -1), m.group(1).lower()
            check_entry_path(path, f"line {n}", manifest)
            entries.append(Entry(path, size, digest))
    if not entries:
        raise SeisError("no entries (is this a seis_hpc manifest?)", manifest)
    return entries


def verify_manifest(manifest: str | os.PathLike, show_progress: bool = True) -> tuple[
        list[Entry], list[Problem]]:
    """Check every deliverable of ``manifest`` against its size and SHA-256.

    Returns
    -------
    entries : list of Entry
        Everything the manifest lists.
    problems : list of Problem
        One per file that is missing, unreadable or changed (size or content), in manifest
        order, then one per file of the manifest's folder (and its subfolders) that the
        manifest does not list (``"added"``); empty when all match.

    Raises
    ------
    SeisError
        The manifest is unreadable, or one of its paths leaves its folder (absolute, ``..``,
        or a symbolic link pointing out): nothing is hashed.
    """
    from seis_hpc.progress import Progress

    manifest = Path(manifest)
    entries = read_manifest(manifest)
    base = manifest.parent
    for e in entries:
        if (base / e.path).exists() and not is_inside(base / e.path, base):
            raise SeisError(f"{e.path!r} is a symbolic link leading out of the manifest's "
                            "folder; refused", manifest)
    problems = []
    present = [e for e in entries if (base / e.path).is_file()]
    total = sum(max(e.size, 0) for e in present)
    with Progress(total, "verify", "byte", mode="auto" if show_progress else "off") as prog:
        for e in entries:
            p = base / e.path
            if not p.exists():
                problems.append(Problem(e, "missing", "no such file"))
                continue
            if not p.is_file():
                problems.append(Problem(e, "changed", "not a regular file"))
                continue
            try:
                size, digest = sha256_file(p, prog)
            except OSError as exc:
                problems.append(Problem(e, "missing", (exc.strerror or str(exc)).lower()))
                continue
            if e.size >= 0 and size != e.size:
                problems.append(Problem(e, "changed", f"size {size} bytes, expected {e.size}"))
            elif digest != e.sha256:
                problems.append(Problem(e, "changed",
                                        f"SHA-256 {digest[:16]}..., expected {e.sha256[:16]}..."))
    problems += [Problem(Entry(p, size, ""), "added", f"{size} bytes, not in the manifest")
                 for p, size in added_files(manifest, entries)]
    return entries, problems


def added_files(manifest: str | os.PathLike, entries: Iterable[Entry]) -> list[tuple[str, int]]:
    """Files under the manifest's folder (symbolic links not followed) that ``entries`` do
    not list, as ``(path relative to the folder, size in bytes)``, sorted; the manifest
    itself, ``SCRATCH.txt`` and the scratch files it lists are not counted."""
    manifest = Path(manifest)
    base = manifest.parent
    listed = {os.path.normpath(e.path) for e in entries}
    listed.add(os.path.normpath(os.path.relpath(manifest, base)))
    if (base / SCRATCH_NAME).is_file():
        listed.add(SCRATCH_NAME)
        listed.update(os.path.normpath(p) for p in read_scratch(manifest))
    found = []
    for folder, dirs, files in os.walk(base):
        dirs.sort()
        for name in sorted(files):
            p = Path(folder) / name
            rel = os.path.normpath(os.path.relpath(p, base))
            if rel not in listed:
                found.append((Path(rel).as_posix(), p.lstat().st_size))
    return found
