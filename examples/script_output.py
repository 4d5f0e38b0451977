"""What a script printed, the server's log stream, and a script stopped at its timeout.

    python examples/script_output.py            # starts an embedded server (needs Java 17+)
    DH_PORT=10000 python examples/script_output.py   # or uses the server at DH_HOST:DH_PORT
"""

import os
import threading
import time
from contextlib import nullcontext

from pydeephaven import ScriptTimeoutError, ServerError, Session
from pydeephaven.embedded import start_server

server = nullcontext() if os.environ.get("DH_PORT") else start_server()
with server as srv:
    with Session(srv.host if srv else None, srv.port if srv else None) as session:
        # the lines a script printed, stdout and stderr in order
        result = session.run_script("import sys\nprint('hello')\nprint('careful', file=sys.stderr)",
                                    capture_output=True)
        print("output:", list(result.output))

        # a failing script's output is kept in the error
        try:
            session.run_script("print('working')\nx = 1 / 0", capture_output=True)
        except ServerError as e:
            print("failed after:", list(e.output))

        # past its timeout a script is stopped on the server; the session goes on
        try:
            session.run_script("while True:\n    pass", timeout=1)
        except ScriptTimeoutError as e:
            print("stopped:", e.cancelled)
        print("next script:", session.run_script("print(6 * 7)", capture_output=True).output[0])

        # the server's log as an iterator, bounded by a timeout
        with session.logs(levels=["STDOUT"], since=time.time() - 1, timeout=30) as log:
            session.run_script("print('logged line')")
            print("logs:", next(e.message for e in log if e.message == "logged line"))

        # and as a callback, until close()
        seen = threading.Event()
        sub = session.on_log(lambda e: seen.set() if e.message == "called back" else None, levels=["STDOUT"])
        session.run_script("print('called back')")
        print("on_log:", seen.wait(30))
        sub.close()
