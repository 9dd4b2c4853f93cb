"""The one error type users see, and how the command line reports it.

Every problem with a user's input (file, header, parameter) is raised as :class:`SeisError`
with a message that names the file, the trace and the field. The command line prints it on one
line and exits with status 2; under MPI the failing rank prints it and aborts every rank.
"""

from __future__ import annotations

import os

EXIT_USAGE = 2


class SeisError(Exception):
    """A problem with the user's input or parameters, reported on one line (exit status 2).

    Parameters
    ----------
    message : str
        What is wrong, e.g. ``"trace 17: sample interval is 0"``.
    path : str or os.PathLike, optional
        The file concerned; prefixed to the message as ``"<path>: "``.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.detail = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


def describe_oserror(exc: OSError) -> str:
    """One-line text for an OS error on a file: ``"<path>: <reason>"``."""
    reason = exc.strerror or exc.__class__.__name__
    return f"{exc.filename}: {reason.lower()}" if exc.filename else reason
