"""The Barrage assembler without a server, in milliseconds: recorded server messages
(tests/data/barrage/, made by scripts/record_barrage.py from the definitions in
tests/support/barrage_cases.py) are fed to ``Assembler`` and the updates applied with
``state.apply``, as the subscription engine does; the table after each step and the rows each
update removed, added and modified are checked against values worked out here from how the
recording was made. Then the row-set wire encoding (``rowset``) on hand-built cases, and the
protocol errors on damaged messages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Optional

import flatbuffers
import numpy as np
import pyarrow as pa
import pytest

from pydeephaven import DHError
from pydeephaven._barrage import messages, rowset, state
from pydeephaven._barrage.flatbuf import FbTable, FlatbufferError
from pydeephaven._barrage.messages import ProtocolError
from pydeephaven._barrage.rowset import RowSet, RowSetError
from pydeephaven._barrage.stream import Assembler, RawUpdate
from pydeephaven._barrage.subscription import viewport_rowset
from pydeephaven.ticking import TableUpdate
from tests.support import barrage_cases as bc

pytestmark = pytest.mark.offline


# -- replaying a recording -------------------------------------------------------------------------


@dataclass
class Step:
    """The updates of one step of a recording, each with the table state after it."""

    updates: list[TableUpdate]
    raws: list[RawUpdate]
    states: list[state.TableState]
    columns: list[str]  # the columns the server said it sends, after the step


@dataclass
class Replay:
    rec: bc.Recording
    steps: list[Step]
    final: state.TableState
    columns: list[str]
    viewport: Optional[RowSet]
    reverse: bool

    def rows(self, st: state.TableState, columns: Optional[list[str]] = None) -> list[dict]:
        names = columns if columns is not None else self.columns
        idx = [st.schema.get_field_index(n) for n in names]
        return pa.Table.from_arrays([st.columns[i] for i in idx], names=names).to_pylist()


def replay(name: str, positional: bool = False) -> Replay:
    """Feed every message of a recording to an Assembler and apply each update it completes, as
    ``Subscription._on_raw`` does; the updates grouped by the step (``marks``) they came in."""
    rec = bc.read_recording(name)
    assert rec.header["definition"] == bc.definition(name), f"{name}.bin is stale: run scripts/record_barrage.py"
    marks = rec.marks
    assert marks == sorted(marks) and marks[-1] == len(rec.messages)
    schema = rec.schema
    asm = Assembler(schema)
    field_index = tuple(range(len(schema)))
    st = state.TableState.empty(schema)
    cols = list(schema.names)
    viewport: Optional[RowSet] = None
    reverse = False
    steps: list[Step] = []
    for k in range(len(marks)):
        step = Step([], [], [], [])
        for data in rec.step_messages(k):
            raw = asm.feed(data)
            if raw is None:
                continue
            md = raw.metadata
            if md.effective_columns is not None:
                cols = [schema.field(i).name for i in md.effective_columns]
            if md.is_snapshot:
                viewport, reverse = md.effective_viewport, md.effective_reverse_viewport
            applied = state.apply(st, raw, field_index, positional=positional)
            st = applied.after
            check_state_shape(st, positional)
            step.updates.append(TableUpdate(applied, cols, schema))
            step.raws.append(raw)
            step.states.append(st)
        step.columns = list(cols)
        steps.append(step)
    assert asm.schema_seen, "the recording opens with the Arrow schema message"
    return Replay(rec, steps, st, cols, viewport, reverse)


def check_state_shape(st: state.TableState, positional: bool) -> None:
    """Keys strictly increasing (in a viewport: the positions 0..n-1), every column as long as
    the keys, every row's data in."""
    keys = st.keys.tolist()
    assert keys == sorted(set(keys))
    if positional:
        assert keys == list(range(len(keys)))
    assert all(len(c) == len(keys) for c in st.columns)
    assert st.complete


def rows_of(values: dict[str, pa.Array]) -> list[dict]:
    """A TableUpdate accessor's result (column name -> array) as row dicts."""
    if not values:
        return []
    return pa.table(values).to_pylist()


def only(row: dict, columns: list[str]) -> dict:
    return {c: row[c] for c in columns}


