"""The README's examples run as written, against the test server."""

from __future__ import annotations

from tests.support.examples import run_example


def test_quickstart(server) -> None:
    proc = run_example(server, "quickstart")
    lines = proc.stdout.split("\n")
    # independent computation of the expected rows: Qty >= 50, grouped by Sym
    rows = {"AAPL": (600, 189.5 * 100 + 190.25 * 200 + 188.0 * 300), "GOOG": (75, 140.1 * 75), "MSFT": (50, 410.0 * 50)}
    body = [line.split() for line in lines[1:] if line.strip()]
    assert [b[0] for b in body] == sorted(rows)
    for sym, qty, notional in body:
        assert int(qty) == rows[sym][0]
        assert abs(float(notional) - rows[sym][1]) < 0.01


def test_table_ops_example(server) -> None:
    proc = run_example(server, "table_ops")
    out = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    rows = [(s, p, q) for s, p, q in zip(["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"],
                                          [189.5, 410.0, 190.25, 140.1, 412.5, 188.0], [100, 50, 200, 75, 25, 300])]
    kept = sorted((r for r in rows if r[2] >= 50), key=lambda r: (r[0], -r[2]))
    assert out["sorted"] == str([r[2] for r in kept])
    assert out["filtered rows"] == str(sum(1 for r in rows if r[2] > 10 and r[0] in ("AAPL", "MSFT")))
    cum: dict[str, int] = {}
    cums = []
    for s, _, q in rows:
        cum[s] = cum.get(s, 0) + q
        cums.append(cum[s])
    assert out["cum"] == str(cums)
    bids = {"AAPL": 189.0, "MSFT": 409.5, "GOOG": 140.0}
    assert out["bids"] == str([bids[s] for s, _, _ in rows])
    assert out["query"] == str([q * p for s, p, q in sorted((r for r in rows if r[2] > 100), key=lambda r: r[0])])
    top = sorted(rows, key=lambda r: -r[1] * r[2])[:2]
    assert out["top"] == str([r[0] for r in top])


def test_errors_example(server) -> None:
    proc = run_example(server, "errors")
    assert proc.stdout.splitlines() == [
        "missing table: None",
        "bad formula: InvalidArgumentError INVALID_ARGUMENT",
        "failing script: ServerError None",
        "closed: empty_table failed: the session is closed",
        "nothing listening: UnreachableError UNAVAILABLE True",
    ]


def test_script_output_example(server) -> None:
    proc = run_example(server, "script_output")
    assert proc.stdout.splitlines() == [
        "output: ['hello', 'careful']",
        "failed after: ['working']",
        "stopped: True",
        f"next script: {6 * 7}",
        "logs: logged line",
        "on_log: True",
    ]


def test_partitioned_example(server) -> None:
    proc = run_example(server, "partitioned")
    lines = proc.stdout.strip().split("\n")
    syms = ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"]
    qty = [100, 50, 200, 75, 25, 300]
    assert lines[0] == f"keys: {sorted(set(syms))}"
    want = [f"{s} {syms.count(s)} {sum(q for x, q in zip(syms, qty) if x == s)}" for s in sorted(set(syms))]
    assert lines[1:-1] == want
    assert lines[-1] == f"merged: {len(syms)}"


def test_dbapi_example(server) -> None:
    proc = run_example(server, "dbapi")
    lines = proc.stdout.strip().split("\n")
    syms = ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"]
    price = [189.5, 410.0, 190.25, 140.1, 412.5, 188.0]
    qty = [100, 50, 200, 75, 25, 300]
    totals = {s: sum(q for x, q in zip(syms, qty) if x == s and q >= 50) for s in sorted(set(syms)) if s != "GOOG"}
    assert lines[0] == "columns: ['Sym', 'Qty']"
    assert lines[1:3] == [f"dbapi: {s} {q}" for s, q in totals.items()]
    assert lines[3] == "tables: ['trades']"
    assert lines[4] == "types: [('Sym', 'String'), ('Price', 'Double'), ('Qty', 'BigInteger')]"
    big = sorted((p, s) for s, p, q in zip(syms, price, qty) if q > 100)
    assert lines[5] == f"read_sql: {[{'Sym': s, 'Price': p} for p, s in big]}"
