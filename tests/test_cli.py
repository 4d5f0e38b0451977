"""The command line (``python -m pydeephaven`` and the ``pydeephaven`` console script), run as a
subprocess against the real test server: every command, its output checked against values computed
here with pyarrow, and its failures (exit status and a single line on stderr)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pydeephaven import DHError, Session
from pydeephaven.embedded import PSK_AUTH, EmbeddedServer, free_port, start_server
from tests.support.cli import MODULE, ROOT, run_on_terminal
from tests.support.cli import cli_env as _env

SCRIPT = Path(sys.executable).parent / "pydeephaven"  # the console script of this venv


def dh(*args: Any, env: Optional[dict[str, str]] = None, input: Optional[str] = None, timeout: float = 120,
       exe: Optional[Sequence[str]] = None, binary: bool = False) -> subprocess.CompletedProcess:
    cmd = list(exe or MODULE) + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=not binary, input=input, timeout=timeout, env=_env(env),
                          cwd=ROOT)


def assert_ok(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"


def assert_error(r: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Exit ``code``, nothing on stdout, exactly one line on stderr naming the program, no traceback."""
    assert r.returncode == code, f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("pydeephaven"), lines[0]
    assert "Traceback" not in r.stderr
    assert r.stdout == "", r.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def conn(server: EmbeddedServer) -> list[str]:
    return ["--host", server.host, "--port", str(server.port)]


@pytest.fixture
def names(session: Session) -> Iterator[Any]:
    """Unique table names; whatever was bound to them is removed afterwards."""
    made: list[str] = []

    def make(prefix: str = "cli") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            session.unbind(name)
        except DHError:
            pass


TRADES = pa.table({
    "Sym": ["AAPL", "MSFT", "AAPL", "GOOG", "MSFT", "AAPL"],
    "Qty": pa.array([10, 20, 30, 40, 50, 60], pa.int64()),
    "Px": [1.5, 2.25, 2.5, 3.0, 3.5, None],
})


def _expected_totals() -> dict[str, int]:
    grouped = TRADES.group_by("Sym").aggregate([("Qty", "sum")])
    return dict(zip(grouped.column("Sym").to_pylist(), grouped.column("Qty_sum").to_pylist()))


@pytest.fixture
def trades(session: Session, names: Any) -> str:
    name = names("trades")
    session.bind_table(name, session.import_table(TRADES))
    return name


def _wait_rows(session: Session, name: str, rows: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = session.open_table(name)
        if (t.size or 0) >= rows:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} did not reach {rows} rows in {timeout} s")


# -- help, version, the console script ---------------------------------------------------------


def test_help_lists_every_command() -> None:
    r = dh("--help")
    assert_ok(r)
    for command in ("tables", "run", "sql", "import", "export", "tail", "serve", "info", "storage", "logs"):
        assert re.search(rf"^\s+{command}\s", r.stdout, re.M), command
    for option in ("--host", "--port", "--auth-type", "--auth-token", "--tls", "--ca", "--client-cert",
                   "--client-key", "--embedded", "--debug", "DH_HOST", "DH_PORT", "DH_AUTH_TYPE", "DH_AUTH_TOKEN"):
        assert option in r.stdout, option


def test_version() -> None:
    r = dh("--version")
    assert_ok(r)
    assert version("pydeephaven") in r.stdout


def test_console_script(conn: list[str], session: Session, trades: str) -> None:
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"
    r = dh(*conn, "tables", exe=[str(SCRIPT)])
    assert_ok(r)
    assert r.stdout.splitlines() == sorted(session.tables)
    assert trades in r.stdout.splitlines()
    r = dh(*conn, "sql", f"SELECT SUM(Qty) AS Total FROM {trades}", "--format", "csv", exe=[str(SCRIPT)])
    assert_ok(r)
    assert r.stdout.splitlines()[1] == str(sum(TRADES.column("Qty").to_pylist()))


# -- connection options from the environment ---------------------------------------------------


def test_tables_from_environment(server: EmbeddedServer, session: Session, trades: str) -> None:
    r = dh("tables", env={"DH_HOST": server.host, "DH_PORT": str(server.port)})
    assert_ok(r)
    assert r.stdout.splitlines() == sorted(session.tables)
    assert trades in r.stdout.splitlines()


def test_command_line_wins_over_environment(server: EmbeddedServer, trades: str) -> None:
    dead = str(free_port())
    r = dh("--port", server.port, "tables", env={"DH_HOST": server.host, "DH_PORT": dead})
    assert_ok(r)
    assert trades in r.stdout.splitlines()
    r = dh("tables", env={"DH_HOST": server.host, "DH_PORT": dead})
    assert_error(r, 1, "connect to", dead)


def test_bad_port_in_environment_is_a_usage_error() -> None:
    assert_error(dh("tables", env={"DH_PORT": "not-a-port"}), 2, "DH_PORT")


# -- run ------------------------------------------------------------------------------------------


