"""``seis-hpc slurm``: sbatch scripts for a user's cluster, and the array-job helpers."""

INPUTS = ("config", "input", "parts")
WRITES = ("out",)  # the sbatch script or the merged image

HELP = "render SLURM job scripts from a job.toml (and split/merge array-job image parts)"
DESCRIPTION = """SLURM job scripts for your cluster.

  seis-hpc slurm render --config job.toml [--out FILE]
      Write an sbatch script (or, with an [array] table, a bash script that submits an
      array job over image parts and a merge job with --dependency=afterok) for the cluster
      described in job.toml: partition, account, nodes, tasks per node, cpus per task,
      memory, time, modules, launcher (srun --mpi=pmi2|pmix, or mpiexec). Examples:
      slurm/configs/small.toml, slurm/configs/large.toml; the keys: docs/cluster.md.

  seis-hpc slurm part INPUT --parts N --task K
      Print the --grid range (IL0,IL1,XL0,XL1; 2D: CMP0,CMP1) of image part K of N
      (parts split the inlines, 2D lines the CMPs). Used by the rendered array job.

  seis-hpc slurm merge PART.h5 ... --out IMAGE.h5
      Assemble part images (seis-hpc pstm --grid outputs) into one image.
"""

import argparse  # noqa: E402 - after DESCRIPTION, which --help shows first


def add_arguments(parser) -> None:
    """Subcommands ``render``, ``part`` and ``merge``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    r = sub.add_parser("render", help="write the sbatch script of a job.toml",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--config", "-c", required=True, metavar="job.toml", help="job description")
    r.add_argument("--out", "-o", metavar="FILE", help="script file (default: standard output)")
    p = sub.add_parser("part", help="print the --grid range of one image part")
    p.add_argument("input", metavar="INPUT", help="SEG-Y/SU file or its trace index")
    p.add_argument("--parts", type=int, required=True, metavar="N", help="number of parts")
    p.add_argument("--task", type=int, required=True, metavar="K", help="part (0..N-1)")
    m = sub.add_parser("merge", help="assemble part images into one")
    m.add_argument("parts", nargs="+", metavar="PART.h5", help="part images")
    m.add_argument("--out", "-o", required=True, metavar="IMAGE.h5", help="whole image")


def run(args) -> int:
    import os

    from seis_hpc.errors import SeisError

    if args.action == "render":
        from seis_hpc.cluster.slurm import load_config, render
        from seis_hpc.io.atomic import atomic_output

        text = render(load_config(args.config))
        if not args.out:
            print(text, end="")
            return 0
        with atomic_output(args.out) as tmp:
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o755)
        print(f"{args.out}: submit with {'bash' if 'sbatch --parsable' in text else 'sbatch'} "
              f"{args.out}")
        return 0
    if args.action == "part":
        from seis_hpc.cluster.slurm import part_grid
        from seis_hpc.survey import Survey

        if args.parts < 1:
            raise SeisError(f"--parts must be >= 1 (got {args.parts})")
        grid = Survey.open(args.input, save=False).grid
        print(",".join(str(v) for v in part_grid(grid, args.parts, args.task)))
        return 0
    if args.action == "merge":
        from seis_hpc.cluster.slurm import merge_parts

        for p in args.parts:
            if not os.path.isfile(p):
                raise FileNotFoundError(2, "No such file or directory", p)
        shape = merge_parts(args.parts, args.out)
        print(f"{args.out}: image {' x '.join(map(str, shape))} from {len(args.parts)} parts")
        return 0
    raise SeisError("choose an action: seis-hpc slurm render|part|merge (see --help)")
