"""pydeephaven.dbapi against the real server: a PEP 249 conformance check (module attributes,
every Connection and Cursor method and attribute, the error classes and their hierarchy, the type
objects and constructors), and parameters bound on the client: values of each type come back as
themselves, injection attempts come back as data, placeholders inside literals, names and comments
are left alone."""

from __future__ import annotations

import datetime
import decimal
import math
import uuid
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pydeephaven import DHError, NotFoundError, Session, dbapi

N = 1_000


@pytest.fixture
def data() -> pa.Table:
    rng = np.random.default_rng(20261202)
    return pa.table({
        "Id": np.arange(N, dtype=np.int64),
        "Sym": pa.array(rng.choice(["AAPL", "MSFT", "GOOG", "O'NEIL"], N)),
        "Qty": rng.integers(1, 500, N).astype(np.int32),
        "Px": np.round(rng.uniform(10, 500, N), 2),
    })


@pytest.fixture
def trades(session: Session, data: pa.Table) -> Iterator[str]:
    name = f"dbapi_{uuid.uuid4().hex[:10]}"
    with session.import_table(data) as t, session.bound(name, t):
        yield name


@pytest.fixture
def conn(session: Session) -> Iterator[dbapi.Connection]:
    with dbapi.connect(session=session) as c:
        yield c


# -- the module -------------------------------------------------------------------------------------


def test_module_globals() -> None:
    assert dbapi.apilevel == "2.0"
    assert dbapi.threadsafety in (0, 1, 2, 3)
    assert dbapi.paramstyle in ("qmark", "numeric", "named", "format", "pyformat")
    assert dbapi.paramstyle == "qmark"


def test_exception_hierarchy() -> None:
    assert issubclass(dbapi.Warning, Exception) and not issubclass(dbapi.Warning, dbapi.Error)
    assert issubclass(dbapi.Error, Exception)
    assert issubclass(dbapi.Error, DHError)  # every failure of the client is a DHError
    assert issubclass(dbapi.InterfaceError, dbapi.Error)
    assert issubclass(dbapi.DatabaseError, dbapi.Error)
    for sub in (dbapi.DataError, dbapi.OperationalError, dbapi.IntegrityError, dbapi.InternalError,
                dbapi.ProgrammingError, dbapi.NotSupportedError):
        assert issubclass(sub, dbapi.DatabaseError), sub
    assert not issubclass(dbapi.InterfaceError, dbapi.DatabaseError)


def test_type_objects_and_constructors() -> None:
    assert dbapi.STRING == pa.string() and pa.string() == dbapi.STRING
    assert dbapi.NUMBER == pa.int64() and dbapi.NUMBER == pa.float32() and dbapi.NUMBER == pa.bool_()
    assert dbapi.NUMBER != pa.string() and dbapi.STRING != pa.int32()
    assert dbapi.DATETIME == pa.timestamp("ns", "UTC") and dbapi.DATETIME == pa.date32()
    assert dbapi.BINARY == pa.binary() and dbapi.BINARY != pa.string()
    assert dbapi.ROWID != pa.int64()
    assert dbapi.Date(2024, 1, 2) == datetime.date(2024, 1, 2)
    assert dbapi.Time(3, 4, 5) == datetime.time(3, 4, 5)
    assert dbapi.Timestamp(2024, 1, 2, 3, 4, 5) == datetime.datetime(2024, 1, 2, 3, 4, 5)
    ticks = 1_700_000_000
    local = datetime.datetime.fromtimestamp(ticks)
    assert dbapi.TimestampFromTicks(ticks) == local
    assert dbapi.DateFromTicks(ticks) == local.date()
    assert dbapi.TimeFromTicks(ticks) == local.time()
    assert dbapi.Binary(b"\x00\x01") == b"\x00\x01"


# -- connections --------------------------------------------------------------------------------------


def test_connect_makes_and_closes_its_own_session(server, trades: str, data: pa.Table) -> None:
    conn = dbapi.connect(server.host, server.port)
    try:
        own = conn.session
        assert own.is_alive
        rows = conn.cursor().execute(f"SELECT COUNT(*) AS N FROM {trades}").fetchall()
        assert rows == [(N,)]
        conn.commit()  # no transactions: nothing to do
        with pytest.raises(dbapi.NotSupportedError, match="no transactions"):
            conn.rollback()
    finally:
        conn.close()
    assert conn.closed and not own.is_alive
    conn.close()  # idempotent
    for call in (conn.cursor().execute, ):
        with pytest.raises(dbapi.InterfaceError, match="connection is closed"):
            call("SELECT 1 AS X")
    with pytest.raises(dbapi.InterfaceError, match="connection is closed"):
        conn.commit()


