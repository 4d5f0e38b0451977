"""Connecting: ours beside the official pydeephaven 42.7 client, in the same run.

    python benchmarks/bench_connect.py                  # starts an embedded server (2 GB heap)
    python benchmarks/bench_connect.py --port 10000     # or uses a running server on 127.0.0.1
    python benchmarks/bench_connect.py --official-venv /path/to/venv --rounds 5 --connects 50

Two figures per client, in milliseconds per session: ``Session(host, port)`` alone (the time until
the constructor returns) and ``Session(host, port)`` followed by ``close()``. Each worker opens a few
sessions first (imports, the first channel), then times ``--connects`` sessions one after the other
and reports the median and the best. Both clients have the same package name, so each runs in its
own worker process: ours from this source tree, the official one from a virtual environment
(``--official-venv`` or ``DH_OFFICIAL_VENV``, see ``bench_small_imports.py``); ``--tree`` takes
"ours" from another checkout, for a before/after of the same run. Runs are interleaved
(ours, official, official, ours, ...) so the machine's noise falls on both alike; each round prints
the ratios ours/official, then the ranges over the rounds and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_small_imports import DEFAULT_VENV, ROOT, official_python  # noqa: E402

# The worker: runs in either client's environment, so it uses only the API both share.
WORKER = r"""
import json, statistics, sys, time
import pydeephaven
from pydeephaven import Session

host, port, connects, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for _ in range(warmup):
    Session(host, port).close()
opened, whole = [], []
for _ in range(connects):
    t0 = time.perf_counter()
    s = Session(host, port)
    t1 = time.perf_counter()
    s.close()
    t2 = time.perf_counter()
    opened.append((t1 - t0) * 1e3)
    whole.append((t2 - t0) * 1e3)
print(json.dumps({"connect_median": statistics.median(opened), "connect_best": min(opened),
                  "connect_close_median": statistics.median(whole), "connect_close_best": min(whole),
                  "client": pydeephaven.__file__}))
"""

FIGURES = ("connect_median", "connect_best", "connect_close_median", "connect_close_best")


def run_worker(which: str, python: Path, host: str, port: int, connects: int, warmup: int,
               tree: Path = ROOT) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cmd = [str(python)]
        if which == "ours":
            env["PYTHONPATH"] = str(tree)  # this source tree (or --tree)
        else:
            cmd.append("-I")  # isolated: nothing from this tree, the venv's own packages only
        cmd += [str(script), host, str(port), str(connects), str(warmup)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=connects + 120)
    if out.returncode != 0:
        raise SystemExit(f"{which} worker failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    inside = Path(result["client"]).resolve().is_relative_to(tree.resolve())
    if inside != (which == "ours"):
        raise SystemExit(f"{which} worker imported the wrong client: {result['client']}")
    return result


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, help="a running server on --host; else an embedded one is started")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--official-venv", type=Path,
                        default=Path(os.environ.get("DH_OFFICIAL_VENV", str(DEFAULT_VENV))))
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the source tree whose client is 'ours' (another checkout, to compare commits)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connects", type=int, default=40, help="timed sessions per worker")
    parser.add_argument("--warmup", type=int, default=5, help="sessions before the timing, per worker")
    args = parser.parse_args(argv)

    python = official_python(args.official_venv)
    server = None
    host, port = args.host, args.port
    if port is None:
        sys.path.insert(0, str(ROOT))
        from pydeephaven.embedded import start_server

        server = start_server(heap="2g")
        host, port = server.host, server.port
    figures: dict[str, list[float]] = {}
    try:
        for rnd in range(args.rounds):
            pair = [("ours", Path(sys.executable)), ("official", python)]
            got = {}
            for which, exe in (pair if rnd % 2 == 0 else pair[::-1]):
                got[which] = r = run_worker(which, exe, host, port, args.connects, args.warmup, args.tree)
                for f in FIGURES:
                    figures.setdefault(f"{which}_{f}", []).append(round(r[f], 3))
            line = "  ".join(f"{f} {got['ours'][f]:.2f}/{got['official'][f]:.2f} ms "
                             f"= {got['ours'][f] / got['official'][f]:.2f}" for f in FIGURES)
            print(f"round {rnd + 1} ours/official: {line}", file=sys.stderr)
    finally:
        if server is not None:
            server.stop()
    summary: dict[str, Any] = {"rounds": args.rounds, "connects": args.connects}
    for f in FIGURES:
        ours, off = figures[f"ours_{f}"], figures[f"official_{f}"]
        ratios = [round(o / x, 2) for o, x in zip(ours, off)]
        print(f"{f:>20}: ours {min(ours):.2f}-{max(ours):.2f} ms, official {min(off):.2f}-{max(off):.2f} ms; "
              f"ours/official per round {min(ratios):.2f}-{max(ratios):.2f}", file=sys.stderr)
        summary[f"ours_{f}"] = ours
        summary[f"official_{f}"] = off
        summary[f"ratio_{f}"] = ratios
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
