"""Live tables over Barrage, against the real server: full and viewport subscriptions, listeners,
every column type, keyed input tables, clean stops and a server that goes away.

Live copies wait for quiet points (the server table has stopped changing) and are then compared with
values computed here from what the test put in (time-table rows from their start and period,
input-table rows from the model the test keeps), so that a decoding bug shared with ``to_arrow()``
cannot pass. The updates a listener received are replayed from scratch with plain Python lists to
check that they rebuild the final table.
"""

from __future__ import annotations

import decimal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pytest

from pydeephaven import DHError, Session, TableListener, TableListenerHandle, TableUpdate, listen
from pydeephaven._barrage import rowset

from tests.support.faultproxy import FaultProxy
from tests.support.examples import run_example

TIMEOUT = 20.0


def soon(seconds: float = 1.5) -> int:
    """A time table start a little ahead, so that subscriptions exist before the first row."""
    return time.time_ns() + int(seconds * 1e9)


def _subscription_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pydeephaven-subscription") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_threads_left():
    yield
    deadline = time.monotonic() + 5
    while _subscription_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _subscription_threads() == [], "a subscription thread outlived its test"


def settle(live: Any, table: Any, columns: Optional[list[str]] = None, rows: Optional[slice] = None,
           timeout: float = TIMEOUT, done: Optional[Any] = None) -> pa.Table:
    """Wait until the live copy equals the server's table and return that table; with ``done``,
    only a server table for which ``done(table)`` holds (the expected quiet point) counts."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ref = table.to_arrow()
        if rows is not None:
            ref = ref.slice(rows.start, rows.stop - rows.start)
        if columns is not None:
            ref = ref.select(columns)
        last = ref
        if done is not None and not done(ref):
            time.sleep(0.1)
            continue
        if live.wait_for(lambda snap, ref=ref: snap.equals(ref),
                         timeout=min(1.5, max(0.05, deadline - time.monotonic()))):
            return ref
    snap = live.snapshot()
    raise AssertionError(f"live copy never matched the server table: live {snap.num_rows} rows, "
                         f"server {last.num_rows if last is not None else '?'} rows\n{snap.slice(0, 5)}\n"
                         f"{last.slice(0, 5) if last is not None else ''}")


def values(t: pa.Table) -> dict[str, list]:
    """The table as Python lists, timestamps as int64 nanoseconds (exact, unlike datetime)."""
    cols = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in t.columns]
    return pa.Table.from_arrays(cols, names=t.column_names).to_pydict()


def wait_rows(table: Any, n: int, timeout: float = TIMEOUT) -> None:
    """Wait until the server's table has ``n`` rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if table.to_arrow().num_rows == n:
            return
        time.sleep(0.1)
    raise AssertionError(f"the server table never reached {n} rows")


class Replay(TableListener):
    """Rebuilds a table from the updates alone, with Python lists, checking on the way that the
    removed and modified_prev values are the ones it holds."""

    def __init__(self) -> None:
        self.cols: dict[str, list] = {}
        self.updates: list[TableUpdate] = []
        self.counts = {"added": 0, "removed": 0, "modified": 0, "snapshots": 0}
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def on_update(self, update: TableUpdate) -> None:
        with self.lock:
            self.updates.append(update)
            if update.is_snapshot:
                self.counts["snapshots"] += 1
            removed = update.removed()
            rpos = update.removed_rows.tolist()
            for name, values in removed.items():
                held = [self.cols[name][p] for p in rpos]
                assert held == values.to_pylist(), f"removed values of {name} differ from the rows held"
            for name in self.cols:
                for p in sorted(rpos, reverse=True):
                    del self.cols[name][p]
            added = update.added()
            for name, values in added.items():
                col = self.cols.setdefault(name, [])
                for p, v in zip(update.added_rows.tolist(), values.to_pylist()):
                    col.insert(p, v)
            mpos = update.modified_rows.tolist()
            if mpos:
                prev, new = update.modified_prev(), update.modified()
                for name in new:
                    held = [self.cols[name][p] for p in mpos]
                    assert held == prev[name].to_pylist(), f"modified_prev of {name} differs from the rows held"
                    for p, v in zip(mpos, new[name].to_pylist()):
                        self.cols[name][p] = v
            self.counts["added"] += update.num_added
            self.counts["removed"] += update.num_removed
            self.counts["modified"] += update.num_modified

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)

    def table(self, names: list[str]) -> dict[str, list]:
        with self.lock:
            return {n: list(self.cols.get(n, [])) for n in names}