def test_connect_on_a_session_leaves_it_open(session: Session) -> None:
    with dbapi.connect(session=session) as conn:
        assert conn.session is session
        assert conn.execute("SELECT 6 * 7 AS X").fetchone() == (42,)
    assert session.is_alive
    with pytest.raises(dbapi.ProgrammingError, match="either session= or"):
        dbapi.connect("localhost", session=session)
    with pytest.raises(dbapi.ProgrammingError, match="must be a pydeephaven Session"):
        dbapi.connect(session="not a session")  # type: ignore[arg-type]


def test_connect_failure_is_operational_and_unreachable() -> None:
    from pydeephaven.embedded import free_port

    with pytest.raises(dbapi.OperationalError) as info:
        dbapi.connect("127.0.0.1", free_port())
    from pydeephaven import UnreachableError

    assert isinstance(info.value, UnreachableError)
    assert isinstance(info.value.__cause__, UnreachableError)


def test_connection_exposes_error_classes(conn: dbapi.Connection) -> None:
    for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
                 "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError"):
        assert getattr(conn, name) is getattr(dbapi, name)


# -- cursors ------------------------------------------------------------------------------------------


def test_description_and_rowcount(conn: dbapi.Connection, trades: str) -> None:
    cur = conn.cursor()
    assert cur.description is None and cur.rowcount == -1 and cur.arraysize == 1
    cur.execute(f"SELECT Id, Sym, Qty, Px FROM {trades} WHERE Qty > 250")
    assert [d[0] for d in cur.description] == ["Id", "Sym", "Qty", "Px"]
    assert all(len(d) == 7 for d in cur.description)
    codes = [d[1] for d in cur.description]
    assert codes[0] == dbapi.NUMBER and codes[1] == dbapi.STRING and codes[2] == dbapi.NUMBER
    assert codes[3] == dbapi.NUMBER and codes[1] != dbapi.NUMBER
    assert codes == [pa.int64(), pa.string(), pa.int32(), pa.float64()]
    assert cur.rowcount > 0 and cur.rownumber == 0


def test_fetch_methods_walk_the_result_in_order(conn: dbapi.Connection, trades: str, data: pa.Table) -> None:
    expected = data.filter(pc.greater(data["Qty"], 100)).sort_by("Id")
    rows = list(zip(*(expected[c].to_pylist() for c in ("Id", "Sym", "Qty", "Px"))))
    cur = conn.cursor()
    cur.execute(f"SELECT Id, Sym, Qty, Px FROM {trades} WHERE Qty > ? ORDER BY Id", (100,))
    assert cur.rowcount == len(rows)
    assert cur.fetchone() == rows[0]
    assert cur.fetchmany() == rows[1:2]  # arraysize 1
    cur.arraysize = 3
    assert cur.fetchmany() == rows[2:5]
    assert cur.fetchmany(4) == rows[5:9]
    assert cur.rownumber == 9
    assert next(iter(cur)) == rows[9]
    rest = cur.fetchall()
    assert rest == rows[10:]
    assert cur.fetchone() is None and cur.fetchmany(5) == [] and cur.fetchall() == []


def test_iteration_and_arrow_and_pandas(conn: dbapi.Connection, trades: str, data: pa.Table) -> None:
    cur = conn.cursor()
    cur.execute(f"SELECT Id, Px FROM {trades} WHERE Sym = ? ORDER BY Id", ("O'NEIL",))
    expected = data.filter(pc.equal(data["Sym"], "O'NEIL")).sort_by("Id").select(["Id", "Px"])
    first_two = [next(cur), next(cur)]
    assert first_two == list(zip(expected["Id"].to_pylist()[:2], expected["Px"].to_pylist()[:2]))
    rest = cur.fetch_arrow_table()
    assert rest.select(["Id", "Px"]).to_pylist() == expected.slice(2).to_pylist()
    assert list(cur) == []
    df = conn.cursor().execute(f"SELECT Id, Px FROM {trades} WHERE Sym = ? ORDER BY Id", ("O'NEIL",)).fetch_df()
    assert df["Id"].tolist() == expected["Id"].to_pylist()
    assert df["Px"].tolist() == expected["Px"].to_pylist()


