"""Measure a velan Vrms field against the truth of a synthetic line.

    seis-hpc synth --preset marine2d --out line
    seis-hpc velan line/shots.sgy --out vrms.h5 --picks picks.toml
    python docs/measure_velocity.py vrms.h5 line/truth.json [--min-fold 6]

Prints, over the CMPs with at least --min-fold traces: the Vrms error from the seafloor to the
last primary reflector (median, 99th percentile, max), below the last primary to the end of
the record, and the number of unphysical Dix samples (20 ms, imaginary or outside
1,400-6,000 m/s).
"""

import argparse
import json

import h5py
import numpy as np

from seis_hpc import synth
from seis_hpc.geometry import BinGrid
from seis_hpc.velocity.accuracy import dix_unphysical, vrms_errors


def measure(vrms_path, truth, fold=None, min_fold: int = 6) -> dict:
    """Error figures of the field in ``vrms_path`` (see the module docstring)."""
    with h5py.File(vrms_path, "r") as f:
        grid = BinGrid.from_attrs(f.attrs)
        time = f["time"][...].astype(np.float64)
        v = f["vrms"][...].reshape(grid.n_bins, time.size).astype(np.float64)
    cmp = grid.crossline0 + np.arange(grid.n_crossline)
    live = np.ones(cmp.size, bool) if fold is None else np.asarray(fold).ravel() >= min_fold
    t_true = np.interp(time, truth["vrms"]["time_s"], truth["vrms"]["vrms_mps"])
    vt = t_true[None, :] * synth.lateral_factor(truth, cmp)[:, None]
    t_wb = truth["water_bottom_t0_s"]
    t_last = max(r["t0_s"] for r in truth["reflectors"])
    return {"primaries": vrms_errors(v[live], time, vt[live], t_wb, t_last),
            "below": vrms_errors(v[live], time, vt[live], t_last, time[-1]),
            "dix_unphysical": dix_unphysical(v[live], time),
            "cmps": int(live.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vrms")
    ap.add_argument("truth")
    ap.add_argument("--gathers", help="the line's shots.sgy, to count the fold per CMP")
    ap.add_argument("--min-fold", type=int, default=6)
    a = ap.parse_args()
    fold = None
    if a.gathers:
        from seis_hpc.survey import Survey

        fold = Survey.open(a.gathers).fold()
    r = measure(a.vrms, json.loads(open(a.truth).read()), fold, a.min_fold)
    for k in ("primaries", "below"):
        e = r[k]
        print(f"{k:10s} median {100 * e['median']:.2f} %  p99 {100 * e['p99']:.2f} %  "
              f"max {100 * e['max']:.2f} %")
    print(f"unphysical Dix samples (20 ms): {r['dix_unphysical']}  over {r['cmps']} CMPs")


if __name__ == "__main__":
    main()
