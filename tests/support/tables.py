"""Data shared by the sync and async table tests, with the plain-Python views that expected values are
computed from."""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

SYMS = ["b", "a", "c", "a", "b", "a", "c", "b", "a", "d"]
QTY = [5, 3, 8, 1, 9, 4, 7, 2, 6, 10]
PRICE = [1.5, 2.25, 0.5, 4.0, 3.5, 1.0, 2.75, 5.5, 0.25, 6.0]

DATA = pa.table({"Sym": SYMS, "Qty": pa.array(QTY, pa.int64()), "Price": PRICE})
ROWS = DATA.to_pylist()


def groups(key: str = "Sym") -> dict:
    """Rows by key, keys in order of first appearance (the server's grouping order)."""
    out: dict = defaultdict(list)
    for r in ROWS:
        out[r[key]].append(r)
    return out


def neg_str(s: str) -> tuple:
    """A sort key that orders strings descending (for mixed-direction sorts)."""
    return tuple(-ord(c) for c in s)


# the schema of the input-table tests
INPUT_SCHEMA = pa.schema([("Sym", pa.string()), ("Qty", pa.int64()), ("Px", pa.float64())])


# the data of the Query tests
QSYM = ["a", "b", "a", "c", "b", "a"]
QQTY = [10, 20, 30, 40, 50, 60]
QPX = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
QDATA = pa.table({"Sym": QSYM, "Qty": QQTY, "Px": QPX})
