"""Bad-trace editing against planted damage with known truth (synth Noise), through the
command line: found >= 95 % of damaged traces, < 1 % of good traces killed, and each edit
does what it says."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from _conditioning_data import small_preset

from seis_hpc.cli import main
from seis_hpc.flows import edit
from seis_hpc.survey import open_traces
from seis_hpc.synth import Noise, make_survey, write_survey

NOISE = Noise(dead=12, spikes=12, noisy=12, reversed=12, nan=6, seed=11)
KINDS = ("dead", "spikes", "noisy", "reversed", "nan")


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit")
    p = small_preset(shots=30, channels=48, record=1.0, noise=NOISE)
    truth = write_survey(p, root)
    clean, _, _ = make_survey(replace(p, noise=Noise()))
    out = root / "edited.sgy"
    rc = main(["edit", str(root / "shots.sgy"), "--out", str(out), "--report",
               str(root / "edits.csv")])
    assert rc == 0
    with open(root / "edits.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return dict(root=root, truth=truth, rows=rows, out=out, clean=clean)


def test_report_columns_and_targets(edited):
    rows, truth = edited["rows"], edited["truth"]
    assert list(rows[0])[:4] == ["trace_index", "ffid", "channel", "cmp"]
    assert {"action", "reason"} <= set(rows[0])
    found = {int(r["trace_index"]): r for r in rows}
    damaged = set().union(*(truth["noise"][k] for k in KINDS))
    assert len(damaged) == sum(len(truth["noise"][k]) for k in KINDS)
    assert len(damaged & set(found)) >= 0.95 * len(damaged)
    good = set(range(truth["n_traces"])) - damaged
    killed_good = [i for i in good if i in found and found[i]["action"] == "kill"]
    assert len(killed_good) < 0.01 * len(good)
    # Each kind gets its action, with a reason naming it.
    expect = {"dead": ("kill", "dead"), "nan": ("kill", "NaN"), "noisy": ("kill", "noisy"),
              "spikes": ("despike", "spike"), "reversed": ("flip", "reversed")}
    for kind, (action, word) in expect.items():
        hits = [found[i] for i in truth["noise"][kind] if i in found]
        assert sum(r["action"] == action and word in r["reason"] for r in hits) >= \
            0.9 * len(truth["noise"][kind]), kind


def test_trace_index_ffid_channel_match_file(edited):
    rd = open_traces(edited["root"] / "shots.sgy")
    for r in edited["rows"][:20]:
        i = int(r["trace_index"])
        assert int(r["ffid"]) == rd.index["ffid"][i]
        assert int(r["channel"]) == rd.index["channel"][i]


def test_output_traces_repaired(edited):
    rd = open_traces(edited["out"])
    out = rd.read(np.arange(rd.index.n_traces))
    clean, truth = edited["clean"], edited["truth"]["noise"]
    found = {int(r["trace_index"]): r["action"] for r in edited["rows"]}
    for i in truth["nan"] + truth["dead"] + truth["noisy"]:
        if found.get(i) == "kill":
            assert not out[i].any()
    for i in truth["reversed"]:
        if found.get(i) == "flip":
            assert np.corrcoef(out[i], clean[i])[0, 1] > 0.99
    for i in truth["spikes"]:
        if found.get(i) == "despike":
            err = np.sqrt(np.mean((out[i] - clean[i]) ** 2))
            assert err < 0.1 * np.abs(clean[i]).max()
    # Headers copied verbatim; history recorded.
    a = open_traces(edited["root"] / "shots.sgy").header_bytes(np.arange(50))
    b = rd.header_bytes(np.arange(50))
    assert np.array_equal(a, b)
    qc = json.loads((edited["root"] / "edited.sgy.qc.json").read_text())
    assert qc["history"][-1]["step"] == "edit"
    assert qc["summary"]["traces_killed"] >= len(truth["dead"]) + len(truth["nan"])


def test_despike_restores_interpolated_values():
    t = np.linspace(0, 1, 200)
    tr = np.sin(2 * np.pi * 5 * t)[None, :].repeat(9, axis=0)
    bad = tr.copy()
    bad[4, 100] += 50.0
    mask = edit.spike_mask(bad)
    assert mask[4, 100] and mask.sum() == 1
    fixed = edit.despike(bad, mask)
    assert np.abs(fixed[4] - tr[4]).max() < 0.01


def test_missing_input_is_one_line_error(tmp_path, capsys):
    rc = main(["edit", str(tmp_path / "nope.sgy"), "--out", str(tmp_path / "o.sgy")])
    assert rc == 2
    assert "nope.sgy" in capsys.readouterr().err
    assert not (tmp_path / "o.sgy").exists()


# -- every threshold, with a trace just inside and one just outside it ------------------------
#
# A survey of identical traces (band-limited noise after 0.2 s of silence) in which each
# threshold of the edit step is straddled by two planted traces 10 % either side of it
# (spike_ratio, max_spikes, noisy_ratio, reversed_corr, and the band edge fmin). Built so that
# each planted attribute is known exactly: a spike in the silence has residual = its height;
# a trace scaled by k has band RMS k times its neighbours'; a trace c*s + sqrt(1-c^2)*n, with n
# orthogonal to s at every lag of the polarity search, has polarity score exactly c.

NS, DT, SHOTS, CH, QUIET = 500, 0.002, 4, 48, 100
DEFAULTS = dict(spike_ratio=4.0, max_spikes=20, noisy_ratio=3.0, reversed_corr=-0.3, fmin=20.0)


def _band_noise(rng, n):
    from seis_hpc.flows.noise import bandpass

    return bandpass(rng.normal(size=(1, n)), DT, (4, 6, 70, 80))[0].astype(np.float64)


def _threshold_survey():
    rng = np.random.default_rng(21)
    s = np.zeros(NS)
    s[QUIET:] = _band_noise(rng, NS - QUIET)
    s /= np.abs(s).max()  # peak 1: the spike level of every clean trace
    data = np.tile(s, (SHOTS * CH, 1))
    tr = lambda shot, ch: shot * CH + ch  # noqa: E731
    expect = {}  # trace -> (action, word in the reason); all others untouched

    def spikes(i, height, count):
        data[i, 4:4 + 4 * count:4] += height

    sr, ms = DEFAULTS["spike_ratio"], DEFAULTS["max_spikes"]
    spikes(tr(0, 5), 1.1 * sr, 1)
    expect[tr(0, 5)] = ("despike", "1 spike")
    spikes(tr(0, 12), 0.9 * sr, 1)
    spikes(tr(0, 20), 3 * sr, ms + 1)
    expect[tr(0, 20)] = ("kill", f"{ms + 1} spike samples")
    spikes(tr(0, 28), 3 * sr, ms - 1)
    expect[tr(0, 28)] = ("despike", f"{ms - 1} spike samples")
    data[tr(0, 36)] = 0.25
    expect[tr(0, 36)] = ("kill", "dead")
    data[tr(0, 44), 300] = np.nan
    expect[tr(0, 44)] = ("kill", "NaN")

    nr = DEFAULTS["noisy_ratio"]
    data[tr(1, 5)] *= 1.1 * nr
    expect[tr(1, 5)] = ("kill", "noisy")
    data[tr(1, 12)] *= 0.9 * nr

    rc = DEFAULTS["reversed_corr"]
    lag = int(round(0.012 / DT))
    shifts = np.array([np.roll(np.pad(s, lag), k)[lag:lag + NS] for k in range(-lag, lag + 1)])
    for ch, c in ((20, 1.1 * rc), (28, 0.9 * rc)):
        n = _band_noise(rng, NS)
        n -= shifts.T @ np.linalg.lstsq(shifts.T, n, rcond=None)[0]
        data[tr(1, ch)] = c * s + np.sqrt(1 - c * c) * n * np.linalg.norm(s) / np.linalg.norm(n)
    expect[tr(1, 20)] = ("flip", "reversed")

    # Band edge: a 25 Hz tone (above fmin, 5x the band RMS) is noise, a 14 Hz one (swell band,
    # below fmin) is not for this step.
    fmin = DEFAULTS["fmin"]
    spec = np.fft.rfft(s, 8 * NS)
    f = np.fft.rfftfreq(8 * NS, DT)
    r = np.sqrt(np.sum(np.abs(spec[f >= fmin + 5]) ** 2) / np.sum(np.abs(spec) ** 2)
                * np.mean(s ** 2))
    t = np.arange(NS) * DT
    amp = np.sqrt(2 * 24.0) * r  # band RMS ratio sqrt(1 + 24) = 5
    data[tr(1, 36)] += amp * np.sin(2 * np.pi * (fmin + 5) * t)
    expect[tr(1, 36)] = ("kill", "noisy")
    data[tr(1, 44)] += amp * np.sin(2 * np.pi * 0.7 * fmin * t)

    sx = np.repeat(np.arange(SHOTS) * 25.0, CH)
    rx = sx - 50.0 - 12.5 * np.tile(np.arange(CH), SHOTS)
    hdr = {"FieldRecord": np.repeat(np.arange(1, SHOTS + 1), CH),
           "TraceNumber": np.tile(np.arange(1, CH + 1), SHOTS), "SourceX": sx, "GroupX": rx,
           "SourceY": 0.0, "GroupY": 0.0, "CDP": np.round((sx + rx) / 12.5).astype(int),
           "offset": np.round(sx - rx).astype(int)}
    return data.astype(np.float32), hdr, expect


def test_each_threshold_straddled_through_the_command_line(tmp_path):
    import subprocess
    import sys

    from seis_hpc.io.segy import write_segy

    data, hdr, expect = _threshold_survey()
    write_segy(tmp_path / "in.sgy", data, hdr, DT)
    p = subprocess.run([sys.executable, "-m", "seis_hpc", "edit", str(tmp_path / "in.sgy"),
                        "--out", str(tmp_path / "out.sgy"), "--report",
                        str(tmp_path / "e.csv")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    with open(tmp_path / "e.csv", newline="") as fh:
        got = {int(r["trace_index"]): (r["action"], r["reason"]) for r in csv.DictReader(fh)}
    for i, (action, word) in expect.items():
        assert i in got and got[i][0] == action and word in got[i][1], (i, action, got.get(i))
    assert set(got) == set(expect), {i: got[i] for i in set(got) - set(expect)}

    # The library's own defaults decide the same.
    rd = open_traces(tmp_path / "in.sgy")
    cols = rd.columns(np.arange(rd.index.n_traces))
    attrs = {}
    for s in range(SHOTS):
        a = edit.trace_attributes(data[s * CH:(s + 1) * CH], DT)
        for k, v in a.items():
            attrs.setdefault(k, []).append(v)
    action, _ = edit.classify({k: np.concatenate(v) for k, v in attrs.items()}, cols)
    names = {0: None, **edit.ACTIONS}
    assert {i: names[int(a)] for i, a in enumerate(action) if a} == \
        {i: a for i, (a, _) in expect.items()}


def _edits(csv_path):
    with open(csv_path, newline="") as fh:
        return {int(r["trace_index"]): (r["action"], r["reason"]) for r in csv.DictReader(fh)}


def test_real_shots_no_flip_where_neighbours_agree_and_a_planted_reversal_found(
        external_data, tmp_path):
    """viking_small.segy (4 real shots x 120 channels): the events of neighbouring channels
    agree everywhere, so nothing is flipped (issue 17: 17 traces were, at the same channels
    in every shot); one trace reversed on purpose is the only one flipped."""
    import shutil

    from seis_hpc.io.segy import TRACE_HEADER_BYTES, decode_samples, encode_samples, probe

    src = external_data / "segyio" / "viking_small.segy"
    assert main(["edit", str(src), "--out", str(tmp_path / "a.sgy"), "--report",
                 str(tmp_path / "a.csv")]) == 0
    assert not any(a == "flip" for a, _ in _edits(tmp_path / "a.csv").values())
    planted = tmp_path / "planted.sgy"
    shutil.copy(src, planted)
    lay = probe(planted)
    k = 200  # shot 2, channel 81
    pos = lay.data_offset + k * lay.trace_bytes + TRACE_HEADER_BYTES
    with open(planted, "r+b") as f:
        f.seek(pos)
        raw = np.frombuffer(f.read(lay.trace_bytes - TRACE_HEADER_BYTES), np.uint8)[None]
        s = decode_samples(raw, lay.format, lay.endian, lay.ns)
        f.seek(pos)
        f.write(encode_samples(-s, lay.format, lay.endian).tobytes())
    assert main(["edit", str(planted), "--out", str(tmp_path / "b.sgy"), "--report",
                 str(tmp_path / "b.csv")]) == 0
    flips = [i for i, (a, _) in _edits(tmp_path / "b.csv").items() if a == "flip"]
    assert flips == [k]


def test_swell_traces_labelled_not_killed(tmp_path):
    """Swell bursts on the built-in line: every swell trace the edit step reports is labelled
    swell and left unchanged (the swell step repairs it), none killed."""
    p = small_preset(shots=12, channels=48, record=1.2, noise=Noise(swell_bursts=5, seed=3))
    truth = write_survey(p, tmp_path)
    out = tmp_path / "e.sgy"
    assert main(["edit", str(tmp_path / "shots.sgy"), "--out", str(out), "--report",
                 str(tmp_path / "e.csv")]) == 0
    got = _edits(tmp_path / "e.csv")
    swell = set(truth["noise"]["swell"])
    labelled = {i for i, (a, _) in got.items() if a == "swell"}
    assert labelled and labelled <= swell
    assert not [i for i in swell if got.get(i, ("",))[0] == "kill"]
    ids = sorted(labelled)
    np.testing.assert_array_equal(open_traces(out).read(ids),
                                  open_traces(tmp_path / "shots.sgy").read(ids))
    assert json.loads((tmp_path / "e.sgy.qc.json").read_text())["summary"]["traces_swell"] \
        == len(labelled)