# -- row sets (the wire encoding, checked against values computed here) -------------------------------


def test_rowset_encoding_round_trips_and_matches_the_wire_guide():
    # the wire guide's rules written out by hand: offset 5 (byte), offset 3 then -4 (range 8..12), end
    data = bytes([0x0C, 5, 0x0C, 3, 0x0C, 0xFC, 0x20])
    rs = rowset.decode(data)
    assert rs.keys().tolist() == [5, 8, 9, 10, 11, 12]
    assert rowset.encode(rs) == data
    # a short array of deltas: 2 elements [300, -2] after a leading offset 1 -> {1, 301..303}
    data = bytes([0x0C, 1, (2 << 3) | 4, 2]) + np.array([300, -2], "<i2").tobytes() + bytes([0x20])
    assert rowset.decode(data).keys().tolist() == [1, 301, 302, 303]
    rng = np.random.default_rng(7)
    for _ in range(50):
        keys = np.unique(rng.integers(0, 1 << int(rng.integers(3, 62)), size=int(rng.integers(0, 300))))
        rs = rowset.RowSet.from_keys(keys)
        back = rowset.decode(rowset.encode(rs))
        assert np.array_equal(back.keys(), keys)
    assert rowset.decode_bitset(rowset.encode_bitset([0, 3, 9])) == [0, 3, 9]
    assert rowset.encode_bitset([0, 3, 9]) == bytes([0b1001, 0b10])
    with pytest.raises(rowset.RowSetError, match=r"row set ends without an end command"):
        rowset.decode(bytes([0x0C, 5]))  # no end command


# -- full subscriptions of ticking tables -------------------------------------------------------------


def test_time_table_chain_live_copies_match_and_updates_replay(session: Session):
    n, period = 120, 15_000_000
    start = soon()
    base = session.time_table("PT0.015s", start_time=start).update(
        ["X = ii", "G = (int)(ii % 7)", "S = `s` + ii", "D = ii * 0.5"])
    base = base.where(f"X < {n}")
    tables = {
        "update_where": base.update(["Y = X * 2"]).where("X % 3 != 1"),
        "sorted_desc": base.sort_descending("X"),
        "last_by": base.last_by("G"),
        "top5": base.sort_descending("X").head(5),
    }
    lives = {k: t.subscribe() for k, t in tables.items()}
    replays = {k: Replay() for k in tables}
    handles = {k: listen(t, replays[k]) for k, t in tables.items()}
    try:
        for h in handles.values():
            h.start()
        assert lives["update_where"].wait_for(lambda s: s.num_rows > 0, TIMEOUT)
        # the quiet point, computed here: the filtered time table has all n rows and stops changing
        expected_x = {
            "update_where": [x for x in range(n) if x % 3 != 1],
            "sorted_desc": list(range(n - 1, -1, -1)),
            "last_by": [n - 7 + ((g - (n - 7)) % 7) for g in range(7)],
            "top5": list(range(n - 1, n - 6, -1)),
        }
        finals = {k: settle(lives[k], t, done=lambda ref, k=k: ref["X"].to_pylist() == expected_x[k])
                  for k, t in tables.items()}
        # every column of each quiet point, computed here from X (row X is due at start + X * period)
        for k, final in finals.items():
            xs = expected_x[k]
            want = {"Timestamp": [start + x * period for x in xs], "X": xs, "G": [x % 7 for x in xs],
                    "S": [f"s{x}" for x in xs], "D": [x * 0.5 for x in xs]}
            if k == "update_where":
                want["Y"] = [2 * x for x in xs]
            if k == "last_by":  # grouped by G: the key column comes first, in order of first appearance
                want = {"G": want.pop("G"), **want}
            assert values(final) == want, k
            assert values(lives[k].snapshot()) == want, k
        assert finals["last_by"]["G"].to_pylist() == list(range(7))
        for k in tables:
            rp = replays[k]
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline and rp.table(["X"])["X"] != finals[k]["X"].to_pylist() and not rp.errors:
                time.sleep(0.05)
            assert rp.errors == [], f"{k}: {rp.errors}"
            assert rp.table(finals[k].column_names) == finals[k].to_pydict(), k
            assert rp.counts["snapshots"] >= 1
        # the chain really ticked while subscribed: later updates, modifies, removes
        assert len(replays["sorted_desc"].updates) >= 2
        assert replays["last_by"].counts["modified"] > 0
        assert replays["top5"].counts["removed"] > 0
        assert lives["update_where"].row_update_count >= len(finals["update_where"])
    finally:
        for h in handles.values():
            h.stop()
        for lv in lives.values():
            lv.close()
    assert all(not h.is_running for h in handles.values())


