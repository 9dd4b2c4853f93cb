"""``seis-hpc report``: the processing report (HTML) and the manifest of a run folder."""

INPUTS = ("rundir",)
WRITES = ("out", "manifest")


def side_files(args):
    """The run record read and the default report and manifest written."""
    import os

    from seis_hpc.delivery.manifest import MANIFEST_NAME
    from seis_hpc.delivery.report import REPORT_NAME
    from seis_hpc.delivery.runlog import STEPS_FILE

    outs = [] if args.out else [("report", os.path.join(args.rundir, REPORT_NAME))]
    if not args.manifest:
        outs.append(("manifest", os.path.join(args.rundir, MANIFEST_NAME)))
    return [("run record", os.path.join(args.rundir, STEPS_FILE))], outs

HELP = "write the processing report (one HTML file) and MANIFEST.sha256 of a run folder"
DESCRIPTION = """Build the processing report of RUNDIR from its run record (RUNDIR/steps.jsonl,
one line per step, written by every seis-hpc step run with --rundir or $SEIS_HPC_RUNDIR).

Writes:
  RUNDIR/report.html       every step with its command line, parameters, inputs and outputs,
                           start/end/duration, trace counts, edits (per flow step: traces
                           killed, despiked, flipped...), metrics and QC pictures.
                           Each input and output shows the size and SHA-256 the step recorded
                           when it read or wrote the file (a folder output: the files written
                           into it); a file changed or missing since is flagged there and under
                           "Changed or missing files" ("changed after this step wrote it:
                           recorded sha256 ... now ...; rewritten by step N"), and printed
                           here as a warning.
                           Self-contained: pictures embedded, no external file, script or link;
                           opens offline.
  RUNDIR/MANIFEST.sha256   SHA-256 of every deliverable (final outputs and QC pictures of
                           the steps that succeeded, steps.jsonl, report.html) in sha256sum
                           format, sizes in '# size' comments; check it later with
                           seis-hpc verify RUNDIR/MANIFEST.sha256  or, without seis_hpc,
                           cd RUNDIR && sha256sum -c MANIFEST.sha256
  RUNDIR/SCRATCH.txt       the intermediate files (sizes only, not in the manifest): outputs
                           that a later data step read (a qc step does not count), and files
                           under a work/ or iter<N>/ folder

Parameters:
  --out FILE.html          report file (default RUNDIR/report.html)
  --manifest FILE          manifest file (default RUNDIR/MANIFEST.sha256)
  --title TEXT             report title

Example:
  seis-hpc report run42/
"""


def add_arguments(parser) -> None:
    """RUNDIR, --out, --manifest, --title."""
    parser.add_argument("rundir", metavar="RUNDIR", help="run folder holding steps.jsonl")
    parser.add_argument("--out", metavar="FILE.html", help="report file")
    parser.add_argument("--manifest", metavar="FILE", help="manifest file")
    parser.add_argument("--title", help="report title")


def run(args) -> int:
    from seis_hpc.delivery.report import build_report

    rep = build_report(args.rundir, out=args.out, manifest=args.manifest, title=args.title)
    print(f"{rep.html}: report of {rep.steps} steps")
    print(f"{rep.manifest}: {len(rep.entries)} deliverables, "
          f"{sum(e.size for e in rep.entries)} bytes")
    if rep.scratch:
        print(f"{len(rep.scratch)} scratch files ({sum(n for _, n in rep.scratch)} bytes) "
              "listed in SCRATCH.txt, not in the manifest")
    for m in rep.missing:
        print(f"warning: recorded output no longer exists: {m}")
    for m in rep.mismatches:
        print(f"warning: step {m.step} ({m.name}): {m.path}: {m.text()}")
    for m in rep.outside:
        print(f"warning: recorded output outside the manifest's folder, not listed: {m}")
    return 0
