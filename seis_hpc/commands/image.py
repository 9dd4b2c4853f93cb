"""``seis-hpc image``: operations on image files; ``image sum`` adds the part images of a job
split by input traces."""

INPUTS = ("parts",)
OUTPUTS = ("out",)

HELP = "add the part images of a PSTM job split by input traces (image sum)"
DESCRIPTION = """Operations on seis_hpc image files.

  seis-hpc image sum PART.h5 ... --out IMAGE.h5
      Add the images of a PSTM job split by its input traces (seis-hpc pstm --traces A:B
      or --ffid LO:HI, or one input file per sail line) into the image of the whole job.
      The parts must have the same bin grid, time axis, offset classes, migration
      parameters and velocity; parts of one input file must not share a trace (each
      records its traces); no part may be given twice; NaN/Inf samples are refused. Any
      mismatch is one line naming the part and the attribute (exit 2), and nothing is
      written. IMAGE.h5 records every part and its SHA-256 ('parts'). Parts are raw sums:
      a normalised image (attribute normalised) is refused.
      Output tiles (pstm --grid parts) are assembled by seis-hpc slurm merge instead.
"""

import argparse  # noqa: E402 - after DESCRIPTION, which --help shows first


def add_arguments(parser) -> None:
    """Subcommand ``sum``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    s = sub.add_parser("sum", help="add part images of a job split by input traces",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("parts", nargs="+", metavar="PART.h5", help="part images")
    s.add_argument("--out", "-o", required=True, metavar="IMAGE.h5", help="summed image")


def run(args) -> int:
    from seis_hpc.errors import SeisError

    if args.action == "sum":
        from seis_hpc.commands import provenance
        from seis_hpc.engine.image_sum import sum_images

        _, history = provenance(args, "image", f"({len(args.parts)} parts)")
        res = sum_images(args.parts, args.out, history_line=history[0])
        cover = {True: "every trace of the input", False: "part of the input's traces",
                 None: "several input files"}[res["complete"]]
        print(f"{args.out}: sum of {res['parts']} part images, {res['traces_selected']} "
              f"traces ({cover}), image {' x '.join(map(str, res['shape']))}")
        rec = getattr(args, "_record", None)
        if rec is not None:
            rec.metrics.update(parts=res["parts"], traces_selected=res["traces_selected"])
        return 0
    raise SeisError("choose an action: seis-hpc image sum (see --help)")
