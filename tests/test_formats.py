"""Output formats of server tables: pandas, polars, CSV, JSON, text and HTML renderings, compared
with pyarrow's/pandas' own reading of the data that was uploaded (not with the client's output)."""

from __future__ import annotations

import base64
import io
import json
import sys
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from pydeephaven import DHError, Session, formats
from tests.support.examples import run_example


@pytest.fixture
def data() -> pa.Table:
    rng = np.random.default_rng(7)
    n = 25
    ints = rng.integers(-1000, 1000, n)
    return pa.table({
        "I": pa.array(ints, mask=np.arange(n) % 7 == 3),
        "F": np.round(rng.normal(size=n), 6),
        "S": pa.array([f"s{i}, \"q\"" if i % 5 else None for i in range(n)]),
        "B": pa.array([bool(i % 2) for i in range(n)]),
    })


def test_to_pandas_default_and_backends(session: Session, data: pa.Table) -> None:
    with session.import_table(data) as t:
        df = t.to_pandas()
        want = data.to_pandas()
        assert isinstance(df, pd.DataFrame)
        assert list(df.columns) == data.column_names
        pd.testing.assert_frame_equal(df, want)
        nullable = t.to_pandas(dtype_backend="numpy_nullable")
        assert str(nullable["I"].dtype) == "Int64"
        assert nullable["I"].isna().tolist() == [v is None for v in data["I"].to_pylist()]
        assert nullable["I"].dropna().tolist() == [v for v in data["I"].to_pylist() if v is not None]
        arrowed = t.to_pandas(dtype_backend="pyarrow")
        assert isinstance(arrowed["S"].dtype, pd.ArrowDtype)
        assert [None if pd.isna(v) else v for v in arrowed["S"].tolist()] == data["S"].to_pylist()
        with pytest.raises(DHError, match="dtype_backend"):
            t.to_pandas(dtype_backend="nope")


def test_to_polars(session: Session, data: pa.Table) -> None:
    pl = pytest.importorskip("polars")
    with session.import_table(data) as t:
        df = t.to_polars()
    assert isinstance(df, pl.DataFrame)
    assert df.columns == data.column_names
    assert df.to_dict(as_series=False) == data.to_pydict()


