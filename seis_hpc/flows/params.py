"""Step parameters: the field's names, SI units, and the parsing shared by the command line
and flow files.

A value is a plain number in the parameter's SI unit (s, m, m/s, Hz), or a string with a unit
(``"500 ms"``, ``"1.5 km/s"``); a unit of the wrong kind (``"15 m"`` for a frequency) is an
error. No heavy imports here: ``seis-hpc --help`` reads these specs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from seis_hpc.errors import SeisError

UNITS: dict[str, dict[str, float]] = {
    "s": {"s": 1.0, "ms": 1e-3},
    "Hz": {"hz": 1.0},
    "m": {"m": 1.0, "km": 1e3},
    "m/s": {"m/s": 1.0, "km/s": 1e3},
    "": {"": 1.0},
}


@dataclass(frozen=True)
class Param:
    """One parameter of a step.

    Attributes
    ----------
    name : str
        The field's name (``window``, ``fmax``, ``gap``); ``--name`` on the command line.
    unit : str
        SI unit: ``"s"``, ``"Hz"``, ``"m"``, ``"m/s"``, ``""`` (a number without unit),
        ``"int"``, ``"bool"``, ``"str"``, ``"path"``, ``"floats"`` (comma list, SI unit in
        ``list_unit``) or ``"texts"`` (several strings: a repeated flag, a TOML list).
    default : object
        Default value (None: optional without default, or required when ``required``).
    help : str
        One line for ``--help``.
    required : bool
        Must be given.
    choices : tuple, optional
        Allowed values of a ``str`` parameter.
    list_unit : str
        Unit of the elements of a ``floats`` parameter.
    limit : str
        What a value must satisfy, checked with the value (before anything runs): ``">0"``,
        ``">=0"``, ``">1"``, ``">=1"`` (each element of a ``floats`` list), or ``"corners"``
        (four values 0 <= f1 <= f2 <= f3 <= f4). Numbers are always finite.
    """

    name: str
    unit: str
    default: object = None
    help: str = ""
    required: bool = False
    choices: tuple | None = None
    list_unit: str = ""
    limit: str = ""

    @property
    def flag(self) -> str:
        """Command-line flag."""
        return "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """Self-doc line: name, unit, default, help."""
        unit = self.list_unit if self.unit == "floats" else self.unit
        u = f" [{unit}]" if unit in UNITS and unit else ""
        d = "" if self.default is None else f" (default {self.default})"
        req = " (required)" if self.required else ""
        return f"  {self.flag:22s}{self.help}{u}{d}{req}"


_NUM = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z/]*)\s*$")


def _quantity(value, unit: str, where: str) -> float:
    if isinstance(value, bool):
        raise SeisError(f"{where}: expected a number in {unit or 'no unit'}, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise SeisError(f"{where}: {value!r} is not a finite number")
        return float(value)
    if isinstance(value, str):
        m = _NUM.match(value)
        if m:
            num, u = float(m.group(1)), m.group(2).lower()
            table = UNITS.get(unit, {"": 1.0})
            if u == "" or u in table:
                return num * table.get(u, 1.0)
            raise SeisError(f"{where}: unit {m.group(2)!r} is not a {unit or 'plain number'} "
                            f"unit (use {', '.join(k for k in table if k) or 'no unit'})")
    raise SeisError(f"{where}: expected a number in {unit or 'no unit'}, got {value!r}")


_LIMITS = {">0": (lambda v: v > 0, "> 0"), ">=0": (lambda v: v >= 0, ">= 0"),
           ">1": (lambda v: v > 1, "> 1"), ">=1": (lambda v: v >= 1, ">= 1")}


def _check_limit(p: Param, value, where: str):
    """Refuse a converted value outside ``p.limit``."""
    if not p.limit or value is None:
        return value
    unit = p.list_unit if p.unit == "floats" else p.unit
    unit = f" {unit}" if unit in UNITS and unit else ""
    if p.limit == "corners":
        if len(value) != 4 or value[0] < 0 or sorted(value) != list(value):
            raise SeisError(f"{where}: must be four values 0 <= f1 <= f2 <= f3 <= f4{unit} "
                            f"(got {', '.join(f'{v:g}' for v in value)})")
        return value
    ok, text = _LIMITS[p.limit]
    for v in value if isinstance(value, list) else [value]:
        if not ok(v):
            raise SeisError(f"{where}: must be {text}{unit} (got {v:g})")
    return value


def convert(p: Param, value, where: str):
    """Check and convert ``value`` for parameter ``p``; ``where`` prefixes any error."""
    where = f"{where}: {p.name}"
    return _check_limit(p, _convert(p, value, where), where)


def _convert(p: Param, value, where: str):
    if p.unit in UNITS:
        return _quantity(value, p.unit, where)
    if p.unit == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise SeisError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise SeisError(f"{where}: expected an integer, got {value!r}") from None
    if p.unit == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise SeisError(f"{where}: expected true or false, got {value!r}")
    if p.unit == "floats":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise SeisError(f"{where}: expected a list of numbers, got {value!r}")
        return [_quantity(v.strip() if isinstance(v, str) else v, p.list_unit, where)
                for v in items]
    if p.unit == "texts":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items or \
                not all(isinstance(v, str) for v in items):
            raise SeisError(f"{where}: expected text or a list of texts, got {value!r}")
        return list(items)
    if not isinstance(value, str):
        raise SeisError(f"{where}: expected text, got {value!r}")
    if p.choices and value not in p.choices:
        raise SeisError(f"{where}: {value!r} is not one of {', '.join(p.choices)}")
    return value


def resolve(params: list[Param], given: dict, where: str) -> dict:
    """All parameters with defaults filled in; unknown or missing ones are errors."""
    names = {p.name: p for p in params}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise SeisError(f"{where}: unknown parameter {unknown[0]!r} (known: "
                        f"{', '.join(names)})")
    out = {}
    for p in params:
        if p.name in given and given[p.name] is not None:
            out[p.name] = convert(p, given[p.name], where)
        elif p.required:
            raise SeisError(f"{where}: parameter {p.name!r} is required")
        else:
            out[p.name] = p.default
    return out
