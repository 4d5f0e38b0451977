"""Files in and out: load a CSV file into the server (streamed in batches), aggregate it there, and
write the result to Parquet and JSON.

    python examples/files.py                 # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/files.py   # or uses the server at DH_HOST:DH_PORT
"""

import os
import tempfile
from contextlib import nullcontext
from pathlib import Path

from pydeephaven import Session
from pydeephaven.embedded import start_server

with tempfile.TemporaryDirectory() as tmp:
    orders = Path(tmp) / "orders.csv"
    with open(orders, "w") as f:
        f.write("Id,Sym,Qty\n")
        for i in range(1000):
            f.write(f"{i},S{i % 3},{i % 10 + 1}\n")

    server = nullcontext() if os.environ.get("DH_PORT") else start_server()
    with server as srv, Session(srv.host if srv else None, srv.port if srv else None) as session:
        table = session.import_file(orders)               # CSV, TSV, Parquet, Arrow IPC (.csv.gz too)
        print(f"imported {table.size} rows")
        totals = table.view(["Sym", "Qty"]).sum_by("Sym").sort("Sym")
        print(totals.to_json())                           # [{"Sym": "S0", "Qty": ...}, ...]
        written = totals.to_parquet(Path(tmp) / "totals.parquet")   # streamed batch by batch
        print(f"wrote {written} rows to totals.parquet")
