"""Every failure a clear DHError, with its true cause and one prefix; text output safe for a
terminal. Against the real test server, sync and async."""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from pydeephaven import DHError, Session, formats
from pydeephaven import updateby as uby
from pydeephaven.aio import AsyncSession
from pydeephaven.embedded import EmbeddedServer
from pydeephaven.table import Table
from tests.support.cli import run_on_terminal

ROOT = Path(__file__).resolve().parent.parent
BIG = 2**63


# -- 1. every failure a DHError ---------------------------------------------------------------------


def _table_cases(t: Any) -> list[tuple[str, Callable[[], Any], str]]:
    return [
        ("head", lambda: t.head(BIG), "num_rows must be <= 9223372036854775807"),
        ("tail", lambda: t.tail(BIG), "num_rows must be <= 9223372036854775807"),
        ("slice stop", lambda: t.slice(0, BIG), "stop must be <="),
        ("slice start", lambda: t.slice(-BIG - 1, 0), "start must be >= -9223372036854775808"),
        ("head_by", lambda: t.head_by(BIG, "A"), "head_by: num_rows"),
        ("tail_by", lambda: t.tail_by(BIG, "A"), "tail_by: num_rows"),
        ("join bits", lambda: t.join(t, reserve_bits=2**40), "reserve_bits"),
        ("update_by time", lambda: t.update_by(uby.rolling_sum_time("T", "A", rev_time=BIG)), "rev_time"),
    ]


def _check_message(err: DHError, needle: str) -> None:
    assert needle in str(err), str(err)
    assert "ValueError" not in str(err) and "TypeError" not in str(err)


def test_out_of_range_ints_are_dherrors(session: Session) -> None:
    t = session.empty_table(3).update(["A = i", "T = now()"])
    for _name, call, needle in _table_cases(t):
        with pytest.raises(DHError) as e:
            call()
        _check_message(e.value, needle)
    with pytest.raises(DHError, match="num_rows"):
        session.query(t).head(BIG)
    for call, needle in [(lambda: session.empty_table(BIG), "empty_table: size must be <="),
                         (lambda: session.empty_table(-1), "empty_table: size must be >= 0"),
                         (lambda: session.time_table(BIG), "time_table: period must be <="),
                         (lambda: session.time_table(0), "time_table: period must be >= 1"),
                         (lambda: session.time_table(10**9, start_time=BIG), "start_time must be <=")]:
        with pytest.raises(DHError) as e:
            call()
        _check_message(e.value, needle)
    # the largest value that fits is taken, and means what it says
    assert session.empty_table(5).head(BIG - 1).size == 5


def test_out_of_range_ints_are_dherrors_async(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await (await s.empty_table(3)).update(["A = i", "T = now()"])
        for _name, call, needle in _table_cases(t):
            with pytest.raises(DHError) as e:
                await call()
            _check_message(e.value, needle)
        for call, needle in [(lambda: s.empty_table(BIG), "empty_table: size must be <="),
                             (lambda: s.time_table(BIG), "time_table: period must be <=")]:
            with pytest.raises(DHError) as e:
                await call()
            _check_message(e.value, needle)

    arun(body)


@pytest.mark.parametrize("port, needle", [("abc", "port must be a port number"), (70000, "from 1 to 65535, got 70000"),
                                          (-1, "from 1 to 65535, got -1"), (0, "got 0"), (10.5, "got float")])
def test_bad_ports_are_refused(port: Any, needle: str) -> None:
    with pytest.raises(DHError, match=needle):
        Session(port=port)
    with pytest.raises(DHError, match=needle):
        AsyncSession(port=port)


def test_bad_dh_port_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DH_PORT", "70000")
    with pytest.raises(DHError, match="DH_PORT environment variable must be from 1 to 65535"):
        Session()
    monkeypatch.setenv("DH_PORT", "x1")
    with pytest.raises(DHError, match="DH_PORT"):
        AsyncSession()


def test_port_as_digits_connects(server: EmbeddedServer) -> None:
    with Session(server.host, str(server.port)) as s:
        assert s.port == server.port
        assert s.empty_table(2).size == 2


def test_pem_of_the_wrong_type(server: EmbeddedServer) -> None:
    with pytest.raises(DHError, match="tls_root_certs must be PEM bytes, got int"):
        Session(server.host, server.port, use_tls=True, tls_root_certs=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, needle", [({"client_opts": "bad"}, "client_opts must be a list of (name, value)"),
                                            ({"client_opts": [("a",)]}, "client_opts must be"),
                                            ({"extra_headers": 5}, "extra_headers must be a dict"),
                                            ({"auth_type": 5}, "auth_type must be a non-empty str"),
                                            ({"auth_token": 5}, "auth_token must be a str")])
