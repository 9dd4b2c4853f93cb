"""Write-to-temporary-then-rename, so that no reader ever sees a half-written output.

:func:`atomic_output` covers one file; :func:`atomic_outputs` covers every output of a command
that writes several (an image and its SEG-Y, a velocity and its picks): all are written to
their temporary names and renamed only when every one is complete, so a failure leaves none.
Errors name the user's path, never the temporary one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temporary_name(path: str | os.PathLike) -> Path:
    """The temporary sibling of ``path`` that an output is written to before its rename."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}")


def _prepare(final: Path) -> Path:
    """Check ``final`` can be written (not a folder, its folder exists or is made); return its
    temporary name."""
    if final.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(final))
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # name the output, not only the folder that cannot be made
        reason = (exc.strerror or exc.__class__.__name__).lower()
        raise OSError(exc.errno, f"cannot make its folder {final.parent} ({reason})",
                      str(final)) from None
    return temporary_name(final)


def prepare_outputs(*paths: str | os.PathLike | None) -> None:
    """Check, before any work, that each output can be made: not a folder, its folder
    existing or made (None entries are skipped). Raises the OS error naming the path."""
    for p in paths:
        if p is not None:
            _prepare(Path(p))


def _user_facing(exc: BaseException, pairs: list[tuple[Path, Path]]) -> BaseException | None:
    """An OSError about a temporary name, rewritten to name the user's file (None when
    ``exc`` does not mention one)."""
    if not isinstance(exc, OSError):
        return None
    text = f"{exc.filename} {exc.filename2} {exc.strerror} {exc}"
    for tmp, final in pairs:
        if tmp.name in text:
            reason = os.strerror(exc.errno) if exc.errno else \
                str(exc).replace(str(tmp), str(final)).replace(tmp.name, final.name)
            new = OSError(exc.errno, reason, str(final))
            return new
    return None


def _remove(paths) -> None:
    for tmp in paths:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left as it was (absent or
    the previous complete version). An OS error about the temporary file is re-raised naming
    ``path``.
    """
    final = Path(path)
    tmp = _prepare(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException as exc:
        _remove([tmp])
        new = _user_facing(exc, [(tmp, final)])
        if new is not None:
            raise new from None
        raise


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike | None) -> Iterator[list[Path | None]]:
    """Yield a temporary path for each of ``paths``; rename them all only if the block succeeds.

    Parameters
    ----------
    *paths : path-like or None
        The outputs; a None (an optional output not asked for) yields None in its place.

    Every folder is made and every name checked before the block runs, so a bad output
    (a folder, an uncreatable folder) fails before any work. On any exception every
    temporary file is removed and every ``path`` is left as it was: a command writes all
    its outputs or none. The renames at the end are each atomic; they run one after
    another once every output is complete.
    """
    finals = [None if p is None else Path(p) for p in paths]
    tmps = [None if f is None else _prepare(f) for f in finals]
    pairs = [(t, f) for t, f in zip(tmps, finals, strict=True) if f is not None]
    try:
        yield tmps
        for tmp, final in pairs:
            if not tmp.exists():
                raise FileNotFoundError(2, "output was not written", str(final))
        for tmp, final in pairs:
            os.replace(tmp, final)
    except BaseException as exc:
        _remove([t for t, _ in pairs])
        new = _user_facing(exc, pairs)
        if new is not None:
            raise new from None
        raise
