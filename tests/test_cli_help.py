"""``--help`` of the processing steps tells each parameter's default and unit (issue 18).

The ``--help`` text of velan, stack, pstm and migstack is parsed as printed: every option
that takes a value states its default (unless required) and, where the value is physical,
its unit in the form ``(unit; default ...)``; a default stated as a value is the one the
parser uses. Every value option is classified below, so a new option fails here until its
help says its unit (or the table says it has none).
"""

from __future__ import annotations

import argparse
import re

import pytest

from seis_hpc import cli

COMMANDS = ("velan", "stack", "pstm", "migstack")

# The unit each option's help must give; fraction, ratio and 0-1 for dimensionless values
# whose scale matters. Per command where the same name means different things.
UNITS = {
    "--velocity": "m/s", "--vmin": "m/s", "--vmax": "m/s", "--dv": "m/s",
    "--vint-min": "m/s", "--vint-max": "m/s", "--water-velocity": "m/s", "--reference": "m/s",
    "--window": "s", "--tmin": "s", "--tmax": "s", "--dt": "s", "--water-bottom": "s",
    "--smooth-s": "s", "--checkpoint-interval": "s", "--progress-every": "s",
    "--smooth-m": "m", "--every-m": "m", "--aperture": "m",
    "--max-angle": "degrees",
    "--stretch-mute": "fraction", "--taper": "fraction", "--corridor": "fraction",
    "--trend-corridor": "fraction", "--outlier": "fraction",
    "--gamma-min": "ratio", "--gamma-max": "ratio", "--min-semblance": "0-1",
    "--rate": "evaluations/s",
}
PER_COMMAND = {
    "velan": {"--out": "m/s"},
    "pstm": {"--offset-classes": "m"},
    "migstack": {"--velocity-out": "m/s"},
}
# Values without a unit: files, counts, bin numbers, choices, memory sizes.
NO_UNIT = {"--out", "--segy", "--segy-revision", "--picks", "--use-picks", "--su-table", "--csv",
           "--su-every", "--bin-grid", "--index", "--every", "--supergather", "--min-fold",
           "--method", "--extrapolate", "--iterations", "--grid", "--offset-classes",
           "--mem-per-rank", "--backend", "--weights", "--interp", "--threads", "--strategy",
           "--tile", "--units", "--checkpoint-dir", "--restart", "--parallel-hdf5", "--traces",
           "--ffid", "--qc", "--qc-locations", "--line", "--normalise",
           "--ranks", "--scratch"}


def _help_text(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def _entries(text: str) -> dict[str, str]:
    """Option string -> its help text (lines joined), parsed from argparse's help output."""
    entries: dict[str, str] = {}
    current: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^  (-[^ ].*?)(?:\s{2,}(.*))?$", line)
        if m:
            current = [o.split()[0] for o in m.group(1).split(", ")]
            for opt in current:
                entries[opt] = (m.group(2) or "").strip()
        elif current and re.match(r"^\s{3,}\S", line):
            for opt in current:
                entries[opt] = f"{entries[opt]} {line.strip()}".strip()
        else:
            current = []
    return entries


def _value_actions(command: str):
    sub = next(a for a in cli.build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    for a in sub.choices[command]._actions:
        if a.option_strings and a.nargs != 0 and not isinstance(a, argparse._HelpAction):
            yield max(a.option_strings, key=len), a


def _unit_given(help_text: str, unit: str) -> bool:
    # "(m/s; default 1400)", "(s)", "(s, m/s; ...)", "edges (m), e.g."
    return re.search(rf"[(,]\s*{re.escape(unit)}\s*[;),]", help_text) is not None


@pytest.mark.parametrize("command", COMMANDS)
def test_every_value_option_states_default_and_unit(command, capsys):
    entries = _entries(_help_text(command, capsys))
    units = {**UNITS, **PER_COMMAND.get(command, {})}
    problems = []
    for opt, action in _value_actions(command):
        text = entries.get(opt)
        assert text is not None, f"{command} --help: {opt} not found in\n{entries}"
        if opt not in units and opt not in NO_UNIT:
            problems.append(f"{opt}: not classified in this test (unit or none)")
        unit = units.get(opt)
        if unit and not _unit_given(text, unit):
            problems.append(f"{opt}: no unit ({unit}) in {text!r}")
        if not action.required and not re.search(r"\bdefault\b", text):
            problems.append(f"{opt}: no default in {text!r}")
    assert not problems, f"seis-hpc {command} --help:\n" + "\n".join(problems)


@pytest.mark.parametrize("command", COMMANDS)
def test_stated_defaults_are_the_parsers(command, capsys):
    """A default written as a value ("default 1400", "default cython") is the one used."""
    entries = _entries(_help_text(command, capsys))
    checked = 0
    for opt, action in _value_actions(command):
        m = re.search(r"\bdefault ([^\s;),]+)", entries[opt])
        if m is None or action.default is None:
            continue
        stated = m.group(1)
        if isinstance(action.default, str):
            assert stated == action.default, (command, opt, stated, action.default)
        else:
            assert float(stated) == pytest.approx(float(action.default)), (command, opt)
        checked += 1
    assert checked >= 3, (command, checked)


def test_help_parser_reads_entries():
    """The parser of the help text: options with metavars, wrapped help, two spellings."""
    text = ("options:\n  -h, --help            show this help message and exit\n"
            "  --out VELOCITY.h5, -o VELOCITY.h5\n                        output vrms volume"
            " (m/s)\n  --vmin M/S            first trial velocity (m/s; default\n"
            "                        1400)\n\nanalysis:\n  --every N             every N\n")
    e = _entries(text)
    assert e["--out"] == e["-o"] == "output vrms volume (m/s)"
    assert e["--vmin"] == "first trial velocity (m/s; default 1400)"
    assert _unit_given(e["--vmin"], "m/s") and not _unit_given(e["--vmin"], "s")
    assert e["--every"] == "every N"
