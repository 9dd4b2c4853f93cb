"""One module per ``seis-hpc`` subcommand (see :mod:`seis_hpc.cli` for the contract)."""

# In the order of a processing sequence; a new subcommand adds its module name here.
COMMANDS: list[str] = [
    "version",
    "synth",
    "info",
    "index",
    "edit",
    "gain",
    "agc",
    "equalise",
    "bandpass",
    "swell",
    "fxdecon",
    "decon",
    "radon",
    "srme",
    "run",
    "velan",
    "stack",
    "pstm",
    "migstack",
    "bench",
    "slurm",
    "qc",
    "report",
    "verify",
]
