"""The command-line side of a flow step: ``seis-hpc <step> IN.sgy --out OUT.sgy [params]``.

Each ``seis_hpc/commands/<step>.py`` is three lines that call :func:`command`; the parameters,
their units and the self-documentation come from :data:`seis_hpc.flows.steps.STEPS`.
"""

from __future__ import annotations

from types import SimpleNamespace

# Path parameters that name a file the step writes (every other path parameter is read).
WRITTEN_PARAMS = ("report",)


def command(name: str) -> SimpleNamespace:
    """``HELP``, ``DESCRIPTION``, ``add_arguments`` and ``run`` of the step ``name``."""
    from seis_hpc.flows.steps import STEPS

    spec = STEPS[name]

    def add_arguments(parser) -> None:
        parser.add_argument("input", metavar="IN", help="input SEG-Y/SU file")
        parser.add_argument("--out", "-o", required=True, metavar="OUT", help="output SEG-Y")
        for p in spec.params:
            unit = p.list_unit if p.unit == "floats" else p.unit
            if p.unit == "bool":
                parser.add_argument(p.flag, dest=p.name, action="store_true", help=p.help)
                continue
            if p.unit == "texts":
                parser.add_argument(p.flag, dest=p.name, action="append", metavar="TEXT",
                                    default=None, help=p.help + " (repeatable)")
                continue
            meta = {"s": "S", "Hz": "HZ", "m": "M", "m/s": "MPS", "int": "N", "path": "PATH",
                    "floats": "F1,F2,..", "str": "|".join(p.choices or ("TEXT",))}.get(unit, "X")
            parser.add_argument(p.flag, dest=p.name, metavar=meta, default=None,
                                help=p.help + (f" [{unit}]" if unit in ("s", "Hz", "m", "m/s")
                                               else "")
                                + ("" if p.default is None else f" (default {p.default})"))

    def run(args) -> int:
        from seis_hpc.engine.comm import world
        from seis_hpc.engine.gather_run import run_step

        given = {p.name: getattr(args, p.name) for p in spec.params}
        if any(p.unit == "bool" for p in spec.params):
            given.update({p.name: bool(getattr(args, p.name)) for p in spec.params
                          if p.unit == "bool"})
        params = spec.resolve(given, f"seis-hpc {name}")
        comm = world()
        run_step(spec, params, args.input, args.out, comm=comm if comm and
                 comm.Get_size() > 1 else None)
        return 0

    # Files the step reads and writes, for the guard of seis_hpc.cli (an output that is an
    # input is refused before any work): a path parameter is read, except the edit report.
    paths = [p.name for p in spec.params if p.unit == "path"]
    writes = tuple(n for n in paths if n in WRITTEN_PARAMS)

    def side_files(args):
        outs = [("QC summary", args.out + ".qc.json")]  # as seis_hpc.engine.gather_run.qc_path
        if "report" in paths and not getattr(args, "report", None):
            outs.append(("edit report", args.out + ".edits.csv"))
        return [], outs

    return SimpleNamespace(HELP=spec.help, DESCRIPTION=spec.self_doc(),
                           add_arguments=add_arguments, run=run,
                           INPUTS=("input", *(n for n in paths if n not in writes)),
                           OUTPUTS=("out", *writes), side_files=side_files)
