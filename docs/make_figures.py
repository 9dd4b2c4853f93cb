"""Make the before/after-migration figures of docs/velocity.md from the demo line.

    .venv/bin/python docs/make_figures.py        (about a minute on 2 cores)

The demo line is the marine2d preset shortened to 72 shots and 1.3 s (the test line). The
velocity is picked automatically (seis_hpc.velocity.velan), the NMO stack uses it, and the PSTM
stack
migrates rho-filtered traces with it (seis_hpc.migration.pstm on the arrays; seis-hpc
migstack runs the same through the MPI engine). PNGs go to docs/img/.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from seis_hpc import synth
from seis_hpc.migration.pstm import pstm, rho_filter
from seis_hpc.qc import figures as qc
from seis_hpc.survey import Survey
from seis_hpc.velocity.field import field_from_picks
from seis_hpc.velocity.stack import nmo_stack_survey
from seis_hpc.velocity.velan import ScanParams, analysis_locations, velocity_analysis

IMG = Path(__file__).resolve().parent / "img"


class _Field:
    def __init__(self, f):
        self.f = f

    def window(self, i0, i1, j0, j1):
        return self.f[j0:j1]


def main() -> int:
    p = synth.preset("marine2d")
    p = replace(p, acquisition=replace(p.acquisition, shots_per_line=72, record_length=1.3))
    work = Path(tempfile.mkdtemp(prefix="seis_hpc_docs_"))
    truth = synth.write_survey(p, work)
    survey = Survey.open(work / "shots.sgy")
    idx, grid = survey.index, survey.grid
    time = idx.times()
    locs = analysis_locations(grid, survey.fold(), every=20, min_fold=6)
    picks = velocity_analysis(idx, idx["inline"], idx["crossline"], grid, locs,
                              ScanParams(vint_min=[(0, 1450), (0.2, 1450), (0.21, 1550)],
                                         vmax=3000.0))
    vel = field_from_picks(picks, grid, time, smooth_m=250.0, smooth_s=0.05)
    cmp = grid.crosslines()
    marks = [(d["crossline"], d["t0_s"]) for d in truth["diffractors"]
             if d["crossline"] <= cmp[-1]]
    IMG.mkdir(exist_ok=True)
    qc.plot_map(vel.T, IMG / "velocity.png", title="Automatic Vrms (m/s), demo line",
                xlabel="CMP", ylabel="two-way time (s)", x=cmp, y=time, label="m/s",
                size=(7, 3.5))
    stack = nmo_stack_survey(idx, survey.bin_serial(), grid, _Field(vel))
    qc.plot_section(stack, time, cmp, IMG / "stack_nmo.png", xlabel="CMP", marks=marks,
                    title="Before migration: NMO stack (automatic velocity)", size=(7, 3.5))
    data = rho_filter(idx.read_traces(np.arange(idx.n_traces)), idx.dt, dims=2)
    sel = np.arange(0, grid.n_crossline, 2)  # every other CMP keeps this script quick
    img = pstm(data, idx.dt, idx["sx"], idx["sy"], idx["rx"], idx["ry"], grid.points()[sel],
               time, vel[sel], max_angle=60.0, sparse_t0="auto", dims=2,
               dx_aa=2 * grid.bin_inline)
    qc.plot_section(img, time, cmp[sel], IMG / "stack_pstm.png", xlabel="CMP", marks=marks,
                    title="After migration: PSTM stack (automatic velocity)", size=(7, 3.5))
    for f in ("velocity.png", "stack_nmo.png", "stack_pstm.png"):
        print(f, (IMG / f).stat().st_size // 1024, "kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
