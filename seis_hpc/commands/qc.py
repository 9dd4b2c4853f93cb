"""``seis-hpc qc``: QC pictures (PNG) of a survey, a volume, or a before/after pair."""

INPUTS = ("file", "before", "velocity")
WRITES = ("out",)  # the picture folder (not recorded here: qc records itself)


def side_files(args):
    """The run record qc appends to (see :func:`seis_hpc.cli.check_outputs`)."""
    import os

    folder = args.rundir or os.environ.get("SEIS_HPC_RUNDIR")
    return [], [("run record", os.path.join(folder, "steps.jsonl"))] if folder else []

HELP = "draw QC pictures (PNG) of a SEG-Y/SU survey or a seis_hpc HDF5 volume"
DESCRIPTION = """Draw the standard QC pictures of FILE as PNG files (default into FILE's folder
under qc/, named <file>_<picture>.png). Axes in field units: channel, CMP, inline/crossline,
offset and coordinates in m, time in s, velocity in m/s, frequency in Hz.

SEG-Y / SU (--what, default all):
  shot        a shot gather by channel (--ffid; default the middle shot)
  cmp         a CMP gather by offset (--cmp; default the fullest bin near the grid centre)
  semblance   the semblance panel of that CMP beside the gather, with the picks of --velocity
  maps        fold, minimum/maximum offset and azimuth coverage per bin, azimuth rose,
              source/receiver/midpoint positions (2D line: fold and offsets along the line)
  spectrum    amplitude spectrum of the shot
  geometry    the bin grid (and its corner bins) over the midpoints, traces outside it in
              red; fold and offset/azimuth coverage maps; offset/azimuth distribution
HDF5 volume (image, e.g. NMO stack or PSTM; vrms; gathers) (--what, default all that apply):
  inline      section along --inline (2D: the line)      crossline  section along --crossline
  slice       time slice at --time (default: the strongest)
  spectrum    amplitude spectrum (images, gathers)       gather     five image gathers
                                                          of the section (gathers)
  interval    Dix interval-velocity section, unphysical samples in red (vrms)
Before / after (--before FILE0): before, after and difference panels at one clip, and the three
  spectra: the same shot (--ffid) of two SEG-Y/SU files, or the same inline of two volumes.

Parameters:
  --what LIST          comma-separated pictures (see above)
  --out DIR            output folder
  --style STYLE        gathers: density, wiggle or both (default both for SEG-Y, density for
                       volume sections)
  --clip P             percentile of |amplitude| shown at full scale (default 99)
  --size WxH           picture size in pixels (default per picture, e.g. 1000x600)
  --velocity CSV       time_s,vrms_mps picks drawn on the semblance panel
  --vrange V0,V1,DV    semblance trial velocities in m/s (default 1400,4000,25)
  --dataset NAME       image, vrms or gathers (default: the file's kind)
  --rundir DIR         record this step in DIR/steps.jsonl (default $SEIS_HPC_RUNDIR; no
                       record when neither is set)
  --line NAME          line name of the title blocks (default: the volume's line or input
                       file, else FILE's name)

Sections, gathers and semblance panels have a title block (line, what the picture is, clip
value or colour scale, units); sections name the bins' CDP_X / CDP_Y (m) on the top axis.

Examples:
  seis-hpc qc line12.sgy --what shot,maps --ffid 1201
  seis-hpc qc image.h5 --inline 140 --time 1.2 --out qc/
  seis-hpc qc denoised.sgy --before raw.sgy --ffid 1201
"""

import argparse  # noqa: E402 - after DESCRIPTION, which --help shows first


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"WIDTHxHEIGHT in pixels wanted, got {text!r}"
                                         ) from None
    if not (100 <= w <= 10000 and 100 <= h <= 10000):
        raise argparse.ArgumentTypeError(f"picture size must be 100..10000 pixels each way "
                                         f"(got {w}x{h})")
    return w, h


def _vrange(text: str) -> tuple[float, float, float]:
    try:
        v0, v1, dv = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"V0,V1,DV in m/s wanted, got {text!r}") from None
    if not (0 < v0 < v1 and dv > 0 and (v1 - v0) / dv <= 2000):
        raise argparse.ArgumentTypeError(f"need 0 < V0 < V1, DV > 0 and at most 2000 trial "
                                         f"velocities (got {text})")
    return v0, v1, dv


