"""A first real job: start a throwaway Deephaven server, upload data, run table operations on the
server, and print the result.

    python examples/quickstart.py            # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/quickstart.py   # or uses the server at DH_HOST:DH_PORT
"""

import os
from contextlib import nullcontext

import pyarrow as pa

from pydeephaven import Session
from pydeephaven.embedded import start_server

trades = pa.table({
    "Sym": ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"],
    "Price": [189.5, 410.0, 190.25, 140.1, 412.5, 188.0],
    "Qty": [100, 50, 200, 75, 25, 300],
})

server = nullcontext() if os.environ.get("DH_PORT") else start_server()
with server as srv:
    host = srv.host if srv else None
    port = srv.port if srv else None
    with Session(host, port) as session:
        table = session.import_table(trades)
        result = (
            table.update(["Notional = Price * Qty"])
            .where("Qty >= 50")
            .sum_by(["Sym"])
            .view(["Sym", "Qty", "Notional"])
            .sort(["Sym"])
        )
        print(f"{'Sym':<6}{'Qty':>6}{'Notional':>12}")
        for row in result.to_arrow().to_pylist():
            print(f"{row['Sym']:<6}{row['Qty']:>6}{row['Notional']:>12.2f}")
