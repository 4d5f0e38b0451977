"""Session.sql against the real server: results compared with pyarrow/pandas computations of the
same query on the same data, the SQL the server runs and refuses (as the README lists it), errors
carrying the server's reason, and the query log."""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pydeephaven import DHError, Session, Table
from tests.support.examples import run_example

N = 2_000


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def data() -> pa.Table:
    rng = np.random.default_rng(20261122)
    return pa.table({
        "Id": np.arange(N, dtype=np.int64),
        "Sym": pa.array(rng.choice(["AAPL", "MSFT", "GOOG", "IBM"], N)),
        "Qty": rng.integers(1, 500, N).astype(np.int64),
        "Px": np.round(rng.uniform(10, 500, N), 2),
    })


@pytest.fixture
def trades(session: Session, data: pa.Table) -> Iterator[str]:
    """``data`` bound in the server's scope under a fresh name, removed afterwards."""
    name = _name("trades")
    with session.import_table(data) as t, session.bound(name, t):
        yield name


@pytest.fixture
def syms(session: Session) -> Iterator[str]:
    """A second table made by a server-side script."""
    name = _name("syms")
    session.run_script(
        "from deephaven import new_table\n"
        "from deephaven.column import string_col, int_col\n"
        f"{name} = new_table([string_col('Sym', ['AAPL', 'MSFT', 'IBM', 'ORCL']), "
        "int_col('Tier', [1, 2, 3, 4])])")
    yield name
    session.unbind(name)


def test_select_where_sees_bound_table(session: Session, trades: str, data: pa.Table) -> None:
    got = session.sql(f"SELECT Id, Sym, Px FROM {trades} WHERE Qty > 250 AND Sym = 'MSFT'")
    mask = pc.and_(pc.greater(data["Qty"], 250), pc.equal(data["Sym"], "MSFT"))
    want = data.filter(mask).select(["Id", "Sym", "Px"])
    assert isinstance(got, pa.Table)
    assert got.num_rows == want.num_rows > 0
    got_sorted = got.sort_by("Id")
    assert got_sorted["Id"].to_pylist() == want["Id"].to_pylist()
    assert got_sorted["Px"].to_pylist() == want["Px"].to_pylist()


def test_group_by_aggregates_match_pandas(session: Session, trades: str, data: pa.Table) -> None:
    got = session.sql(f"SELECT Sym, COUNT(*) AS N, SUM(Qty) AS Qty, MIN(Px) AS Lo, MAX(Px) AS Hi, "
                      f"AVG(Px) AS Mean FROM {trades} GROUP BY Sym ORDER BY Sym", "pandas")
    df = data.to_pandas()
    want = df.groupby("Sym").agg(N=("Id", "size"), Qty=("Qty", "sum"), Lo=("Px", "min"), Hi=("Px", "max"),
                                 Mean=("Px", "mean")).reset_index().sort_values("Sym")
    assert isinstance(got, pd.DataFrame)
    assert list(got["Sym"]) == list(want["Sym"])
    assert list(got["N"]) == list(want["N"])
    assert list(got["Qty"]) == list(want["Qty"])
    assert np.allclose(got["Lo"], want["Lo"]) and np.allclose(got["Hi"], want["Hi"])
    assert np.allclose(got["Mean"], want["Mean"])


def test_inner_join_with_script_table(session: Session, trades: str, syms: str, data: pa.Table) -> None:
    got = session.sql(f"SELECT t.Id, t.Sym, s.Tier FROM {trades} t JOIN {syms} s ON t.Sym = s.Sym")
    tiers = {"AAPL": 1, "MSFT": 2, "IBM": 3, "ORCL": 4}
    want = {i: tiers[s] for i, s in zip(data["Id"].to_pylist(), data["Sym"].to_pylist()) if s in tiers}
    assert got.num_rows == len(want)
    assert dict(zip(got["Id"].to_pylist(), got["Tier"].to_pylist())) == want