def test_run_lists_the_new_tables(tmp_path: Path, conn: list[str], session: Session, names: Any, trades: str) -> None:
    a, b = names("run_a"), names("run_b")
    script = tmp_path / "make.py"
    script.write_text("from deephaven import empty_table\n"
                      f"{b} = empty_table(4).update(['X = i * 3'])\n"
                      f"{a} = {b}.update(['Y = X + 1'])\n"
                      f"{trades} = {trades}.head(2)\n"        # an existing name, replaced: not new
                      "helper_value = 42\n")                  # not a table
    r = dh(*conn, "run", script)
    assert_ok(r)
    assert r.stdout.splitlines() == sorted([a, b])
    got = session.open_table(a).to_arrow()
    assert got.column("X").to_pylist() == [i * 3 for i in range(4)]
    assert got.column("Y").to_pylist() == [i * 3 + 1 for i in range(4)]
    assert session.open_table(trades).size == 2


def test_run_from_stdin(conn: list[str], session: Session, names: Any) -> None:
    name = names("stdin")
    r = dh(*conn, "run", "-", input=f"from deephaven import empty_table\n{name} = empty_table(7)\n")
    assert_ok(r)
    assert r.stdout.splitlines() == [name]
    assert session.open_table(name).size == 7


def test_run_script_error_is_one_line(tmp_path: Path, conn: list[str]) -> None:
    script = tmp_path / "bad.py"
    script.write_text("x = 1\ny = x / 0\n")
    line = assert_error(dh(*conn, "run", script), 1, "run_script", "ZeroDivisionError")
    assert "--debug" in line
    r = dh(*conn, "--debug", "run", script)
    assert r.returncode == 1
    assert "Traceback" in r.stderr                      # ours, with --debug
    assert "ZeroDivisionError: division by zero" in r.stderr
    assert len(r.stderr.splitlines()) > 5               # the server's whole message too


def test_run_missing_file_is_a_usage_error(tmp_path: Path, conn: list[str]) -> None:
    assert_error(dh(*conn, "run", tmp_path / "nope.py"), 2, "nope.py", "does not exist")


def test_run_output_shows_the_printed_lines(tmp_path: Path, conn: list[str], session: Session, names: Any) -> None:
    tok = names("out")
    script = tmp_path / "talk.py"
    script.write_text("import sys\nfrom deephaven import empty_table\n"
                      f"print('{tok} first')\n"
                      f"print('{tok} to stderr', file=sys.stderr)\n"
                      f"for i in range(3):\n    print('{tok}', i * i)\n"
                      f"{tok} = empty_table(2)\n")
    r = dh(*conn, "run", "--output", script)
    assert_ok(r)
    assert r.stdout.splitlines() == [f"{tok} first", f"{tok} to stderr"] + [f"{tok} {i * i}" for i in range(3)]
    assert session.open_table(tok).size == 2
    # without --output: the new table's name, not the printed lines
    r = dh(*conn, "run", "-", input=f"{tok} = None\nprint('{tok} quiet')\n")
    assert_ok(r)
    assert tok not in r.stdout


def test_run_output_of_a_failing_script(tmp_path: Path, conn: list[str]) -> None:
    tok = f"t{uuid.uuid4().hex[:10]}"
    script = tmp_path / "fails.py"
    script.write_text(f"print('{tok} before')\nraise KeyError('{tok}-missing')\n")
    r = dh(*conn, "run", "--output", script)
    assert r.returncode == 1, r
    assert r.stdout.splitlines() == [f"{tok} before"]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pydeephaven: error: run_script failed"), r.stderr
    assert "KeyError" in lines[0] and f"{tok}-missing" in lines[0]


def test_run_timeout_stops_the_script(conn: list[str], session: Session, names: Any) -> None:
    name = names("late")
    script = f"import time\nfor _ in range(3000):\n    time.sleep(0.1)\n{name} = 1\n"
    line = assert_error(dh(*conn, "run", "--timeout", "1", "-", input=script), 1, "timed out",
                        "stopped on the server")
    assert "1 s" in line
    res = session.run_script(f"print({name!r} in globals())", capture_output=True)
    assert res.output == ("False",)


# -- logs -----------------------------------------------------------------------------------------


