"""The notebook widget: time from a change on the server to the changed cell in the browser.

    python benchmarks/bench_widget.py                  # starts an embedded server
    python benchmarks/bench_widget.py --port 10000     # or uses a running server on --host
    python benchmarks/bench_widget.py --ticks 20

A real JupyterLab and Debian's headless Chromium (tests/support/notebook.py) show the widget of a
keyed input table; each round changes one row's value with a server script and times, from just
before the script is sent, until the browser's cell shows the new value (polled in the page on every
animation frame). The server's update cycle (its default: 1 s) bounds how soon a change can leave
the server, so the figures sit between 0 and about one cycle plus the transfer and drawing.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import server  # noqa: E402

from pydeephaven import Session  # noqa: E402
from tests.support.notebook import jupyterlab, notebook_page, rows, until, write_notebook  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--heap", default="2g")
    parser.add_argument("--ticks", type=int, default=20)
    args = parser.parse_args()
    name = f"bench_widget_{secrets.token_hex(4)}"
    with server(args.host, args.port, args.heap) as (host, port), Session(host, port) as session, \
            tempfile.TemporaryDirectory() as tmp:
        session.run_script("from deephaven import input_table, new_table, dtypes as dht\n"
                           "from deephaven.column import int_col\n"
                           f"{name} = input_table({{'Id': dht.int32, 'V': dht.int32}}, key_cols=['Id'])\n"
                           f"{name}.add(new_table([int_col('Id', [0]), int_col('V', [0])]))")
        root = Path(tmp)
        write_notebook(root / "bench.ipynb", [f"from pydeephaven import Session\ns = Session({host!r}, {port})\n"
                                              f"s.open_table({name!r}).widget(page=5, title='bench')"])
        seconds = []
        with jupyterlab(root) as (lab_port, token), notebook_page(lab_port, token, "bench.ipynb") as page:
            sel = ".dh-widget[data-title='bench'] tbody tr td:nth-child(2)"
            until("the first row", lambda: rows(page, ".dh-widget[data-title='bench']"), lambda r: r == [["0", "0"]])
            for i in range(1, args.ticks + 1):
                start = time.perf_counter()
                session.run_script(f"{name}.add(new_table([int_col('Id', [0]), int_col('V', [{i}])]))")
                page.wait_for_function(f"() => document.querySelector({sel!r})?.textContent === '{i}'",
                                       polling="raf", timeout=30_000)
                seconds.append(time.perf_counter() - start)
        session.unbind(name)
    ms = [s * 1000 for s in seconds]
    print(f"tick to changed cell over {len(ms)} ticks: min {min(ms):.0f} ms, median {statistics.median(ms):.0f} ms, "
          f"max {max(ms):.0f} ms")
    print(json.dumps({"ticks": len(ms), "min_ms": min(ms), "median_ms": statistics.median(ms), "max_ms": max(ms)}))


if __name__ == "__main__":
    main()