def test_order_by_limit_distinct_union_cte(session: Session, trades: str, data: pa.Table) -> None:
    top = session.sql(f"SELECT Id, Px FROM {trades} ORDER BY Px DESC, Id LIMIT 5")
    order = sorted(zip(data["Px"].to_pylist(), data["Id"].to_pylist()), key=lambda r: (-r[0], r[1]))[:5]
    assert top["Id"].to_pylist() == [i for _, i in order]

    distinct = session.sql(f"SELECT DISTINCT Sym FROM {trades} ORDER BY Sym")
    assert distinct["Sym"].to_pylist() == sorted(set(data["Sym"].to_pylist()))

    union = session.sql(f"SELECT Id FROM {trades} WHERE Id < 3 UNION ALL SELECT Id FROM {trades} WHERE Id < 2")
    assert sorted(union["Id"].to_pylist()) == [0, 0, 1, 1, 2]

    cte = session.sql(f"WITH big AS (SELECT Id, Qty FROM {trades} WHERE Qty >= 400) "
                      f"SELECT COUNT(*) AS N, SUM(Qty) AS S FROM big")
    big = data.filter(pc.greater_equal(data["Qty"], 400))
    assert cte["N"].to_pylist() == [big.num_rows]
    assert cte["S"].to_pylist() == [pc.sum(big["Qty"]).as_py()]


def test_expressions_and_filters(session: Session, trades: str, data: pa.Table) -> None:
    got = session.sql(f"SELECT Id, Qty * Px AS Notional, ABS(Qty - 250) AS Dist, CAST(Qty AS DOUBLE) AS QtyD "
                      f"FROM {trades} WHERE Sym IN ('IBM', 'GOOG') AND Qty BETWEEN 100 AND 200 ORDER BY Id")
    df = data.to_pandas()
    want = df[df.Sym.isin(["IBM", "GOOG"]) & df.Qty.between(100, 200)].sort_values("Id")
    assert got["Id"].to_pylist() == want["Id"].tolist()
    assert np.allclose(got["Notional"].to_numpy(), (want.Qty * want.Px).to_numpy())
    assert got["Dist"].to_pylist() == (want.Qty - 250).abs().tolist()
    assert got["QtyD"].type == pa.float64()


def test_sql_on_run_script_table_and_literal_select(session: Session, syms: str) -> None:
    got = session.sql(f"SELECT Sym, Tier, Tier * 10 AS R10, 'x' AS L FROM {syms} WHERE Tier >= 2 ORDER BY Tier")
    assert got.to_pydict() == {"Sym": ["MSFT", "IBM", "ORCL"], "Tier": [2, 3, 4], "R10": [20, 30, 40],
                               "L": ["x", "x", "x"]}
    assert session.sql("SELECT 1 + 1 AS two").to_pydict() == {"two": [2]}


@pytest.mark.parametrize("fmt", ["pandas", "polars", "csv", "json", "pretty"])
def test_formats(session: Session, syms: str, fmt: str) -> None:
    want = {"Sym": ["AAPL", "MSFT", "IBM", "ORCL"], "Tier": [1, 2, 3, 4]}
    got = session.sql(f"SELECT Sym, Tier FROM {syms} ORDER BY Tier", fmt)
    if fmt == "pandas":
        assert got.to_dict(orient="list") == want
    elif fmt == "polars":
        pl = pytest.importorskip("polars")
        assert isinstance(got, pl.DataFrame) and got.to_dict(as_series=False) == want
    elif fmt == "csv":
        assert pd.read_csv(io.StringIO(got)).to_dict(orient="list") == want
    elif fmt == "json":
        assert json.loads(got) == [{"Sym": s, "Tier": r} for s, r in zip(want["Sym"], want["Tier"])]
    else:
        assert got.splitlines()[0] == "SQL result: 4 rows x 2 columns"
        body = [line.strip("| ").split("|") for line in got.splitlines() if line.startswith("| ")]
        assert [c.strip() for c in body[0]] == ["Sym", "Tier"]
        assert [[c.strip() for c in r] for r in body[2:]] == [[s, str(r)] for s, r in zip(want["Sym"], want["Tier"])]


