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
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL_VERSION = "42.7"
DEFAULT_VENV = Path.home() / ".cache" / "pydeephaven-bench" / f"official-{OFFICIAL_VERSION}"

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


def official_python(venv: Path) -> Path:
    """The venv's python, with the official client installed in it (created when missing)."""
    python = venv / "bin" / "python"
    check = [str(python), "-I", "-c", "import pydeephaven, sys; sys.exit(pydeephaven.__version__ != %r)"
             % OFFICIAL_VERSION]
    if python.exists() and subprocess.run(check, capture_output=True, cwd=tempfile.gettempdir()).returncode == 0:
        return python
    print(f"creating {venv} with pydeephaven=={OFFICIAL_VERSION} (the official client) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"pydeephaven=={OFFICIAL_VERSION}"], check=True)
    subprocess.run(check, check=True, cwd=tempfile.gettempdir())
    return python


def run_worker(which: str, python: Path, host: str, port: int, threads: int, seconds: float,
               warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cmd = [str(python)]
        if which == "ours":
            env["PYTHONPATH"] = str(ROOT)  # this source tree
        else:
            cmd.append("-I")  # isolated: nothing from this tree, the venv's own packages only
        cmd += [str(script), host, str(port), str(threads), str(seconds), str(warmup)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=seconds * 10 + 120)
    if out.returncode != 0:
        raise SystemExit(f"{which} worker failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    inside = Path(result["client"]).resolve().is_relative_to(ROOT)
    if inside != (which == "ours"):
        raise SystemExit(f"{which} worker imported the wrong client: {result['client']}")
    if result["errors"]:
        raise SystemExit(f"{which} worker had errors: {result['errors'][:3]}")
    return result


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, help="a running server on --host; else an embedded one is started")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--official-venv", type=Path,
                        default=Path(os.environ.get("DH_OFFICIAL_VENV", str(DEFAULT_VENV))))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=int, default=100, help="imports before the timing, per run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args(argv)

    python = official_python(args.official_venv)
    server = None
    host, port = args.host, args.port
    if port is None:
        sys.path.insert(0, str(ROOT))
        from pydeephaven.embedded import start_server

        server = start_server(heap="2g")
        host, port = server.host, server.port
    try:
        figures: dict[str, list[float]] = {}
        for rnd in range(args.rounds):
            for threads in args.threads:
                pair = [("ours", Path(sys.executable)), ("official", python)]
                for which, exe in (pair if rnd % 2 == 0 else pair[::-1]):
                    r = run_worker(which, exe, host, port, threads, args.seconds, args.warmup)
                    figures.setdefault(f"{which}_{threads}t", []).append(round(r["imports_per_s"], 1))
                    print(f"round {rnd + 1} {threads:>2} threads {which:>8}: {r['imports_per_s']:7.1f} imports/s",
                          file=sys.stderr)
    finally:
        if server is not None:
            server.stop()
    summary: dict[str, Any] = {"rounds": args.rounds, "seconds": args.seconds}
    for threads in args.threads:
        ours, off = figures[f"ours_{threads}t"], figures[f"official_{threads}t"]
        ratios = [o / f for o, f in zip(ours, off)]
        print(f"{threads:>2} threads: ours {min(ours):.0f}-{max(ours):.0f}, official {min(off):.0f}-{max(off):.0f} "
              f"imports/s; ours/official per round {min(ratios):.2f}-{max(ratios):.2f}", file=sys.stderr)
        summary[f"ours_{threads}t"] = ours
        summary[f"official_{threads}t"] = off
        summary[f"ratio_{threads}t"] = [round(r, 2) for r in ratios]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