def test_executemany_runs_each(conn: dbapi.Connection, trades: str, data: pa.Table) -> None:
    cur = conn.cursor()
    syms = ["AAPL", "MSFT", "NOPE"]
    cur.executemany(f"SELECT Id FROM {trades} WHERE Sym = ?", [(s,) for s in syms])
    expected = sum(pc.sum(pc.equal(data["Sym"], s)).as_py() or 0 for s in syms)
    assert cur.rowcount == expected
    assert cur.description is None
    with pytest.raises(dbapi.ProgrammingError, match="no result to fetch"):
        cur.fetchall()


def test_setsizes_are_accepted_and_close(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    cur.setinputsizes([None])
    cur.setoutputsize(100)
    cur.setoutputsize(100, 0)
    assert cur.connection is conn and cur.lastrowid is None
    cur.execute("SELECT 1 AS X")
    cur.close()
    cur.close()
    with pytest.raises(dbapi.InterfaceError, match="cursor is closed"):
        cur.fetchall()
    with pytest.raises(dbapi.InterfaceError, match="cursor is closed"):
        cur.execute("SELECT 1 AS X")
    with conn.cursor() as c2:
        c2.execute("SELECT 2 AS X")
    with pytest.raises(dbapi.InterfaceError):
        c2.fetchone()


def test_errors_are_pep_and_typed(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    missing = f"missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(dbapi.ProgrammingError, match=missing) as info:
        cur.execute(f"SELECT * FROM {missing}")
    assert isinstance(info.value, NotFoundError) and info.value.code == "NOT_FOUND"
    assert isinstance(info.value.__cause__, NotFoundError)
    with pytest.raises(dbapi.ProgrammingError, match="LOWER"):
        cur.execute("SELECT LOWER('ab') AS X")
    with pytest.raises(dbapi.ProgrammingError, match="LEFT JOIN is refused"):
        cur.execute("SELECT * FROM a LEFT JOIN b ON a.x = b.x")
    assert cur.description is None  # the failed query left no result
    with pytest.raises(dbapi.ProgrammingError, match="no result to fetch"):
        cur.fetchone()


# -- parameters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    True, False, 0, -5, 2**63 - 1, 1.5, -0.1, 0.1 + 0.2, 1e300, 5e-324, -0.0, float("nan"), float("inf"),
    -float("inf"), decimal.Decimal("12"), np.int64(7), np.float32(0.5), np.bool_(True),
    "plain", "a", "é", "☃", "", "x" * 1000,
])
def test_parameter_values_come_back_as_themselves(conn: dbapi.Connection, value: object) -> None:
    (got, n), = conn.cursor().execute("SELECT ? AS V, 1 AS N", (value,)).fetchall()
    assert n == 1
    if isinstance(value, float) and math.isnan(value):
        assert isinstance(got, float) and math.isnan(got)
    else:
        assert got == value and type(got) in (type(value), int, float, bool, str) or got == value
        assert got == value
    if isinstance(value, float):
        assert math.copysign(1.0, got) == math.copysign(1.0, value)


EVIL = [
    "'; DROP TABLE t; --", "' OR '1'='1", "' OR 1=1 --", "a\\'b", "\\", "\\'", "'", "''", "x'' y",
    "/* c */ ?", "*/ SELECT 1 /*", "-- ?\n", "line\nbreak\r\n", "tab\there", 'dq " x', '"', "?", "??",
    "U&'x'", "X'00'", "é ü ß", "☃ snow 😀 '\\", "a\x00b", "\x1b[31mred", "\u202eright-to-left", "; SELECT 2",
]


@pytest.mark.parametrize("evil", EVIL)
def test_injection_attempts_come_back_as_data(conn: dbapi.Connection, trades: str, evil: str) -> None:
    cur = conn.cursor()
    cur.execute("SELECT ? AS V, 'k?' AS W", (evil,))
    assert cur.fetchall() == [(evil, "k?")]
    # in a WHERE clause the value matches nothing (no row has it), and the query stays one query
    if all(ord(c) <= 0xFF for c in evil):  # the server cannot compare a column with a U&'' literal
        cur.execute(f"SELECT COUNT(*) AS N FROM {trades} WHERE Sym = ?", (evil,))
        assert cur.fetchall() == []  # an aggregate over no rows: no row on this server


