"""Running the command line as a child process: its environment, and a run with stdout on a
pseudo-terminal (bounded in time, the child killed by pid if it overstays)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent.parent
MODULE = [sys.executable, "-m", "pydeephaven"]


def cli_env(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The environment of a CLI run: ours without any DH_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DH_")}
    env.update(extra or {})
    return env


def run_on_terminal(args: Sequence[str], timeout: float = 60) -> tuple[int, str, str]:
    """Run the CLI with its stdout on a pseudo-terminal; (exit status, stdout text, stderr text)."""
    master, slave = os.openpty()
    p = subprocess.Popen(MODULE + list(args), stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         env=cli_env(), cwd=ROOT)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif p.poll() is not None:
                break
        p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        os.close(master)
    err = p.stderr.read().decode() if p.stderr else ""
    return p.returncode, b"".join(chunks).decode(errors="replace"), err
