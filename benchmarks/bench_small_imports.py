"""Small imports per second: ours beside the official pydeephaven 42.7 client, in the same run.

    python benchmarks/bench_small_imports.py                  # starts an embedded server (2 GB heap)
    python benchmarks/bench_small_imports.py --port 10000     # or uses a running server on 127.0.0.1
    python benchmarks/bench_small_imports.py --official-venv /path/to/venv --rounds 5 --seconds 5

Each figure is 3-row ``import_table`` calls per second over ``--seconds``, with one thread and with
16 threads sharing one session, after a warm-up. Both clients have the same package name, so each
runs in its own worker process: ours from this source tree, the official one from a virtual
environment (``--official-venv`` or ``DH_OFFICIAL_VENV``; created with ``pip install
pydeephaven==42.7`` when it lacks that client). The runs are interleaved (ours, official, ours,
official ...) so that the machine's noise falls on both alike; the ranges over ``--rounds`` are
printed, then one JSON line. Tables are kept until the end of a run (closing the session releases
them), so neither client pays for releases inside the timing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _compare import Rounds, add_common_arguments, official_python, run_worker, server  # noqa: E402

# The worker: runs in either client's environment, so it uses only the API both share.
WORKER = r"""
import json, sys, threading, time
import pyarrow as pa
import pydeephaven
from pydeephaven import Session

host, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seconds, warmup = float(sys.argv[4]), int(sys.argv[5])
data = pa.table({"A": pa.array([1, 2, 3], pa.int64()), "B": pa.array([1.5, 2.5, 3.5]), "C": pa.array(["x", "y", "z"])})
session = Session(host, port)
kept = []
for _ in range(warmup):
    kept.append(session.import_table(data))
counts = [0] * threads
errors = []
start_line = threading.Barrier(threads + 1)
deadline = [0.0]

def run(i):
    mine = []
    start_line.wait()
    try:
        while time.perf_counter() < deadline[0]:
            mine.append(session.import_table(data))
            counts[i] += 1
    except BaseException as e:
        errors.append(repr(e))
    kept.extend(mine)

workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
for w in workers:
    w.start()
begin = time.perf_counter()
deadline[0] = begin + seconds
start_line.wait()
for w in workers:
    w.join()
elapsed = time.perf_counter() - begin
assert all(t.size == 3 for t in kept[:10])
print(json.dumps({"imports_per_s": sum(counts) / elapsed, "imports": sum(counts), "errors": errors,
                  "client": pydeephaven.__file__, "version": getattr(pydeephaven, "__version__", "?")}))
session.close()
"""



def run_imports(which: str, python: Path, host: str, port: int, threads: int, seconds: float,
                warmup: int) -> dict[str, Any]:
    result = run_worker(which, python, WORKER, [host, port, threads, seconds, warmup], timeout=seconds * 10 + 120)
    if result["errors"]:
        raise SystemExit(f"{which} worker had errors: {result['errors'][:3]}")
    return result


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, rounds=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=int, default=100, help="imports before the timing, per run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args(argv)

    rounds = Rounds(args.rounds, official_python(args.official_venv))
    with server(args.host, args.port, heap="2g") as (host, port):
        for rnd, order in rounds:
            for threads in args.threads:
                for which, exe in order:
                    r = run_imports(which, exe, host, port, threads, args.seconds, args.warmup)
                    rounds.record(which, f"{threads}t", round(r["imports_per_s"], 1))
                    print(f"round {rnd + 1} {threads:>2} threads {which:>8}: {r['imports_per_s']:7.1f} imports/s",
                          file=sys.stderr)
    summary = rounds.summary({"rounds": args.rounds, "seconds": args.seconds},
                             [(f"{t}t", f"{t:>2} threads") for t in args.threads], digits=0, units=("", " imports/s"))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