def test_a_matching_parameter_selects_the_rows(conn: dbapi.Connection, trades: str, data: pa.Table) -> None:
    cur = conn.cursor()
    cur.execute(f"SELECT Id FROM {trades} WHERE Sym = ? AND Qty >= ? AND Px < ? ORDER BY Id", ("O'NEIL", 100, 250.5))
    mask = pc.and_(pc.and_(pc.equal(data["Sym"], "O'NEIL"), pc.greater_equal(data["Qty"], 100)),
                   pc.less(data["Px"], 250.5))
    assert [r[0] for r in cur.fetchall()] == data.filter(mask).sort_by("Id")["Id"].to_pylist()


def test_placeholders_in_literals_names_and_comments_are_left_alone() -> None:
    sql = "SELECT '?' AS \"a?\", ? AS b -- ?\n /* ? */ FROM t WHERE x = ? AND y = 'it''s ?'"
    assert dbapi.bind(sql, [1, "z"]) == (
        "SELECT '?' AS \"a?\", 1 AS b -- ?\n /* ? */ FROM t WHERE x = 'z' AND y = 'it''s ?'")
    assert dbapi.bind("SELECT 1 AS X") == "SELECT 1 AS X"


@pytest.mark.parametrize("value, text", [
    (None, "NULL"), (True, "TRUE"), (1.5, "1.5E0"), (1e-7, "1E-07"), (float("nan"), "CAST('NaN' AS DOUBLE)"),
    (float("-inf"), "CAST('-Infinity' AS DOUBLE)"), ("it's", "'it''s'"), ("☃'\\", "U&'\\2603''\\\\'"),
    ("😀", "U&'\\D83D\\DE00'"), (b"\x00\xff", "X'00FF'"), (decimal.Decimal("1.250"), "1.250"),
    (datetime.date(2024, 1, 2), "DATE '2024-01-02'"),
    (datetime.datetime(2024, 1, 2, 3, 4, 5), "TIMESTAMP '2024-01-02 03:04:05'"),
    (datetime.datetime(2024, 1, 2, 3, 4, 5, 120, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
     "TIMESTAMP '2024-01-02 01:04:05.000120'"),
    (datetime.time(3, 4, 5, 6), "TIME '03:04:05.000006'"),
])
def test_literals_of_each_type(value: object, text: str) -> None:
    assert dbapi.literal(value) == text


def test_bad_parameters_are_refused_before_the_server(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    with pytest.raises(dbapi.ProgrammingError, match="1 placeholder .* but 2 parameters"):
        cur.execute("SELECT ? AS X", (1, 2))
    with pytest.raises(dbapi.ProgrammingError, match="2 placeholders .* but 0 parameters"):
        cur.execute("SELECT ? AS X, ? AS Y")
    with pytest.raises(dbapi.ProgrammingError, match="must be a sequence .*qmark.* got dict"):
        cur.execute("SELECT ? AS X", {"x": 1})
    with pytest.raises(dbapi.ProgrammingError, match="must be a sequence .* got str"):
        cur.execute("SELECT ? AS X", "a")
    with pytest.raises(dbapi.DataError, match="outside the server's 64-bit integers"):
        cur.execute("SELECT ? AS X", (2**63,))
    with pytest.raises(dbapi.DataError, match="is its null"):
        cur.execute("SELECT ? AS X", (-(2**63),))
    with pytest.raises(dbapi.DataError, match="no SQL literal"):
        cur.execute("SELECT ? AS X", (decimal.Decimal("NaN"),))
    with pytest.raises(dbapi.ProgrammingError, match="type object is not supported"):
        cur.execute("SELECT ? AS X", (object(),))
    with pytest.raises(dbapi.ProgrammingError, match="unterminated string"):
        cur.execute("SELECT 'abc ? AS X", (1,))
    with pytest.raises(dbapi.ProgrammingError, match="unterminated comment"):
        cur.execute("SELECT 1 AS X /* ?", (1,))


@pytest.mark.parametrize("value, reason", [
    (decimal.Decimal("1.25"), "DECIMAL"), (b"\x00\xff", "BINARY"), (datetime.date(2024, 1, 2), "DATE"),
    (datetime.time(1, 2, 3), "TIME"), (datetime.datetime(2024, 1, 2, 3, 4, 5), "could not be parsed"),
])
def test_literals_the_server_refuses_say_why(conn: dbapi.Connection, value: object, reason: str) -> None:
    """The 42.7 server has no literals of these types (the README's table): the error carries its reason."""
    with pytest.raises(dbapi.ProgrammingError, match=reason):
        conn.cursor().execute("SELECT ? AS V", (value,))
