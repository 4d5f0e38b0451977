"""The README's examples run as written, against the test server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart(server) -> None:
    env = dict(os.environ, DH_HOST=server.host, DH_PORT=str(server.port))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    # independent computation of the expected rows: Qty >= 50, grouped by Sym
    rows = {"AAPL": (600, 189.5 * 100 + 190.25 * 200 + 188.0 * 300), "GOOG": (75, 140.1 * 75), "MSFT": (50, 410.0 * 50)}
    body = [line.split() for line in lines[1:] if line.strip()]
    assert [b[0] for b in body] == sorted(rows)
    for sym, qty, notional in body:
        assert int(qty) == rows[sym][0]
        assert abs(float(notional) - rows[sym][1]) < 0.01
