"""``seis-hpc run``: run a flow file (a sequence of conditioning steps)."""

HELP = "run a flow file: a sequence of processing steps with their parameters (TOML)"
DESCRIPTION = """Run the steps of a flow file in order, each on the previous one's output.

  seis-hpc run flow.toml
  mpiexec -n N seis-hpc run flow.toml

The whole file is validated first (unknown keys, wrong units, missing files): the first
problem is reported as one error naming its line, and nothing runs. Parameters use the
steps' names (see seis-hpc <step> --help) and SI units (s, m, m/s, Hz); a value may also be a
string with a unit ("500 ms", "1.5 km/s"). Intermediate outputs go to [flow] workdir; every
output gets OUT.qc.json with the flow, the step, its parameters and the QC summary.

Relative paths in the flow file are relative to the flow file, so keep it in the run folder:
seis-hpc example marine2d writes the example flow of the built-in marine2d line there
(after seis-hpc synth --preset marine2d --out raw).
"""
INPUTS = ("flow",)
OUTPUTS = ()


def side_files(args):
    """The flow's input and parameter files, and every step's output, QC summary and edit
    report (see :func:`seis_hpc.cli.check_outputs`); nothing when the flow file is invalid,
    which ``run`` then reports itself."""
    from seis_hpc.errors import SeisError
    from seis_hpc.flows.cli_step import WRITTEN_PARAMS
    from seis_hpc.flows.flowfile import load_flow

    try:
        flow = load_flow(args.flow)
    except (SeisError, OSError, UnicodeError):
        return [], []
    ins, outs = [("flow input", str(flow.input))], []
    for k, ((spec, params), out) in enumerate(zip(flow.steps, flow.outputs(), strict=True)):
        where = f"step {k + 1} ({spec.name})"
        outs += [(f"{where} output", str(out)), (f"{where} QC summary", f"{out}.qc.json")]
        for p in spec.params:
            if p.unit == "path":
                value = params.get(p.name)
                if p.name in WRITTEN_PARAMS:
                    outs.append((f"{where} {p.name}", value or f"{out}.edits.csv"))
                elif value:
                    ins.append((f"{where} {p.name}", value))
    return ins, outs


def add_arguments(parser) -> None:
    """FLOW.toml and --check."""
    parser.add_argument("flow", metavar="FLOW.toml", help="flow file")
    parser.add_argument("--check", action="store_true", help="validate only, run nothing")


def run(args) -> int:
    from seis_hpc.engine.comm import checked_on_root, world
    from seis_hpc.errors import SeisError
    from seis_hpc.flows.flowfile import load_flow, run_flow

    comm = world()
    comm = comm if comm is not None and comm.Get_size() > 1 else None
    flow, err = checked_on_root(comm, lambda: load_flow(args.flow))
    if err:
        raise SeisError(err)
    if comm is not None:
        flow = load_flow(args.flow)
    if args.check:
        if comm is None or comm.Get_rank() == 0:
            print(f"{args.flow}: {len(flow.steps)} steps, "
                  + " -> ".join(s.name for s, _ in flow.steps) + ": valid")
        return 0
    run_flow(flow, comm=comm)
    return 0