D = decimal.Decimal
ALL_TYPES = {
    "i8": pa.array([1, None, -3], pa.int8()),
    "i16": pa.array([300, None, -3], pa.int16()),
    "i32": pa.array([1 << 20, None, -3], pa.int32()),
    "i64": pa.array([1 << 40, None, -3], pa.int64()),
    "u8": pa.array([1, None, 255], pa.uint8()),
    "u16": pa.array([1, None, 65534], pa.uint16()),
    "u32": pa.array([1, None, 2**32 - 1], pa.uint32()),
    "u64": pa.array([1, None, 2**63 + 5], pa.uint64()),
    "f16": pa.array([1.5, None, -2.0], pa.float32()).cast(pa.float16()),
    "f32": pa.array([1.5, None, -2.25], pa.float32()),
    "f64": pa.array([1.5, None, float("inf")], pa.float64()),
    "b": pa.array([True, None, False]),
    "s": pa.array(["a", None, "çé"]),
    "bin": pa.array([b"\x00a", None, b"c"]),
    "fsb": pa.array([b"ab", None, b"cd"], pa.binary(2)),
    "d32": pa.array([1, None, -1], pa.int32()).cast(pa.date32()),
    "d64": pa.array([86_400_000, None, 0], pa.int64()).cast(pa.date64()),
    "t32": pa.array([1, None, 3], pa.time32("ms")),
    "t64": pa.array([1, None, 3_000_000_000], pa.time64("ns")),
    "ts": pa.array([1, None, 1_700_000_000_000_000_000], pa.timestamp("ns")),
    "tsu": pa.array([1, None, 3], pa.timestamp("us", tz="UTC")),
    "tsz": pa.array([1, None, 3], pa.timestamp("ms", tz="America/New_York")),
    "dur": pa.array([1, None, -3], pa.duration("ns")),
    "dec": pa.array([D("1.50"), None, D("-2.25")], pa.decimal128(10, 2)),
    "dec256": pa.array([D("1.50"), None, D("2.25")], pa.decimal256(40, 2)),
    "li": pa.array([[1, 2], None, []], pa.list_(pa.int64())),
    "ls": pa.array([["a"], None, ["b", None]], pa.list_(pa.string())),
    "lts": pa.array([[1], None, [2]], pa.list_(pa.timestamp("ns", tz="UTC"))),
    "fsl": pa.array([[1, 2], None, [3, 4]], pa.list_(pa.int32(), 2)),
    "dict": pa.array(["a", None, "b"]).dictionary_encode(),
    "nul": pa.array([None, None, None]),
}


def _plain(t: pa.Table) -> pa.Table:
    """Dictionary columns decoded, so that equal values compare equal whatever the dictionaries."""
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in t.columns]
    return pa.Table.from_arrays(cols, names=t.column_names)


def test_every_column_type_static_and_ticking(session: Session):
    data = pa.table(ALL_TYPES)
    src = session.import_table(data)
    ref = src.to_arrow()
    with src.subscribe() as live:
        assert live.wait_for_updates(1, TIMEOUT)
        snap = live.snapshot()
        # the values and types put in, not only what to_arrow() makes of them
        assert snap.schema.names == data.schema.names
        assert [f.type for f in snap.schema] == [f.type for f in data.schema]
        for name, arr in ALL_TYPES.items():
            assert snap[name].to_pylist() == arr.to_pylist(), name
        assert _plain(snap).equals(_plain(ref))
    # the same values riding on a ticking table: each new row joins one of the three rows
    n = 30
    ticking = (session.time_table("PT0.02s", start_time=soon()).update(["J = (int)(ii % 3)", "N = ii"])
               .where(f"N < {n}").natural_join(src.update(["J = (int)ii"]), on=["J"]))
    rp = Replay()
    newest = ticking.sort_descending("N")
    with ticking.subscribe() as live, listen(ticking, rp), newest.subscribe(viewport=(1, 4)) as top:
        assert live.wait_for(lambda snap: snap.num_rows == n, TIMEOUT)
        final = settle(live, ticking, done=lambda ref: ref.num_rows == n)
        assert final.num_rows == n
        assert _plain(live.snapshot()).equals(_plain(final))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and len(rp.table(["N"])["N"]) < n and not rp.errors:
            time.sleep(0.05)
        assert rp.errors == []
        assert rp.table(["N", "i64", "s", "li"]) == _plain(final).select(["N", "i64", "s", "li"]).to_pydict()
        # every type through a viewport of the newest rows (position-space updates)
        top_ref = settle(top, newest, rows=slice(1, 5),
                         done=lambda ref: ref["N"].to_pylist() == [n - 2, n - 3, n - 4, n - 5])
        assert _plain(top.snapshot()).equals(_plain(top_ref))
    # expected values computed here, not by the server: row N holds source row N % 3 (for the
    # columns whose Arrow type the join keeps; the server sends e.g. joined decimals as binary)
    kept = [name for name in ALL_TYPES if final.schema.field(name).type == data.schema.field(name).type]
    assert {"i64", "s", "li", "b", "bin"} <= set(kept), " ".join(kept)
    for name in kept:
        want = ALL_TYPES[name].to_pylist()
        assert final[name].to_pylist() == [want[j % 3] for j in range(n)], name
    assert final["N"].to_pylist() == list(range(n))