def test_logs_prints_a_line_a_script_printed(conn: list[str], session: Session) -> None:
    tok = f"t{uuid.uuid4().hex[:10]}"
    p = subprocess.Popen(MODULE + [*conn, "logs", "--level", "STDOUT", "--max-entries", "1", "--seconds", "60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        # the command takes the records from its own start on: print until it has one (bounded)
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            session.run_script(f"print('{tok}')")
            time.sleep(0.5)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == 0, err
    [line] = out.splitlines()
    stamp, level, message = line.split(" ", 2)
    assert (level, message) == ("STDOUT", tok)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp


def test_logs_history_as_json(conn: list[str], session: Session) -> None:
    tok = f"t{uuid.uuid4().hex[:10]}"
    session.run_script(f"print('{tok} in the history')")
    r = dh(*conn, "logs", "--history", "--format", "json", "--level", "STDOUT", "--seconds", "3")
    assert_ok(r)
    records = [json.loads(line) for line in r.stdout.splitlines()]
    mine = [rec for rec in records if tok in rec["message"]]
    assert [(rec["level"], rec["message"]) for rec in mine] == [("STDOUT", f"{tok} in the history")]
    assert all(set(rec) == {"time", "micros", "level", "message"} for rec in records)
    assert all(rec["level"] == "STDOUT" for rec in records)


# -- info -----------------------------------------------------------------------------------------


def test_info_json_and_text(conn: list[str], session: Session) -> None:
    r = dh(*conn, "info", "--format", "json")
    assert_ok(r)
    got = json.loads(r.stdout)
    assert got["version"] == session.server_version == version("deephaven-server")
    assert got["config"] == session.server_config
    heap = got["heap"]
    assert heap["max_memory"] == session.heap_info()["max_memory"]
    assert 0 <= heap["free_memory"] <= heap["total_memory"] <= heap["max_memory"]
    r = dh(*conn, "info")
    assert_ok(r)
    lines = r.stdout.splitlines()
    assert f"version: {session.server_version}" in lines
    assert lines[0] == f"server: {session.host}:{session.port}"
    assert any(ln.startswith("heap: ") and "used of" in ln for ln in lines)
    assert f"  deephaven.version = {session.server_version}" in lines


# -- storage --------------------------------------------------------------------------------------


@pytest.fixture
def folder(session: Session) -> Iterator[str]:
    """A new storage directory, removed with what it holds afterwards."""
    path = f"/cli-{uuid.uuid4().hex[:10]}"
    session.storage.mkdir(path)
    yield path
    for item in session.storage.ls(path):
        session.storage.delete(item.path)
    session.storage.delete(path)


def test_storage_put_ls_get(tmp_path: Path, conn: list[str], session: Session, folder: str) -> None:
    payload = "print('stored')\n".encode() + bytes(range(256))
    src = tmp_path / "nb.py"
    src.write_bytes(payload)
    r = dh(*conn, "storage", "put", src, f"{folder}/")
    assert_ok(r)
    assert r.stdout == f"stored {len(payload)} bytes from {src} at {folder}/nb.py\n"
    assert session.storage.read(f"{folder}/nb.py") == payload
    r = dh(*conn, "storage", "put", "-", f"{folder}/from_stdin.txt", input="line one\n")
    assert_ok(r)
    assert session.storage.read(f"{folder}/from_stdin.txt") == b"line one\n"
    session.storage.mkdir(f"{folder}/sub")
    r = dh(*conn, "storage", "ls", folder)
    assert_ok(r)
    assert r.stdout.splitlines() == [f"{folder}/from_stdin.txt", f"{folder}/nb.py", f"{folder}/sub/"]
    r = dh(*conn, "storage", "ls", "-l", "--glob", "*.py", folder)
    assert_ok(r)
    [item] = session.storage.ls(folder, glob="*.py")
    assert r.stdout.splitlines() == [f"file\t{len(payload)}\t{item.etag}\t{folder}/nb.py"]
    assert f"{folder}/" in dh(*conn, "storage", "ls").stdout.splitlines()
    # to stdout, to a file, into a directory
    r = dh(*conn, "storage", "get", f"{folder}/nb.py", binary=True)
    assert r.returncode == 0 and r.stdout == payload
    out = tmp_path / "copy.py"
    r = dh(*conn, "storage", "get", f"{folder}/nb.py", out)
    assert_ok(r)
    assert out.read_bytes() == payload and r.stdout == f"wrote {len(payload)} bytes from {folder}/nb.py to {out}\n"
    into = tmp_path / "into"
    into.mkdir()
    assert_ok(dh(*conn, "storage", "get", f"{folder}/from_stdin.txt", into))
    assert (into / "from_stdin.txt").read_bytes() == b"line one\n"


def test_storage_failures(tmp_path: Path, conn: list[str], session: Session, folder: str) -> None:
    src = tmp_path / "a.py"
    src.write_text("first\n")
    assert_ok(dh(*conn, "storage", "put", src, f"{folder}/a.py"))
    src.write_text("second\n")
    assert_error(dh(*conn, "storage", "put", src, f"{folder}/a.py"), 1, "storage.write", "already exists")
    assert session.storage.read(f"{folder}/a.py") == b"first\n"
    assert_ok(dh(*conn, "storage", "put", "--force", src, f"{folder}/a.py"))
    assert session.storage.read(f"{folder}/a.py") == b"second\n"
    assert_error(dh(*conn, "storage", "get", f"{folder}/missing.py"), 1, "storage.read", "missing.py")
    assert_error(dh(*conn, "storage", "ls", f"{folder}/no_dir"), 1, "storage.ls")
    assert_error(dh(*conn, "storage", "get", f"{folder}/a.py", tmp_path / "no" / "x.py"), 2, "does not exist")
    assert_error(dh(*conn, "storage", "put", "-", f"{folder}/", input="x"), 2, "standard input")


# -- sql ------------------------------------------------------------------------------------------


def _totals_query(name: str) -> str:
    return f"SELECT Sym, SUM(Qty) AS Total FROM {name} GROUP BY Sym ORDER BY Sym"


def test_sql_csv_is_the_default_when_piped(conn: list[str], trades: str) -> None:
    r = dh(*conn, "sql", _totals_query(trades))
    assert_ok(r)
    got = pacsv.read_csv(io.BytesIO(r.stdout.encode()))
    expected = _expected_totals()
    assert got.column("Sym").to_pylist() == sorted(expected)
    assert got.column("Total").to_pylist() == [expected[s] for s in sorted(expected)]


def test_sql_json(conn: list[str], trades: str) -> None:
    r = dh(*conn, "sql", _totals_query(trades), "--format", "json")
    assert_ok(r)
    expected = _expected_totals()
    assert json.loads(r.stdout) == [{"Sym": s, "Total": expected[s]} for s in sorted(expected)]


def test_sql_pretty(conn: list[str], trades: str) -> None:
    r = dh(*conn, "sql", f"SELECT * FROM {trades}", "--format", "pretty", "--max-rows", "4")
    assert_ok(r)
    assert "6 rows x 3 columns" in r.stdout
    assert "(4 of 6 rows shown)" in r.stdout
    for cell in ("Sym", "Qty", "Px", "AAPL", "MSFT", "2.25"):
        assert cell in r.stdout


def test_sql_arrow_and_parquet_on_stdout(conn: list[str], trades: str) -> None:
    r = dh(*conn, "sql", f"SELECT * FROM {trades}", "--format", "arrow", binary=True)
    assert r.returncode == 0, r.stderr
    got = pa.ipc.open_stream(r.stdout).read_all()
    assert got.select(["Sym", "Qty", "Px"]).to_pylist() == TRADES.to_pylist()
    r = dh(*conn, "sql", f"SELECT * FROM {trades}", "--format", "parquet", binary=True)
    assert r.returncode == 0, r.stderr
    got = pq.read_table(io.BytesIO(r.stdout))
    assert got.select(["Sym", "Qty", "Px"]).to_pylist() == TRADES.to_pylist()


@pytest.mark.parametrize("file_name", ["out.csv", "out.json", "out.parquet", "out.arrow", "out.tsv", "out.jsonl"])
def test_sql_out_format_from_the_name(tmp_path: Path, conn: list[str], trades: str, file_name: str) -> None:
    out = tmp_path / file_name
    r = dh(*conn, "sql", f"SELECT Sym, Qty FROM {trades} WHERE Qty >= 30", "--out", out)
    assert_ok(r)
    assert r.stdout == "" and r.stderr == ""
    expected = [{"Sym": s, "Qty": q} for s, q in zip(TRADES["Sym"].to_pylist(), TRADES["Qty"].to_pylist()) if q >= 30]
    assert _read_back(out) == expected


def test_sql_out_with_explicit_format(tmp_path: Path, conn: list[str], trades: str) -> None:
    out = tmp_path / "result.txt"
    assert_ok(dh(*conn, "sql", f"SELECT COUNT(*) AS N FROM {trades}", "--format", "csv", "--out", out))
    assert out.read_text().splitlines() == ['"N"', str(TRADES.num_rows)]
    assert_ok(dh(*conn, "sql", f"SELECT COUNT(*) AS N FROM {trades}", "--format", "pretty", "--out", out))
    assert "1 row x 1 column" in out.read_text()
    assert_error(dh(*conn, "sql", "SELECT 1", "--out", tmp_path / "result.xyz"), 2, "--out", "format")


def test_sql_bad_query_is_one_line(conn: list[str], trades: str) -> None:
    assert_error(dh(*conn, "sql", "SELEC nothing FROM"), 1, "sql(")
    assert_error(dh(*conn, "sql", "SELECT * FROM no_such_table_here"), 1, "no_such_table_here")


def test_sql_pretty_is_the_default_on_a_terminal(conn: list[str], trades: str) -> None:
    code, out, err = run_on_terminal([*conn, "sql", _totals_query(trades)])
    assert code == 0, err
    assert "SQL result: 3 rows x 2 columns" in out
    for sym, total in _expected_totals().items():
        assert re.search(rf"\|\s*{sym}\s*\|\s*{total}\s*\|", out), (sym, out)


def test_sql_binary_to_a_terminal_is_refused(conn: list[str]) -> None:
    code, out, err = run_on_terminal([*conn, "sql", "SELECT 1 AS X", "--format", "parquet"])
    assert code == 2
    assert "--out" in err and len(err.strip().splitlines()) == 1


# -- import, export -------------------------------------------------------------------------------

DATA = pa.table({
    "Id": pa.array([1, 2, 3, 4], pa.int64()),
    "Name": ["alpha", "beta, with a comma", None, "delta"],
    "Score": [0.5, None, 2.75, -1.0],
})


def _write_source(path: Path) -> None:
    name = path.name
    if name.endswith(".csv"):
        pacsv.write_csv(DATA, str(path))
    elif name.endswith(".csv.gz"):
        with gzip.open(path, "wb") as f:
            buf = io.BytesIO()
            pacsv.write_csv(DATA, buf)
            f.write(buf.getvalue())
    elif name.endswith(".parquet"):
        pq.write_table(DATA, str(path))
    elif name.endswith(".arrow"):
        with pa.ipc.new_file(str(path), DATA.schema) as writer:
            writer.write_table(DATA)
    else:
        raise AssertionError(name)


def _read_back(path: Path) -> list[dict]:
    """The rows of a file the CLI wrote, read with pyarrow / json (values as Python objects)."""
    name = path.name
    if name.endswith((".csv", ".csv.gz")):
        return pacsv.read_csv(str(path)).to_pylist()
    if name.endswith(".tsv"):
        return pacsv.read_csv(str(path), parse_options=pacsv.ParseOptions(delimiter="\t")).to_pylist()
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text().splitlines()]
    if name.endswith(".json"):
        return json.loads(path.read_text())
    if name.endswith(".parquet"):
        return pq.read_table(str(path)).to_pylist()
    if name.endswith((".arrow", ".feather")):
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all().to_pylist()
    raise AssertionError(name)


@pytest.mark.parametrize("file_name", ["data.csv", "data.csv.gz", "data.parquet", "data.arrow"])
def test_import(tmp_path: Path, conn: list[str], session: Session, names: Any, file_name: str) -> None:
    source = tmp_path / file_name
    _write_source(source)
    name = names("imported")
    r = dh(*conn, "import", source, "--name", name)
    assert_ok(r)
    assert r.stdout.strip() == f"imported 4 rows x 3 columns from {source} into {name}"
    assert r.stderr == ""  # no progress bar when not on a terminal
    got = session.open_table(name).to_arrow()
    expected = _through_csv(DATA, ",") if ".csv" in file_name else DATA.to_pylist()
    assert got.to_pylist() == expected


def _through_csv(data: pa.Table, delimiter: str) -> list[dict]:
    """``data`` as pyarrow writes it to CSV and reads it back (a null string becomes "")."""
    buf = io.BytesIO()
    pacsv.write_csv(data, buf, pacsv.WriteOptions(delimiter=delimiter))
    return pacsv.read_csv(io.BytesIO(buf.getvalue()), parse_options=pacsv.ParseOptions(delimiter=delimiter)).to_pylist()


@pytest.mark.parametrize("file_name", ["out.csv", "out.csv.gz", "out.tsv", "out.json", "out.jsonl", "out.parquet",
                                       "out.arrow", "out.feather"])
def test_export(tmp_path: Path, conn: list[str], session: Session, names: Any, file_name: str) -> None:
    name = names("to_export")
    session.bind_table(name, session.import_table(DATA))
    out = tmp_path / file_name
    r = dh(*conn, "export", name, "--out", out)
    assert_ok(r)
    assert r.stdout.strip() == f"exported 4 rows from {name} to {out}"
    assert r.stderr == ""
    if ".csv" in file_name or ".tsv" in file_name:
        expected = _through_csv(DATA, "\t" if ".tsv" in file_name else ",")
    else:
        expected = DATA.to_pylist()
    assert _read_back(out) == expected
    if file_name.endswith(".gz"):
        assert out.read_bytes()[:2] == b"\x1f\x8b"  # really gzip


def test_import_then_export_a_larger_file_with_progress(tmp_path: Path, conn: list[str], session: Session,
                                                        names: Any) -> None:
    n = 200_000
    big = pa.table({"K": pa.array(range(n), pa.int64()), "V": pa.array([i * 0.5 for i in range(n)])})
    source = tmp_path / "big.csv"
    pacsv.write_csv(big, str(source))
    name = names("big")
    r = dh(*conn, "import", source, "--name", name, "--progress")
    assert_ok(r)
    assert "100%" in r.stderr and "import big.csv" in r.stderr
    assert session.open_table(name).size == n
    out = tmp_path / "big.parquet"
    r = dh(*conn, "export", name, "--out", out, "--progress")
    assert_ok(r)
    assert "100%" in r.stderr and "big.parquet" in r.stderr
    got = pq.read_table(str(out))
    assert got.num_rows == n
    assert got.column("K").to_pylist() == list(range(n))
    assert sum(got.column("V").to_pylist()) == sum(i * 0.5 for i in range(n))
    r = dh(*conn, "export", name, "--out", tmp_path / "quiet.arrow")
    assert_ok(r)
    assert r.stderr == ""


def test_import_failures(tmp_path: Path, conn: list[str], names: Any) -> None:
    source = tmp_path / "data.csv"
    _write_source(source)
    assert_error(dh(*conn, "import", tmp_path / "missing.csv", "--name", names()), 2, "missing.csv", "does not exist")
    assert_error(dh(*conn, "import", source, "--name", "1x"), 2, "'1x'", "--name")
    assert_error(dh(*conn, "import", source), 2, "--name")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"this is not parquet")
    assert_error(dh(*conn, "import", broken, "--name", names()), 1, "broken.parquet", "parquet")
    unknown = tmp_path / "data.xyz"
    unknown.write_text("a,b\n1,2\n")
    assert_error(dh(*conn, "import", unknown, "--name", names()), 1, "data.xyz", "format")


