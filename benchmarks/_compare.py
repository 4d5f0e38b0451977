"""What the benchmarks share: a server to run against, and the harness that sets our client beside
the official pydeephaven 42.7 client (``bench_connect.py``, ``bench_small_imports.py``).

Both clients have the same package name, so each runs in its own worker process: ours from a source
tree (``PYTHONPATH``), the official one isolated (``-I``) in a virtual environment, which
``official_python`` creates when it lacks that client. The rounds are interleaved (ours first in
even rounds, the official client first in odd ones) so that the machine's noise falls on both alike,
and the summary gives ranges over the rounds and the ratios ours/official, round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL_VERSION = "42.7"
DEFAULT_VENV = Path.home() / ".cache" / "pydeephaven-bench" / f"official-{OFFICIAL_VERSION}"


@contextmanager
def server(host: str, port: Optional[int], heap: str) -> Iterator[tuple[str, int]]:
    """``(host, port)`` of the running server given by ``port``; without one, of an embedded server
    started here with ``heap`` and stopped on leaving."""
    if port is not None:
        yield host, port
        return
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pydeephaven.embedded import start_server

    embedded = start_server(heap=heap)
    try:
        yield embedded.host, embedded.port
    finally:
        embedded.stop()


def official_python(venv: Path) -> Path:
    """The venv's python, with the official client installed in it (created when missing)."""
    python = venv / "bin" / "python"
    check = [str(python), "-I", "-c",
             f"import pydeephaven, sys; sys.exit(pydeephaven.__version__ != {OFFICIAL_VERSION!r})"]
    if python.exists() and subprocess.run(check, capture_output=True, cwd=tempfile.gettempdir()).returncode == 0:
        return python
    print(f"creating {venv} with pydeephaven=={OFFICIAL_VERSION} (the official client) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"pydeephaven=={OFFICIAL_VERSION}"], check=True)
    subprocess.run(check, check=True, cwd=tempfile.gettempdir())
    return python


def add_common_arguments(parser: argparse.ArgumentParser, rounds: int) -> None:
    """--port, --host, --official-venv and --rounds (``rounds`` is its default)."""
    parser.add_argument("--port", type=int, help="a running server on --host; else an embedded one is started")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--official-venv", type=Path,
                        default=Path(os.environ.get("DH_OFFICIAL_VENV", str(DEFAULT_VENV))))
    parser.add_argument("--rounds", type=int, default=rounds)


def run_worker(which: str, python: Path, worker_source: str, argv: Iterable[Any], tree: Path = ROOT,
               timeout: float = 120) -> dict[str, Any]:
    """Runs ``worker_source`` with ``python`` in a temporary directory and returns the JSON object of
    its last line of output. ``which`` is "ours" (the client of ``tree``) or "official" (the venv's
    own packages only); the object's "client" (the imported ``pydeephaven.__file__``) must agree."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(worker_source)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cmd = [str(python)]
        if which == "ours":
            env["PYTHONPATH"] = str(tree)
        else:
            cmd.append("-I")  # isolated: nothing from this tree, the venv's own packages only
        cmd += [str(script), *map(str, argv)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=timeout)
    if out.returncode != 0:
        raise SystemExit(f"{which} worker failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    inside = Path(result["client"]).resolve().is_relative_to(tree.resolve())
    if inside != (which == "ours"):
        raise SystemExit(f"{which} worker imported the wrong client: {result['client']}")
    return result


class Rounds:
    """The interleaved rounds of a comparison and the figures recorded in them, per client and key."""

    def __init__(self, count: int, official: Path) -> None:
        self.count = count
        self.official = official
        self.figures: dict[str, list[float]] = {}

    def __iter__(self) -> Iterator[tuple[int, list[tuple[str, Path]]]]:
        """Each round's index and its order of ``(which, python)``: ours first in even rounds."""
        ours, official = ("ours", Path(sys.executable)), ("official", self.official)
        for rnd in range(self.count):
            yield rnd, [ours, official] if rnd % 2 == 0 else [official, ours]

    def record(self, which: str, key: str, value: float) -> None:
        self.figures.setdefault(f"{which}_{key}", []).append(value)

    def summary(self, head: dict[str, Any], keys: Iterable[tuple[str, str]], digits: int,
                units: tuple[str, str]) -> dict[str, Any]:
        """For each ``(key, label)``, prints the label, both clients' ranges (with ``digits`` decimals,
        followed by ``units`` for ours and the official client) and the range of the per-round ratios
        ours/official; returns ``head`` followed by ``ours_KEY``, ``official_KEY`` and ``ratio_KEY``."""
        def span(values: list[float], places: int) -> str:
            return f"{min(values):.{places}f}-{max(values):.{places}f}"

        summary = dict(head)
        for key, label in keys:
            ours, official = self.figures[f"ours_{key}"], self.figures[f"official_{key}"]
            ratios = [round(o / x, 2) for o, x in zip(ours, official)]
            print(f"{label}: ours {span(ours, digits)}{units[0]}, official {span(official, digits)}{units[1]}; "
                  f"ours/official per round {span(ratios, 2)}", file=sys.stderr)
            summary[f"ours_{key}"] = ours
            summary[f"official_{key}"] = official
            summary[f"ratio_{key}"] = ratios
        return summary