def test_keyed_input_table_adds_changes_deletes(session: Session):
    schema = pa.schema([("Key", pa.string()), ("Val", pa.int64()), ("Txt", pa.string())])
    it = session.input_table(schema=schema, key_cols="Key")
    model: dict[str, tuple[int, str]] = {}
    rp = Replay()
    mods: list[dict] = []

    class Watch(TableListener):
        def on_update(self, update: TableUpdate) -> None:
            rp.on_update(update)
            if update.num_modified:
                mods.append({"prev": update.modified_prev(["Key", "Val"]), "new": update.modified("Val"),
                             "cols": update.modified_columns})

        def on_error(self, error: Exception) -> None:
            rp.on_error(error)

    def as_dict(t: pa.Table) -> dict[str, tuple[int, str]]:
        return {k: (v, x) for k, v, x in zip(*(t[c].to_pylist() for c in ("Key", "Val", "Txt")))}

    handle = TableListenerHandle(it, Watch())
    handle.start()
    live = it.subscribe()
    try:
        def apply(rows: dict[str, tuple[int, str]], delete: tuple[str, ...] = ()) -> None:
            if rows:
                it.add(session.import_table(pa.table({"Key": list(rows), "Val": [v for v, _ in rows.values()],
                                                      "Txt": [t for _, t in rows.values()]}, schema=schema)))
                model.update(rows)
            if delete:
                it.delete(session.import_table(pa.table({"Key": list(delete)}, schema=pa.schema([schema.field(0)]))))
                for k in delete:
                    model.pop(k)
            # the server shows the model kept here, and the live copy equals the server's table
            settle(live, it, done=lambda ref: as_dict(ref) == model)

        apply({f"k{i}": (i, f"t{i}") for i in range(20)})
        apply({"k3": (300, "changed"), "k7": (700, "t7"), "new": (1, "n")})
        apply({}, delete=("k0", "k5", "new"))
        apply({"k5": (55, "back"), "k19": (190, "t19b")}, delete=("k1",))
        deadline = time.monotonic() + TIMEOUT
        want = settle(live, it, done=lambda ref: as_dict(ref) == model).to_pydict()
        while time.monotonic() < deadline and rp.table(list(want)) != want and not rp.errors:
            time.sleep(0.05)
        assert rp.errors == []
        assert rp.table(list(want)) == want
        assert rp.counts["removed"] >= 4 and rp.counts["modified"] >= 3
        # the modification of k3 was seen with its previous value
        seen = [(m["prev"]["Key"].to_pylist(), m["prev"]["Val"].to_pylist(), m["new"]["Val"].to_pylist()) for m in mods]
        assert any("k3" in keys and prev[keys.index("k3")] == 3 and new[keys.index("k3")] == 300
                   for keys, prev, new in seen), seen
        assert all("Val" in m["cols"] for m in mods if m["new"])
    finally:
        handle.stop()
        live.close()


# -- viewports ----------------------------------------------------------------------------------------


