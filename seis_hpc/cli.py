"""The ``seis-hpc`` command: one subcommand per processing step, each self-documenting.

Subcommands live in ``seis_hpc/commands/<name>.py``; each module defines ``HELP`` (one line),
``DESCRIPTION`` (the self-doc shown by ``--help`` or by running the subcommand bare),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy dependencies inside
``run`` so that ``seis-hpc --help`` stays fast.

A module also declares the files it touches, by argument name: ``INPUTS`` (read), ``OUTPUTS``
(deliverables written; their presence makes the step recorded in the run record) and
``WRITES`` (other files or folders it may write: a trace index, a checkpoint folder, QC
pictures), plus an optional ``side_files(args) -> (inputs, outputs)`` for paths derived from
the arguments (``OUT.qc.json``, a flow's step outputs). Before ``run``, :func:`check_outputs`
refuses any output that is an input or another output (real path or same inode).
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
            import time

            from seis_hpc.engine.comm import ABORT_GRACE

            time.sleep(ABORT_GRACE)  # let mpiexec forward the line before the abort
            comm.Abort(EXIT_USAGE)
    return EXIT_USAGE


def _paths(args: argparse.Namespace, names) -> list[str]:
    out = []
    for name in names:
        v = getattr(args, name, None)
        out.extend(str(x) for x in (v if isinstance(v, list | tuple) else [v]) if x)
    return out


def _label(parser: argparse.ArgumentParser | None, dest: str) -> str:
    """How the user wrote the argument ``dest``: its longest option string, or its metavar."""
    for action in getattr(parser, "_actions", ()):
        if action.dest == dest:
            if action.option_strings:
                return max(action.option_strings, key=len)
            return str(action.metavar or dest)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found = _label(sub, dest)
                if found != dest:
                    return found
    return dest


def declared_files(args: argparse.Namespace) -> tuple[list[tuple[str, str]],
                                                        list[tuple[str, str]]]:
    """The files a subcommand reads and the files it may write, as ``(label, path)`` pairs.

    Read from the command module: ``INPUTS`` (argument names of files read), ``OUTPUTS``
    (deliverables written, recorded in the run record), ``WRITES`` (other files or folders
    it may write: a trace index, a checkpoint folder, pictures) and an optional
    ``side_files(args) -> (inputs, outputs)`` for paths derived from the arguments
    (``OUT.qc.json``, a flow's step outputs), each a list of ``(label, path)``.
    """
    mod, parser = args._module, getattr(args, "_parser", None)

    def named(names):
        out = []
        for name in names:
            v = getattr(args, name, None)
            for x in (v if isinstance(v, list | tuple) else [v]):
                if x:
                    out.append((_label(parser, name), str(x)))
        return out

    inputs = named(getattr(mod, "INPUTS", ()))
    outputs = named(tuple(getattr(mod, "OUTPUTS", ())) + tuple(getattr(mod, "WRITES", ())))
    side = getattr(mod, "side_files", None)
    if side is not None:
        more_in, more_out = side(args)
        inputs += [(str(lab), str(p)) for lab, p in more_in if p]
        outputs += [(str(lab), str(p)) for lab, p in more_out if p]
    return inputs, outputs


def same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file: the same real path (symbolic links
    followed) or, for existing files, the same inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): no inode to share
        return False


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output that is one of the command's inputs or another of
    its outputs.

    Raises
    ------
    SeisError
        ``<label> <path> is the same file as <label> <path>``, naming both paths.
    """
    inputs, outputs = declared_files(args)

    def named(label: str, path: str, what: str) -> str:
        # A positional argument's metavar (INPUT, GATHERS) adds nothing to "the input".
        if not label.startswith("-") and " " not in label:
            return f"the {what} {path}"
        return f"the {label} {path}" if what in label else f"the {what} {label} {path}"

    for k, (lab, path) in enumerate(outputs):
        for other_lab, other in inputs:
            if same_file(path, other):
                raise SeisError(f"{lab} {path} is the same file as "
                                f"{named(other_lab, other, 'input')}: refusing to overwrite an "
                                "input (choose another output name)")
        for other_lab, other in outputs[:k]:
            if same_file(path, other):
                raise SeisError(f"{lab} {path} is the same file as "
                                f"{named(other_lab, other, 'output')}: two outputs cannot "
                                "share one file")


def _launcher_rank() -> int:
    """This process's rank as the MPI launcher tells it (0 when not launched by one)."""
    for var in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK"):
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 0


def _run_recorded(args: argparse.Namespace) -> int:
    """Run the subcommand; with ``$SEIS_HPC_RUNDIR`` set, record it in the run record that
    ``seis-hpc report`` reads. A processing step names its file arguments in ``OUTPUTS``
    (and ``INPUTS``) and may fill ``args._record`` (a :class:`seis_hpc.delivery.runlog.StepRecord`);
    commands without ``OUTPUTS`` (info, verify, report, qc with its own record) are not
    recorded here. Side files that exist after a successful step are recorded as outputs
    too. Every command, recorded or not, first passes :func:`check_outputs`."""
    mod = args._module
    try:
        check_outputs(args)  # before any work and before any file is opened for writing
    except SeisError:
        # Every MPI rank refuses alike (same files), before MPI starts: one rank says so.
        if _launcher_rank() > 0:
            return EXIT_USAGE
        raise
    if not os.environ.get("SEIS_HPC_RUNDIR") or not hasattr(mod, "OUTPUTS"):
        return int(mod.run(args) or 0)
    from seis_hpc.delivery import runlog

    with runlog.step(args.command, args, inputs=_paths(args, getattr(mod, "INPUTS", ())),
                     outputs=_paths(args, getattr(mod, "OUTPUTS", ())),
                     argv=["seis-hpc", *args._argv] if hasattr(args, "_argv") else None) as rec:
        args._record = rec
        code = int(mod.run(args) or 0)
        # Side files (OUT.qc.json, OUT.edits.csv, a pass's velocity) are deliverables too:
        # the manifest of `seis-hpc report` must cover every file the step wrote; the files a
        # flow reads (its input, tables) are the step's inputs.
        side = getattr(mod, "side_files", None)
        if code == 0 and side is not None:
            ins, outs = side(args)
            rec.inputs += [p for _, p in ins if os.path.isfile(p) and p not in rec.inputs]
            rec.outputs += [p for _, p in outs if os.path.isfile(p)]
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
    # The command's own words for its history and run record: main() called in a process
    # (a notebook, a test runner) has other words in sys.argv.
    args._argv = [str(a) for a in argv]
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