def test_fmt_table_is_a_server_table(session: Session, trades: str, data: pa.Table) -> None:
    before = {t.bytes for t in session.live_exports()}
    t = session.sql(f"SELECT Sym, Qty FROM {trades} WHERE Qty < 50", "table")
    assert isinstance(t, Table)
    want = data.filter(pc.less(data["Qty"], 50))
    assert t.size == want.num_rows
    with t:
        total = t.view(["Qty"]).sum_by().to_arrow()["Qty"].to_pylist()
        assert total == [pc.sum(want["Qty"]).as_py()]
    assert {x.bytes for x in session.live_exports()} - before == set()


def test_no_exports_left_behind(session: Session, trades: str) -> None:
    before = {t.bytes for t in session.live_exports()}
    for _ in range(3):
        session.sql(f"SELECT COUNT(*) AS N FROM {trades}")
    assert {t.bytes for t in session.live_exports()} == before


@pytest.mark.parametrize("query, reason", [
    ("SELEKT 1", "SqlParseException"),
    ("SELECT LOWER(Sym) AS s FROM {t}", "Unsupported operator LOWER"),
    ("SELECT Id FROM {t} OFFSET 5", "does not support slice"),
    ("SELECT Sym, COUNT(Qty) AS n FROM {t} GROUP BY Sym", "count() does not support ignoring nulls"),
    ("SELECT Id, 1.5 AS x FROM {t}", "Literal support for DECIMAL"),
    ("SELECT Id FROM {t} WHERE Id % 2 = 0", "Percent remainder"),
    ("SELECT Id FROM {t} WHERE Sym LIKE 'A%'", "LIKE"),
    ("SELECT CASE WHEN Qty > 5 THEN 'a' ELSE 'b' END AS c FROM {t}", "CASE"),
    ("SELECT Id FROM {t} WHERE Id IN (SELECT Id FROM {t} WHERE Qty > 5)", "RexSubQuery"),
    ("SELECT Id FROM {t} INTERSECT SELECT Id FROM {t}", "LogicalIntersect"),
    ("INSERT INTO {t} (Id) VALUES (1)", "LogicalTableModify"),
    ("SELECT * FROM no_such_table_5b", "Object 'no_such_table_5b' not found"),
    ("SELECT NoSuchColumn FROM {t}", "Column 'NoSuchColumn' not found"),
])
def test_bad_sql_carries_server_reason(session: Session, trades: str, query: str, reason: str) -> None:
    with pytest.raises(DHError) as err:
        session.sql(query.format(t=trades))
    text = str(err.value)
    assert reason in text
    assert text.startswith("sql(")


@pytest.mark.parametrize("join", ["LEFT JOIN", "left outer join", "RIGHT JOIN", "FULL OUTER JOIN"])
def test_outer_joins_are_refused(session: Session, trades: str, syms: str, join: str) -> None:
    query = f"SELECT t.Id, s.Tier FROM {trades} t {join} {syms} s ON t.Sym = s.Sym"
    with pytest.raises(DHError, match="outer joins as inner joins"):
        session.sql(query)


def test_outer_join_words_in_literals_are_not_refused(session: Session, syms: str) -> None:
    got = session.sql(f"SELECT Sym, 'LEFT JOIN' AS Note FROM {syms} WHERE Tier = 1 -- a LEFT JOIN here is a comment")
    assert got.to_pydict() == {"Sym": ["AAPL"], "Note": ["LEFT JOIN"]}


def test_server_runs_outer_joins_as_inner(session: Session, trades: str, syms: str) -> None:
    """Why the client refuses outer joins: through Flight SQL directly, a LEFT JOIN loses the
    unmatched rows (GOOG has no rank)."""
    from pydeephaven import _sql

    q = f"SELECT t.Id, s.Tier FROM {trades} t LEFT JOIN {syms} s ON t.Sym = s.Sym"
    raw = _sql.read_result(session._flight, q, _sql.flight_info(session._flight, q))
    total = session.sql(f"SELECT COUNT(*) AS N FROM {trades}")["N"][0].as_py()
    goog = session.sql(f"SELECT COUNT(*) AS N FROM {trades} WHERE Sym = 'GOOG'")["N"][0].as_py()
    assert goog > 0
    assert raw.num_rows == total - goog  # if this fails, the server now runs outer joins: lift the refusal


