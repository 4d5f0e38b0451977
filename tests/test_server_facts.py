"""Row search, column statistics and server facts, through both APIs against the real server;
expected values computed here from the data."""

from __future__ import annotations

import math
import statistics
from importlib.metadata import version

import pyarrow as pa
import pytest

from pydeephaven import DHError

N = 30
DATA = pa.table({
    "X": pa.array([i * 1.5 - 7.0 for i in range(N)]),
    "S": pa.array([("red", "green", "blue", "green", "Green")[i % 5] for i in range(N)]),
    "N": pa.array([i % 9 for i in range(N)], pa.int64()),
})


def seek(values: list, match, start: int, reverse: bool = False) -> int:
    """The web UI's find: from the row after ``start`` (before, reversed), round the end, ``start`` last."""
    n = len(values)
    step = -1 if reverse else 1
    for k in range(1, n + 1):
        pos = (start + step * k) % n
        if match(values[pos]):
            return pos
    return -1


async def test_seek_row(api) -> None:
    t = await api.imp(DATA)
    s_col, n_col = DATA.column("S").to_pylist(), DATA.column("N").to_pylist()
    for start in (0, 4, 17, N - 1):
        assert await api.run(t.seek_row("S", "green", start)) == seek(s_col, lambda v: v == "green", start)
        assert await api.run(t.seek_row("N", 3, start, reverse=True)) == seek(n_col, lambda v: v == 3, start, True)
    got = await api.run(t.seek_row("S", "GREEN", 2, case_insensitive=True))
    assert got == seek(s_col, lambda v: v.lower() == "green", 2)
    assert await api.run(t.seek_row("S", "lu", 0, contains=True)) == seek(s_col, lambda v: "lu" in v, 0)
    assert await api.run(t.seek_row("N", 99)) == -1
    text = await api.no_round_trip(lambda: t.seek_row("No_such", 1))
    assert "no column 'No_such'" in text and "'X', 'S', 'N'" in text
    text = await api.no_round_trip(lambda: t.seek_row("N", object()))
    assert "seek_row" in text and "object" in text
    await api.no_round_trip(lambda: t.seek_row("N", 1, start=-1))


async def test_column_statistics_of_numbers_and_strings(api) -> None:
    t = await api.imp(DATA)
    xs = DATA.column("X").to_pylist()
    st = await api.run(t.column_statistics("X"))
    assert (st["COUNT"], st["SIZE"]) == (N, N)
    assert math.isclose(st["SUM"], sum(xs)) and math.isclose(st["SUM_ABS"], sum(abs(x) for x in xs))
    assert math.isclose(st["SUM_SQRD"], sum(x * x for x in xs))
    assert (st["MIN"], st["MAX"]) == (min(xs), max(xs))
    assert (st["MIN_ABS"], st["MAX_ABS"]) == (min(abs(x) for x in xs), max(abs(x) for x in xs))
    assert math.isclose(st["AVG"], statistics.mean(xs))
    assert math.isclose(st["STD_DEV"], statistics.stdev(xs))
    words = DATA.column("S").to_pylist()
    st = await api.run(t.column_statistics("S"))
    assert st["UNIQUE_VALUES"] == len(set(words))
    counts = dict(zip(st["UNIQUE_KEYS"], st["UNIQUE_COUNTS"]))
    assert counts == {w: words.count(w) for w in set(words)}
    top = await api.run(t.column_statistics("S", unique_value_limit=1))
    assert top["UNIQUE_KEYS"] == ["green"] and top["UNIQUE_COUNTS"] == [words.count("green")]
    with pytest.raises(DHError, match="no column 'Q'"):
        await api.run(t.column_statistics("Q"))


async def test_server_facts(api) -> None:
    s = api.s
    assert s.server_version == version("deephaven-server")
    config = s.server_config
    assert config["deephaven.version"] == s.server_version and "java.version" in config
    config["deephaven.version"] = "changed"  # a copy: the session's own is not changed
    assert s.server_version == version("deephaven-server")
    heap = await api.run(s.heap_info())
    assert 0 < heap["free_memory"] <= heap["total_memory"] <= heap["max_memory"]


async def test_run_script_says_what_it_changed(api) -> None:
    import time

    p = f"sr_{api.kind}_"
    before = time.time_ns()
    made = await api.run(api.s.run_script(
        f"from deephaven import empty_table\n{p}a = empty_table(1)\n{p}n = 5\n"
        f"{p}p = empty_table(4).update('G = i % 2').partition_by('G')"))
    assert made.created == {f"{p}a": "Table", f"{p}p": "PartitionedTable"}  # a plain number is no server object
    assert made.updated == {} and made.removed == {}
    assert before <= made.start <= made.end <= time.time_ns()
    rebound = await api.run(api.s.run_script(f"{p}a = empty_table(2)\ndel {p}n"))
    assert (rebound.created, rebound.updated, rebound.removed) == ({}, {f"{p}a": "Table"}, {})
    gone = await api.run(api.s.run_script(f"del {p}a, {p}p"))
    assert gone.removed == {f"{p}a": "Table", f"{p}p": "PartitionedTable"} and gone.created == {}
