"""Acting on the kind of failure: every error is a DHError, and its subclass says why.

    python examples/errors.py            # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/errors.py   # or uses the server at DH_HOST:DH_PORT
"""

import os
import socket
from contextlib import nullcontext

from pydeephaven import (
    DHError,
    InvalidArgumentError,
    NotFoundError,
    ServerError,
    Session,
    SessionClosedError,
    UnreachableError,
)
from pydeephaven.embedded import start_server


def table_or_none(session: Session, name: str):
    """The table bound to ``name``, or None when the server has nothing under that name."""
    try:
        return session.open_table(name)
    except NotFoundError:
        return None  # any other failure (unreachable, expired ...) still propagates


server = nullcontext() if os.environ.get("DH_PORT") else start_server()
with server as srv:
    host = srv.host if srv else None
    port = srv.port if srv else None
    with Session(host, port) as session:
        print("missing table:", table_or_none(session, "no_such_table"))
        try:
            session.empty_table(3).update(["X = NoSuchColumn + 1"])
        except InvalidArgumentError as e:
            print("bad formula:", type(e).__name__, e.code)
        try:
            session.run_script("raise ValueError('boom')")
        except ServerError as e:
            print("failing script:", type(e).__name__, e.code)
    try:
        session.empty_table(1)
    except SessionClosedError as e:
        print("closed:", e)

with socket.socket() as sock:  # a port nothing listens on
    sock.bind(("127.0.0.1", 0))
    free = sock.getsockname()[1]
try:
    Session("127.0.0.1", free)
except UnreachableError as e:
    print("nothing listening:", type(e).__name__, e.code, isinstance(e, DHError))
