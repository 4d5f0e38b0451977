"""Temporary tables: release the server's copies of intermediate tables when a block ends, and bind
a table to a name (for SQL or scripts) only for the duration of a block.

    python examples/temporary.py                 # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/temporary.py   # or uses the server at DH_HOST:DH_PORT
"""

import os
from contextlib import nullcontext

from pydeephaven import Session
from pydeephaven.embedded import start_server

server = nullcontext() if os.environ.get("DH_PORT") else start_server()
with server as srv, Session(srv.host if srv else None, srv.port if srv else None) as session:
    with session.temporary() as tmp:
        base = session.empty_table(100).update(["V = ii"])        # released at the end of the block
        top = base.where("V >= 90")                               # released too
        total = tmp.keep(top.view(["V"]).sum_by())                # kept: survives the block
        print(f"exports during the block: {len(session.live_exports())}")
    print(f"exports after the block: {len(session.live_exports())}")
    print(f"kept: {total.to_arrow()['V'][0]}")

    with session.bound("prices", total):                          # a scope name for this block only
        inside = "prices" in session.tables
    print(f"'prices' bound inside: {inside}, after: {'prices' in session.tables}")