def test_import_with_explicit_format(tmp_path: Path, conn: list[str], session: Session, names: Any) -> None:
    unknown = tmp_path / "data.xyz"
    pacsv.write_csv(DATA, str(unknown))
    name = names()
    assert_ok(dh(*conn, "import", unknown, "--name", name, "--format", "csv"))
    assert session.open_table(name).to_arrow().to_pylist() == _through_csv(DATA, ",")


def test_export_failures(tmp_path: Path, conn: list[str], trades: str) -> None:
    assert_error(dh(*conn, "export", "no_such_table_here", "--out", tmp_path / "x.csv"), 1, "no_such_table_here")
    assert_error(dh(*conn, "export", trades, "--out", tmp_path / "x.unknown"), 2, "--out", "x.unknown")
    assert_error(dh(*conn, "export", trades, "--out", tmp_path / "no" / "dir" / "x.csv"), 2, "does not exist")
    assert_error(dh(*conn, "export", trades), 2, "--out")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# -- tail -----------------------------------------------------------------------------------------


def _csv_rows(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def _ticking(session: Session, name: str, formula: str, min_rows: int = 5) -> None:
    session.run_script(f"from deephaven import time_table\n{name} = {formula}\n")
    _wait_rows(session, name, min_rows)


def test_tail_follows_appends(conn: list[str], session: Session, names: Any) -> None:
    name = names("ticks")
    _ticking(session, name, "time_table('PT0.1S').update(['V = ii'])")
    r = dh(*conn, "tail", name, "--rows", "3", "--max-updates", "3", timeout=90)
    assert_ok(r)
    header, rows = _csv_rows(r.stdout)
    assert header == ["op", "Timestamp", "V"]
    assert [row[0] for row in rows[:3]] == ["="] * 3
    assert len(rows) >= 6 and {row[0] for row in rows[3:]} == {"+"}
    values = [int(row[2]) for row in rows]
    assert values == list(range(values[0], values[0] + len(values)))  # last rows, then every append, in order
    stamps = [row[1] for row in rows]
    assert stamps == sorted(stamps)


def test_tail_removals_and_additions_replay_to_the_table(conn: list[str], session: Session, names: Any) -> None:
    name = names("window")
    _ticking(session, name, "time_table('PT0.1S').update(['V = ii']).tail(4)", min_rows=4)
    r = dh(*conn, "tail", name, "--max-updates", "4", timeout=90)
    assert_ok(r)
    header, rows = _csv_rows(r.stdout)
    assert header == ["op", "Timestamp", "V"]
    state: set[int] = set()
    ops = []
    for op, _stamp, v in rows:
        value = int(v)
        ops.append(op)
        if op in ("=", "+"):
            assert value not in state
            state.add(value)
        elif op == "-":
            assert value in state
            state.remove(value)
        else:
            raise AssertionError(op)
    assert ops.count("=") == 4 and "-" in ops and "+" in ops
    assert sorted(state) == list(range(max(state) - 3, max(state) + 1))  # the last four ticks


def test_tail_modifications(conn: list[str], session: Session, names: Any) -> None:
    name = names("latest")
    _ticking(session, name, "time_table('PT0.1S').update(['V = ii', 'Grp = (int)(ii % 2)']).last_by('Grp')",
             min_rows=2)
    r = dh(*conn, "tail", name, "--max-updates", "3", "--format", "json", timeout=90)
    assert_ok(r)
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["op"] for e in events[:2]] == ["=", "="]
    latest = {e["row"]["Grp"]: e["row"]["V"] for e in events[:2]}
    assert {e["op"] for e in events[2:]} == {"~"}
    for e in events[2:]:
        row = e["row"]
        assert row["V"] % 2 == row["Grp"]
        assert row["V"] > latest[row["Grp"]]
        latest[row["Grp"]] = row["V"]