def check_update(u: TableUpdate, prev: list[dict], new: list[dict], columns: list[str], key: str) -> None:
    """One update that takes the rows ``prev`` to ``new`` (in table order, keys unique): the rows it
    names are the ones at those positions, with their values; the rows it does not name stay, in
    order, with their values unless modified; modified_prev holds a modified row's old values."""
    prev = [only(r, columns) for r in prev]
    new = [only(r, columns) for r in new]
    removed, added, modified = u.removed_rows.tolist(), u.added_rows.tolist(), u.modified_rows.tolist()
    assert rows_of(u.removed(columns)) == [prev[p] for p in removed]
    assert rows_of(u.added(columns)) == [new[p] for p in added]
    assert rows_of(u.modified(columns)) == [new[p] for p in modified]
    old_by_key = {r[key]: r for r in prev}
    assert rows_of(u.modified_prev(columns)) == [old_by_key[new[p][key]] for p in modified]
    kept_prev = [r for p, r in enumerate(prev) if p not in removed]
    kept_new = [(p, r) for p, r in enumerate(new) if p not in added]
    assert [r[key] for r in kept_prev] == [r[key] for _, r in kept_new]
    for old, (p, r) in zip(kept_prev, kept_new):
        assert r == old or p in modified, (old, r)
    assert (u.num_removed, u.num_added, u.num_modified) == (len(removed), len(added), len(modified))


def key_changes(prev: list[dict], new: list[dict], key: str) -> tuple[set, set, set]:
    """(keys gone, keys new, keys whose other values changed) from prev to new."""
    before, after = {r[key]: r for r in prev}, {r[key]: r for r in new}
    return (set(before) - set(after), set(after) - set(before),
            {k for k in set(before) & set(after) if before[k] != after[k]})


def keys_at(rows: list[dict], positions: Any, key: str) -> set:
    return {rows[p][key] for p in positions}


# -- the recordings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(bc.CASES))
def test_recordings_hold_the_schema_their_tables_have(name):
    rec = bc.read_recording(name)
    if bc.CASES[name]["table"] == "static":
        expected = [(n, t) for n, _, _, t in bc.STATIC_COLUMNS]
    else:
        expected = [(f.name, f.type) for f in bc.KEYED_SCHEMA]
    assert [(f.name, f.type) for f in rec.schema] == expected
    case = bc.CASES[name]
    # one mark for the first snapshot and one per later step: a change of the table, a viewport move
    steps = 1 + len(case.get("steps", [])) + max(len(case.get("viewports", [])) - 1, 0) + ("move" in case)
    assert len(rec.marks) == steps
    assert sum(len(m) for m in rec.messages) < 16_000  # a few KB


@pytest.mark.parametrize("name", ["static", "static_batched"])
def test_static_table_snapshot(name):
    r = replay(name)
    (step,) = r.steps
    (u,) = step.updates
    assert u.is_snapshot and u.num_removed == 0 and u.num_modified == 0
    assert u.added_rows.tolist() == list(range(bc.STATIC_N))
    expected = bc.static_rows()
    assert rows_of(u.added()) == expected
    assert r.rows(r.final) == expected
    assert r.final.keys.tolist() == list(range(bc.STATIC_N))  # an empty_table's row keys are its positions
    assert r.columns == [n for n, _, _, _ in bc.STATIC_COLUMNS]
    # the nulls travel as validity bits
    n_col = r.final.columns[[n for n, _, _, _ in bc.STATIC_COLUMNS].index("N")]
    assert n_col.null_count == sum(1 for row in expected if row["N"] is None) > 0


