"""``seis-hpc headers``: one flow step (parameters and self-doc in :mod:`seis_hpc.flows.steps`)."""

from seis_hpc.flows.cli_step import command

_cmd = command("headers")
HELP, DESCRIPTION = _cmd.HELP, _cmd.DESCRIPTION
add_arguments, run = _cmd.add_arguments, _cmd.run
INPUTS, OUTPUTS, side_files = _cmd.INPUTS, _cmd.OUTPUTS, _cmd.side_files
