"""SQL and output formats on the asyncio API, the same scenarios as the sync tests, with
expectations computed here."""

from __future__ import annotations

import asyncio
import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pydeephaven import DHError
from pydeephaven.aio import AsyncSession

DATA = pa.table({"Sym": ["A", "B", "A", "C", "B", "A"], "Qty": [5, 7, 11, 2, 3, 13],
                 "Px": [1.5, 2.0, 1.25, 9.0, 2.5, 1.0]})


def _run(server, body, timeout: float = 120.0):
    async def main():
        async with AsyncSession(server.host, server.port) as s:
            return await asyncio.wait_for(body(s), timeout)

    return asyncio.run(main())


def test_sql_group_by_matches_pyarrow(server) -> None:
    async def body(s: AsyncSession):
        t = await s.import_table(DATA)
        await s.bind_table("aio_sql_trades", t)
        return await s.sql("SELECT Sym, SUM(Qty) AS Q, COUNT(*) AS N FROM aio_sql_trades GROUP BY Sym ORDER BY Sym")

    got = _run(server, body)
    expected = DATA.group_by("Sym").aggregate([("Qty", "sum"), ("Qty", "count")]).sort_by("Sym")
    assert got.column("Sym").to_pylist() == expected.column("Sym").to_pylist()
    assert got.column("Q").to_pylist() == expected.column("Qty_sum").to_pylist()
    assert got.column("N").to_pylist() == expected.column("Qty_count").to_pylist()


def test_sql_formats(server) -> None:
    async def body(s: AsyncSession):
        t = await s.import_table(DATA)
        await s.bind_table("aio_sql_fmt", t)
        q = "SELECT Sym, Qty FROM aio_sql_fmt WHERE Qty > 4 ORDER BY Qty"
        return await asyncio.gather(s.sql(q, "pandas"), s.sql(q, "csv"), s.sql(q, "json"), s.sql(q, "pretty"))

    df, csv_text, json_text, pretty = _run(server, body)
    rows = sorted((r["Qty"], r["Sym"]) for r in DATA.to_pylist() if r["Qty"] > 4)
    assert list(df["Qty"]) == [q for q, _ in rows]
    assert csv_text.splitlines()[0].replace('"', "") == "Sym,Qty"
    assert [int(line.split(",")[1]) for line in csv_text.splitlines()[1:]] == [q for q, _ in rows]
    assert [r["Sym"] for r in json.loads(json_text)] == [sym for _, sym in rows]
    assert "Qty" in pretty and "13" in pretty


def test_sql_as_a_server_table(server) -> None:
    async def body(s: AsyncSession):
        t = await s.import_table(DATA)
        await s.bind_table("aio_sql_tbl", t)
        result = await s.sql("SELECT Sym, Qty FROM aio_sql_tbl WHERE Qty < 10", "table")
        more = await result.where("Qty > 2").sort("Qty")
        with pytest.raises(DHError, match="fmt 'table' takes no options"):
            await s.sql("SELECT 1", "table", x=1)
        return type(result).__name__, (await more.to_arrow()).to_pylist()

    kind, rows = _run(server, body)
    assert kind == "AsyncTable"
    assert rows == sorted(({"Sym": r["Sym"], "Qty": r["Qty"]} for r in DATA.to_pylist() if 2 < r["Qty"] < 10),
                          key=lambda r: r["Qty"])


def test_bad_sql_carries_the_reason(server) -> None:
    async def body(s: AsyncSession):
        with pytest.raises(DHError, match="no_such_table_aio") as e:
            await s.sql("SELECT * FROM no_such_table_aio")
        assert str(e.value).startswith("sql(")
        # on tables that exist, so that only the outer join can be the reason
        await s.bind_table("aio_sql_left", await s.import_table(DATA))
        await s.bind_table("aio_sql_right", await s.import_table(pa.table({"Sym": ["A"], "Tier": [1]})))
        with pytest.raises(DHError, match="outer joins as inner joins"):
            await s.sql("SELECT l.Qty, r.Tier FROM aio_sql_left l LEFT JOIN aio_sql_right r ON l.Sym = r.Sym")
        # the same tables with an inner join are fine: 3 rows of A
        inner = await s.sql("SELECT l.Qty, r.Tier FROM aio_sql_left l JOIN aio_sql_right r ON l.Sym = r.Sym")
        assert sorted(inner.column("Qty").to_pylist()) == sorted(
            q for sym, q in zip(DATA["Sym"].to_pylist(), DATA["Qty"].to_pylist()) if sym == "A")
        return (await s.empty_table(2)).size  # the session stays usable

    assert _run(server, body) == 2


def test_table_formats(server) -> None:
    async def body(s: AsyncSession):
        t = await s.import_table(DATA)
        return await asyncio.gather(t.to_pandas(), t.to_polars(), t.to_csv(), t.to_json(), t.to_format("arrow"))

    df, pl_df, csv_text, json_text, arrow = _run(server, body)
    assert list(df["Qty"]) == DATA.column("Qty").to_pylist()
    assert pl_df["Px"].to_list() == DATA.column("Px").to_pylist()
    assert len(csv_text.splitlines()) == DATA.num_rows + 1
    assert [r["Sym"] for r in json.loads(json_text)] == DATA.column("Sym").to_pylist()
    assert pc.sum(arrow.column("Qty")).as_py() == pc.sum(DATA.column("Qty")).as_py()


def test_files_in_and_out(server, tmp_path) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    src = tmp_path / "in.csv"
    pacsv.write_csv(DATA, src)

    async def body(s: AsyncSession):
        t = await s.import_file(src)
        n_parquet = await t.to_parquet(tmp_path / "out.parquet")
        n_csv = await t.write_csv(tmp_path / "out.csv")
        n_feather = await t.to_feather(tmp_path / "out.arrow")
        with pytest.raises(DHError, match="import_file"):
            await s.import_file(tmp_path / "missing.csv")
        return t.size, n_parquet, n_csv, n_feather

    size, n_parquet, n_csv, n_feather = _run(server, body)
    assert size == n_parquet == n_csv == n_feather == DATA.num_rows
    back = pq.read_table(tmp_path / "out.parquet")
    assert back.column("Qty").to_pylist() == DATA.column("Qty").to_pylist()
    assert pacsv.read_csv(tmp_path / "out.csv").column("Px").to_pylist() == DATA.column("Px").to_pylist()
    import pyarrow.feather as feather

    assert feather.read_table(tmp_path / "out.arrow").column("Sym").to_pylist() == DATA.column("Sym").to_pylist()
