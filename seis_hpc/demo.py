"""``make demo``: the built-in synthetic 3D survey from raw SEG-Y to a migrated image and pictures.

Runs the same commands a user would (``seis-hpc synth``, ``index``, ``qc``, ``pstm`` under
``mpiexec``, ``report``), then checks the diffractors against the truth. Usage::

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
    out = Path(args.out).resolve()
    survey = out / "survey"
    image = out / "image.h5"
    qc_dir = out / "qc"
    # Every step records itself in out/steps.jsonl; `seis-hpc report` turns that into the
    # processing report and the checksummed manifest of deliverables.
    out.mkdir(parents=True, exist_ok=True)
    (out / "steps.jsonl").unlink(missing_ok=True)
    env = {**os.environ, "SEIS_HPC_RUNDIR": str(out)}
    t0 = time.time()
    _run(_seis("synth", "--preset", args.preset, "--out", str(survey)), env=env)
    _run(_seis("index", str(survey / "shots.sgy")), env=env)
    _run(_seis("qc", str(survey / "shots.sgy"), "--what", "shot,maps", "--out", str(qc_dir)),
         env=env)
    truth = json.loads((survey / "truth.json").read_text())
    _run([args.mpiexec, "-n", str(args.ranks), *_seis(
        "pstm", str(survey / "shots.sgy"), "--velocity", str(survey / "velocity.csv"),
        "--out", str(image), "--aperture", "400", "--max-angle", "60", "--tmax", "1.0",
        "--dt", "0.004")], env=env)
    d = truth["diffractors"][0]
    _run(_seis("qc", str(image), "--what", "inline,crossline,slice", "--out", str(qc_dir),
               "--inline", str(round(d["inline"])), "--crossline", str(round(d["crossline"])),
               "--time", f"{d['t0_s']:.3f}"), env=env)
    _run(_seis("report", str(out)), env=env)
    print()
    for line in check_focus(image, truth):
        print(line)
    pictures = sorted(qc_dir.glob("*.png"))
    print(f"\nDemo finished in {time.time() - t0:.0f} s.")
    print(f"  survey:   {survey / 'shots.sgy'} (truth: {survey / 'truth.json'})")
    print(f"  image:    {image}  (seis-hpc info {image})")
    print(f"  pictures: {qc_dir}/ ({len(pictures)} PNG: "
          + ", ".join(p.name for p in pictures[:6]) + (", ..." if len(pictures) > 6 else "")
          + ")")
    print(f"  report:   {out / 'report.html'} (manifest: {out / 'MANIFEST.sha256'}, "
          f"check with seis-hpc verify)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
