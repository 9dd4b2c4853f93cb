"""Write-to-temporary-then-rename, so that no reader ever sees a half-written output.

Every temporary file of an output is listed in a registry of this process while it exists, so
that it goes on any way out: an exception (:func:`atomic_output`), a normal exit or an uncaught
one (``atexit``), SIGTERM or SIGINT (:func:`cleanup_on_signals`, installed by ``seis-hpc``), and
an MPI abort (the failing rank calls :func:`remove_temporaries` before ``Abort``, since the
ranks the abort kills run no handler). A file shared by several ranks (created by rank 0,
written by all) is registered on every rank, so whichever rank fails removes it.

:func:`atomic_output` covers one file; :func:`atomic_outputs` covers every output of a command
that writes several (an image and its SEG-Y, a velocity and its picks): all are written to
their temporary names and renamed only when every one is complete, so a failure leaves none.
Errors name the user's path, never the temporary one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

# Absolute paths of live temporary files, in creation order (a dict as an ordered set: its
# single operations are atomic under the GIL, so a signal handler may read it at any time).
_LIVE: dict[str, None] = {}
# The signal being acted on and the one already reported (cleanup_on_signals).
_STOPPING: dict[str, int] = {}


def temporary_name(path: str | os.PathLike) -> Path:
    """The temporary sibling of ``path`` that an output is written to before its rename."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}")


def register_temporary(path: str | os.PathLike) -> None:
    """List ``path`` as a temporary file of this process: removed on error, exit or signal."""
    _LIVE[os.path.abspath(path)] = None


def forget_temporary(path: str | os.PathLike) -> None:
    """Take ``path`` off the list (once it is renamed to its final name or removed)."""
    _LIVE.pop(os.path.abspath(path), None)


def live_temporaries() -> list[str]:
    """The temporary files this process has registered and not yet renamed or removed."""
    return list(_LIVE)


def remove_temporaries() -> None:
    """Remove every registered temporary file (those already gone are skipped)."""
    for p in list(_LIVE):
        with contextlib.suppress(OSError):
            os.unlink(p)
        _LIVE.pop(p, None)


atexit.register(remove_temporaries)


@contextlib.contextmanager
def registered(path: str | os.PathLike, remove_on_error: bool = True) -> Iterator[Path]:
    """Register ``path`` (see :func:`register_temporary`) for the duration of the block.

    On an exception the file is removed too, unless ``remove_on_error`` is false (a file shared
    by several ranks, which a rank that did not fail must leave to the others).
    """
    register_temporary(path)
    try:
        yield Path(path)
    except BaseException:
        if remove_on_error:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise
    finally:
        forget_temporary(path)


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
            return OSError(exc.errno, reason, str(final))
    return None


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    On any exception (a signal handled by :func:`cleanup_on_signals` included) the temporary
    file is removed and ``path`` is left as it was (absent or the previous complete version).
    An OS error about the temporary file is re-raised naming ``path``.
    """
    final = Path(path)
    tmp = _prepare(final)
    try:
        with registered(tmp):
            yield tmp
            os.replace(tmp, final)
    except OSError as exc:
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
    (a folder, an uncreatable folder) fails before any work. On any exception (a signal
    handled by :func:`cleanup_on_signals` included) every temporary file is removed and every
    ``path`` is left as it was: a command writes all its outputs or none. The renames at the
    end are each atomic; they run one after another once every output is complete.
    """
    finals = [None if p is None else Path(p) for p in paths]
    tmps = [None if f is None else _prepare(f) for f in finals]
    pairs = [(t, f) for t, f in zip(tmps, finals, strict=True) if f is not None]
    try:
        with contextlib.ExitStack() as stack:
            for tmp, _ in pairs:
                stack.enter_context(registered(tmp))
            yield tmps
            for tmp, final in pairs:
                if not tmp.exists():
                    raise FileNotFoundError(2, "output was not written", str(final))
            for tmp, final in pairs:
                os.replace(tmp, final)
    except OSError as exc:
        new = _user_facing(exc, pairs)
        if new is not None:
            raise new from None
        raise


def _exit_on_signal(signum: int) -> None:
    """After the temporary files are gone: end this process as the signal asked."""
    # SIGINT ends as SystemExit(130), like SIGTERM, not as KeyboardInterrupt: a
    # KeyboardInterrupt that surfaces again during unwinding or interpreter shutdown makes
    # CPython kill itself with SIGINT (exit -2) after the message was printed.
    status = 128 + signum  # the shell's convention: 143 for SIGTERM, 130 for SIGINT
    mpi = sys.modules.get("mpi4py.MPI")
    world = mpi.COMM_WORLD if mpi is not None and mpi.Is_initialized() \
        and not mpi.Is_finalized() and mpi.COMM_WORLD.Get_size() > 1 else None
    name = signal.Signals(signum).name
    said = "interrupted" if signum == signal.SIGINT else f"stopped by {name}"
    if world is None:
        if _STOPPING.get("said") != signum:
            print(f"seis-hpc: {said}", file=sys.stderr, flush=True)
        _STOPPING["said"] = signum
        raise SystemExit(status)
    # mpiexec signals every rank: rank 0 speaks and aborts the job; another rank does so
    # only if rank 0 has not within a second (the signal was sent to that rank alone).
    # Unwinding instead could leave the other ranks blocked in a collective.
    rank = world.Get_rank()
    import time

    if rank:
        time.sleep(1.0)
    print(f"seis-hpc: {f'rank {rank}: ' if rank else ''}{said}", file=sys.stderr, flush=True)
    time.sleep(0.3)  # let mpiexec forward the line: hydra can drop it at an abort
    world.Abort(status)
    raise SystemExit(status)


@contextlib.contextmanager
def cleanup_on_signals(signals=(signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT first remove the registered temporary files.

    Then the process ends: SIGINT says "interrupted" and raises ``SystemExit(130)``, SIGTERM
    says "stopped by SIGTERM" and raises ``SystemExit(143)``, so that ``finally`` blocks still
    run (under MPI with several ranks: ``Abort(130)`` or ``Abort(143)``). Handlers installed
    inside the block (the PSTM engine's checkpoint-on-SIGTERM) take precedence while they are
    installed. A signal that is ignored, or handled by the program that called this (other
    than Python's default SIGINT handler), is left alone (``atexit`` still removes the files);
    outside the main thread nothing is installed. A signal whose handler runs inside code
    that drops exceptions (a weakref callback, ``__del__``) ends the process there with the
    same status, through ``sys.unraisablehook``, without running ``finally`` blocks.
    """
    old = {}

    def handler(signum, frame):
        remove_temporaries()
        _STOPPING["signal"] = signum
        _exit_on_signal(signum)

    previous_hook = sys.unraisablehook

    def unraisable(u):
        # The handler ran inside code whose exceptions Python drops (a weakref callback,
        # __del__: "Exception ignored in ..."), and its SystemExit with it. The temporaries
        # are gone and the message is out: end here (finally blocks do not run; a signal
        # sent again would be dropped the same way while that code runs).
        if isinstance(u.exc_value, SystemExit) and "signal" in _STOPPING:
            for f in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    f.flush()
            os._exit(128 + _STOPPING["signal"])
        previous_hook(u)

    for s in signals:
        now = signal.getsignal(s)
        if now is signal.SIG_IGN or (callable(now) and now is not signal.default_int_handler):
            continue  # e.g. SIGINT of a background job, or an embedding program's own handler
        try:
            old[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread (embedded use)
            pass
    if old:
        sys.unraisablehook = unraisable
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        if old:
            sys.unraisablehook = previous_hook
            _STOPPING.clear()
