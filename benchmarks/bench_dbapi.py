"""DB-API against session.sql and the ADBC Flight SQL driver, same queries, same run.

    python benchmarks/bench_dbapi.py                  # starts an embedded server (8 GB heap)
    python benchmarks/bench_dbapi.py --port 10000     # or uses a running server on --host
    python benchmarks/bench_dbapi.py --rows 5000000 --rounds 5

Three ways to the same Arrow result of each query: ``session.sql(q)``, our DB-API's
``cursor.execute(q)`` + ``fetch_arrow_table()``, and ADBC's (``adbc-driver-flightsql``, in the
``dev`` extra) ``cursor.execute(q)`` + ``fetch_arrow_table()``. Queries: a one-row aggregate and a
full scan of a ``--rows`` x 3 table made on the server. The rounds interleave the three (their order
rotating), each figure is the best and median of ``--rounds`` seconds; one JSON line at the end.
The results of the three are checked equal (row count and a column sum) before any timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import server  # noqa: E402

import pyarrow.compute as pc  # noqa: E402

from pydeephaven import Session, dbapi  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--heap", default="8g")
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import adbc_driver_flightsql.dbapi as adbc
    from adbc_driver_flightsql import DatabaseOptions

    with server(args.host, args.port, args.heap) as (host, port), Session(host, port) as session:
        columns = "['A = ii', 'B = ii * 0.5', 'C = (int) (ii % 97)']"
        session.run_script(f"from deephaven import empty_table\n"
                           f"bench_dbapi = empty_table({args.rows}).update({columns})")
        queries = {"1 row": "SELECT COUNT(*) AS N, SUM(B) AS S FROM bench_dbapi",
                   f"{args.rows:,} rows": "SELECT A, B, C FROM bench_dbapi"}
        conn = dbapi.connect(session=session)
        peer = adbc.connect(f"grpc://{host}:{port}",
                            db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: "Anonymous"})

        def ours_sql(q: str) -> Any:
            return session.sql(q)

        def ours_dbapi(q: str) -> Any:
            return conn.cursor().execute(q).fetch_arrow_table()

        def adbc_dbapi(q: str) -> Any:
            with peer.cursor() as cur:
                cur.execute(q)
                return cur.fetch_arrow_table()

        ways: dict[str, Callable[[str], Any]] = {"session.sql": ours_sql, "dbapi": ours_dbapi, "adbc": adbc_dbapi}
        results: dict[str, dict[str, Any]] = {}
        for label, q in queries.items():
            checks = {name: (t.num_rows, pc.sum(t.column(1)).as_py()) for name, t in ((n, f(q)) for n, f in
                                                                                      ways.items())}
            if len(set(checks.values())) != 1:
                raise SystemExit(f"the results differ for {label!r}: {checks}")
            times: dict[str, list[float]] = {name: [] for name in ways}
            names = list(ways)
            for r in range(args.rounds):
                for name in names[r % 3:] + names[:r % 3]:
                    start = time.perf_counter()
                    ways[name](q)
                    times[name].append(time.perf_counter() - start)
            results[label] = {n: {"best_s": min(v), "median_s": statistics.median(v)} for n, v in times.items()}
            line = "  ".join(f"{n} {min(v) * 1000:9.1f} ms (median {statistics.median(v) * 1000:9.1f})"
                             for n, v in times.items())
            print(f"{label:>16}: {line}")
            ratio = statistics.median(times["dbapi"]) / statistics.median(times["adbc"])
            print(f"{'':>16}  dbapi/adbc (medians) {ratio:.2f}, dbapi/session.sql "
                  f"{statistics.median(times['dbapi']) / statistics.median(times['session.sql']):.2f}")
        peer.close()
        conn.close()
        session.unbind("bench_dbapi")
    print(json.dumps({"rows": args.rows, "rounds": args.rounds, "results": results}))


if __name__ == "__main__":
    main()