def test_viewport_moved_while_ticking(session: Session):
    n, start = 150, soon()
    t = (session.time_table("PT0.012s", start_time=start).update(["X = ii", "S = `s` + ii", "D = ii * 1.5"])
         .where(f"X < {n}").sort_descending("X"))
    live = t.subscribe(columns=["X", "S"], viewport=(0, 4))
    updates: list[TableUpdate] = []
    live.add_listener(updates.append)
    try:
        assert live.wait_for(lambda s: s.num_rows == 5, TIMEOUT)
        assert live.columns == ["X", "S"] and live.viewport == [(0, 4)]
        # move while the table still ticks (it needs n * 12 ms to fill)
        live.set_viewport([(10, 14), (20, 21)], columns=["X", "D"])
        assert live.wait_for(lambda s: s.column_names == ["X", "D"] and s.num_rows == 7, TIMEOUT)
        assert live.viewport == [(10, 14), (20, 21)]
        # rows 10-14 and 20-21 of the full table (X descending from n - 1), computed here
        xs = [n - 11, n - 12, n - 13, n - 14, n - 15, n - 21, n - 22]
        want = pa.table({"X": pa.array(xs, pa.int64()), "D": [x * 1.5 for x in xs]})
        assert live.wait_for(lambda s: s.equals(want), TIMEOUT), live.snapshot().to_pydict()
        # the last rows, counted from the end
        live.set_viewport((0, 2), reverse_viewport=True)
        tail = settle(live, t, rows=slice(n - 3, n))
        def rows_of(xs: list[int]) -> dict[str, list]:  # every column, computed from X
            return {"Timestamp": [start + x * 12_000_000 for x in xs], "X": xs, "S": [f"s{x}" for x in xs],
                    "D": [x * 1.5 for x in xs]}

        assert values(tail) == rows_of([2, 1, 0])  # columns=None: every column again
        # viewport -> whole table -> viewport again
        live.set_viewport(None)
        assert values(settle(live, t)) == rows_of(list(range(n - 1, -1, -1)))
        live.set_viewport((3, 5), columns="S")
        assert live.wait_for(lambda s: s["S"].to_pylist() == [f"s{n - 4}", f"s{n - 5}", f"s{n - 6}"], TIMEOUT)
        assert live.error is None
        assert any(u.num_removed for u in updates) and any(u.is_snapshot for u in updates)
    finally:
        live.close()
    with pytest.raises(DHError, match=r"snapshot: the live table was closed"):
        live.snapshot()


@pytest.mark.parametrize("reverse", [False, True], ids=["from-top", "from-end"])
def test_viewport_of_a_sorted_table_follows_inserts_deletes_and_moves(session: Session, reverse: bool):
    # Rows enter and leave a viewport of a sorted table above, inside and below it. In position
    # space the server sends no shifts: the rows that stay keep their order and fill the positions
    # the update does not add (an insert above the viewport arrives as "remove the last, add at 0").
    # A reverse viewport counts positions from the end; its rows still come in table order.
    schema = pa.schema([("K", pa.int64()), ("V", pa.int64()), ("T", pa.string())])
    it = session.input_table(schema=schema, key_cols="K")
    ordered = it.sort("V")
    model: dict[int, tuple[int, str]] = {}  # key -> (V, T); the table is sorted by V
    rp = Replay()
    live = ordered.subscribe(viewport=(2, 6), reverse_viewport=reverse, update_interval_ms=10, on_update=rp)
    first, last = 2, 6

    def window() -> slice:
        if not reverse:
            return slice(first, last + 1)
        n = len(model)
        return slice(max(0, n - 1 - last), max(0, n - first))

    def expected() -> dict[str, list[int]]:
        rows = sorted(model.items(), key=lambda kv: kv[1][0])[window()]
        return {"K": [k for k, _ in rows], "V": [v for _, (v, _) in rows], "T": [x for _, (_, x) in rows]}

    def step(add: dict[int, int] = {}, delete: tuple[int, ...] = (), text: str = "") -> None:  # noqa: B006
        if add:
            rows = {k: (v, text or f"t{k}") for k, v in add.items()}
            it.add(session.import_table(pa.table({"K": list(rows), "V": [v for v, _ in rows.values()],
                                                  "T": [x for _, x in rows.values()]}, schema=schema)))
            model.update(rows)
        if delete:
            it.delete(session.import_table(pa.table({"K": list(delete)}, schema=pa.schema([schema.field(0)]))))
            for k in delete:
                model.pop(k)
        w = window()
        got = settle(live, ordered, rows=slice(w.start, max(w.start, w.stop)),
                     done=lambda ref: ref.to_pydict() == expected())
        assert got.to_pydict() == expected()

    try:
        step({k: 10 * k for k in range(10)})
        step({100: 5})  # one row above the viewport: every viewport row moves down one
        step({101: 1, 102: 2, 103: 3})  # three above at once
        step(delete=(1,))  # a row inside goes; one comes in from below
        step({2: 31})  # a row moves inside the viewport
        k = expected()["K"][1]
        step({k: model[k][0]}, text="changed")  # a value changes in place
        step({2: 1000})  # a row moves out below
        step(delete=(101, 102))  # rows above go: every viewport row moves up
        first, last = 0, 3
        live.set_viewport((first, last), reverse_viewport=reverse)  # overlapping move on the same stream
        step({104: -1})
        first, last = 5, 40  # wider than the table
        live.set_viewport((first, last), reverse_viewport=reverse)
        step({k: 500 + k for k in range(200, 220)})
        step(delete=tuple(range(200, 210)))
        assert live.error is None and rp.errors == []
        deadline = time.monotonic() + TIMEOUT
        while rp.table(["K", "V", "T"]) != expected() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rp.table(["K", "V", "T"]) == expected()
        assert rp.counts["removed"] > 0 and rp.counts["modified"] > 0
    finally:
        live.close()


