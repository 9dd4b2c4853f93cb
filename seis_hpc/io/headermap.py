"""Where the trace-header fields seis_hpc uses live: the standard SEG-Y rev 1 byte map, and a
user's TOML file that moves some of them.

A header map file names fields and gives their 1-based byte position and type, e.g.::

    # inline/crossline numbers written in the CDP and ensemble bytes by an old processor
    [fields]
    inline = { byte = 21, type = "int32" }
    crossline = { byte = 25, type = "int32" }
    sx = 73            # shorthand: byte only, type int32

The ``[fields]`` table may be left out (keys at top level). Types: ``int16``, ``int32``,
``uint16``, ``uint32``, ``float32`` (IEEE). Unknown names or types, and fields that do not fit
in the 240-byte header, are refused with a :class:`~seis_hpc.errors.SeisError` naming the map
file and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from seis_hpc.errors import SeisError

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

TYPES = {"int16": ("i2", 2), "int32": ("i4", 4), "uint16": ("u2", 2), "uint32": ("u4", 4),
         "float32": ("f4", 4)}


@dataclass(frozen=True)
class HeaderField:
    """One trace-header field: 1-based ``byte`` position and ``type`` (a key of TYPES)."""

    byte: int
    type: str = "int32"

    @property
    def size(self) -> int:
        """Size in bytes."""
        return TYPES[self.type][1]


# Standard rev 1 locations. Names are what the trace index calls them.
DEFAULT_FIELDS: dict[str, HeaderField] = {
    "ffid": HeaderField(9),
    "channel": HeaderField(13),
    "energy_source_point": HeaderField(17),
    "cdp": HeaderField(21),
    "offset": HeaderField(37),
    "receiver_elevation": HeaderField(41),
    "source_elevation": HeaderField(45),
    "source_depth": HeaderField(49),
    "receiver_datum": HeaderField(53),
    "source_datum": HeaderField(57),
    "source_water_depth": HeaderField(61),
    "receiver_water_depth": HeaderField(65),
    "elevation_scalar": HeaderField(69, "int16"),
    "coordinate_scalar": HeaderField(71, "int16"),
    "sx": HeaderField(73),
    "sy": HeaderField(77),
    "gx": HeaderField(81),
    "gy": HeaderField(85),
    "delay": HeaderField(109, "int16"),
    "ns": HeaderField(115, "uint16"),
    "dt": HeaderField(117, "uint16"),
    "cdp_x": HeaderField(181),
    "cdp_y": HeaderField(185),
    "inline": HeaderField(189),
    "crossline": HeaderField(193),
    "time_scalar": HeaderField(215, "int16"),
}
ELEVATION_KEYS = ("receiver_elevation", "source_elevation", "source_depth", "receiver_datum",
                  "source_datum", "source_water_depth", "receiver_water_depth")
COORDINATE_KEYS = ("sx", "sy", "gx", "gy", "cdp_x", "cdp_y")


@dataclass(frozen=True)
class HeaderMap:
    """The byte map used to read trace headers.

    Attributes
    ----------
    fields : dict of str -> HeaderField
        Every field seis_hpc reads (see :data:`DEFAULT_FIELDS` for the names).
    source : str
        The TOML file it came from, or ``"default"``.
    """

    fields: dict
    source: str = "default"

    def dtype(self, endian: str, itemsize: int) -> np.dtype:
        """A structured dtype reading every field from a record of ``itemsize`` bytes."""
        bo = ">" if endian == "big" else "<"
        names = list(self.fields)
        return np.dtype({
            "names": names,
            "formats": [bo + TYPES[self.fields[n].type][0] for n in names],
            "offsets": [self.fields[n].byte - 1 for n in names],
            "itemsize": itemsize,
        })

    def describe(self) -> str:
        """``name:byte:type`` for every field, for provenance attributes."""
        return ", ".join(f"{k}:{f.byte}:{f.type}" for k, f in self.fields.items())


def load_headermap(path: str | os.PathLike | None = None) -> HeaderMap:
    """The default byte map, with the fields of the TOML file ``path`` overriding it.

    Parameters
    ----------
    path : path-like, optional
        A header map TOML file (see the module documentation); None for the standard map.

    Raises
    ------
    SeisError
        Unreadable TOML, unknown field name or type, or a byte position outside 1..240 or a
        field running past byte 240; the message names the file and the key.
    """
    if path is None:
        return HeaderMap(dict(DEFAULT_FIELDS))
    if isinstance(path, HeaderMap):
        return path
    from seis_hpc.limits import read_text

    path = os.fspath(path)
    text = read_text(path, "header map (TOML)")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SeisError(f"header map is not valid TOML ({exc})", path) from None
    table = doc.get("fields", doc)
    if not isinstance(table, dict):
        raise SeisError("header map: [fields] must be a table", path)
    fields = dict(DEFAULT_FIELDS)
    for key, spec in table.items():
        if key not in DEFAULT_FIELDS:
            raise SeisError(f"header map key {key!r}: unknown field (known: "
                            f"{', '.join(DEFAULT_FIELDS)})", path)
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = {"byte": spec}
        if not isinstance(spec, dict) or "byte" not in spec:
            raise SeisError(f"header map key {key!r}: give a byte position, e.g. "
                            f"{key} = {{ byte = 189, type = \"int32\" }}", path)
        extra = set(spec) - {"byte", "type"}
        if extra:
            raise SeisError(f"header map key {key!r}: unknown setting(s) {sorted(extra)}", path)
        byte, typ = spec["byte"], spec.get("type", DEFAULT_FIELDS[key].type)
        if typ not in TYPES:
            raise SeisError(f"header map key {key!r}: unknown type {typ!r} (known: "
                            f"{', '.join(TYPES)})", path)
        if not isinstance(byte, int) or isinstance(byte, bool) or not 1 <= byte <= 240:
            raise SeisError(f"header map key {key!r}: byte {byte!r} is outside the 240-byte "
                            "trace header (1..240)", path)
        size = TYPES[typ][1]
        if byte + size - 1 > 240:
            raise SeisError(f"header map key {key!r}: a {size}-byte field at byte {byte} runs "
                            f"past the end of the 240-byte trace header (last start byte "
                            f"{241 - size})", path)
        fields[key] = HeaderField(byte, typ)
    return HeaderMap(fields, path)
