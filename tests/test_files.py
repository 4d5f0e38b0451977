"""Files in and out of the real server: CSV/TSV/Parquet/Arrow IPC imports, streamed exports, a
300 MB file streamed both ways with bounded client memory, progress bars, errors and the query log.
Expected values come from pyarrow/numpy reading or generating the same data, not from the client."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from pydeephaven import DHError, Session
from tests.support.examples import run_example

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data() -> pa.Table:
    rng = np.random.default_rng(11)
    n = 50_000
    return pa.table({
        "Id": np.arange(n, dtype=np.int64),
        "Px": np.round(rng.uniform(1, 100, n), 3),
        "Sym": pa.array(np.array(["A", "BB", "CCC", "with, comma", 'quote"d'])[rng.integers(0, 5, n)]),
        "Ok": pa.array(rng.integers(0, 2, n).astype(bool)),
    })


def _same(server_rows: pa.Table, want: pa.Table) -> None:
    got = server_rows.sort_by("Id") if "Id" in server_rows.column_names else server_rows
    assert got.column_names == want.column_names
    for name in want.column_names:
        assert got[name].to_pylist() == want[name].to_pylist(), name


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".tsv", ".parquet", ".feather", ".arrows"])
def test_import_each_format(session: Session, data: pa.Table, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        pacsv.write_csv(data, path)
    elif suffix == ".csv.gz":
        buf = io.BytesIO()
        pacsv.write_csv(data, buf)
        path.write_bytes(gzip.compress(buf.getvalue()))
    elif suffix == ".tsv":
        pacsv.write_csv(data, path, pacsv.WriteOptions(delimiter="\t"))
    elif suffix == ".parquet":
        pq.write_table(data, path, row_group_size=7_000)
    elif suffix == ".feather":
        feather.write_feather(data, path, chunksize=9_000)
    else:
        with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, data.schema) as w:
            w.write_table(data, max_chunksize=9_000)
    with session.import_file(path) as t:
        assert t.size == data.num_rows
        _same(t.to_arrow(), data)


def test_import_options(session: Session, data: pa.Table, tmp_path: Path) -> None:
    csv_path = tmp_path / "d.txt"
    pacsv.write_csv(data, csv_path, pacsv.WriteOptions(delimiter=";"))
    with session.import_file(csv_path, "csv", delimiter=";", columns=["Id", "Px"],
                             column_types={"Px": pa.float32()}) as t:
        got = t.to_arrow()
    assert got.column_names == ["Id", "Px"]
    assert got.schema.field("Px").type == pa.float32()
    assert got["Px"].to_pylist() == pc.cast(data["Px"], pa.float32()).to_pylist()

    pq_path = tmp_path / "d.parquet"
    pq.write_table(data, pq_path)
    with session.import_file(pq_path, columns=["Sym", "Id"], batch_rows=5_000) as t:
        _same(t.to_arrow(), data.select(["Sym", "Id"]))

    ipc_path = tmp_path / "d.arrow"
    feather.write_feather(data, ipc_path)
    with session.import_file(ipc_path, columns=["Ok"]) as t:
        assert t.to_arrow()["Ok"].to_pylist() == data["Ok"].to_pylist()


def test_import_errors(session: Session, tmp_path: Path) -> None:
    with pytest.raises(DHError, match="no such file"):
        session.import_file(tmp_path / "missing.csv")
    odd = tmp_path / "data.xyz"
    odd.write_text("a\n1\n")
    with pytest.raises(DHError, match="cannot tell the format"):
        session.import_file(odd)
    bad_name = tmp_path / "names.csv"
    bad_name.write_text("my col,x\n1,2\n")
    with pytest.raises(DHError, match="'my col'"):
        session.import_file(bad_name)
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(DHError, match="cannot read it as parquet"):
        session.import_file(not_parquet)
    with pytest.raises(DHError, match="columns \\['Nope'\\]"):
        pq.write_table(pa.table({"A": [1]}), tmp_path / "a.parquet")
        session.import_file(tmp_path / "a.parquet", columns=["Nope"])


def test_csv_type_guess_error_names_the_fix(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "late_text.csv"
    lines = ["A,B"] + [f"{i},{i}" for i in range(5_000)] + ["5000,not a number"]
    path.write_text("\n".join(lines) + "\n")
    # a type given by the caller is kept: a later value that does not fit it is an error naming the fix
    with pytest.raises(DHError, match="column_types"):
        session.import_file(path, csv_options={"block_size": 4096}, column_types={"B": pa.int64()})
    with session.import_file(path, csv_options={"block_size": 4096}, column_types={"B": pa.string()}) as t:
        assert t.size == 5_001
        assert t.to_arrow()["B"].to_pylist()[-1] == "not a number"


@pytest.mark.parametrize("method, suffix", [("to_parquet", ".parquet"), ("to_csv", ".csv"),
                                            ("to_csv", ".csv.gz"), ("to_json", ".json"),
                                            ("to_feather", ".feather")])
def test_export_streams_batch_by_batch(session: Session, tmp_path: Path, method: str, suffix: str) -> None:
    n = 300_000
    t = session.empty_table(n).update(["Id = ii", "Half = ii * 0.5", "Tag = ii % 3 == 0 ? `x` : null"])
    path = tmp_path / f"out{suffix}"
    batches_seen = sum(1 for _ in t.iter_batches())
    assert batches_seen > 1  # the server sends the table in several batches, each written as it comes
    assert getattr(t, method)(path) == n
    if suffix == ".parquet":
        back = pq.read_table(path)
    elif suffix == ".feather":
        back = feather.read_table(path)
    elif suffix == ".json":
        back = pa.Table.from_pylist(json.loads(path.read_text()))
    else:
        raw = gzip.decompress(path.read_bytes()) if suffix.endswith(".gz") else path.read_bytes()
        back = pacsv.read_csv(io.BytesIO(raw), convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    ids = np.arange(n, dtype=np.int64)
    assert back.num_rows == n
    assert pc.sum(back["Id"]).as_py() == int(ids.sum())
    assert pc.sum(back["Half"]).as_py() == pytest.approx(float((ids * 0.5).sum()))
    assert back["Tag"].null_count == n - len(range(0, n, 3))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_json_lines_and_csv_text_of_a_file_export(session: Session, tmp_path: Path) -> None:
    t = session.empty_table(5).update(["A = ii", "B = `b` + ii"])
    assert t.to_json(tmp_path / "a.jsonl", lines=True) == 5
    assert [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()] == \
        [{"A": i, "B": f"b{i}"} for i in range(5)]
    empty = session.empty_table(0).update(["A = ii"])
    assert empty.to_json(tmp_path / "e.json") == 0 and json.loads((tmp_path / "e.json").read_text()) == []
    assert empty.to_parquet(tmp_path / "e.parquet") == 0
    assert pq.read_table(tmp_path / "e.parquet").column_names == ["A"]


def test_export_errors_leave_no_file(session: Session, tmp_path: Path) -> None:
    t = session.empty_table(10).update(["A = ii"])
    with pytest.raises(DHError, match="does not exist"):
        t.to_parquet(tmp_path / "no" / "such" / "dir.parquet")
    with pytest.raises(DHError, match="is a directory"):
        t.to_csv(tmp_path)
    closed = session.empty_table(3)
    closed.close()
    with pytest.raises(DHError, match="closed"):
        closed.to_parquet(tmp_path / "c.parquet")
    assert list(tmp_path.iterdir()) == []


def test_progress_bar(session: Session, data: pa.Table, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(data, path)
    with session.import_file(path, progress=True) as t:
        t.to_csv(tmp_path / "p.csv", progress=True)
    err = capfd.readouterr().err
    assert "import p.parquet" in err and "100%" in err and "50000/50000" in err
    assert "to_csv p.csv" in err
    with session.import_file(path) as t:  # not a terminal here: no bar by default
        t.to_csv(tmp_path / "q.csv")
    with session.import_file(path, progress=False):
        pass
    assert capfd.readouterr().err == ""


def test_transfers_are_logged_and_counted(session: Session, data: pa.Table, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "l.parquet"
    pq.write_table(data, path)
    with caplog.at_level(logging.DEBUG, logger="pydeephaven"):
        with session.import_file(path) as t:
            t.to_parquet(tmp_path / "l2.parquet")
    messages = [r.getMessage() for r in caplog.records if r.name == "pydeephaven"]
    assert any(m.startswith(f"DoPut {data.num_rows} rows") for m in messages)
    assert any(m.startswith("import_file") and f"{data.num_rows} rows" in m for m in messages)
    assert any(m.startswith(f"DoGet:to_parquet {data.num_rows} rows") for m in messages)
    assert session.stats.rows["DoGet:to_parquet"] == data.num_rows
    assert session.stats.nbytes["DoGet:to_parquet"] > 0
    summary = session.stats.summary()
    line = next(x for x in summary.splitlines() if x.startswith("DoGet:to_parquet"))
    assert f"{data.num_rows:,}" in line
    assert summary.splitlines()[0].startswith(f"{session.stats.total_calls} calls")


_BIG_CHILD = textwrap.dedent("""
    import json, sys
    import pyarrow as pa
    from pydeephaven import Session
    port, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    out = {}
    with Session("127.0.0.1", port) as s:
        t = s.import_file(src)
        out["size"] = t.size
        out["import_arrow_peak"] = pa.default_memory_pool().max_memory()
        sums = t.view(["K", "V"]).sum_by().to_arrow()
        out["sum_k"], out["sum_v"] = sums["K"][0].as_py(), sums["V"][0].as_py()
        out["written"] = t.to_parquet(dst)
        out["arrow_peak"] = pa.default_memory_pool().max_memory()
        # VmHWM: this process's own peak (ru_maxrss would also count the parent's size at fork time)
        with open("/proc/self/status") as f:
            out["rss_peak"] = next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmHWM:"))
    print(json.dumps(out))
