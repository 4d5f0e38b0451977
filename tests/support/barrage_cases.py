"""The Barrage recordings in tests/data/barrage/: what each one subscribes to, what is done to the
table while it is recorded, the contents expected after each step (worked out here in plain
Python), and the file format.

scripts/record_barrage.py makes the recordings against a real server from these definitions;
tests/test_offline_barrage.py replays them through the assembler without a server. Each file keeps
the definition it was made from, so a recording older than a changed definition is detected.

File format (integers little-endian): ``b"DHBARRAGE1"``, then length-prefixed (uint32) records: a
JSON header (the case's name and definition, and ``marks``), the Arrow schema the assembler was
given (IPC-serialized), then every message fed to ``Assembler.feed`` in order, byte for byte
(serialized FlightData). ``marks[k]`` is how many messages had been fed when step k (0: the
subscription's first snapshot) was done: the messages of step k are ``messages[marks[k-1]:marks[k]]``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "barrage"
MAGIC = b"DHBARRAGE1"

# -- the static table: empty_table(STATIC_N).update(formulas) ---------------------------------------

STATIC_N = 40
#: (column, Deephaven formula, the value of row i, the Arrow type the server sends)
STATIC_COLUMNS: list[tuple[str, str, Any, pa.DataType]] = [
    ("I", "I = i", lambda i: i, pa.int32()),
    ("L", "L = ii * 1000000007L", lambda i: i * 1000000007, pa.int64()),
    ("D", "D = i / 4.0", lambda i: i / 4.0, pa.float64()),
    ("S", "S = `s` + i", lambda i: f"s{i}", pa.string()),
    ("B", "B = i % 3 == 0", lambda i: i % 3 == 0, pa.bool_()),
    ("N", "N = i % 4 == 1 ? NULL_INT : i * 7", lambda i: None if i % 4 == 1 else i * 7, pa.int32()),
]


def static_formulas() -> list[str]:
    return [f for _, f, _, _ in STATIC_COLUMNS]


def static_rows(positions: Any = None, columns: Optional[list[str]] = None) -> list[dict]:
    """The static table's rows at ``positions`` (default: all), with ``columns`` (default: all)."""
    positions = range(STATIC_N) if positions is None else positions
    cols = [(n, fn) for n, _, fn, _ in STATIC_COLUMNS if columns is None or n in columns]
    return [{n: fn(i) for n, fn in cols} for i in positions]


# -- the keyed input tables --------------------------------------------------------------------------

KEYED_SCHEMA = pa.schema([("K", pa.string()), ("V", pa.int64()), ("X", pa.float64())])

#: steps on a keyed input table (key K): ("add", [(K, V, X), ...]) or ("delete", [K, ...])
INPUT_STEPS: list[tuple[str, list]] = [
    ("add", [("a", 1, 0.5), ("b", 2, 1.5), ("c", 3, 2.5), ("d", 4, 3.5), ("e", 5, 4.5)]),
    ("add", [("f", 6, 5.5), ("g", 7, 6.5)]),
    ("delete", ["b", "d"]),
    ("add", [("c", 30, -2.5)]),  # a key that is there: its row is modified in place
    ("add", [("b", 20, 9.25), ("h", 8, 7.5)]),  # a deleted key comes back (to its place), a new one
]

#: the same on a second keyed input table, subscribed through ``sort("K")`` (rows move: shifts)
SORTED_STEPS: list[tuple[str, list]] = [
    ("add", [("m", 1, 1.0), ("p", 2, 2.0), ("t", 3, 3.0)]),
    ("add", [("c", 4, 4.0), ("x", 5, 5.0)]),  # one above all, one below all
    ("delete", ["p"]),
    ("add", [("m", 60, 6.5)]),  # modified
    ("add", [("a", 7, 7.0), ("n", 8, 8.0), ("o", 9, 9.0)]),  # at the top and in the middle
]

#: the viewport of the sorted table during SORTED_STEPS, and where it is moved after them
SORTED_VIEWPORT = (0, 2)
SORTED_VIEWPORT_MOVE = ((1, 3), ["K", "V"])