def test_viewport_top_of_a_ticking_sorted_table(session: Session):
    # newest first: each cycle (1 s) brings about four rows that push the viewport's rows down; the
    # server sends removes at the bottom and adds at the top, and no shifts
    n = 14
    t = (session.time_table("PT0.25s", start_time=soon()).update(["X = ii", "S = `s` + ii"])
         .where(f"X < {n}").sort_descending("X"))
    lives = [t.subscribe(viewport=vp, update_interval_ms=ms) for vp, ms in (((0, 4), 10), ((2, 9), 0))]
    try:
        for live, (a, b) in zip(lives, ((0, 4), (2, 9))):
            want = list(range(n - 1 - a, n - 2 - b, -1))
            assert live.wait_for(lambda s, want=want: s["X"].to_pylist() == want, TIMEOUT), \
                live.snapshot().to_pydict()
            assert live.error is None
    finally:
        for live in lives:
            live.close()


# -- the listener API -----------------------------------------------------------------------------------


def test_listen_api_shape_and_chunks(session: Session):
    t = session.empty_table(10).update(["A = ii", "B = `b` + ii"])
    with pytest.raises(ValueError, match=r"Callable listener function must have 1 \(update\) parameter"):
        listen(t, lambda a, b: None)
    with pytest.raises(ValueError, match=r"When passing a TableListener object, second argument must be None"):
        listen(t, Replay(), on_error=lambda e: None)
    with pytest.raises(ValueError, match=r"listener is neither callable nor TableListener object"):
        listen(t, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"on_error function must have 1 \(exception\) parameter"):
        listen(t, lambda u: None, on_error=lambda a, b: None)

    got: list[TableUpdate] = []
    done = threading.Event()

    def on_update(update):
        got.append(update)
        done.set()

    h = listen(t, on_update, lambda e: None)
    assert isinstance(h, TableListenerHandle) and not h.is_running
    h.start()
    try:
        assert done.wait(TIMEOUT)
    finally:
        h.stop()
    u = got[0]
    assert u.is_snapshot and u.num_added == 10
    assert u.removed() == {} and u.modified() == {} and u.modified_prev() == {}
    added = u.added()
    assert list(added) == ["A", "B"] and added["A"].to_pylist() == list(range(10))
    assert list(u.added("B")) == ["B"] and list(u.added(["B", "A"])) == ["B", "A"]
    chunks = list(u.added_chunks(4, "A"))
    assert [len(c["A"]) for c in chunks] == [4, 4, 2]
    assert sum((c["A"].to_pylist() for c in chunks), []) == list(range(10))
    assert list(u.removed_chunks(3)) == []
    with pytest.raises(DHError, match=r"added: no column 'nope' in this update \(columns: A, B\)"):
        u.added("nope")
    assert u.table.num_rows == 10

    # the add-on's import path serves the same classes
    from pydeephaven_ticking.table_listener import TableListener as TL, listen as listen2

    assert TL is TableListener and listen2 is listen


def test_stop_from_inside_the_listener_and_no_calls_after_stop(session: Session):
    t = session.time_table("PT0.01s").update(["X = ii"])
    calls: list[int] = []
    holder: dict[str, TableListenerHandle] = {}

    def on_update(update):
        calls.append(update.num_added)
        if len(calls) == 2:
            holder["h"].stop()  # from the subscription's own thread: must not deadlock

    holder["h"] = h = listen(t, on_update)
    h.start()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and (len(calls) < 2 or h.is_running):
        time.sleep(0.05)
    assert len(calls) == 2 and not h.is_running
    time.sleep(1.5)  # more than a server cycle: no call may follow the stop
    assert len(calls) == 2

    seen = []
    with listen(t, lambda u: seen.append(u)) as h2:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and len(seen) < 2:
            time.sleep(0.05)
    n = len(seen)
    assert n >= 2 and not h2.is_running
    time.sleep(1.5)
    assert len(seen) == n