def test_connection_arguments_of_the_wrong_shape(server: EmbeddedServer, kwargs: dict, needle: str) -> None:
    with pytest.raises(DHError) as e:
        Session(server.host, server.port, **kwargs)
    assert needle in str(e.value)
    with pytest.raises(DHError) as e:
        AsyncSession(server.host, server.port, **kwargs)
    assert needle in str(e.value)
    with Session(server.host, server.port, client_opts=[("grpc.max_receive_message_length", -1)],
                 extra_headers={b"x-test": b"1"}) as s:
        assert s.empty_table(1).size == 1


def _csv(tmp_path: Path) -> Path:
    p = tmp_path / "x.csv"
    p.write_text("A,B\n1,2\n3,4\n")
    return p


def test_import_file_bad_options(session: Session, tmp_path: Path) -> None:
    p = _csv(tmp_path)
    with pytest.raises(DHError, match="unknown option 'bogus'.*skip_rows"):
        session.import_file(p, csv_options={"bogus": 1})
    with pytest.raises(DHError, match="CSV options are not valid"):
        session.import_file(p, csv_options={"skip_rows": "x"})
    with pytest.raises(DHError, match="pass delimiter= instead"):
        session.import_file(p, csv_options={"delimiter": ";"})
    with pytest.raises(DHError, match="unknown encoding 'nope'"):
        session.import_file(p, encoding="nope")
    # a valid option still works
    with session.import_file(p, csv_options={"skip_rows_after_names": 1}) as t:
        assert t.to_arrow().to_pydict() == {"A": [3], "B": [4]}


def test_import_file_bad_options_async(arun, tmp_path: Path) -> None:
    p = _csv(tmp_path)

    async def body(s: AsyncSession) -> None:
        with pytest.raises(DHError, match="unknown option 'bogus'"):
            await s.import_file(p, csv_options={"bogus": 1})
        with pytest.raises(DHError, match="unknown arguments \\['bogus'\\]"):
            await s.import_file(p, bogus=1)

    arun(body)


def test_output_options_are_dherrors(session: Session, tmp_path: Path) -> None:
    t = session.empty_table(3).update("A = i")
    for call, needle in [(lambda: t.to_csv(delimiter="ab"), "delimiter must be one character, got 'ab'"),
                         (lambda: t.to_csv(tmp_path / "o.csv", delimiter="ab"), "delimiter must be one character"),
                         (lambda: t.to_csv(tmp_path / "o.csv", delimiter="\n"), "cannot be '\\n'"),
                         (lambda: t.to_csv(5), "path must be a str or os.PathLike"),
                         (lambda: t.to_format("csv", bogus=1), "unknown option bogus; it takes include_header"),
                         (lambda: t.to_format("pandas", bogus=1), "unknown option bogus"),
                         (lambda: t.to_string(max_rows=-1), "max_rows must be >= 0"),
                         (lambda: t.to_string(bogus=1), "unknown option bogus"),
                         (lambda: session.sql("SELECT 1", "json", bogus=1), "unknown option bogus")]:
        with pytest.raises(DHError) as e:
            call()
        _check_message(e.value, needle)
    assert not (tmp_path / "o.csv").exists()
    assert t.to_csv(delimiter=";", include_header=False) == "0\n1\n2\n"


