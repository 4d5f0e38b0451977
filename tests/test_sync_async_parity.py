"""The sync and async APIs behave the same (issue 15): each scenario runs through ``Session`` and
through ``AsyncSession`` (the ``api`` fixture) and asserts one outcome; the last tests compare the
public methods and parameters of the two APIs against a short allow-list of deliberate differences.

Scenarios are written once as coroutines; ``v(x)`` awaits ``x`` when it is awaitable (an AsyncTable,
a coroutine) and returns it as is otherwise (a sync Table or value), so the same lines drive both.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pydeephaven import Session, Table
from pydeephaven._live_exports import END_OF_FIRST_RUN
from pydeephaven.aio import AsyncSession, AsyncTable
from pydeephaven.aio.table import AsyncInputTable
from pydeephaven.dherror import DHError
from pydeephaven.table import InputTable
from pydeephaven.ticket import ExportTicket
from tests.support.faultproxy import FaultProxy


async def v(x: Any) -> Any:
    return await x if inspect.isawaitable(x) else x


class Api:
    """One of the two APIs: opens sessions of its kind inside a coroutine."""

    def __init__(self, kind: str, host: str, port: int) -> None:
        self.kind, self.host, self.port = kind, host, port
        self.session_cls: type = Session if kind == "sync" else AsyncSession
        self.table_cls: type = Table if kind == "sync" else AsyncTable

    def open(self, port: Optional[int] = None, **kw: Any) -> Any:
        api = self

        class _Ctx:
            async def __aenter__(self) -> Any:
                if api.kind == "sync":
                    self.s = Session(api.host, port or api.port, **kw)
                else:
                    self.s = await AsyncSession(api.host, port or api.port, **kw)
                return self.s

            async def __aexit__(self, *exc: object) -> None:
                await v(self.s.close())

        return _Ctx()

    def run(self, body: Callable[[Any], Awaitable[Any]], timeout: float = 180.0) -> Any:
        async def main() -> Any:
            async with self.open() as s:
                return await asyncio.wait_for(body(s), timeout)

        return asyncio.run(main())


@pytest.fixture(params=["sync", "async"])
def api(request: Any, server: Any) -> Api:
    return Api(request.param, server.host, server.port)


DATA = pa.table({"K": pa.array([1, 2, None], pa.int64()), "S": ["x", "y,z", None]})


# -- 1. tables of another session: the same rule in both (borrowed through a SharedTicket) ---------

def test_bind_and_merge_a_table_of_another_session(api: Api) -> None:
    async def body(a: Any) -> None:
        async with api.open() as b:
            tb = await v(b.import_table(pa.table({"A": [7, 8]})))
            await v(a.bind_table("parity_foreign", tb))
            back = await v(a.open_table("parity_foreign"))
            assert (await v(back.to_arrow())).to_pydict() == {"A": [7, 8]}
            ta = await v(a.import_table(pa.table({"A": [1]})))
            merged = await v(a.merge_tables([ta, tb]))
            assert (await v(merged.to_arrow())).to_pydict() == {"A": [1, 7, 8]}
            await v(a.unbind("parity_foreign"))
            # what is not a table of this API is refused before any call
            with pytest.raises(DHError, match="bind_table: expected an? (Async)?Table, got Table"):
                await v(a.bind_table("x", pa.table({"A": [1]})))
            # a closed table is refused
            await v(tb.close())
            with pytest.raises(DHError, match="closed"):
                await v(a.bind_table("parity_closed", tb))
            with pytest.raises(DHError, match="closed"):
                await v(a.merge_tables([ta, tb]))
            tb2 = await v(b.import_table(pa.table({"A": [9]})))
        # the other session is closed now: its table is gone and is refused with that reason
        with pytest.raises(DHError, match="which is closed"):
            await v(a.bind_table("parity_gone", tb2))
        with pytest.raises(DHError, match="which is closed"):
            await v(a.merge_tables([ta, tb2]))

    api.run(body)


def test_table_of_the_other_kind_is_refused(server: Any) -> None:
    """A Table in an AsyncSession operation, an AsyncTable in a Session one: refused alike."""

    async def body() -> None:
        async with AsyncSession(server.host, server.port) as a:
            with Session(server.host, server.port) as s:
                st = s.empty_table(1)
                at = await a.empty_table(1)
                with pytest.raises(DHError, match="bind_table: expected an AsyncTable, got Table"):
                    await a.bind_table("x", st)
                with pytest.raises(DHError, match="bind_table: expected a Table, got AsyncTable"):
                    s.bind_table("x", at)
                with pytest.raises(DHError, match="merge_tables: expected an AsyncTable, got Table"):
                    await a.merge_tables([at, st])
                with pytest.raises(DHError, match="merge_tables: expected a Table, got AsyncTable"):
                    s.merge_tables([st, at])

    asyncio.run(body())


def test_bind_table_reports_a_failed_pending_source_as_its_op(api: Api) -> None:
    async def body(s: Any) -> None:
        t = await v(s.empty_table(3))
        if api.kind == "sync":
            with s.pipelined():
                bad = t.update("X = no_such_column + 1")
        else:
            bad = t.update("X = no_such_column + 1")  # not awaited: still pending
        with pytest.raises(DHError, match="update") as err:
            await v(s.bind_table("parity_bad", bad))
        assert "no_such_column" in str(err.value)
        assert "parity_bad" not in await v(s.tables)

    api.run(body)


# -- 2. file exports are read once more when the stream broke mid-transfer -------------------------

def test_file_export_whose_stream_breaks_is_read_once_more(api: Api, tmp_path: Path) -> None:
    n = 3_000_000
    proxy = FaultProxy(api.port, cut_after=20_000_000)

    async def body() -> None:
        async with api.open(port=proxy.port, never_timeout=False) as s:
            t = await v(s.import_table(pa.table({"A": np.arange(n, dtype=np.int64)})))
            proxy.cuts = 0
            out = tmp_path / f"{api.kind}.parquet"
            assert await v(t.to_parquet(out)) == n
            assert proxy.cuts == 1  # the first read was cut, the second one wrote the file
            back = pq.read_table(out)
            assert back.column("A").equals(pa.chunked_array([np.arange(n, dtype=np.int64)]))

    try:
        asyncio.run(body())
    finally:
        proxy.close()


# -- 3. to_pandas(dtype_backend) ---------------------------------------------------------------------

def test_to_pandas_dtype_backend(api: Api) -> None:
    import pandas as pd

    async def body(s: Any) -> None:
        t = await v(s.import_table(DATA))
        plain = await v(t.to_pandas())
        assert str(plain["K"].dtype) == "float64" and plain["K"].isna().tolist() == [False, False, True]
        nullable = await v(t.to_pandas(dtype_backend="numpy_nullable"))
        assert str(nullable["K"].dtype) == "Int64" and nullable["K"].tolist()[:2] == [1, 2]
        assert nullable["K"].iloc[2] is pd.NA
        arrowed = await v(t.to_pandas(dtype_backend="pyarrow"))
        assert isinstance(arrowed["S"].dtype, pd.ArrowDtype) and arrowed["S"].tolist()[:2] == ["x", "y,z"]
        gets = dict(s.stats.calls)
        with pytest.raises(DHError, match="unknown dtype_backend 'nope'"):
            await v(t.to_pandas(dtype_backend="nope"))
        assert dict(s.stats.calls) == gets  # refused before anything was fetched

    api.run(body)


# -- 4. to_csv(path) / to_json(path): the text without a path, a file (and its row count) with one ---

def test_to_csv_and_to_json_mean_the_same(api: Api, tmp_path: Path) -> None:
    want_csv = '"K","S"\n1,"x"\n2,"y,z"\n,\n'

    async def body(s: Any) -> None:
        t = await v(s.import_table(DATA))
        text = await v(t.to_csv())
        assert text == want_csv
        assert await v(t.to_csv(delimiter=";", include_header=False)) == '1;"x"\n2;"y,z"\n;\n'
        path = tmp_path / "out.csv"
        assert await v(t.to_csv(path)) == 3
        assert path.read_text() == want_csv
        assert json.loads(await v(t.to_json())) == [{"K": 1, "S": "x"}, {"K": 2, "S": "y,z"},
                                                    {"K": None, "S": None}]
        jl = tmp_path / "out.jsonl"
        assert await v(t.to_json(jl, lines=True)) == 3
        assert [json.loads(line)["K"] for line in jl.read_text().splitlines()] == [1, 2, None]
        feather = tmp_path / "out.arrow"
        assert await v(t.to_feather(feather, progress=False)) == 3
        assert pa.ipc.open_file(str(feather)).read_all().column("S").to_pylist() == ["x", "y,z", None]

    api.run(body)


def test_to_string_is_the_same_text(server: Any) -> None:
    async def body() -> tuple[str, str]:
        with Session(server.host, server.port) as s:
            st = s.import_table(DATA)
            sync_text = st.to_string()
            sync_pretty = st.to_format("pretty")
        async with AsyncSession(server.host, server.port) as a:
            at = await a.import_table(DATA)
            async_text = await at.to_string()
            assert await at.to_format("pretty") == sync_pretty
        assert sync_pretty == sync_text
        return sync_text, async_text

    sync_text, async_text = asyncio.run(body())
    assert sync_text == async_text
    assert "y,z" in sync_text and "Table (static)" in sync_text and "3 rows" in sync_text


# -- 5. live_exports: one end marker, the same count ------------------------------------------------

def test_live_exports_counts_the_same(api: Api) -> None:
    assert END_OF_FIRST_RUN == b"e\x00\x00\x00\x00" and ExportTicket(END_OF_FIRST_RUN).ticket_no == 0

    async def body(s: Any) -> None:
        before = {tk.bytes for tk in await v(s.live_exports())}
        t = await v(s.empty_table(2))
        u = await v(t.update("X = i"))
        now = {tk.bytes for tk in await v(s.live_exports())}
        assert now - before == {t.ticket.bytes, u.ticket.bytes}
        await v(t.close())
        await v(u.close())
        assert {tk.bytes for tk in await v(s.live_exports())} == before

    api.run(body)


# -- 6. unbind -------------------------------------------------------------------------------------

def test_unbind(api: Api) -> None:
    async def body(s: Any) -> None:
        t = await v(s.empty_table(1))
        await v(s.bind_table("parity_unbind", t))
        assert "parity_unbind" in await v(s.tables)
        await v(s.unbind("parity_unbind"))
        assert "parity_unbind" not in await v(s.tables)
        await v(s.unbind("parity_unbind"))  # absent: no error
        with pytest.raises(DHError, match="not a usable variable name"):
            await v(s.unbind("not a name"))

    api.run(body)


# -- 7. import_file: the same keywords, unknown ones refused alike --------------------------------

def test_import_file_same_arguments(api: Api, tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    p.write_text("A;B;C\n1;2;3\n4;5;6\n")

    async def body(s: Any) -> None:
        t = await v(s.import_file(p, delimiter=";", columns=["A", "C"], progress=False,
                                  column_types={"A": pa.int32()}))
        got = await v(t.to_arrow())
        assert got.to_pydict() == {"A": [1, 4], "C": [3, 6]} and got.schema.field("A").type == pa.int32()
        with pytest.raises(DHError, match=r"unknown arguments \['bogus'\]"):
            await v(s.import_file(p, bogus=1))

    api.run(body)


# -- the public surface: names and parameters ------------------------------------------------------

# (sync class, name) or (async class, name) present on one side only, with the reason
ONE_SIDED = {
    # the official client's service objects and RPC wrappers (drop-in for 42.7); no async counterpart
    ("Session", "app_service"): "official client internals",
    ("Session", "config_service"): "official client internals",
    ("Session", "console_service"): "official client internals",
    ("Session", "flight_service"): "official client internals",
    ("Session", "input_table_service"): "official client internals",
    ("Session", "plugin_object_service"): "official client internals",
    ("Session", "session_service"): "official client internals",
    ("Session", "table_service"): "official client internals",
    ("Session", "update_metadata"): "official client internals",
    ("Session", "wrap_rpc"): "official client internals",
    ("Session", "wrap_bidi_rpc"): "official client internals",
    ("Table", "table_op_handler"): "official client internals",
    # async spellings that must differ
    ("Session", "pipelined"): "an AsyncSession is always pipelined: every op is sent at once, await waits",
    ("AsyncSession", "connect"): "the awaitable connect step (a constructor cannot await)",
    ("AsyncTable", "is_ready"): "whether an awaitable table has its answer (a sync Table has it, or pipelined "
                                "mode waits on use)",
    ("AsyncSession", "state_changes"): "the async iterator form of on_state_change (the sync API has the callback)",
    ("AsyncTable", "write_csv"): "kept from earlier aio releases; the same as to_csv(path)",
    # not built for asyncio yet (left, see the report)
    ("Session", "bound"): "a context manager over bind/unbind; the async one would be an async with block",
    ("Session", "temporary"): "a context manager releasing exports by number; needs an async with flavour",
    ("Session", "plugin_client"): "plugin clients are a sync API (their bidi stream runs on threads)",
    ("Table", "subscribe"): "live tables (ticking) are written over the sync transport",
    ("Table", "widget"): "a notebook view over live tables (ticking: the sync transport)",
}

PAIRS = [(Session, AsyncSession), (Table, AsyncTable), (InputTable, AsyncInputTable)]


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")} | {"__init__"}


def _params(fn: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("sync_cls, async_cls", PAIRS, ids=[a.__name__ for _, a in PAIRS])
def test_public_surface_is_the_same(sync_cls: type, async_cls: type) -> None:
    def base(cls: type) -> str:
        return cls.__name__.replace("Input", "") if cls.__name__.endswith("InputTable") else cls.__name__

    differences = []
    for cls, other in ((sync_cls, async_cls), (async_cls, sync_cls)):
        for name in sorted(_public(cls) - _public(other)):
            if (base(cls), name) not in ONE_SIDED:
                differences.append(f"{cls.__name__}.{name} has no counterpart in {other.__name__}")
    for name in sorted(_public(sync_cls) & _public(async_cls)):
        a, b = inspect.getattr_static(sync_cls, name), inspect.getattr_static(async_cls, name)
        if isinstance(a, property) != isinstance(b, property):
            # a property of the sync API may be a method returning an awaitable in the async one
            # (tables, exportable_objects, is_alive): allowed only as a property on both sides
            if not (isinstance(a, property) and isinstance(b, property)):
                differences.append(f"{name}: a property on one side only")
            continue
        fa, fb = getattr(sync_cls, name), getattr(async_cls, name)
        if callable(fa) and callable(fb) and not isinstance(fa, type):
            if _params(fa) != _params(fb):
                differences.append(f"{name}: {inspect.signature(fa)} vs {inspect.signature(fb)}")
    assert not differences, "\n".join(differences)


def test_allow_list_names_only_real_one_sided_names() -> None:
    """Every allow-listed name exists on its side and is missing on the other (a stale entry fails)."""
    classes = {"Session": (Session, AsyncSession), "AsyncSession": (AsyncSession, Session),
               "Table": (Table, AsyncTable), "AsyncTable": (AsyncTable, Table)}
    stale = [key for key in ONE_SIDED
             if not (hasattr(classes[key[0]][0], key[1]) and not hasattr(classes[key[0]][1], key[1]))]
    assert not stale, stale