def test_tail_static_table_prints_its_last_rows_and_ends(conn: list[str], session: Session, names: Any) -> None:
    name = names("static")
    data = pa.table({"N": pa.array(range(20), pa.int64()), "Sq": pa.array([i * i for i in range(20)], pa.int64())})
    session.bind_table(name, session.import_table(data))
    r = dh(*conn, "tail", name, "--rows", "5", timeout=60)
    assert_ok(r)
    header, rows = _csv_rows(r.stdout)
    assert header == ["op", "N", "Sq"]
    assert rows == [["=", str(i), str(i * i)] for i in range(15, 20)]
    r = dh(*conn, "tail", name, "--rows", "0", timeout=60)
    assert_ok(r)
    assert r.stdout.splitlines() == ['"op","N","Sq"']


def test_tail_seconds_bound(conn: list[str], session: Session, names: Any) -> None:
    name = names("timed")
    _ticking(session, name, "time_table('PT0.1S').update(['V = ii'])")
    start = time.monotonic()
    r = dh(*conn, "tail", name, "--rows", "1", "--seconds", "3", timeout=90)
    took = time.monotonic() - start
    assert_ok(r)
    assert took < 30
    _header, rows = _csv_rows(r.stdout)
    assert rows[0][0] == "=" and sum(1 for row in rows if row[0] == "+") >= 5


