"""The SQLAlchemy dialect against the real server: the entry point, reflection of the server's scope
(names, columns, types), Core selects and pandas.read_sql compared with pyarrow computations of the
same data, the URL's options, and the statements refused when compiled."""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from pydeephaven import Session
from pydeephaven.sqlalchemy import DeephavenDialect, sqlalchemy_type

N = 500


@pytest.fixture
def data() -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({
        "Id": np.arange(N, dtype=np.int64),
        "Sym": pa.array(rng.choice(["AAPL", "MSFT", "GOOG"], N)),
        "Qty": rng.integers(1, 100, N).astype(np.int32),
        "Px": np.round(rng.uniform(1, 100, N), 2),
        "Ok": pa.array(rng.integers(0, 2, N).astype(bool)),
    })


@pytest.fixture
def trades(session: Session, data: pa.Table) -> Iterator[str]:
    name = f"sa_{uuid.uuid4().hex[:10]}"
    with session.import_table(data) as t, session.bound(name, t):
        yield name


@pytest.fixture
def engine(server) -> Iterator[sa.Engine]:
    e = sa.create_engine(f"deephaven://{server.host}:{server.port}")
    try:
        yield e
    finally:
        e.dispose()


def _t(name: str) -> Any:
    return sa.table(name, sa.column("Id"), sa.column("Sym"), sa.column("Qty"), sa.column("Px"), sa.column("Ok"))


def test_the_entry_point_finds_the_dialect(engine: sa.Engine) -> None:
    assert isinstance(engine.dialect, DeephavenDialect)
    assert engine.dialect.name == "deephaven" and engine.dialect.paramstyle == "qmark"
    assert sa.create_engine("deephaven+pydeephaven://h:1").dialect.name == "deephaven"


def test_reflection_of_the_scope(engine: sa.Engine, session: Session, trades: str) -> None:
    insp = sa.inspect(engine)
    names = insp.get_table_names()
    assert trades in names and names == sorted(session.tables)
    assert insp.has_table(trades) and not insp.has_table(f"missing_{uuid.uuid4().hex[:6]}")
    cols = insp.get_columns(trades)
    assert [c["name"] for c in cols] == ["Id", "Sym", "Qty", "Px", "Ok"]
    assert [type(c["type"]) for c in cols] == [sa.BigInteger, sa.String, sa.Integer, sa.Double, sa.Boolean]
    assert insp.get_pk_constraint(trades)["constrained_columns"] == []
    assert insp.get_foreign_keys(trades) == [] and insp.get_indexes(trades) == []
    assert insp.get_view_names() == []
    with pytest.raises(exc.NoSuchTableError, match="nope_"):
        insp.get_columns(f"nope_{uuid.uuid4().hex[:6]}")
    reflected = sa.Table(trades, sa.MetaData(), autoload_with=engine)
    assert list(reflected.columns.keys()) == ["Id", "Sym", "Qty", "Px", "Ok"]


def test_types_of_the_server_columns(engine: sa.Engine, session: Session) -> None:
    name = f"sa_types_{uuid.uuid4().hex[:8]}"
    session.run_script(
        "from deephaven import empty_table\n"
        f"{name} = empty_table(1).update(['B=(byte)1', 'Sh=(short)2', 'F=(float)1.5', 'C=(char)65', "
        "'T=parseInstant(`2024-01-02T03:04:05Z`)', 'L=java.time.LocalDate.of(2024, 1, 2)'])")
    try:
        cols = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns(name)}
    finally:
        session.unbind(name)
    assert isinstance(cols["B"], sa.SmallInteger) and isinstance(cols["Sh"], sa.SmallInteger)
    assert isinstance(cols["F"], sa.REAL) and isinstance(cols["C"], sa.CHAR) and cols["C"].length == 1
    assert isinstance(cols["T"], sa.DateTime) and cols["T"].timezone
    assert isinstance(cols["L"], sa.Date)
    assert isinstance(sqlalchemy_type(pa.decimal128(10, 2)), sa.Numeric)
    assert isinstance(sqlalchemy_type(pa.list_(pa.int32())), sa.types.NullType)


def test_core_select_with_parameters(engine: sa.Engine, trades: str, data: pa.Table) -> None:
    t = _t(trades)
    q = (sa.select(t.c.Sym, sa.func.sum(t.c.Qty).label("Qty"), sa.func.count().label("N"))
         .where(t.c.Px > 50.5).where(t.c.Sym != "GOOG").group_by(t.c.Sym).order_by(t.c.Sym))
    with engine.connect() as conn:
        rows = conn.execute(q).fetchall()
    kept = data.filter(pc.and_(pc.greater(data["Px"], 50.5), pc.not_equal(data["Sym"], "GOOG")))
    expected = kept.group_by("Sym").aggregate([("Qty", "sum"), ("Qty", "count")]).sort_by("Sym")
    assert [tuple(r) for r in rows] == list(zip(expected["Sym"].to_pylist(), expected["Qty_sum"].to_pylist(),
                                                expected["Qty_count"].to_pylist()))


