"""examples/async_example.py runs as written against the test server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from tests.support.examples import run_example

ROOT = Path(__file__).resolve().parent.parent


def test_async_example(server) -> None:
    proc = run_example(server, "async_example")
    lines = [line for line in proc.stdout.split("\n") if line.strip()]
    # computed here from the example's data: rows with Qty >= 50, summed by Sym
    trades = [("AAPL", 189.5, 100), ("MSFT", 410.0, 50), ("AAPL", 190.25, 200), ("GOOG", 140.1, 75),
              ("MSFT", 412.5, 25), ("AAPL", 188.0, 300)]
    kept = [(s, p, q) for s, p, q in trades if q >= 50]
    sums: dict = {}
    for s, p, q in kept:
        qty, notional = sums.get(s, (0, 0.0))
        sums[s] = (qty + q, notional + p * q)
    body = [line.split() for line in lines[1:-1]]
    assert [b[0] for b in body] == sorted(sums)
    for sym, qty, notional in body:
        assert int(qty) == sums[sym][0]
        assert abs(float(notional) - sums[sym][1]) < 0.01
    top = max(kept, key=lambda r: r[1] * r[2])
    assert lines[-1] == f"largest trade: {top[0]} {top[1] * top[2]:.2f}"
    assert "Traceback" not in proc.stderr


def test_readme_asyncio_example(server) -> None:
    import re

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## asyncio"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'AsyncSession("localhost", 10000)' in code
    code = code.replace('AsyncSession("localhost", 10000)', f'AsyncSession("{server.host}", {server.port})')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # Qty > 10 keeps (b, 20) and (a, 30); each sums alone; Twice doubles Qty; head(1) is b's row
    assert 'Sym: [["b","a"]]' in out and "Qty: [[20,30]]" in out and "Twice: [[40,60]]" in out
    assert "[{'Sym': 'b', 'Qty': 20, 'Twice': 40}]" in out
    assert out.strip().split("\n")[-1] == "2"  # Qty >= 20: two rows