def _read_until(p: subprocess.Popen, needle: bytes, timeout: float) -> bytes:
    assert p.stdout is not None
    fd = p.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            data = os.read(fd, 65536)
            if not data:
                break
            seen += data
        elif p.poll() is not None:
            break
    assert needle in seen, (needle, seen)
    return seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_tail_stops_on_a_signal(conn: list[str], session: Session, names: Any, sig: int) -> None:
    name = names("until_signal")
    _ticking(session, name, "time_table('PT0.1S').update(['V = ii'])")
    p = subprocess.Popen(MODULE + [*conn, "tail", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
                         cwd=ROOT)
    try:
        _read_until(p, b"\n\"+\"", timeout=60)  # the first change arrived
        p.send_signal(sig)
        p.wait(timeout=30)
        assert p.returncode == 0
        assert b"Traceback" not in (p.stderr.read() if p.stderr else b"")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def test_tail_ends_quietly_when_its_reader_goes_away(conn: list[str], session: Session, names: Any) -> None:
    name = names("closed_pipe")
    _ticking(session, name, "time_table('PT0.1S').update(['V = ii'])")
    p = subprocess.Popen(MODULE + [*conn, "tail", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
                         cwd=ROOT)
    try:
        _read_until(p, b'"op"', timeout=60)
        assert p.stdout is not None
        p.stdout.close()  # like `pydeephaven tail t | head -1`
        p.wait(timeout=30)
        assert p.returncode == 0
        assert (p.stderr.read() if p.stderr else b"") == b""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def test_tail_missing_table(conn: list[str]) -> None:
    assert_error(dh(*conn, "tail", "no_such_table_here"), 1, "no_such_table_here")


# -- failures common to every command -------------------------------------------------------------


def test_unreachable_port_fails_fast(tmp_path: Path) -> None:
    port = str(free_port())
    for args in (["tables"], ["sql", "SELECT 1"], ["export", "t", "--out", tmp_path / "t.csv"]):
        start = time.monotonic()
        r = dh("--host", "127.0.0.1", "--port", port, *args)
        assert_error(r, 1, "connect to", port)
        assert time.monotonic() - start < 30
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["bogus"],
    ["--bogus", "tables"],
    ["tables", "--bogus"],
    ["sql"],
    ["sql", "SELECT 1", "--format", "xml"],
    ["--port", "abc", "tables"],
    ["--port", "70000", "tables"],
    ["tail", "t", "--rows", "-1"],
    ["tail", "t", "--max-updates", "0"],
    ["--embedded", "--port", "10000", "tables"],
    ["--embedded", "serve"],
    ["--ca", "/no/such/ca.pem", "tables"],
    ["run", "-", "--timeout", "0"],
    ["info", "--format", "xml"],
    ["logs", "--seconds", "0"],
    ["logs", "--max-entries", "0"],
    ["storage", "ls", "notebooks"],
    ["storage", "get", "notebooks/a.py"],
    ["storage", "put", "/no/such/local.py", "/a.py"],
    ["storage", "rm", "/a.py"],
])
def test_usage_errors(args: list[str]) -> None:
    assert_error(dh(*args), 2, "usage error")


