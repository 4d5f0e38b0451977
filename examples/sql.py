"""SQL on the server: bind a table to a name, query it with SQL over Arrow Flight SQL, and get the
result as Arrow, pandas, CSV, JSON or text.

    python examples/sql.py                 # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/sql.py   # or uses the server at DH_HOST:DH_PORT
"""

import os
from contextlib import nullcontext

import pyarrow as pa

from pydeephaven import DHError, Session
from pydeephaven.embedded import start_server

trades = pa.table({
    "Sym": ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"],
    "Price": [189.5, 410.0, 190.25, 140.1, 412.5, 188.0],
    "Qty": [100, 50, 200, 75, 25, 300],
})

server = nullcontext() if os.environ.get("DH_PORT") else start_server()
with server as srv, Session(srv.host if srv else None, srv.port if srv else None) as session:
    with session.import_table(trades) as t, session.bound("trades", t):   # the name lasts for this block
        print(session.sql("""
            SELECT Sym, COUNT(*) AS Trades, SUM(Qty) AS Qty, SUM(Price * Qty) AS Notional
            FROM trades
            WHERE Qty >= 50
            GROUP BY Sym
            ORDER BY Sym""", "pretty"))
        top = session.sql("SELECT Sym, Price FROM trades ORDER BY Price DESC LIMIT 2")   # a pyarrow Table
        print(top.to_pylist())
        try:
            session.sql("SELECT LOWER(Sym) FROM trades")
        except DHError as e:
            print("refused:", str(e).split("the server's reason: ")[-1])
