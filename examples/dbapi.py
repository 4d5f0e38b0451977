"""The server's SQL through Python's database interfaces: DB-API 2.0 (PEP 249) with parameters,
SQLAlchemy Core, and pandas.read_sql.

    python examples/dbapi.py                 # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/dbapi.py   # or uses the server at DH_HOST:DH_PORT
"""

import os
from contextlib import nullcontext

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from pydeephaven import Session, dbapi
from pydeephaven.embedded import start_server

trades = pa.table({
    "Sym": ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"],
    "Price": [189.5, 410.0, 190.25, 140.1, 412.5, 188.0],
    "Qty": [100, 50, 200, 75, 25, 300],
})

server = nullcontext() if os.environ.get("DH_PORT") else start_server()
with server as srv:
    host = srv.host if srv else os.environ.get("DH_HOST", "localhost")
    port = srv.port if srv else int(os.environ["DH_PORT"])
    with Session(host, port) as session, session.import_table(trades) as t, session.bound("trades", t):
        # DB-API: one ? per value; the values are bound on the client, as literals
        with dbapi.connect(session=session) as conn:
            cur = conn.cursor()
            cur.execute("SELECT Sym, SUM(Qty) AS Qty FROM trades WHERE Qty >= ? AND Sym <> ? "
                        "GROUP BY Sym ORDER BY Sym", (50, "GOOG"))
            print("columns:", [d[0] for d in cur.description])
            for sym, qty in cur:
                print("dbapi:", sym, qty)

        # SQLAlchemy: the deephaven:// dialect, reflection and pandas
        engine = sa.create_engine(f"deephaven://{host}:{port}")
        print("tables:", [n for n in sa.inspect(engine).get_table_names() if n == "trades"])
        cols = sa.inspect(engine).get_columns("trades")
        print("types:", [(c["name"], type(c["type"]).__name__) for c in cols])
        tbl = sa.table("trades", sa.column("Sym"), sa.column("Price"), sa.column("Qty"))
        df = pd.read_sql(sa.select(tbl.c.Sym, tbl.c.Price).where(tbl.c.Qty > 100).order_by(tbl.c.Price), engine)
        print("read_sql:", df.to_dict("records"))
        engine.dispose()