def test_listener_exception_ends_the_subscription_through_on_error(session: Session):
    t = session.time_table("PT0.05s")
    errors: list[BaseException] = []

    def on_update(update):
        raise RuntimeError("listener broke")

    h = listen(t, on_update, errors.append)
    h.start()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not errors:
        time.sleep(0.05)
    h.stop()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError) and "listener broke" in str(errors[0])


# -- failures and exit ----------------------------------------------------------------------------------


def test_server_going_away_calls_on_error_once(server):
    proxy = FaultProxy(server.port)
    session = Session("127.0.0.1", proxy.port, never_timeout=False)
    try:
        t = session.time_table("PT0.05s").update(["X = ii"])
        errors: list[BaseException] = []
        live_errors: list[BaseException] = []
        seen = threading.Event()
        h = listen(t, lambda u: seen.set(), errors.append)
        h.start()
        live = t.subscribe(on_error=live_errors.append)
        assert seen.wait(TIMEOUT) and live.wait_for_updates(1, TIMEOUT)
        proxy.close()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not (errors and live_errors):
            time.sleep(0.05)
        time.sleep(0.5)  # room for a wrong second call
        assert len(errors) == 1 and isinstance(errors[0], DHError), errors
        assert len(live_errors) == 1 and isinstance(live_errors[0], DHError)
        assert "went away" in str(errors[0]) or "unreachable" in str(errors[0]) or "ended" in str(errors[0])
        assert not h.is_running and not live.is_alive
        with pytest.raises(DHError, match=r"snapshot: the subscription failed.*went away"):
            live.snapshot()
        h.stop()
        live.close()
        assert len(errors) == 1
    finally:
        proxy.close()
        session.close()


def test_interpreter_exits_with_live_subscriptions(server):
    code = textwrap.dedent(f"""
        import threading
        from pydeephaven import Session, listen
        s = Session("127.0.0.1", {server.port})
        t = s.time_table("PT0.05s")
        live = t.subscribe()
        got = threading.Event()
        h = listen(t, lambda u: got.set())
        h.start()
        assert live.wait_for_updates(1, 20) and got.wait(20)
        print("subscribed", flush=True)
        # leave without stopping or closing anything
    """)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "subscribed" in proc.stdout
    assert time.monotonic() - start < 30


# -- asyncio ----------------------------------------------------------------------------------------------


def test_async_iterator_of_updates_on_async_and_sync_tables(server, session: Session):
    import asyncio

    from pydeephaven.aio import AsyncSession
    from pydeephaven.ticking import updates

    n = 40

    async def main() -> None:
        async with AsyncSession(server.host, server.port) as s:
            tt = await s.time_table("PT0.02s", start_time=soon(1.0))
            t = await tt.update(["X = ii"]).where(f"X < {n}")
            got: list[int] = []
            async with updates(t) as stream:
                async for u in stream:
                    got.extend(u.added().get("X", pa.array([], pa.int64())).to_pylist())
                    if len(got) >= n:
                        break
                assert stream.snapshot()["X"].to_pylist() == list(range(n))
            assert got == list(range(n))
            assert not [tk for tk in asyncio.all_tasks() if tk.get_name().startswith("pydeephaven-subscription")]
            # a sync Table iterated from asyncio (the subscription thread feeds the loop)
            st = session.time_table("PT0.02s", start_time=soon(1.0)).update(["X = ii"]).where(f"X < {n}")
            seen: list[int] = []
            stream2 = updates(st, columns="X")
            async for u in stream2:
                seen.extend(u.added().get("X", pa.array([], pa.int64())).to_pylist())
                if len(seen) >= n:
                    break
            await stream2.aclose()
            assert seen == list(range(n))

    asyncio.run(asyncio.wait_for(main(), 60))