def test_a_snapshot_in_several_record_batches_is_one_update():
    rec = bc.read_recording("static_batched")
    batch = bc.CASES["static_batched"]["batch_size"]
    asm = Assembler(rec.schema)
    got = [asm.feed(m) for m in rec.messages]
    # the schema, then the metadata with the first batch, then one message per further batch
    assert len(rec.messages) == 1 + -(-bc.STATIC_N // batch)
    assert got[:-1] == [None] * (len(got) - 1)
    raw = got[-1]
    assert raw is not None and len(raw.metadata.added_included) == bc.STATIC_N
    assert [len(a) for a in raw.added] == [bc.STATIC_N] * len(rec.schema)
    assert raw.modified == [None] * len(rec.schema)
    # the same rows as the unbatched recording
    batched, plain = replay("static_batched"), replay("static")
    assert batched.rows(batched.final) == plain.rows(plain.final)


@pytest.mark.parametrize("name, model", [
    pytest.param("input", bc.keyed_model(bc.INPUT_STEPS), id="input"),
    pytest.param("sorted", bc.sorted_model(), id="sorted"),
])
def test_keyed_input_table_steps(name, model):
    """A full subscription names exactly the rows a step changed: deleted keys removed, new keys
    added, changed keys modified (also when rows move, as in the sorted table, by shifts)."""
    r = replay(name)
    assert len(r.steps) == len(model)
    (first,) = r.steps[0].updates
    assert first.is_snapshot and (first.num_added, first.num_removed) == (0, 0)
    for k in range(1, len(model)):
        prev, new = model[k - 1], model[k]
        assert len(r.steps[k].updates) == 1, f"step {k} came in {len(r.steps[k].updates)} updates"
        (u,) = r.steps[k].updates
        assert not u.is_snapshot
        check_update(u, prev, new, r.columns, "K")
        gone, fresh, changed = key_changes(prev, new, "K")
        assert keys_at(prev, u.removed_rows, "K") == gone, k
        assert keys_at(new, u.added_rows, "K") == fresh, k
        assert keys_at(new, u.modified_rows, "K") == changed, k
        if changed:
            assert u.modified_columns == ["K", "V", "X"]  # an input-table row is replaced whole
        assert r.rows(r.steps[k].states[-1]) == new
    assert r.rows(r.final) == model[-1]


def test_sorted_table_updates_carry_shifts():
    """Rows added above existing ones move those (shift data) in the sorted table's key space; the
    rows that moved keep their values (checked per step above) under their new keys."""
    r = replay("sorted")
    shifted = [(k, raw.metadata) for k, s in enumerate(r.steps) for raw in s.raws if len(raw.metadata.shift_starts)]
    assert shifted, "the recording has an update with shifts"
    for k, md in shifted:
        before = r.steps[k - 1].states[-1]
        moved = RowSet.from_ranges(zip(md.shift_starts.tolist(), md.shift_ends.tolist()))
        assert len(moved.intersection(RowSet.from_keys(before.keys))) > 0  # it moves rows the client holds


def test_viewport_of_a_sorted_table():
    """A viewport is in position space: each step shows the first rows of the sorted model; the
    move shows other positions and fewer columns, as the server confirmed."""
    r = replay("sorted_viewport", positional=True)
    model = bc.sorted_model()
    first, last = bc.SORTED_VIEWPORT
    window = slice(first, last + 1)
    assert len(r.steps) == len(model) + 1
    all_cols = list(bc.KEYED_SCHEMA.names)
    for k in range(len(model)):
        for u in r.steps[k].updates:
            assert u.table.num_rows <= last - first + 1
        assert r.rows(r.steps[k].states[-1], all_cols) == model[k][window]
        if k:
            (u,) = r.steps[k].updates
            check_update(u, model[k - 1][window], model[k][window], all_cols, "K")
    (first, last), cols = bc.SORTED_VIEWPORT_MOVE
    moved = r.steps[-1]
    (u,) = moved.updates
    assert u.is_snapshot and moved.columns == cols
    assert r.viewport == RowSet.from_range(first, last) and not r.reverse
    want = [only(row, cols) for row in model[-1][first:last + 1]]
    assert r.rows(r.final, cols) == want
    check_update(u, model[-1][window], model[-1][first:last + 1], cols, "K")


def test_viewport_moves_of_a_static_table():
    r = replay("static_viewport", positional=True)
    assert len(r.steps) == len(bc.STATIC_VIEWPORTS)
    prev: list[dict] = []
    prev_cols = list(r.rec.schema.names)
    for step, (vp, cols, reverse) in zip(r.steps, bc.STATIC_VIEWPORTS):
        pos = bc.viewport_positions(vp, bc.STATIC_N, reverse)
        names = cols if cols is not None else list(r.rec.schema.names)
        assert step.columns == names
        want = bc.static_rows(pos, names)
        (u,) = step.updates
        assert u.is_snapshot
        assert r.rows(step.states[-1], names) == want
        # removed: the rows of the old viewport; added: those of the new one (position space)
        shared = [c for c in names if c in prev_cols]
        check_update(u, [only(x, shared) for x in prev], [only(x, shared) for x in want], shared, "I")
        assert rows_of(u.added()) == want
        prev, prev_cols = want, names
    assert r.reverse is True and r.viewport == RowSet.from_range(0, 2)


def test_replayed_updates_rebuild_the_table():
    """The updates alone (removed, added, modified values at their positions), applied to Python
    lists, rebuild the final table of every recording."""
    for name, positional in [("input", False), ("sorted", False), ("sorted_viewport", True)]:
        r = replay(name, positional)
        rows: list[dict] = []
        for step in r.steps:
            for u in step.updates:
                for p in sorted(u.removed_rows.tolist(), reverse=True):
                    del rows[p]
                for p, row in zip(u.added_rows.tolist(), rows_of(u.added())):
                    rows.insert(p, row)
                for p, row in zip(u.modified_rows.tolist(), rows_of(u.modified())):
                    rows[p] = {**rows[p], **row}
        assert [only(x, r.columns) for x in rows] == r.rows(r.final), name


# -- damaged or out-of-order messages ---------------------------------------------------------------


def split(data: bytes) -> messages.FlightData:
    return messages.decode_flight_data(data)


def test_a_record_batch_outside_an_update_is_refused():
    rec = bc.read_recording("static")
    schema_msg, update_msg = rec.messages
    fd = split(update_msg)
    assert fd.app_metadata is not None and fd.header is not None
    bare = messages.encode_flight_data(data_header=bytes(fd.header), data_body=bytes(fd.body))
    asm = Assembler(rec.schema)
    assert asm.feed(schema_msg) is None
    with pytest.raises(ProtocolError, match="a record batch arrived outside of any update"):
        asm.feed(bare)


def test_a_new_update_before_the_last_one_is_complete_is_refused():
    rec = bc.read_recording("static_batched")
    asm = Assembler(rec.schema)
    asm.feed(rec.messages[0])
    assert asm.feed(rec.messages[1]) is None
    with pytest.raises(ProtocolError, match="a new update began before the rows of the previous one all arrived"):
        asm.feed(rec.messages[1])


def test_more_added_rows_than_announced_are_refused():
    rec = bc.read_recording("static_batched")
    batch = bc.CASES["static_batched"]["batch_size"]
    asm = Assembler(rec.schema)
    for m in rec.messages[:3]:
        asm.feed(m)
    with pytest.raises(ProtocolError, match=rf"{3 * batch} added rows arrived; the update announced {bc.STATIC_N}"):
        asm.feed(rec.messages[2])  # the second batch again


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_a_truncated_message_is_refused(cut):
    rec = bc.read_recording("input")
    asm = Assembler(rec.schema)
    asm.feed(rec.messages[0])
    with pytest.raises(ProtocolError, match="FlightData"):
        asm.feed(rec.messages[1][:-cut])


def test_updates_that_do_not_fit_the_state_are_refused():
    """The delete step on a copy that never had the rows; a modify likewise; an add of held keys."""
    rec = bc.read_recording("input")
    asm = Assembler(rec.schema)
    raws = [raw for raw in (asm.feed(m) for m in rec.messages) if raw is not None]
    empty = state.TableState.empty(rec.schema)
    idx = tuple(range(len(rec.schema)))
    delete = next(raw for raw in raws if len(raw.metadata.removed))
    modify = next(raw for raw in raws if any(len(m) for m in raw.metadata.modified))
    with pytest.raises(ProtocolError, match="the update names removed rows the client does not hold"):
        state.apply(empty, delete, idx)
    with pytest.raises(ProtocolError, match="the update names modified rows the client does not hold"):
        state.apply(empty, modify, idx)
    first_add = raws[1]
    held = state.apply(empty, first_add, idx).after
    with pytest.raises(ProtocolError, match="the update adds rows under keys the client already holds"):
        state.apply(held, first_add, idx)


def test_flight_data_envelope_round_trips():
    body = bytes(range(256)) * 3  # a length that takes a two-byte varint
    data = messages.encode_flight_data(app_metadata=b"meta", data_header=b"\x01\x02", data_body=body)
    fd = split(data)
    assert (bytes(fd.app_metadata), bytes(fd.header), bytes(fd.body)) == (b"meta", b"\x01\x02", body)
    assert split(b"") == messages.FlightData()
    assert messages.unwrap(None) == (messages.MSG_NONE, None)
    mtype, payload = messages.unwrap(memoryview(messages._wrap(messages.MSG_UPDATE_METADATA, b"payload")))
    assert (mtype, bytes(payload)) == (messages.MSG_UPDATE_METADATA, b"payload")
    # a flatbuffer table like the wrapper but with another magic number is not Barrage's
    fb = flatbuffers.Builder(64)
    fb.StartObject(3)
    fb.PrependUint32Slot(0, messages.BARRAGE_MAGIC ^ 1, 0)
    fb.PrependInt8Slot(1, messages.MSG_UPDATE_METADATA, 0)
    fb.Finish(fb.EndObject())
    assert messages.unwrap(memoryview(bytes(fb.Output()))) == (messages.MSG_NONE, None)
    with pytest.raises(FlatbufferError, match="too short"):
        FbTable.root(b"\x00\x00")


# -- row sets: the wire encoding on hand-built cases -------------------------------------------------

END = bytes([4 << 3])
WIDTHS = {8: (4, "<b"), 16: (1, "<h"), 32: (2, "<i"), 64: (3, "<q")}


def off(bits: int, value: int) -> bytes:
    """An offset command with a value of the given width (the wire guide's command byte layout)."""
    code, fmt = WIDTHS[bits]
    return bytes([(1 << 3) | code]) + struct.pack(fmt, value)


def arr(bits: int, values: list[int]) -> bytes:
    """An array command: 8- or 16-bit values, the count as an int8 value."""
    cmd, fmt = (3, "<b") if bits == 8 else (2, "<h")
    return bytes([(cmd << 3) | 4, len(values)]) + b"".join(struct.pack(fmt, v) for v in values)


@pytest.mark.parametrize("ranges, wire", [
    ([], END),
    ([(0, 0)], off(8, 0) + END),
    ([(7, 7)], off(8, 7) + END),
    ([(8, 12)], off(8, 8) + off(8, -4) + END),
    ([(0, 9), (20, 20), (22, 25)], off(8, 0) + off(8, -9) + off(8, 11) + off(8, 2) + off(8, -3) + END),
    ([(127, 127), (255, 255)], off(8, 127) + off(16, 128) + END),
    ([(1 << 15, 1 << 15)], off(32, 1 << 15) + END),
    ([(0, (1 << 31) - 1)], off(8, 0) + off(32, -((1 << 31) - 1)) + END),
    ([(0, 0), (1 << 31, 1 << 31), (1 << 62, (1 << 62) + 5)],
     off(8, 0) + off(64, 1 << 31) + off(64, (1 << 62) - (1 << 31)) + off(8, -5) + END),
    ([(1073741821, 1073741821), (1073741824, 1073741825)],  # the sorted table's keys
     off(32, 1073741821) + off(8, 3) + off(8, -1) + END),
])
def test_rowset_encoding_of_hand_built_sets(ranges, wire):
    rs = RowSet.from_ranges(ranges)
    assert rs.ranges() == ranges
    assert len(rs) == sum(b - a + 1 for a, b in ranges)
    assert rowset.encode(rs) == wire
    assert rowset.encode(ranges) == wire
    assert rowset.decode(wire) == rs
    if len(rs) < 10_000:
        assert rs.keys().tolist() == [k for a, b in ranges for k in range(a, b + 1)]


@pytest.mark.parametrize("wire, keys", [
    (b"", []),
    (None, []),
    (END, []),
    (off(16, 300) + END, [300]),
    (off(64, 5) + off(32, -2) + END, [5, 6, 7]),
    (off(8, 5) + off(8, 1) + END, [5, 6]),  # touching elements, written as two, are one range
    (arr(8, [1, 3, -2]) + END, [1, 4, 5, 6]),
    (off(8, 1) + arr(16, [300, -2]) + END, [1, 301, 302, 303]),
    (arr(16, []) + off(8, 9) + END, [9]),
])
def test_rowset_decoding_of_every_command(wire, keys):
    rs = rowset.decode(wire)
    assert rs.keys().tolist() == keys
    assert rs.ranges() == ranges_of(keys)  # held as maximal ranges, touching ones merged


def ranges_of(keys: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct keys as maximal (first, last) runs."""
    out: list[tuple[int, int]] = []
    for k in keys:
        if out and k == out[-1][1] + 1:
            out[-1] = (out[-1][0], k)
        else:
            out.append((k, k))
    return out


def test_rowset_decoding_from_an_offset_and_sets_with_large_gaps():
    rs = rowset.decode(b"\xff\xff" + off(8, 3) + END, pos=2)
    assert rs.keys().tolist() == [3]
    keys = np.array([0, 1, 2, 1 << 20, (1 << 40) + 7, (1 << 40) + 8, (1 << 62) - 1], dtype=np.int64)
    rs = RowSet.from_keys(keys)
    assert rs.ranges() == [(0, 2), (1 << 20, 1 << 20), ((1 << 40) + 7, (1 << 40) + 8), ((1 << 62) - 1, (1 << 62) - 1)]
    assert np.array_equal(rowset.decode(rowset.encode(rs)).keys(), keys)
    big = RowSet.from_range(10, 10 + 5_000_000)  # a range is two values, however long
    assert rowset.encode(big) == off(8, 10) + off(32, -5_000_000) + END
    assert len(rowset.decode(rowset.encode(big))) == 5_000_001


@pytest.mark.parametrize("wire, message", [
    (off(8, 5), "ends without an end command"),
    (off(8, -5) + END, "starts with a range end"),
    (off(8, 5) + off(8, -1) + off(8, -1) + END, "a range end that closes no element"),
    (off(8, 5) + off(8, 0) + END, "not increasing"),
    (off(8, 5) + off(8, -2) + off(8, 0) + END, "not increasing"),
    (bytes([(5 << 3) | 4, 1]) + END, "unknown row set command byte 0x2c"),
    (bytes([(1 << 3) | 5, 1]) + END, "unknown row set command byte 0x0d"),
    (bytes([(1 << 3) | 3, 1, 2]), "value runs past the end"),
    (bytes([(2 << 3) | 4, 0xFF]) + END, "negative array length -1"),
    (bytes([(2 << 3) | 4, 3, 0, 0]) + END, "array runs past the end"),
    (bytes([(3 << 3) | 4, 9, 1]) + END, "array runs past the end"),
])
def test_rowset_decoding_refuses_malformed_input(wire, message):
    with pytest.raises(RowSetError, match=message):
        rowset.decode(wire)


def test_rowset_construction_and_set_operations():
    assert len(RowSet.empty()) == 0 and RowSet.empty().keys().tolist() == []
    assert RowSet.from_range(5, 4) == RowSet.empty()
    assert RowSet.from_ranges([(9, 12), (1, 3), (4, 4), (11, 15), (20, 19)]).ranges() == [(1, 4), (9, 15)]
    with pytest.raises(ValueError, match=r"row sets hold non-negative values, got range \(-3, 2\)"):
        RowSet.from_ranges([(-3, 2)])
    with pytest.raises(ValueError, match="non-negative"):
        rowset.encode([(-1, -1)])
    a_keys = {1, 2, 3, 10, 11, 50} | set(range(100, 120))
    b_keys = {3, 4, 11, 12, 49, 50, 51} | set(range(110, 130))
    a = RowSet.from_keys(np.array(sorted(a_keys)))
    b = RowSet.from_keys(np.array(sorted(b_keys)))
    assert a.union(b).keys().tolist() == sorted(a_keys | b_keys)
    assert a.intersection(b).keys().tolist() == sorted(a_keys & b_keys)
    assert a.difference(b).keys().tolist() == sorted(a_keys - b_keys)
    assert b.difference(a).keys().tolist() == sorted(b_keys - a_keys)
    assert a.union(RowSet.empty()) == a and RowSet.empty().union(a) == a
    assert a.intersection(RowSet.empty()) == RowSet.empty() and a.difference(RowSet.empty()) == a
    probe = np.array([0, 1, 4, 10, 12, 50, 99, 119, 120, 1 << 40])
    assert a.contains(probe).tolist() == [int(v) in a_keys for v in probe]


def test_shift_data_decoding():
    starts, ends, dests = [10, 100], [20, 150], [5, 200]

    def one(values: list[int]) -> bytes:
        out, last = b"", 0
        for v in values:
            out += off(8 if v - last < 128 else 16, v - last)
            last = v
        return out + END

    got = rowset.decode_shifts(one(starts) + one(ends) + one(dests))
    assert [g.tolist() for g in got] == [starts, ends, dests]
    assert [g.tolist() for g in rowset.decode_shifts(b"")] == [[], [], []]
    with pytest.raises(RowSetError, match="shift data has 2 starts, 1 ends and 2 destinations"):
        rowset.decode_shifts(one(starts) + one([20]) + one(dests))


def test_column_bit_sets():
    assert rowset.encode_bitset([]) == b"" and rowset.decode_bitset(b"") == [] and rowset.decode_bitset(None) == []
    assert rowset.encode_bitset([0]) == b"\x01"
    assert rowset.encode_bitset([7, 8, 8]) == bytes([0x80, 0x01])
    assert rowset.encode_bitset([63]) == bytes(7) + b"\x80"
    for idx in ([0], [1, 2, 3], [0, 9, 17, 200]):
        assert rowset.decode_bitset(rowset.encode_bitset(idx)) == idx
    with pytest.raises(ValueError, match="bit index must be >= 0, got -1"):
        rowset.encode_bitset([-1, 3])


@pytest.mark.parametrize("spec, ranges", [
    ((0, 0), [(0, 0)]),
    ((3, 9), [(3, 9)]),
    (range(5, 8), [(5, 7)]),
    (range(0, 10, 3), [(0, 0), (3, 3), (6, 6), (9, 9)]),
    ([4, 2, 3, 2], [(2, 4)]),
    ([(10, 12), (0, 1)], [(0, 1), (10, 12)]),
])
def test_viewports_as_row_sets(spec, ranges):
    assert viewport_rowset(spec).ranges() == ranges
    assert rowset.decode(rowset.encode(viewport_rowset(spec))).ranges() == ranges


@pytest.mark.parametrize("spec, message", [
    ((-1, 3), r"viewport \(-1, 3\) must have 0 <= first <= last"),
    ((5, 2), r"viewport \(5, 2\) must have 0 <= first <= last"),
    ([1, -2], "viewport positions must be >= 0"),
    ([(0, 1), (4, 3)], r"viewport range \(4, 3\) must have 0 <= first <= last"),
    (["a"], "viewport must be"),
])
def test_bad_viewports_are_refused(spec, message):
    with pytest.raises(DHError, match=message):
        viewport_rowset(spec)


# -- damaged input is refused with the library's own errors ----------------------------------------


@pytest.mark.parametrize("keys", [[-1, 0], [3, 2], [1, 1, 2]])
def test_from_keys_refuses_keys_its_decoder_would_refuse(keys: list[int]) -> None:
    with pytest.raises(RowSetError, match="non-negative, increasing and distinct"):
        RowSet.from_keys(np.array(keys))


def test_from_keys_round_trips_valid_keys() -> None:
    keys = [0, 1, 2, 7, 9, 10, 2**40]
    rs = RowSet.from_keys(np.array(keys))
    assert rowset.decode(rowset.encode(rs)).keys().tolist() == keys
    assert rs.ranges() == [(0, 2), (7, 7), (9, 10), (2**40, 2**40)]


def test_unwrap_of_metadata_that_is_no_flatbuffer_is_not_barrage() -> None:
    assert messages.unwrap(memoryview(b"\xff" * 16)) == (messages.MSG_NONE, None)


@pytest.mark.parametrize("err", [FlatbufferError("offset out of range"), RowSetError("bad command"),
                                 struct.error("unpack requires a buffer of 8 bytes")])
def test_a_damaged_message_ends_a_subscription_with_a_dherror(err: BaseException) -> None:
    from types import SimpleNamespace

    from pydeephaven._barrage.subscription import Subscription

    fake = SimpleNamespace(_session=SimpleNamespace(_transport=SimpleNamespace(is_closed=False, target="h:1")),
                           name="t")
    out = Subscription._as_error(fake, err)  # type: ignore[arg-type]
    assert isinstance(out, DHError)
    assert "a message this client does not understand" in str(out) and str(err) in str(out)
