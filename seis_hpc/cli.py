"""The ``seis-hpc`` command: one subcommand per processing step, each self-documenting.

Subcommands live in ``seis_hpc/commands/<name>.py``; each module defines ``HELP`` (one line),
``DESCRIPTION`` (the self-doc shown by ``--help`` or by running the subcommand bare),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy dependencies inside
``run`` so that ``seis-hpc --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from seis_hpc import __version__
from seis_hpc.commands import COMMANDS
from seis_hpc.errors import EXIT_USAGE, SeisError, describe_oserror


def _load(name: str):
    return importlib.import_module(f"seis_hpc.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="seis-hpc",
        description="MPI-parallel seismic processing: SEG-Y ingest, conditioning, velocity "
        "analysis, Kirchhoff PSTM. Run a subcommand bare or with --help for its parameters.",
    )
    parser.add_argument("--version", action="version", version=f"seis-hpc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_module=mod, _parser=p)
    return parser


def report_failure(message: str) -> int:
    """Print ``message`` as the one-line error; under MPI with several ranks, abort them all."""
    print(f"seis-hpc: error: {message}", file=sys.stderr, flush=True)
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        comm = mpi.COMM_WORLD
        if comm.Get_size() > 1:
            from seis_hpc.io.atomic import remove_temporaries

            remove_temporaries()  # the ranks the abort kills cannot remove a shared temporary
            comm.Abort(EXIT_USAGE)
    return EXIT_USAGE


def _paths(args: argparse.Namespace, names) -> list[str]:
    out = []
    for name in names:
        v = getattr(args, name, None)
        out.extend(str(x) for x in (v if isinstance(v, list | tuple) else [v]) if x)
    return out


def _run_recorded(args: argparse.Namespace) -> int:
    """Run the subcommand; with ``$SEIS_HPC_RUNDIR`` set, record it in the run record that
    ``seis-hpc report`` reads. A processing step names its file arguments in ``OUTPUTS``
    (and ``INPUTS``) and may fill ``args._record`` (a :class:`seis_hpc.delivery.runlog.StepRecord`);
    commands without ``OUTPUTS`` (info, verify, report, qc with its own record) are not
    recorded here."""
    mod = args._module
    if not os.environ.get("SEIS_HPC_RUNDIR") or not hasattr(mod, "OUTPUTS"):
        return int(mod.run(args) or 0)
    from seis_hpc.delivery import runlog

    with runlog.step(args.command, args, inputs=_paths(args, getattr(mod, "INPUTS", ())),
                     outputs=_paths(args, getattr(mod, "OUTPUTS", ()))) as rec:
        args._record = rec
        code = int(mod.run(args) or 0)
        if code == 75:
            rec.status = "stopped"
        elif code != 0:
            rec.status = "failed"
        return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seis-hpc`` and ``python -m seis_hpc``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:
        parser.print_help()
        return EXIT_USAGE
    # SU style: a subcommand run bare prints its self-documentation.
    if len(argv) == 1 and argv[0] in COMMANDS and getattr(_load(argv[0]), "NEEDS_ARGS", True):
        parser.parse_args([argv[0], "--help"])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from seis_hpc.io.atomic import cleanup_on_signals

    try:
        with cleanup_on_signals():  # SIGTERM/SIGINT remove temporary outputs first
            return _run_recorded(args)
    except SeisError as exc:
        return report_failure(str(exc))
    except OSError as exc:
        return report_failure(describe_oserror(exc))
    except KeyboardInterrupt:
        print("seis-hpc: interrupted", file=sys.stderr)
        return 130
