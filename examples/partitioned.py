"""Partitioned tables: a server table split into one table per key, in Python.

    python examples/partitioned.py        # DH_HOST / DH_PORT name the server (localhost:10000)
"""

import pyarrow as pa

from pydeephaven import Session

trades = pa.table({"Sym": ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"],
                   "Qty": [100, 50, 200, 75, 25, 300]})

with Session() as session:
    with session.import_table(trades).partition_by("Sym") as by_sym:
        print("keys:", sorted(by_sym.keys().to_arrow().column("Sym").to_pylist()))
        for sym, table in sorted(by_sym.constituents().items()):
            print(sym, table.size, sum(table.to_arrow().column("Qty").to_pylist()))
        print("merged:", by_sym.merge().size)
