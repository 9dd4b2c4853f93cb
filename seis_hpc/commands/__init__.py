"""One module per ``seis-hpc`` subcommand (see :mod:`seis_hpc.cli` for the contract)."""

# In the order of a processing sequence; a new subcommand adds its module name here.
COMMANDS: list[str] = [
    "version",
    "synth",
    "info",
    "index",
    "select",
    "sort",
    "headers",
    "edit",
    "gain",
    "agc",
    "equalise",
    "bandpass",
    "mute",
    "statics",
    "fk",
    "swell",
    "fxdecon",
    "decon",
    "radon",
    "srme",
    "example",
    "run",
    "velan",
    "stack",
    "pstm",
    "image",
    "migstack",
    "bench",
    "slurm",
    "qc",
    "report",
    "verify",
]


def provenance(args, command: str, note: str = "") -> tuple[str, list[str]]:
    """The configuration text (the parsed options as JSON) and the history line
    (``<UTC time> seis-hpc <command> <arguments>[ note]``) a command stores in its output."""
    import datetime as dt
    import json
    import sys

    config = json.dumps({k: v for k, v in vars(args).items() if not k.startswith("_")},
                        default=str, indent=1)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    words = args._argv[1:] if hasattr(args, "_argv") else sys.argv[2:]
    return config, [f"{now} seis-hpc {command} {' '.join(words)}" + (
        f" {note}" if note else "")]