# -- 2. one prefix per failure ------------------------------------------------------------------------


def _late_text(tmp_path: Path) -> Path:
    p = tmp_path / "late.csv"
    p.write_text("A,B\n" + "".join(f"{i},{i}\n" for i in range(5000)) + "5000,not a number\n")
    return p


def _one_prefix(text: str, op: str) -> None:
    assert text.startswith(op + "("), text
    assert text.count(op + "(") == 1, text
    assert text.count("failed") == 1, text


def test_nested_failures_name_their_op_once(session: Session, tmp_path: Path) -> None:
    p = _late_text(tmp_path)
    with pytest.raises(DHError) as e:
        session.import_file(p, csv_options={"block_size": 4096}, column_types={"B": pa.int64()})
    _one_prefix(str(e.value), "import_file")
    assert "column_types" in str(e.value)
    bad_name = tmp_path / "names.csv"
    bad_name.write_text("my col,x\n1,2\n")
    with pytest.raises(DHError) as e:
        session.import_file(bad_name)
    assert str(e.value).count("import_file(") == 1 and "'my col'" in str(e.value)
    with pytest.raises(DHError) as e:
        session.open_table("no_such_table_here")
    assert str(e.value).count("fetch_table(") == 0 and str(e.value).startswith("open_table('no_such_table_here')")
    assert session.live_exports() == []


def test_nested_failures_name_their_op_once_async(arun, tmp_path: Path) -> None:
    p = _late_text(tmp_path)

    async def body(s: AsyncSession) -> None:
        with pytest.raises(DHError) as e:
            await s.import_file(p, csv_options={"block_size": 4096}, column_types={"B": pa.int64()})
        _one_prefix(str(e.value), "import_file")
        with pytest.raises(DHError) as e:
            await s.open_table("no_such_table_here")
        assert "fetch_table(" not in str(e.value)

    arun(body)


def test_no_dherror_wraps_one_with_its_own_op() -> None:
    """The pattern that repeated prefixes: ``DHError(f"op(...) failed: {e}")`` around a DHError
    that already names op. None is left in the package."""
    import re

    pattern = re.compile(r'raise DHError\(f"(\w+)\(.*failed: \{e\}"\)')
    for path in (ROOT / "pydeephaven").rglob("*.py"):
        if "_proto" in path.parts:
            continue
        assert not pattern.search(path.read_text()), path


# -- 3. SQL outer joins point to what exists ---------------------------------------------------------


@pytest.mark.parametrize("join, method", [("LEFT JOIN", "natural_join"), ("RIGHT OUTER JOIN", "natural_join"),
                                          ("FULL OUTER JOIN", "multi_join")])
def test_sql_outer_join_names_real_methods(session: Session, join: str, method: str) -> None:
    with pytest.raises(DHError) as e:
        session.sql(f"SELECT * FROM a {join} b ON a.K = b.K")
    text = str(e.value)
    assert method in text and "left_outer_join" not in text
    import pydeephaven.table as table_module

    assert hasattr(Table, method) or hasattr(table_module, method)


def test_sql_outer_join_names_real_methods_async(arun) -> None:
    async def body(s: AsyncSession) -> None:
        with pytest.raises(DHError, match="natural_join"):
            await s.sql("SELECT * FROM a LEFT JOIN b ON a.K = b.K")

    arun(body)


# -- 4. iter_batches closed early is not an error -------------------------------------------------------


def test_iter_batches_closed_early_is_not_an_error(session: Session) -> None:
    t = session.empty_table(3_000_000).update("A = i")
    before = session.stats.errors
    it = t.iter_batches()
    first = next(it)
    assert first.num_rows > 0
    it.close()
    assert session.stats.errors == before
    assert session.stats.calls["DoGet:iter_batches"] >= 1
    assert sum(b.num_rows for b in t.iter_batches()) == 3_000_000  # the table is still readable