def keyed_model(steps: list[tuple[str, list]]) -> list[list[dict]]:
    """The rows of a keyed input table after each step (index 0: before any step, empty), in the
    order the server keeps them: a key takes a row slot after every slot given before when it is
    first added and keeps it, also while deleted (a key that comes back returns to its place; seen
    on the 42.x server), and a changed key stays in place."""
    slots: dict[str, int] = {}
    rows: dict[str, dict] = {}
    out: list[list[dict]] = [[]]
    for op, items in steps:
        if op == "add":
            for k, v, x in items:
                slots.setdefault(k, len(slots))
                rows[k] = {"K": k, "V": v, "X": x}
        elif op == "delete":
            for k in items:
                rows.pop(k, None)
        else:  # pragma: no cover - a definition mistake
            raise ValueError(op)
        out.append([dict(rows[k]) for k in sorted(rows, key=slots.__getitem__)])
    return out


def sorted_model() -> list[list[dict]]:
    return [sorted(rows, key=lambda r: r["K"]) for rows in keyed_model(SORTED_STEPS)]


# -- the static table's viewports ------------------------------------------------------------------

#: (viewport, columns or None, reverse): the first is subscribed, the others are moves
STATIC_VIEWPORTS: list[tuple[Any, Optional[list[str]], bool]] = [
    ((5, 14), None, False),
    ([(30, 34), (37, 38)], ["I", "S"], False),
    ((0, 2), None, True),
]


def viewport_positions(viewport: Any, n: int, reverse: bool) -> list[int]:
    """The positions a viewport covers in a table of n rows, in table order."""
    pairs = [viewport] if isinstance(viewport[0], int) else list(viewport)
    pos = sorted({p for a, b in pairs for p in range(a, b + 1) if p < n})
    return sorted(n - 1 - p for p in pos) if reverse else pos


# -- the recordings -------------------------------------------------------------------------------

CASES: dict[str, dict] = {
    "static": {"table": "static", "batch_size": 0},
    "static_batched": {"table": "static", "batch_size": 16},
    "input": {"table": "input", "steps": INPUT_STEPS},
    "sorted": {"table": "sorted", "steps": SORTED_STEPS},
    "sorted_viewport": {"table": "sorted", "steps": SORTED_STEPS, "viewport": SORTED_VIEWPORT,
                        "move": SORTED_VIEWPORT_MOVE},
    "static_viewport": {"table": "static", "viewports": STATIC_VIEWPORTS},
}


def definition(name: str) -> Any:
    """What a recording was made from, as JSON data (the static table's formulas included)."""
    case = dict(CASES[name])
    if case["table"] == "static":
        case["formulas"] = static_formulas()
        case["n"] = STATIC_N
    return json.loads(json.dumps(case))


@dataclass
class Recording:
    name: str
    header: dict
    schema: pa.Schema
    messages: list[bytes]

    @property
    def marks(self) -> list[int]:
        return list(self.header["marks"])

    def step_messages(self, k: int) -> list[bytes]:
        """The messages of step k."""
        marks = self.marks
        return self.messages[(marks[k - 1] if k else 0):marks[k]]


def _record(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def write_recording(path: Path, name: str, marks: list[int], schema: pa.Schema, messages: list[bytes]) -> None:
    header = {"name": name, "definition": definition(name), "marks": marks}
    out = bytearray(MAGIC)
    out += _record(json.dumps(header, sort_keys=True).encode())
    out += _record(schema.serialize().to_pybytes())
    for m in messages:
        out += _record(m)
    path.write_bytes(bytes(out))


def read_recording(name: str, directory: Path = DATA_DIR) -> Recording:
    data = (directory / f"{name}.bin").read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{name}.bin is not a Barrage recording")
    pos = len(MAGIC)
    records = []
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError(f"{name}.bin ends inside a record length")
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if pos + n > len(data):
            raise ValueError(f"{name}.bin ends inside a record")
        records.append(data[pos:pos + n])
        pos += n
    if len(records) < 2:
        raise ValueError(f"{name}.bin lacks its header or schema")
    header = json.loads(records[0])
    schema = pa.ipc.read_schema(pa.py_buffer(records[1]))
    return Recording(name, header, schema, records[2:])