def test_limit_and_text_with_named_parameters(engine: sa.Engine, trades: str, data: pa.Table) -> None:
    t = _t(trades)
    with engine.connect() as conn:
        top = conn.execute(sa.select(t.c.Id, t.c.Px).order_by(t.c.Px.desc(), t.c.Id).limit(5)).fetchall()
        by_sym = conn.execute(sa.text(f"SELECT Id FROM {trades} WHERE Sym = :s AND Ok = :ok ORDER BY Id"),
                              {"s": "MSFT", "ok": True}).scalars().all()
    ordered = data.sort_by([("Px", "descending"), ("Id", "ascending")]).slice(0, 5)
    assert [tuple(r) for r in top] == list(zip(ordered["Id"].to_pylist(), ordered["Px"].to_pylist()))
    mask = pc.and_(pc.equal(data["Sym"], "MSFT"), data["Ok"])
    assert by_sym == data.filter(mask)["Id"].to_pylist()


def test_pandas_read_sql(engine: sa.Engine, trades: str, data: pa.Table) -> None:
    t = _t(trades)
    df = pd.read_sql(sa.select(t.c.Id, t.c.Sym, t.c.Px).where(t.c.Qty < 10).order_by(t.c.Id), engine)
    expected = data.filter(pc.less(data["Qty"], 10)).select(["Id", "Sym", "Px"]).to_pandas()
    pd.testing.assert_frame_equal(df.reset_index(drop=True), expected, check_dtype=False)
    df2 = pd.read_sql(f"SELECT Sym, MAX(Px) AS Hi FROM {trades} GROUP BY Sym ORDER BY Sym", engine)
    hi = data.group_by("Sym").aggregate([("Px", "max")]).sort_by("Sym")
    assert df2["Sym"].tolist() == hi["Sym"].to_pylist() and df2["Hi"].tolist() == hi["Px_max"].to_pylist()


@pytest.mark.parametrize("make, words", [
    (lambda t: sa.select(t.c.Id).select_from(t.outerjoin(_t("u"), t.c.Id == _t("u").c.Id)), "LEFT OUTER JOIN"),
    (lambda t: sa.select(t.c.Id).select_from(t.join(_t("u"), t.c.Id == _t("u").c.Id, full=True)), "FULL OUTER"),
    (lambda t: sa.select(t.c.Id).offset(3), "OFFSET"),
    (lambda t: sa.select(t.c.Sym).group_by(t.c.Sym).having(sa.func.sum(t.c.Qty) > 5), "HAVING"),
    (lambda t: sa.select(t.c.Id).where(t.c.Sym.like("A%")), "LIKE"),
    (lambda t: sa.select(t.c.Id).where(t.c.Sym.ilike("a%")), "LIKE"),
    (lambda t: sa.select(t.c.Qty % 2), "modulo"),
    (lambda t: sa.select(t.c.Sym.concat("x")), "concatenation"),
    (lambda t: sa.select(sa.case((t.c.Qty > 5, 1), else_=0)), "CASE"),
    (lambda t: sa.select(sa.func.row_number().over(order_by=t.c.Id)), "window functions"),
    (lambda t: sa.select(t.c.Id).intersect(sa.select(t.c.Id)), "INTERSECT"),
    (lambda t: sa.select(t.c.Id).except_(sa.select(t.c.Id)), "EXCEPT"),
    (lambda t: sa.select(sa.func.lower(t.c.Sym)), "LOWER"),
    (lambda t: sa.select(sa.func.coalesce(t.c.Qty, 0)), "COALESCE"),
    (lambda t: sa.select(sa.func.count(t.c.Qty)), "COUNT of a column"),
    (lambda t: sa.insert(t).values(Id=1), "INSERT"),
    (lambda t: sa.update(t).values(Id=1), "UPDATE"),
    (lambda t: sa.delete(t), "DELETE"),
])
def test_refused_before_a_round_trip(engine: sa.Engine, make: Any, words: str) -> None:
    with pytest.raises(exc.CompileError, match=words):
        make(_t("t")).compile(engine)


def test_what_runs_still_compiles(engine: sa.Engine, trades: str) -> None:
    t = _t(trades)
    union = sa.union_all(sa.select(t.c.Id).where(t.c.Id < 2), sa.select(t.c.Id).where(t.c.Id > N - 3))
    with engine.connect() as conn:
        got = sorted(conn.execute(union).scalars().all())
        n = conn.execute(sa.select(sa.func.count(sa.distinct(t.c.Sym)).label("N"))).scalar()
    assert got == [0, 1, N - 2, N - 1] and n == 3


def test_url_options(server) -> None:
    d = DeephavenDialect()
    _, kw = d.create_connect_args(sa.engine.make_url("deephaven://alice:s3cret@db.example:1234?use_tls=true"))
    assert kw == {"host": "db.example", "port": 1234, "auth_type": "Basic", "auth_token": "alice:s3cret",
                  "use_tls": True}
    _, kw = d.create_connect_args(sa.engine.make_url("deephaven://h?auth_type=Anonymous&never_timeout=false"))
    assert kw == {"host": "h", "port": 10000, "auth_type": "Anonymous", "never_timeout": False}
    with pytest.raises(exc.ArgumentError, match="unknown option colour"):
        d.create_connect_args(sa.engine.make_url("deephaven://h?colour=red"))
    # connect_args reach the Session
    e = sa.create_engine(f"deephaven://{server.host}:{server.port}", connect_args={"session_type": "python"})
    try:
        with e.connect() as conn:
            assert conn.execute(sa.text("SELECT 6 * 7 AS X")).scalar() == 42
            assert e.dialect.server_version_info is not None and e.dialect.server_version_info[0] >= 0
    finally:
        e.dispose()