def test_client_cert_needs_a_key(tmp_path: Path) -> None:
    pem = tmp_path / "cert.pem"
    pem.write_text("not used")
    assert_error(dh("--client-cert", pem, "tables"), 2, "--client-key")


def test_no_command_shows_help() -> None:
    r = dh()
    assert r.returncode == 2
    assert "Commands:" in r.stdout + r.stderr


def test_tls_to_a_plaintext_server_fails_in_one_line(conn: list[str]) -> None:
    assert_error(dh(*conn, "--tls", "tables"), 1, "connect to")


# -- TLS, the embedded server, serve (each starts a server of its own) ---------------------------


def test_mutual_tls(tmp_path: Path) -> None:
    from tests.support.certs import make_pki

    pki = make_pki(tmp_path)
    tls = ["-Dssl.identity.type=privatekey", f"-Dssl.identity.certChainPath={pki.server_cert}",
           f"-Dssl.identity.privateKeyPath={pki.server_key}", "-Dssl.trust.type=certs", f"-Dssl.trust.path={pki.ca}",
           "-Dssl.clientAuthentication=NEEDED"]
    with start_server(heap="1g", jvm_args=tls) as srv:
        at = ["--host", "localhost", "--port", str(srv.port)]
        r = dh(*at, "--ca", pki.ca, "--client-cert", pki.client_cert, "--client-key", pki.client_key,
               "sql", "SELECT 6 * 7 AS Answer", "--format", "json")
        assert_ok(r)
        assert json.loads(r.stdout) == [{"Answer": 42}]
        assert_error(dh(*at, "--ca", pki.ca, "tables"), 1, "connect to")         # no client certificate
        assert_error(dh(*at, "--ca", pki.other_ca, "--client-cert", pki.client_cert, "--client-key",
                        pki.client_key, "tables"), 1, "connect to")             # the wrong CA
        assert_error(dh(*at, "tables"), 1, "connect to")                          # plaintext