def _clip(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a percentage wanted, got {text!r}") from None
    if not 50 <= v <= 100:
        raise argparse.ArgumentTypeError(f"clip percentile must be 50..100 (got {v:g})")
    return v


def add_arguments(parser) -> None:
    """FILE and the options above."""
    parser.add_argument("file", metavar="FILE", help="SEG-Y/SU file or HDF5 volume")
    parser.add_argument("--what", help="comma-separated pictures to draw (default all)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default FILE's folder/qc)")
    parser.add_argument("--before", metavar="FILE0", help="the input of the step that made "
                        "FILE: draw before/after/difference panels")
    parser.add_argument("--ffid", type=int, help="shot (FFID) to draw")
    parser.add_argument("--cmp", type=int, help="CMP (bin) number of the CMP gather")
    parser.add_argument("--inline", type=int, help="inline of the section / gather")
    parser.add_argument("--crossline", type=int, help="crossline (2D: CMP) of the section / "
                        "gather")
    parser.add_argument("--time", type=float, metavar="S", help="time of the slice (s)")
    parser.add_argument("--style", choices=("density", "wiggle", "both"), help="gather style")
    parser.add_argument("--clip", type=_clip, default=99.0, metavar="P",
                        help="clip percentile (default 99)")
    parser.add_argument("--size", type=_size, metavar="WxH", help="picture size in pixels")
    parser.add_argument("--velocity", metavar="CSV|H5", help="time_s,vrms_mps picks or velan's "
                        "vrms volume")
    parser.add_argument("--vrange", type=_vrange, metavar="V0,V1,DV",
                        help="semblance trial velocities (m/s)")
    parser.add_argument("--dataset", choices=("image", "vrms", "gathers"),
                        help="data set of an HDF5 volume")
    parser.add_argument("--rundir", metavar="DIR", help="run folder to record this step in")
    parser.add_argument("--line", metavar="NAME", help="line name of the title blocks "
                        "(default: the volume's line or input, else the file's name)")


def run(args) -> int:
    import os
    import time
    from pathlib import Path

    import h5py

    from seis_hpc.errors import SeisError
    from seis_hpc.qc import pictures as qc
    from seis_hpc.qc.figures import DPI

    t0 = time.time()
    for p in (args.file, args.before):
        if p is None:
            continue
        if os.path.isdir(p):
            raise SeisError("is a directory, not a SEG-Y, SU or HDF5 file", p)
        with open(p, "rb"):
            pass  # the OS error (missing, unreadable) is the message
    if args.velocity:
        from seis_hpc.velocity.model import read_velocity_function

        read_velocity_function(args.velocity)  # bad picks refused before any picture is drawn
    what = [w.strip() for w in args.what.split(",") if w.strip()] if args.what else None
    out = Path(args.out) if args.out else Path(args.file).resolve().parent / "qc"
    size = None if args.size is None else (args.size[0] / DPI, args.size[1] / DPI)
    is_hdf5 = h5py.is_hdf5(args.file)
    if args.before:
        if what is not None:
            raise SeisError("--what does not apply with --before (one comparison is drawn)")
        made = qc.compare_pictures(args.before, args.file, out, ffid=args.ffid,
                                   inline=args.inline, clip=args.clip, size=size)
    elif is_hdf5:
        made = qc.volume_pictures(args.file, out, what=what, name=args.dataset,
                                  inline=args.inline, crossline=args.crossline, time=args.time,
                                  clip=args.clip, style=args.style or "density", size=size,
                                  line=args.line)
    else:
        made = qc.survey_pictures(args.file, out, what=what, ffid=args.ffid, cmp=args.cmp,
                                  clip=args.clip, style=args.style or "both",
                                  velocity=args.velocity, vrange=args.vrange, size=size,
                                  line=args.line)
    for p in made:
        print(p)
    rundir = args.rundir or os.environ.get("SEIS_HPC_RUNDIR")
    if rundir:
        from seis_hpc.delivery.runlog import params_from_args, record_step

        inputs = [args.file] + ([args.before] if args.before else [])
        record_step("qc", rundir=rundir, params=params_from_args(args), inputs=inputs,
                    start=t0, qc=made, metrics={"pictures": len(made)})
    return 0