""")


def test_file_larger_than_a_chunk_streams_both_ways(server, tmp_path: Path) -> None:
    """A 300 MB CSV imported and the table exported to Parquet in a child process whose Arrow
    memory stays far below the data's size (it would hold ~280 MB if the table were loaded whole)."""
    rng = np.random.default_rng(5)
    n = 500_000
    chunk = pa.table({"K": rng.integers(0, 10**9, n), "V": np.round(rng.uniform(-1000, 1000, n), 2)})
    buf = io.BytesIO()
    pacsv.write_csv(chunk, buf)
    header, body = buf.getvalue().split(b"\n", 1)
    reps = -(-300_000_000 // len(body))
    src = tmp_path / "big.csv"
    with open(src, "wb") as f:
        f.write(header + b"\n")
        for _ in range(reps):
            f.write(body)
    size = src.stat().st_size
    assert size >= 300_000_000
    rows = reps * n
    want_k = reps * int(chunk["K"].to_numpy().sum())
    want_v = reps * float(chunk["V"].to_numpy().sum())
    dst = tmp_path / "big.parquet"

    proc = subprocess.run([sys.executable, "-c", _BIG_CHILD, str(server.port), str(src), str(dst)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["size"] == rows
    assert out["sum_k"] == want_k
    assert out["sum_v"] == pytest.approx(want_v, rel=1e-9)
    assert out["written"] == rows
    assert out["import_arrow_peak"] < 120 * 2**20, out
    assert out["arrow_peak"] < 120 * 2**20, out
    assert out["rss_peak"] < 450 * 2**20, out
    os.unlink(src)
    pf = pq.ParquetFile(dst)
    assert pf.metadata.num_rows == rows
    got_k = 0
    for b in pf.iter_batches(columns=["K"], batch_size=1_000_000):
        got_k += pc.sum(b.column(0)).as_py()
    assert got_k == want_k


def test_example_files(server) -> None:
    proc = run_example(server, "files")
    lines = proc.stdout.splitlines()
    # the example writes 1,000 rows with Qty = i % 10 + 1 and groups by Sym = i % 3: compute the same
    qty = {f"S{k}": sum(i % 10 + 1 for i in range(1000) if i % 3 == k) for k in range(3)}
    assert lines[0] == "imported 1000 rows"
    assert json.loads(lines[1]) == [{"Sym": s, "Qty": q} for s, q in sorted(qty.items())]
    assert lines[2] == "wrote 3 rows to totals.parquet"