def test_documented_quirks(session: Session, trades: str, data: pa.Table) -> None:
    # an aggregate without GROUP BY over no rows gives no row (standard SQL: one row, COUNT 0)
    assert session.sql(f"SELECT COUNT(*) AS N FROM {trades} WHERE Qty > 100000").num_rows == 0
    # ORDER BY a column outside the select list adds it to the result
    got = session.sql(f"SELECT Id FROM {trades} ORDER BY Px LIMIT 2")
    assert got.column_names == ["Id", "Px"]
    # / on integers is a floating-point division
    assert session.sql(f"SELECT Qty / 2 AS H FROM {trades} WHERE Id = 0")["H"].type == pa.float64()
    # SQL reserved words (here RANK) need double quotes as column names
    with pytest.raises(DHError, match="SqlParseException"):
        session.sql(f"SELECT Id AS Rank FROM {trades}")
    assert session.sql(f'SELECT Id AS "Rank" FROM {trades} WHERE Id = 3').to_pydict() == {"Rank": [3]}
    # table names are case-sensitive
    with pytest.raises(DHError, match="not found"):
        session.sql(f"SELECT * FROM {trades.upper()}")


def test_bad_arguments(session: Session) -> None:
    with pytest.raises(DHError, match="unknown fmt"):
        session.sql("SELECT 1 AS x", "xml")
    with pytest.raises(DHError, match="empty"):
        session.sql("   ")
    with pytest.raises(DHError, match="must be a str"):
        session.sql(b"SELECT 1")  # type: ignore[arg-type]


def test_sql_is_logged_and_counted(session: Session, trades: str, caplog: pytest.LogCaptureFixture) -> None:
    before_info = session.stats.calls.get("FlightSQL:GetFlightInfo", 0)
    before_rows = session.stats.rows.get("DoGet:sql", 0)
    with caplog.at_level(logging.DEBUG, logger="pydeephaven"):
        got = session.sql(f"SELECT Id FROM {trades} WHERE Id < 7")
    assert got.num_rows == 7
    assert session.stats.calls["FlightSQL:GetFlightInfo"] == before_info + 1
    assert session.stats.rows["DoGet:sql"] == before_rows + 7
    messages = [r.getMessage() for r in caplog.records if r.name == "pydeephaven"]
    assert any("FlightSQL:GetFlightInfo" in m and "WHERE Id < 7" in m for m in messages)
    assert any(m.startswith("DoGet:sql 7 rows") for m in messages)
    assert "FlightSQL:GetFlightInfo" in session.stats.summary()


def test_sql_after_close(server) -> None:
    s = Session(server.host, server.port)
    s.close()
    with pytest.raises(DHError, match="closed"):
        s.sql("SELECT 1 AS x")


def test_example_sql(server) -> None:

    proc = run_example(server, "sql")
    out = proc.stdout.splitlines()
    # the example's data, aggregated here for Qty >= 50
    rows = [("AAPL", 189.5, 100), ("MSFT", 410.0, 50), ("AAPL", 190.25, 200), ("GOOG", 140.1, 75),
            ("MSFT", 412.5, 25), ("AAPL", 188.0, 300)]
    want = {}
    for sym, px, qty in rows:
        if qty >= 50:
            n, q, notional = want.get(sym, (0, 0, 0.0))
            want[sym] = (n + 1, q + qty, notional + px * qty)
    assert out[0] == "SQL result: 3 rows x 4 columns"
    body = [[c.strip() for c in line.strip("|").split("|")] for line in out if line.startswith("| ")][2:]
    assert [b[0] for b in body] == sorted(want)
    for sym, n, q, notional in body:
        assert (int(n), int(q)) == want[sym][:2]
        assert float(notional) == pytest.approx(want[sym][2])
    top = sorted(rows, key=lambda r: -r[1])[:2]
    assert out[-2] == repr([{"Sym": s, "Price": p} for s, p, _ in top])
    assert out[-1] == "refused: UnsupportedOperationException: Unsupported operator LOWER"
