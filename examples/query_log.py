"""The query log: every server round trip is logged on the "pydeephaven" logger at DEBUG, and
session.stats sums them up by operation.

    python examples/query_log.py                 # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/query_log.py   # or uses the server at DH_HOST:DH_PORT
"""

import logging
import os
from contextlib import nullcontext

from pydeephaven import Session
from pydeephaven.embedded import start_server

logging.basicConfig(format="%(name)s %(message)s")
logging.getLogger("pydeephaven").setLevel(logging.DEBUG)   # one line per round trip, on stderr

server = nullcontext() if os.environ.get("DH_PORT") else start_server()
with server as srv, Session(srv.host if srv else None, srv.port if srv else None) as session:
    t = session.empty_table(1000).update(["X = ii"])
    t.where("X % 2 == 0").to_arrow()
    print(session.stats.summary())         # calls, total and mean ms, rows and bytes, by operation