@pytest.mark.parametrize("module, method", [("pandas", "to_pandas"), ("polars", "to_polars")])
def test_missing_extra_names_the_pip_extra(session: Session, data: pa.Table, monkeypatch: pytest.MonkeyPatch,
                                           module: str, method: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes "import module" fail as if not installed
    with session.import_table(data) as t:
        gets = session.stats.calls.get("DoGet:to_arrow", 0)
        with pytest.raises(DHError) as err:
            getattr(t, method)()
        assert f"pip install 'pydeephaven[{module}]'" in str(err.value)
        assert session.stats.calls.get("DoGet:to_arrow", 0) == gets  # refused before fetching anything
        with pytest.raises(DHError, match=rf"pydeephaven\[{module}\]"):
            session.sql("SELECT 1 AS x", module)


def test_to_csv_text_round_trips(session: Session, data: pa.Table) -> None:
    with session.import_table(data) as t:
        text = t.to_csv()
    assert isinstance(text, str)
    back = pacsv.read_csv(io.BytesIO(text.encode()), convert_options=pacsv.ConvertOptions(
        column_types=data.schema, strings_can_be_null=True))
    assert back.to_pydict() == data.to_pydict()
    assert text.splitlines()[0] == '"I","F","S","B"'


def test_to_csv_options(session: Session) -> None:
    with session.import_table(pa.table({"A": [1, 2], "B": ["x", "y"]})) as t:
        assert t.to_csv(delimiter=";", include_header=False).splitlines() == ['1;"x"', '2;"y"']


def test_to_json_records_and_lines(session: Session, data: pa.Table) -> None:
    with session.import_table(data) as t:
        records = json.loads(t.to_json())
        lines = t.to_json(lines=True)
    assert records == data.to_pylist()
    assert [json.loads(line) for line in lines.splitlines()] == data.to_pylist()


def test_server_types_in_text_formats(session: Session) -> None:
    name = f"types_{uuid.uuid4().hex[:8]}"
    session.run_script(
        "from deephaven import empty_table\n"
        f"{name} = empty_table(3).update(['C = (char)(65 + ii)', "
        "\"T = '2024-01-02T03:04:05.123456789Z' + ii * SECOND\", 'Arr = new int[]{(int)ii, 7}', "
        "'F = (float)(ii / 4.0)', 'D = ii == 1 ? NULL_DOUBLE : ii * 1.5', 'Bin = new byte[]{(byte)ii, 65}'])")
    try:
        t = session.open_table(name)
        raw = t.to_arrow()
        assert raw.schema.field("C").type == pa.uint16()  # a char arrives as uint16 plus metadata
        records = json.loads(t.to_json())
        csv_rows = pacsv.read_csv(io.BytesIO(t.to_csv().encode()),
                                  convert_options=pacsv.ConvertOptions(column_types={
                                      n: pa.string() for n in raw.column_names})).to_pylist()
        text = str(t)
    finally:
        session.unbind(name)
    stamps = ["2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:06.123456789Z", "2024-01-02T03:04:07.123456789Z"]
    binary = [base64.b64encode(bytes([i, 65])).decode() for i in range(3)]
    assert [r["C"] for r in records] == ["A", "B", "C"]
    assert [r["T"] for r in records] == stamps
    assert [r["Arr"] for r in records] == [[0, 7], [1, 7], [2, 7]]
    assert [r["F"] for r in records] == [0.0, 0.25, 0.5]
    assert [r["D"] for r in records] == [0.0, None, 3.0]
    assert [r["Bin"] for r in records] == binary
    assert [r["C"] for r in csv_rows] == ["A", "B", "C"]
    assert [r["T"] for r in csv_rows] == [s.replace("T", " ") for s in stamps]
    assert [json.loads(r["Arr"]) for r in csv_rows] == [[0, 7], [1, 7], [2, 7]]
    assert [r["Bin"] for r in csv_rows] == binary
    assert [r["D"] for r in csv_rows] == ["0", "", "3"]  # a null is an empty field
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[1].split("|")[1].strip() == "char"
    assert [r.split("|")[1].strip() for r in rows[2:]] == ["A", "B", "C"]
    assert "2024-01-02 03:04:06.123456789Z" in text


def _cells(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]


def test_str_shows_schema_size_and_first_rows(session: Session, data: pa.Table) -> None:
    with session.import_table(data) as t:
        text = str(t)
        short = t.to_string(max_rows=3)
    lines = text.splitlines()
    assert lines[0] == "Table (static): 25 rows x 4 columns"
    cells = _cells(text)
    assert cells[0] == ["I", "F", "S", "B"]
    assert cells[1] == ["int64", "double", "string", "bool"]
    body = cells[2:]
    assert len(body) == 10
    for row, want in zip(body, data.slice(0, 10).to_pylist()):
        assert row[0] == ("null" if want["I"] is None else str(want["I"]))
        assert float(row[1]) == want["F"]
        assert row[2] == ("null" if want["S"] is None else want["S"])
        assert row[3] == str(want["B"])
    assert lines[-1] == "(10 of 25 rows shown)"
    assert len(_cells(short)) == 2 + 3 and short.splitlines()[-1] == "(3 of 25 rows shown)"


def test_repr_and_str_make_no_round_trip_for_pending_or_closed(session: Session, data: pa.Table) -> None:
    t = session.import_table(data)
    with session.pipelined():
        pending = t.where("I > 0")
        calls = session.stats.total_calls
        r1, s1, h1 = repr(pending), str(pending), pending._repr_html_()
        assert session.stats.total_calls == calls
        assert "pending" in r1 and "pending" in s1 and "pending" in h1
    t.close()
    calls = session.stats.total_calls
    assert "closed" in repr(t) and "closed" in str(t) and "closed" in t._repr_html_()
    assert session.stats.total_calls == calls
    pending.close()


def test_str_when_rows_cannot_be_fetched(server, data: pa.Table) -> None:
    s = Session(server.host, server.port)
    t = s.import_table(data)
    s.close()
    text = str(t)  # the session is gone: no rows, no exception, no call
    assert text == repr(t)


def test_repr_html(session: Session) -> None:
    with session.import_table(pa.table({"Tag": ["<b>&", "x"], "V": [1, 2]})) as t:
        page = t._repr_html_()
    assert page.startswith("<table>") and "</table>" in page
    assert "<caption>Table (static): 2 rows x 2 columns</caption>" in page
    assert "<td>&lt;b&gt;&amp;</td>" in page and "<b>&" not in page
    assert "<td>1</td>" in page and "<td>2</td>" in page


def test_refreshing_table_renders(session: Session) -> None:
    with session.time_table("PT0.1S") as tt:
        text = str(tt)
    assert text.splitlines()[0].startswith("Table (refreshing):")
    assert _cells(text)[0] == ["Timestamp"]


def test_to_format_and_unknown_format(session: Session, data: pa.Table) -> None:
    with session.import_table(data) as t:
        as_arrow = t.to_format("arrow")
        assert isinstance(as_arrow, pa.Table) and as_arrow.to_pydict() == data.to_pydict()
        assert json.loads(t.to_format("json")) == data.to_pylist()
        assert t.to_format("pretty", max_rows=2).splitlines()[-1] == "(2 of 25 rows shown)"
        with pytest.raises(DHError, match="unknown fmt 'yaml'"):
            t.to_format("yaml")


def test_formats_module_is_pure() -> None:
    """The conversions need no server: the asyncio API and sql share them."""
    tab = pa.table({"A": [1, None], "B": [float("nan"), 2.5]})
    assert json.loads(formats.convert(tab, "json")) == [{"A": 1, "B": None}, {"A": None, "B": 2.5}]
    assert formats.convert(tab, "csv") == '"A","B"\n1,nan\n,2.5\n'
    assert formats.convert(tab, "arrow") is tab
    assert formats.convert(tab, "pretty", title="T").splitlines()[0] == "T: 2 rows x 2 columns"


def test_example_formats(server) -> None:

    proc = run_example(server, "formats")
    out = proc.stdout.splitlines()
    assert out[0] == "Table (static): 30 rows x 3 columns"
    body = _cells(proc.stdout)[2:]
    assert body == [[str(i), str(i * i), str(i % 2 == 0)] for i in range(10)]
    assert "(10 of 30 rows shown)" in out
    i = out.index('"Id","Sq","Even"')
    assert out[i + 1:i + 4] == [f"{k},{k * k},{str(k % 2 == 0).lower()}" for k in range(3)]
    assert json.loads(out[i + 4]) == [{"Id": k, "Sq": k * k, "Even": k % 2 == 0} for k in range(3)]
    assert out[i + 5] == str(sum(k * k for k in range(3)))


def test_json_escaping_and_special_values(session: Session) -> None:
    strings = ['q"uote', "back\\slash", "new\nline\ttab", "ctl\x01\x1f", "uni é 中 \u2028", "", None]
    floats = [1.5, float("nan"), float("inf"), -0.0, 1e-7, 1e300, None]
    data = pa.table({"S": strings, "F": floats, "L": pa.array([[1, 2], [], None, [3], [4, 5], [6], [7]]),
                     "weird \"key\"": list(range(7))})
    want = [{"S": s, "F": (f if f is not None and np.isfinite(f) else None), "L": lst, "weird \"key\"": i}
            for i, (s, f, lst) in enumerate(zip(strings, floats, data["L"].to_pylist()))]
    assert json.loads(formats.to_json_text(data)) == want
    assert [json.loads(x) for x in formats.to_json_text(data, lines=True).splitlines()] == want
    assert json.loads(formats.to_json_text(data, indent=2)) == want
    with session.import_table(data.drop_columns(["weird \"key\""])) as t:  # the same through the server
        assert json.loads(t.to_json()) == [{k: v for k, v in r.items() if k != "weird \"key\""} for r in want]


def test_to_string_takes_a_title_of_the_callers(session: Session, data: pa.Table) -> None:
    with session.import_table(data) as t:
        text = t.to_string(max_rows=2, title="Trades")
    assert text.splitlines()[0] == "Trades: 25 rows x 4 columns"
    assert len(_cells(text)) == 2 + 2
