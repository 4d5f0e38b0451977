"""Live tables: a listener on a ticking table, and a live copy of its top rows.

    DH_HOST=localhost DH_PORT=10000 python examples/ticking_example.py
"""

import os
import threading
import time

from pydeephaven import Session, listen

with Session(os.environ.get("DH_HOST", "localhost"), int(os.environ.get("DH_PORT", "10000"))) as session:
    # a row every 50 ms, starting in a second, 20 rows in all; newest first
    start = time.time_ns() + 1_000_000_000
    ticks = session.time_table("PT0.05s", start_time=start).update(["X = ii", "Sq = X * X"]).where("X < 20")
    newest = ticks.sort_descending("X")

    last_row_seen = threading.Event()

    def on_update(update):  # runs on the subscription's thread
        added = update.added("X")
        if added:
            xs = added["X"].to_pylist()
            print(f"added {xs}", flush=True)
            if 19 in xs:
                last_row_seen.set()

    handle = listen(ticks, on_update)
    handle.start()
    # a live copy of the newest five rows, two columns: a viewport, kept current as rows arrive
    with newest.subscribe(columns=["X", "Sq"], viewport=(0, 4)) as live:
        live.wait_for(lambda snap: snap["X"].to_pylist()[:1] == [19], timeout=30)
        last_row_seen.wait(30)
        print("top five", live.snapshot().to_pydict())
    handle.stop()