def _live_in_group(pgid: int) -> list[int]:
    """Pids of the processes of process group ``pgid`` that are still running (zombies left out)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def test_embedded(tmp_path: Path) -> None:
    # in a process group of its own, so that the server it starts can be found (and killed) afterwards
    cmd = MODULE + ["--embedded", "sql", "SELECT 6 * 7 AS Answer, 'x' AS S", "--format", "json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"exit {p.returncode}\nstdout: {out!r}\nstderr: {err!r}"
        assert json.loads(out) == [{"Answer": 42, "S": "x"}]
        assert err == ""  # the "starting" note is for terminals only
        # the embedded server went with the command: nothing of the group is left running
        deadline = time.monotonic() + 30
        while _live_in_group(p.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _live_in_group(p.pid) == [], "the embedded server outlived the command"
    finally:
        for pid in [p.pid, *_live_in_group(p.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(timeout=10)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_serve_with_a_psk_until_sigterm() -> None:
    port = free_port()
    key = uuid.uuid4().hex
    p = subprocess.Popen(MODULE + ["serve", "--port", str(port), "--heap", "1g"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=_env({"DH_PSK": key}), cwd=ROOT)
    child_pid = None
    try:
        line = _read_until(p, b"\n", timeout=240).decode()
        m = re.match(rf"serving on 127\.0\.0\.1:{port} \(auth: pre-shared key.*, pid (\d+)\)", line)
        assert m, line
        assert key not in line
        child_pid = int(m.group(1))
        with Session("127.0.0.1", port, auth_type=PSK_AUTH, auth_token=key) as s:
            assert s.empty_table(3).update("X = i * 2").to_arrow().column("X").to_pylist() == [0, 2, 4]
        auth = {"DH_PORT": str(port), "DH_HOST": "127.0.0.1", "DH_AUTH_TYPE": "psk"}
        assert_ok(dh("tables", env={**auth, "DH_AUTH_TOKEN": key}))
        assert_error(dh("tables", env={**auth, "DH_AUTH_TOKEN": "wrong"}), 1, "authentication failed")
        assert_error(dh("tables", env={**auth, "DH_AUTH_TYPE": "Anonymous"}), 1, "connect to")
        p.terminate()  # SIGTERM, by pid
        p.wait(timeout=60)
        assert p.returncode == 0
        deadline = time.monotonic() + 30
        while _pid_alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _pid_alive(child_pid), "the server process outlived serve"
        assert not _accepts(port)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        if child_pid is not None and _pid_alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


# -- Docker: what can be checked without a Docker engine ------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_pinned_and_unprivileged() -> None:
    steps = _dockerfile()
    bases = [args.split()[0] for word, args in steps if word == "FROM"]
    assert len(bases) >= 2
    for base in bases:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    last_stage = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM"):]
    users = [args for word, args in last_stage if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(word == "COPY" and "--from=build" in args for word, args in last_stage)
    for word, args in steps:
        if word == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"


def test_docker_entrypoint_runs_as_the_image_runs_it(server: EmbeddedServer, trades: str) -> None:
    steps = dict(_dockerfile())
    entrypoint = json.loads(steps["ENTRYPOINT"])
    cmd = json.loads(steps["CMD"])
    env_path = re.search(r"PATH=(\S+)", steps["ENV"])
    assert env_path and env_path.group(1).startswith("/opt/pydeephaven/bin:")
    # the image finds the program on its venv's PATH; here the same program comes from this venv
    program = shutil.which(entrypoint[0], path=str(Path(sys.executable).parent))
    assert program, f"{entrypoint[0]} is not installed in {Path(sys.executable).parent}"
    r = dh(*entrypoint[1:], *cmd, exe=[program])
    assert_ok(r)
    assert r.stdout.startswith("Usage: pydeephaven")
    r = dh(*entrypoint[1:], "tables", exe=[program], env={"DH_HOST": server.host, "DH_PORT": str(server.port)})
    assert_ok(r)
    assert trades in r.stdout.splitlines()


def test_compose_pairs_the_image_with_the_matching_server() -> None:
    text = (ROOT / "compose.yaml").read_text()
    images = re.findall(r"^\s+image:\s*(\S+)", text, re.M)
    assert f"ghcr.io/deephaven/server:{version('deephaven-server')}" in images
    assert re.search(r"^\s+build:\s*\.\s*$", text, re.M)
    env = dict(re.findall(r"^\s+(DH_[A-Z_]+):\s*(.+?)\s*$", text, re.M))
    assert set(env) == {"DH_HOST", "DH_PORT", "DH_AUTH_TYPE", "DH_AUTH_TOKEN"}
    from pydeephaven.cli import AUTH_ALIASES, PSK_AUTH as CLI_PSK

    assert AUTH_ALIASES[env["DH_AUTH_TYPE"]] == CLI_PSK == PSK_AUTH
    assert "PskAuthenticationHandler" in text and "${DH_PSK" in env["DH_AUTH_TOKEN"]
