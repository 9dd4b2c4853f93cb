"""``make demo``: the built-in synthetic 3D survey from raw SEG-Y to a migrated image and pictures.

Runs the same commands a user would (``seis-hpc synth``, ``index``, ``pstm`` under ``mpiexec``),
then draws QC pictures and checks the diffractors against the truth. Usage::

    python -m seis_hpc.demo --out demo_out [--ranks 2] [--mpiexec .venv/bin/mpiexec]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _run(cmd: list[str], **kw) -> None:
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def _seis(*args: str) -> list[str]:
    return [sys.executable, "-m", "seis_hpc", *args]


def pictures(out: Path, survey: Path, image_path: Path, truth: dict) -> list[Path]:
    """QC pictures of the demo: a shot record, the fold map, an inline and a time slice of the
    image through the first diffractor (truth marked by red circles)."""
    from seis_hpc.io.volume import read_volume
    from seis_hpc.qc import plot_map, plot_section
    from seis_hpc.survey import Survey

    s = Survey.open(survey / "shots.sgy")
    idx = s.index
    ffid = idx["ffid"]
    shot = np.flatnonzero(ffid == ffid[len(ffid) // 2])
    shot = shot[: truth["acquisition"]["n_channels"]]  # first streamer of a mid-survey shot
    t_in = idx.t_start + np.arange(idx.ns) * idx.dt
    made = [plot_section(idx.read_traces(shot), t_in, idx["channel"][shot],
                         out / "shot_gather.png", xlabel="channel",
                         title=f"Shot FFID {ffid[shot[0]]}, streamer 1 (raw)")]
    made.append(plot_map(s.fold().astype(float), out / "fold_map.png", title="CMP fold",
                         x=s.grid.crosslines(), y=s.grid.inlines(), label="traces per bin"))
    vol = read_volume(image_path)
    d = truth["diffractors"][0]
    il = int(round(d["inline"])) - vol.grid.inline0
    xl = int(round(d["crossline"])) - vol.grid.crossline0
    made.append(plot_section(vol.data[il], vol.time, vol.grid.crosslines(),
                             out / "image_inline.png", xlabel="crossline",
                             title=f"PSTM inline {vol.grid.inline0 + il}",
                             marks=[(x["crossline"], x["t0_s"]) for x in truth["diffractors"]
                                    if round(x["inline"]) == vol.grid.inline0 + il]))
    it = int(round((d["t0_s"] - vol.time[0]) / vol.dt))
    made.append(plot_map(vol.data[:, :, it], out / "image_timeslice.png",
                         title=f"PSTM time slice {vol.time[it]:.3f} s", cmap="gray_r",
                         x=vol.grid.crosslines(), y=vol.grid.inlines(),
                         marks=[(d["crossline"], d["inline"])]))
    return made


def check_focus(image_path: Path, truth: dict) -> list[str]:
    """One line per diffractor: where the image peaks near it, against the truth."""
    from seis_hpc.io.volume import read_volume

    vol = read_volume(image_path)
    lines = []
    for d in truth["diffractors"]:
        il = int(round(d["inline"])) - vol.grid.inline0
        xl = int(round(d["crossline"])) - vol.grid.crossline0
        it = int(round((d["t0_s"] - vol.time[0]) / vol.dt))
        sl = (slice(max(il - 3, 0), il + 4), slice(max(xl - 6, 0), xl + 7),
              slice(max(it - 10, 0), it + 11))
        win = np.abs(vol.data[sl])
        k = np.unravel_index(np.argmax(win), win.shape)
        pil = sl[0].start + k[0] + vol.grid.inline0
        pxl = sl[1].start + k[1] + vol.grid.crossline0
        pt = vol.time[sl[2].start + k[2]]
        lines.append(f"diffractor at inline {d['inline']:.1f}, crossline {d['crossline']:.1f}, "
                     f"t0 {d['t0_s']:.3f} s -> image peak at inline {pil}, crossline {pxl}, "
                     f"{pt:.3f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    ap.add_argument("--ranks", type=int, default=min(os.cpu_count() or 1, 2),
                    help="MPI ranks for the migration (default: up to 2)")
    ap.add_argument("--mpiexec", default=shutil.which("mpiexec") or "mpiexec",
                    help="MPI launcher")
    ap.add_argument("--preset", default="marine3d-small", help="synthetic survey preset")
    args = ap.parse_args(argv)
    out = Path(args.out)
    survey = out / "survey"
    t0 = time.time()
    _run(_seis("synth", "--preset", args.preset, "--out", str(survey)))
    _run(_seis("index", str(survey / "shots.sgy")))
    truth = json.loads((survey / "truth.json").read_text())
    image = out / "image.h5"
    _run([args.mpiexec, "-n", str(args.ranks), *_seis(
        "pstm", str(survey / "shots.sgy"), "--velocity", str(survey / "velocity.csv"),
        "--out", str(image), "--aperture", "600", "--max-angle", "60", "--tmax", "1.0")])
    made = pictures(out, survey, image, truth)
    print()
    for line in check_focus(image, truth):
        print(line)
    print(f"\nDemo finished in {time.time() - t0:.0f} s.")
    print(f"  survey:   {survey / 'shots.sgy'} (truth: {survey / 'truth.json'})")
    print(f"  image:    {image}  (seis-hpc info {image})")
    print("  pictures: " + ", ".join(str(p) for p in made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