def test_large_table_snapshot_in_parts_while_it_ticks(session: Session):
    rows = 300_000
    static = session.empty_table(rows).update(["A = ii", "S = `r` + (ii % 1000)"])
    with static.subscribe() as live:
        assert live.wait_for(lambda s: s.num_rows == rows, TIMEOUT)
        assert live.snapshot().equals(static.to_arrow())
        assert live.update_count == 1  # the parts were shown as one complete copy
    # every row modified on each of 8 ticks, starting while the first rows are still arriving
    tick = (session.time_table("PT0.25s", start_time=soon(0.3)).update(["K = 0", "I = ii"]).where("I < 8")
            .last_by("K"))
    big = (session.empty_table(rows).update(["K = 0", "A = ii"]).natural_join(tick, on=["K"], joins=["I"])
           .update(["B = A * 10 + I"]))
    rp = Replay()
    with big.subscribe() as live, listen(big, rp):
        final = settle(live, big, done=lambda ref: ref["I"][0].as_py() == 7, timeout=30)
        want_b = (np.arange(rows) * 10 + 7).tolist()
        assert final["B"].to_pylist() == want_b
        assert final["A"].to_pylist() == list(range(rows)) and final["I"].to_pylist() == [7] * rows
        assert live.snapshot()["B"].to_pylist() == want_b
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and rp.table(["I"])["I"][:1] != [7] and not rp.errors:
            time.sleep(0.05)
        assert rp.errors == []
        assert rp.table(["A", "B"]) == final.select(["A", "B"]).to_pydict()
        assert rp.counts["modified"] >= rows  # it did tick under the subscription


def test_blink_table_rows_come_and_go(session: Session):
    n, period_ns = 60, 15_000_000
    start = soon(1.0)
    blink = (session.time_table(period_ns, start_time=start, blink_table=True)
             .update([f"X = (epochNanos(Timestamp) - {start}L) / {period_ns}L"]).where(f"X < {n}"))
    rp = Replay()
    with listen(blink, rp), blink.subscribe() as live:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not (rp.counts["added"] >= n and rp.counts["removed"] >= n):
            time.sleep(0.05)
        assert rp.errors == []
        assert rp.counts["added"] == n and rp.counts["removed"] == n  # each row once in, once out
        assert rp.table(["X"]) == {"X": []}
        assert live.wait_for(lambda s: s.num_rows == 0, TIMEOUT)
    seen = sorted(x for u in rp.updates for x in u.added().get("X", pa.array([], pa.int64())).to_pylist())
    assert seen == list(range(n))


def test_session_close_ends_subscriptions_with_one_error(server):
    s = Session(server.host, server.port)
    t = s.time_table("PT0.05s")
    errors: list[BaseException] = []
    h = listen(t, lambda u: None, errors.append)
    h.start()
    live = t.subscribe()
    assert live.wait_for_updates(1, TIMEOUT)
    s.close()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and (not errors or h.is_running or live.is_alive):
        time.sleep(0.05)
    time.sleep(0.3)
    assert len(errors) == 1 and isinstance(errors[0], DHError) and "closed" in str(errors[0])
    with pytest.raises(DHError, match=r"snapshot: the subscription failed.*the session was closed"):
        live.snapshot()
    h.stop()
    live.close()


def test_ticking_example_runs(server):

    proc = run_example(server, "ticking_example")
    lines = proc.stdout.splitlines()
    added = [int(x) for line in lines if line.startswith("added")
             for x in line[len("added "):].strip("[]").split(",") if x.strip()]
    assert added == list(range(20))  # every row once, in order, though over several updates
    assert lines[-1] == "top five {'X': [19, 18, 17, 16, 15], 'Sq': [361, 324, 289, 256, 225]}"


def test_sort_by_scrambled_key_shifts_rows(session: Session):
    n = 400
    t = (session.time_table("PT0.005s", start_time=soon(1.0)).update(["X = ii", "Y = (ii * 7919) % 1000"])
         .where(f"X < {n}").sort(["Y"]))
    rp = Replay()
    shifted: list[int] = []

    class Watch(TableListener):
        def on_update(self, update: TableUpdate) -> None:
            shifted.append(len(update._applied.metadata.shift_starts))  # internal: the wire's shift count
            rp.on_update(update)

        def on_error(self, error: Exception) -> None:
            rp.on_error(error)

    with t.subscribe() as live, listen(t, Watch()):
        want_y = sorted((x * 7919) % 1000 for x in range(n))
        final = settle(live, t, done=lambda ref: ref["Y"].to_pylist() == want_y, timeout=30)
        assert final["X"].to_pylist() == sorted(range(n), key=lambda x: (x * 7919) % 1000)  # Y has no ties
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and len(rp.table(["X"])["X"]) < n and not rp.errors:
            time.sleep(0.05)
        assert rp.errors == []
        assert rp.table(["X", "Y"]) == final.select(["X", "Y"]).to_pydict()
    assert sum(1 for k in shifted if k) >= 1, "no update carried shifts; the test lost its point"
