"""``seis-hpc example``: copy a packaged example flow file into the run folder."""

HELP = "write a packaged example flow file (seis-hpc run) into the current folder"
DESCRIPTION = """Copy an example flow file shipped with seis_hpc into the run folder, to run it
there (paths in a flow file are relative to the file) or to edit it first.

  seis-hpc example                       list the examples
  seis-hpc example marine2d              write ./marine2d.toml
  seis-hpc example marine2d --out F.toml write F.toml ('-': print it)

marine2d: the conditioning flow of the built-in marine2d line (bad-trace editing, swell
noise, SRME, bandpass) from raw/shots.sgy to conditioned.sgy, intermediate files in work/:

  seis-hpc synth --preset marine2d --out raw --swell 5 --spikes 20 --dead 10
  seis-hpc example marine2d
  seis-hpc run marine2d.toml

An existing file is kept unless --force. Not a processing step: nothing is recorded in the
run record. Exit status: 0 written or listed; 2 unknown example or the file exists.
"""
NEEDS_ARGS = False
WRITES = ("out",)


def add_arguments(parser) -> None:
    """NAME, --out, --force."""
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="example to write (default: list the examples)")
    parser.add_argument("--out", "-o", metavar="FILE.toml",
                        help="file to write ('-': standard output; default ./NAME.toml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args) -> int:
    import os
    import sys

    from seis_hpc.errors import SeisError
    from seis_hpc.flows.flowfile import example_flows
    from seis_hpc.io.atomic import atomic_output

    examples = example_flows()
    if args.name is None:
        if args.out:
            raise SeisError("--out needs the NAME of an example")
        for name, path in examples.items():
            first = path.read_text().splitlines()[0].lstrip("# ").strip()
            print(f"{name:12s} {first}")
        return 0
    if args.name not in examples:
        raise SeisError(f"no example flow {args.name!r} (examples: "
                        f"{', '.join(examples) or 'none installed'})")
    text = examples[args.name].read_text()
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = args.out or f"{args.name}.toml"
    if os.path.exists(out) and not args.force:
        raise SeisError(f"{out} exists: keeping it (--force to overwrite, --out for another "
                        "name)")
    with atomic_output(out) as tmp:
        tmp.write_text(text)
    print(f"example: wrote {out} (seis-hpc run {out})", file=sys.stderr)
    return 0
