"""Make the figures of docs/velocity.md from the built-in marine2d line.

    .venv/bin/python docs/make_figures.py        (a few minutes on 2 cores)

The line is ``seis-hpc synth --preset marine2d`` (raw shots, 3 s). The velocity comes from
``seis-hpc velan`` with its default parameters (:func:`seis_hpc.velocity.analysis.velan`,
with ``qc=``: the QC pictures a processor uses to accept or edit it); the NMO stack uses it;
the PSTM stack and the image gathers migrate rho-filtered traces with it
(:mod:`seis_hpc.migration.pstm` on the arrays; ``seis-hpc pstm`` and ``migstack`` run the same
through the MPI engine). Every section has its title block. PNGs go to docs/img/, each
quantised to a palette so that it stays under 200 kB.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from seis_hpc import synth
from seis_hpc.io.volume import read_volume
from seis_hpc.migration.pstm import pstm, pstm_gathers, rho_filter
from seis_hpc.qc import figures as qc
from seis_hpc.qc.figures import TitleBlock
from seis_hpc.qc.pictures import AMPLITUDE_UNITS
from seis_hpc.survey import Survey
from seis_hpc.velocity.analysis import velan
from seis_hpc.velocity.stack import nmo_stack_survey

IMG = Path(__file__).resolve().parent / "img"
LINE = "marine2d"
SEMBLANCE_CDP = 266  # a location with rejected picks of several kinds


class _Field:
    """The field as nmo_stack_survey reads a velocity: window(i0, i1, j0, j1)."""

    def __init__(self, f):
        self.f = f

    def window(self, i0, i1, j0, j1):
        return self.f[j0:j1]


def _small(path: Path) -> None:
    """Quantise a PNG to 128 colours (same pixels), for the repository."""
    from PIL import Image

    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="seis_hpc_docs_"))
    truth = synth.write_survey(synth.preset(LINE), work)
    shots = work / "shots.sgy"
    picks = velan(shots, work / "vrms.h5", qc=work / "qc", line=LINE, progress=False)
    IMG.mkdir(exist_ok=True)
    keep = {"vrms_vrms.png": "velan_vrms.png", "vrms_vint.png": "velan_vint.png",
            f"vrms_semblance_cdp{SEMBLANCE_CDP}.png": "velan_semblance.png"}
    for src, dst in keep.items():
        (IMG / dst).write_bytes((work / "qc" / src).read_bytes())

    survey = Survey.open(shots)
    idx, grid = survey.index, survey.grid
    time = idx.times()
    field = read_volume(work / "vrms.h5").data.reshape(grid.n_crossline, -1)
    assert field.shape[1] == time.size
    cmp = grid.crosslines()
    coords = grid.grid_to_world(np.full(cmp.size, grid.inline0), cmp)
    marks = [(d["crossline"], d["t0_s"]) for d in truth["diffractors"]
             if d["crossline"] <= cmp[-1]]
    stack = nmo_stack_survey(idx, survey.bin_serial(), grid, _Field(field))
    qc.plot_section(stack, time, cmp, IMG / "stack_nmo.png", xlabel="CDP", marks=marks,
                    title="Before migration: NMO stack (velan's velocity; circles: true "
                    "diffractors)", size=(8, 5.2), coords=coords,
                    block=TitleBlock(LINE, "NMO stack, 2D line, raw shots", AMPLITUDE_UNITS))
    data = rho_filter(idx.read_traces(np.arange(idx.n_traces)), idx.dt, dims=2)
    sel = np.arange(0, grid.n_crossline, 2)  # every other CMP keeps this script quick
    geo = (idx["sx"], idx["sy"], idx["rx"], idx["ry"])
    img = pstm(data, idx.dt, *geo, grid.points()[sel], time, field[sel], max_angle=60.0,
               sparse_t0="auto", dims=2, dx_aa=2 * grid.bin_inline)
    qc.plot_section(img, time, cmp[sel], IMG / "stack_pstm.png", xlabel="CDP", marks=marks,
                    title="After migration: PSTM stack (velan's velocity; circles: true "
                    "diffractors)", size=(8, 5.2), coords=(coords[0][sel], coords[1][sel]),
                    block=TitleBlock(LINE, "PSTM stack, 2D line, raw shots", AMPLITUDE_UNITS))
    at = np.linspace(0, grid.n_crossline - 1, 7).round().astype(int)[1:-1]
    edges = np.linspace(0.0, float(np.abs(idx["offset"]).max()) + 1.0, 13)
    cig = pstm_gathers(data, idx.dt, *geo, grid.points()[at], time, field[at], edges,
                       max_angle=60.0, dims=2, dx_aa=2 * grid.bin_inline)
    centres = 0.5 * (edges[1:] + edges[:-1])
    qc.save_png(qc.image_gathers_figure(
        np.moveaxis(cig, 0, 1), time, centres, [f"CDP {cmp[j]}" for j in at],
        title="PSTM image gathers (velan's velocity): flat events, right velocity",
        size=(8, 5.5), tmax=1.6,
        block=TitleBlock(LINE, "PSTM image gathers, 12 offset classes", AMPLITUDE_UNITS)),
        IMG / "image_gathers.png")
    for f in ("velan_semblance.png", "velan_vint.png", "velan_vrms.png", "stack_nmo.png",
              "stack_pstm.png", "image_gathers.png"):
        _small(IMG / f)
        print(f, (IMG / f).stat().st_size // 1024, "kB")
    print(f"{len(picks.locations)} locations; {len(picks.pictures)} QC pictures in {work}/qc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
