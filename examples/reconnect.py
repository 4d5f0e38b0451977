"""A session that survives a server restart: it logs in again by itself and makes its tables again.

    python examples/reconnect.py     # starts an embedded server (needs Java 17+), kills it, starts it again

The server must be one this program may kill, so the example always starts its own.
"""

import os
import signal
import time

import pyarrow as pa

from pydeephaven import ReconnectPolicy, Session, StateChange, TableLostError
from pydeephaven.embedded import start_server

SCRIPT = "from deephaven import empty_table\nsrc = empty_table(100).update(['X = i'])"


def main() -> None:
    server = start_server(heap="1g")
    port = server.port
    states: list[str] = []

    def show(change: StateChange) -> None:
        if change.state != "reconnecting" or change.attempt == 1:  # one line for all the attempts
            states.append(change.state)
            print("state:", change.state, f"revived {len(change.revived)}" if change.revived else "")

    policy = ReconnectPolicy(deadline=300.0, replay_scripts=True)
    session = Session(server.host, port, reconnect=policy, keep_imports=True)
    forgetful = Session(server.host, port, reconnect=True)  # keep_imports off: its imports are lost
    try:
        session.on_state_change(show)
        session.run_script(SCRIPT)
        top = session.open_table("src").where("X % 2 == 0").sort_descending("X").head(5)
        mine = session.import_table(pa.table({"K": [1, 2]}))
        forgotten = forgetful.import_table(pa.table({"K": [3]}))
        print("top before:", top.to_arrow()["X"].to_pylist())

        os.kill(server.pid, signal.SIGKILL)        # the server dies ...
        server.process.wait(30)
        server = start_server(port=port, heap="1g")  # ... and comes back on the same port
        deadline = time.monotonic() + 120
        while "reconnected" not in states and "lost" not in states and time.monotonic() < deadline:
            time.sleep(0.1)

        print("top after:", top.to_arrow()["X"].to_pylist())
        print("mine after:", mine.to_arrow()["K"].to_pylist())
        try:
            forgotten.to_arrow()
        except TableLostError as e:
            print("lost:", e)
    finally:
        session.close()
        forgetful.close()
        server.stop()


if __name__ == "__main__":
    main()