def test_iter_batches_closed_early_is_not_an_error_async(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await (await s.empty_table(3_000_000)).update("A = i")
        before = s.stats.errors
        stream = t.iter_batches()
        async for b in stream:
            assert b.num_rows > 0
            break
        await stream.aclose()
        async with t.iter_batches() as again:
            async for _b in again:
                break
        assert s.stats.errors == before
        assert s.stats.calls["DoGet:iter_batches"] == 2

    arun(body)


# -- 5. true causes: a directory, TLS on a plain-text server -----------------------------------------------


def test_directory_is_named_a_directory(session: Session, tmp_path: Path, arun) -> None:
    with pytest.raises(DHError, match="is a directory") as e:
        session.import_file(tmp_path)
    assert "no such file" not in str(e.value)
    with pytest.raises(DHError, match="no such file"):
        session.import_file(tmp_path / "missing.csv")

    async def body(s: AsyncSession) -> None:
        with pytest.raises(DHError, match="is a directory"):
            await s.import_file(tmp_path)

    arun(body)


def test_tls_client_on_a_plain_server(server: EmbeddedServer) -> None:
    with pytest.raises(DHError) as e:
        Session(server.host, server.port, use_tls=True)
    text = str(e.value)
    assert "does not speak TLS" in text and "WRONG_VERSION_NUMBER" in text
    assert "client certificate" not in text

    async def main() -> None:
        async with AsyncSession(server.host, server.port, use_tls=True):
            pass

    import asyncio

    with pytest.raises(DHError) as e:
        asyncio.run(asyncio.wait_for(main(), 30))
    assert "does not speak TLS" in str(e.value) and "client certificate" not in str(e.value)


# -- 6. text output safe for a terminal --------------------------------------------------------------------


def _width(text: str) -> int:
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


NASTY = ["\x1b[2J\x1b[31mred", "日本語のテキスト", "e\u0301te\u0301", "\U0001F600 ok", "a\u202eb",
         "tab\tnl\n\x07", "plain"]


def _assert_safe(text: str) -> None:
    for ch in text:
        assert ch == "\n" or (unicodedata.category(ch) != "Cc" and ch not in "\u202e\u2028"), repr(ch)


def test_render_text_escapes_and_aligns(session: Session) -> None:
    data = pa.table({"S": NASTY, "N": list(range(len(NASTY)))})
    with session.import_table(data) as t:
        text = str(t)
    _assert_safe(text)
    assert "\\x1b[2J\\x1b[31mred" in text and "\\u202e" in text and "\\x07" in text
    body = [ln for ln in text.splitlines()[1:] if ln.startswith(("|", "+"))]
    assert len(body) == 4 + len(NASTY) + 1
    assert len({_width(ln) for ln in body}) == 1, body  # every line as wide on screen
    named = pa.table({"S\x1b[1m": NASTY})  # the server refuses such a name; a local table may have one
    titled = formats.render_text(named, title="T\x1b]0;x\x07")
    _assert_safe(titled)
    assert "S\\x1b[1m" in titled and "T\\x1b]0;x\\x07" in titled
    html = formats.render_html(named, title="T\x1b]0;x\x07")
    _assert_safe(html)
    assert "\\x1b[2J" in html


def test_cli_pretty_escapes(session: Session, server: EmbeddedServer) -> None:
    data = pa.table({"S": NASTY})
    with session.import_table(data) as t:
        session.bind_table("errors_nasty_text", t)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DH_")}
    r = subprocess.run([sys.executable, "-m", "pydeephaven", "--host", server.host, "--port", str(server.port),
                        "sql", "SELECT * FROM errors_nasty_text", "--format", "pretty"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    _assert_safe(r.stdout)
    assert "\\x1b[2J" in r.stdout and "日本語のテキスト" in r.stdout
    session.unbind("errors_nasty_text")


# -- 7. CSV inference and encodings ---------------------------------------------------------------------------


def _empty_then_values(tmp_path: Path) -> Path:
    p = tmp_path / "empty_first.csv"
    with p.open("w") as f:
        f.write("A,B,C\n")
        for i in range(400_000):  # about 2.4 MB: B and C are empty in the first 1 MB block
            f.write(f"{i},,{i}\n")
        f.write("400000,x,abc\n")
    return p


def test_csv_column_empty_in_first_block(session: Session, tmp_path: Path) -> None:
    p = _empty_then_values(tmp_path)
    expected = pacsv.read_csv(p)  # pyarrow reads it
    with session.import_file(p) as t:
        got = t.to_arrow()
    assert got.num_rows == expected.num_rows == 400_001
    assert got["A"].to_pylist() == expected["A"].to_pylist()
    assert got["B"].to_pylist() == expected["B"].to_pylist()  # nulls, then "x"
    assert got["C"].to_pylist() == [str(v) for v in expected["C"].to_pylist()[:-1]] + ["abc"]
    assert session.live_exports() == []


def test_csv_later_values_widen_the_type(session: Session, tmp_path: Path, arun) -> None:
    p = tmp_path / "widen.csv"
    p.write_text("A,B\n" + "".join(f"{i},{i}\n" for i in range(5000)) + "5000,2.5\n5001,text\n")
    expected = pacsv.read_csv(p)
    with session.import_file(p, csv_options={"block_size": 4096}) as t:
        got = t.to_arrow()
    assert got["B"].type == expected["B"].type == pa.string()
    assert got["B"].to_pylist() == expected["B"].to_pylist()
    assert session.live_exports() == []

    async def body(s: AsyncSession) -> None:
        t = await s.import_file(p, csv_options={"block_size": 4096})
        assert (await t.to_arrow())["B"].to_pylist()[-2:] == ["2.5", "text"]
        assert [e.bytes for e in await s.live_exports()] == [t.ticket.bytes]  # no truncated attempt left

    arun(body)


def _latin1(tmp_path: Path) -> Path:
    p = tmp_path / "latin.csv"
    p.write_bytes("Name,City\nAnna,Berlin\nJosé,Málaga\n".encode("latin-1"))
    return p


def test_csv_not_utf8_is_refused_unless_encoding_given(session: Session, tmp_path: Path, arun) -> None:
    p = _latin1(tmp_path)
    with pytest.raises(DHError) as e:
        session.import_file(p)
    text = str(e.value)
    assert "column 'Name' is not UTF-8" in text and "data row 2" in text and "encoding=" in text
    assert session.live_exports() == []
    with session.import_file(p, encoding="latin-1") as t:
        assert t.to_arrow().to_pydict() == {"Name": ["Anna", "José"], "City": ["Berlin", "Málaga"]}

    async def body(s: AsyncSession) -> None:
        with pytest.raises(DHError, match="not UTF-8"):
            await s.import_file(p)
        t = await s.import_file(p, encoding="latin-1")
        assert (await t.to_arrow())["City"].to_pylist() == ["Berlin", "Málaga"]

    arun(body)


def test_cli_import_encoding(session: Session, server: EmbeddedServer, tmp_path: Path) -> None:
    p = _latin1(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DH_")}
    base = [sys.executable, "-m", "pydeephaven", "--host", server.host, "--port", str(server.port), "import", str(p),
            "--name", "errors_latin"]
    r = subprocess.run(base, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode != 0 and "not UTF-8" in r.stderr
    r = subprocess.run(base + ["--encoding", "latin-1"], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    with session.open_table("errors_latin") as t:
        assert t.to_arrow()["Name"].to_pylist() == ["Anna", "José"]
    session.unbind("errors_latin")


def _session_cases(s: Any, t: Any) -> list[tuple[Callable[[], Any], str]]:
    return [(lambda: s.run_script(5), "run_script: script must be a str"),
            (lambda: s.run_script("x = 1", systemic="yes"), "systemic must be None, True or False"),
            (lambda: s.open_table(5), "open_table: name must be a str"),
            (lambda: s.bind_table(5, t), "bind_table: name must be a str"),
            (lambda: s.import_file(5), "import_file: path must be a str or os.PathLike"),
            (lambda: s.publish(5, 6), "publish: source_ticket must be a Ticket"),
            (lambda: s.fetch_table(5), "fetch_table: ticket must be a Ticket"),
            (lambda: s.live_exports(timeout="x"), "live_exports: timeout must be a number"),
            (lambda: s.merge_tables([t, t], order_by=5), "merge_tables("),
            (lambda: s.input_table(), "give exactly one of schema and init_table")]


def test_session_arguments_are_dherrors(session: Session) -> None:
    t = session.empty_table(1)
    for call, needle in _session_cases(session, t):
        with pytest.raises(DHError) as e:
            call()
        _check_message(e.value, needle)
    # a ValueError as the official client raises it (and a DHError as well)
    with pytest.raises(ValueError, match=r"input_table: give exactly one of schema and init_table"):
        session.input_table()


def test_session_arguments_are_dherrors_async(arun) -> None:
    async def body(s: AsyncSession) -> None:
        t = await s.empty_table(1)
        for call, needle in _session_cases(s, t):
            with pytest.raises(DHError) as e:
                await call()
            _check_message(e.value, needle)

    arun(body)


def test_cli_csv_escaped_on_a_terminal_raw_in_a_pipe(session: Session, server: EmbeddedServer) -> None:
    with session.import_table(pa.table({"S": ["\x1b[31mred", "ok"]})) as t:
        session.bind_table("errors_ansi_csv", t)
    args = ["--host", server.host, "--port", str(server.port), "sql", "SELECT * FROM errors_ansi_csv",
            "--format", "csv"]
    code, out, err = run_on_terminal(args)
    assert code == 0, err
    assert "\x1b" not in out and "\\x1b[31mred" in out
    env = {k: v for k, v in os.environ.items() if not k.startswith("DH_")}
    piped = subprocess.run([sys.executable, "-m", "pydeephaven", *args], capture_output=True, text=True,
                           timeout=120, env=env, cwd=ROOT)
    assert piped.returncode == 0, piped.stderr
    assert pacsv.read_csv(pa.py_buffer(piped.stdout.encode()))["S"].to_pylist() == ["\x1b[31mred", "ok"]  # data kept
    session.unbind("errors_ansi_csv")


def test_file_writer_options_are_checked(session: Session, tmp_path: Path, arun) -> None:
    t = session.empty_table(3).update("A = i")
    errors = session.stats.errors
    with pytest.raises(DHError, match="to_csv: unknown option bogus; it takes include_header"):
        t._run(t._write_file_flow("to_csv", "csv", tmp_path / "o.csv", None, bogus=1))
    assert not (tmp_path / "o.csv").exists()
    assert session.stats.errors == errors  # the DoGet opened was closed by us, not failed
    with pytest.raises(DHError, match="fmt 'arrow' takes no options"):
        t.to_format("arrow", x=1)

    async def body(s: AsyncSession) -> None:
        at = await s.empty_table(2)
        with pytest.raises(DHError, match="to_csv: unknown option bogus"):
            await at.write_csv(tmp_path / "a.csv", bogus=1)
        with pytest.raises(DHError, match="delimiter must be one character"):
            await at.write_csv(tmp_path / "a.csv", delimiter="ab")
        with pytest.raises(DHError, match="fmt 'csv': unknown option bogus"):
            await at.to_format("csv", bogus=2)

    arun(body)
