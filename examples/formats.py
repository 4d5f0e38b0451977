"""Output formats of a server table: pandas, polars, CSV, JSON, and a readable text rendering.

    python examples/formats.py                 # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/formats.py   # or uses the server at DH_HOST:DH_PORT
"""

import os
from contextlib import nullcontext

from pydeephaven import Session
from pydeephaven.embedded import start_server

server = nullcontext() if os.environ.get("DH_PORT") else start_server()
with server as srv, Session(srv.host if srv else None, srv.port if srv else None) as session:
    table = session.empty_table(30).update(["Id = ii", "Sq = ii * ii", "Even = ii % 2 == 0"])
    print(table)                          # size, columns and types, the first 10 rows
    small = table.head(3)
    print(small.to_csv(), end="")         # CSV text (to_csv(path) streams into a file)
    print(small.to_json())                # JSON records (to_json(path, lines=True) for JSON lines)
    df = small.to_pandas()                # needs pandas: pip install 'pydeephaven[pandas]'
    print(df["Sq"].sum())
