"""The client's copy of a subscribed table, and how one Barrage update changes it.

A ``TableState`` is immutable: a sorted int64 array of row keys and one Arrow column per subscribed
field, row i of every column belonging to key i. Applying an update returns new states and leaves
the old ones intact, so a snapshot taken on any thread is consistent without copying, and a
listener can read the rows as they were before the update.

The update model (Deephaven's, as Barrage carries it) is applied in this order:

1. removed rows (keys in the previous key space) go;
2. shifts move the keys of the remaining rows: keys in [start, end] become [dest, dest + end - start]
   (shifts never reorder rows);
3. added rows (keys in the new key space) come in, with their data for the keys of
   ``added_rows_included`` (a key there that already exists has its data refreshed);
4. modified rows (new key space, per column) get new values.

Full subscriptions use the server's row keys. Viewport subscriptions use *position space*: the
keys are the positions 0..n-1 within the viewport, removed rows are positions before the update and
added rows positions after it, and no shifts are sent. The rows that stay keep their order and take
the positions that are not added (an insert above the viewport arrives as "remove position 4, add
position 0"), so step 2 renumbers them instead of shifting. Either way the rows of a state, in key
order, are the rows as the server orders them.

Snapshots of full subscriptions (the first rows, or those sent after a change) may come in several
messages: each names in ``added_rows`` the whole row set known so far and carries data for part of
it (``added_rows_included``). Rows known but without data yet are kept in ``missing``; a state with
missing rows is incomplete and not shown to users (see ``subscription``). Viewport snapshots come in
parts too, but in position space, each part adding the next positions.

All set operations work on sorted int64 arrays with ``searchsorted`` (linear or n log n, no
hashing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

from pydeephaven._barrage.messages import ProtocolError, UpdateMetadata
from pydeephaven._barrage.rowset import RowSet, expand_ranges
from pydeephaven._barrage.stream import RawUpdate

#: Columns are kept chunked; appends add a chunk, and past this many chunks a column is compacted.
MAX_CHUNKS = 64

_EMPTY_KEYS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class TableState:
    schema: pa.Schema
    keys: np.ndarray
    columns: tuple[pa.ChunkedArray, ...]
    missing: RowSet = field(default_factory=RowSet.empty)  # rows whose data has not arrived yet

    @classmethod
    def empty(cls, schema: pa.Schema) -> "TableState":
        cols = tuple(pa.chunked_array([], type=f.type) for f in schema)
        return cls(schema, _EMPTY_KEYS, cols)

    @property
    def num_rows(self) -> int:
        return len(self.keys)

    @property
    def complete(self) -> bool:
        return len(self.missing) == 0

    def positions(self, rows: RowSet, what: str) -> np.ndarray:
        """Positions in this state of the keys of ``rows``; every key must be present. Works range
        by range: a range [a, b] is fully held when the state has b - a + 1 keys in it."""
        return positions_of(self.keys, rows, what)


def positions_of(keys: np.ndarray, rows: RowSet, what: str) -> np.ndarray:
    if len(rows) == 0:
        return _EMPTY_KEYS
    lo = np.searchsorted(keys, rows.starts, side="left")
    hi = np.searchsorted(keys, rows.ends, side="right")
    if not np.array_equal(hi - lo, rows.ends - rows.starts + 1):
        raise ProtocolError(f"the update names {what} rows the client does not hold")
    return expand_ranges(lo, hi - 1)


@dataclass(frozen=True)
class Applied:
    """The states around one update, for listeners: ``before`` (before removes), ``after_adds``
    (= before modifies) and ``after`` (the new current state), plus the rows in each key space."""

    before: TableState
    after_adds: TableState
    after: TableState
    removed_pos: np.ndarray  # positions in ``before``
    added_pos: np.ndarray  # positions in ``after`` of the added rows
    added_keys: np.ndarray
    modified_pos: np.ndarray  # positions in ``after`` of rows modified in any column
    modified_by_column: tuple[np.ndarray, ...]  # per column: positions in ``after``
    metadata: UpdateMetadata

    @classmethod
    def reset(cls, before: TableState, after: TableState, metadata: Optional[UpdateMetadata] = None) -> "Applied":
        """An update taking ``before`` to ``after`` by removing every row and adding every row."""
        empty = _EMPTY_KEYS
        return cls(before, after, after, np.arange(before.num_rows, dtype=np.int64),
                   np.arange(after.num_rows, dtype=np.int64), after.keys, empty,
                   tuple(empty for _ in after.columns), metadata or UpdateMetadata(is_snapshot=True))


# -- sorted-array set helpers -----------------------------------------------------------------------


def _shift(keys: np.ndarray, starts: np.ndarray, ends: np.ndarray, dests: np.ndarray) -> np.ndarray:
    """Keys moved by shift ranges (all computed on the keys before any move)."""
    if len(starts) == 0 or len(keys) == 0:
        return keys
    lo = np.searchsorted(keys, starts, side="left")
    hi = np.searchsorted(keys, ends, side="right")
    delta = np.zeros(len(keys) + 1, dtype=np.int64)
    np.add.at(delta, lo, dests - starts)
    np.add.at(delta, hi, starts - dests)
    out = keys + np.cumsum(delta[:-1])
    if len(out) > 1 and np.any(out[1:] <= out[:-1]):
        raise ProtocolError("the shifts of an update reorder or collide rows")
    return out


#: Above this many runs of consecutive source rows a gather uses Arrow's take instead of slices.
MAX_RUNS = 32


def _runs(idx: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(run starts, run lengths) of ``idx`` cut where it stops counting up by one; None when
    there are more than MAX_RUNS."""
    if len(idx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    breaks = np.flatnonzero(np.diff(idx) != 1)
    if len(breaks) >= MAX_RUNS:
        return None
    firsts = np.concatenate(([0], breaks + 1))
    lasts = np.concatenate((breaks, [len(idx) - 1]))
    return idx[firsts], lasts - firsts + 1


def _take(col: pa.ChunkedArray, idx: np.ndarray,
          runs: Optional[tuple[np.ndarray, np.ndarray]] = None) -> pa.ChunkedArray:
    """Rows ``idx`` of ``col``: zero-copy slices when ``idx`` is a few runs, else Arrow's take."""
    if len(idx) == 0:
        return pa.chunked_array([], type=col.type)
    if runs is None:
        runs = _runs(idx)
    if runs is not None:
        chunks: list[pa.Array] = []
        for start, length in zip(runs[0].tolist(), runs[1].tolist()):
            chunks.extend(c for c in col.slice(start, length).chunks if len(c))
        return _compact(pa.chunked_array(chunks, type=col.type))
    return col.take(pa.array(idx, type=pa.int64()))


def _compact(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if col.num_chunks > MAX_CHUNKS:
        return pa.chunked_array([col.combine_chunks()], type=col.type)
    return col


def _select_columns(raw: Sequence[Optional[pa.Array]], index: Sequence[int]) -> list[Optional[pa.Array]]:
    return [raw[i] if i < len(raw) else None for i in index]


def _renumber(keys: np.ndarray, missing: RowSet, md: UpdateMetadata) -> tuple[np.ndarray, RowSet]:
    """Position space: the rows that stay keep their order and take, in the new position space,
    the positions the update does not add. Shifts carry nothing here and are ignored."""
    added = md.added.keys() if len(md.added) else _EMPTY_KEYS
    new_n = len(keys) + len(added)
    if len(added) and added[-1] >= new_n:
        raise ProtocolError(f"the update adds position {int(added[-1])} to a viewport of {new_n} rows")
    stay = np.arange(new_n, dtype=np.int64)
    if len(added):
        keep = np.ones(new_n, dtype=bool)
        keep[added] = False
        stay = stay[keep]
    if len(missing):
        missing = RowSet.from_keys(stay[np.searchsorted(keys, missing.keys())])
    return stay, missing


def apply(state: TableState, update: RawUpdate, field_index: Sequence[int], positional: bool = False) -> Applied:
    """Apply ``update`` to ``state``. ``field_index[j]`` is the wire (schema) index of the state's
    column j. ``positional``: the update is in a viewport's position space (see the module doc)."""
    md = update.metadata
    ncols = len(state.columns)
    types = [f.type for f in state.schema]
    before = state
    missing = state.missing

    # 1. removes
    keys = state.keys
    cols = list(state.columns)
    removed_pos = state.positions(md.removed, "removed")
    if len(removed_pos):
        keep = np.ones(len(keys), dtype=bool)
        keep[removed_pos] = False
        keep_idx = np.flatnonzero(keep)
        keys = keys[keep_idx]
        if len(keep_idx) == 0:
            cols = [pa.chunked_array([], type=t) for t in types]
        elif removed_pos[-1] == len(removed_pos) - 1:  # a prefix: slice instead of take
            cols = [c.slice(len(removed_pos)) for c in cols]
        else:
            runs = _runs(keep_idx)
            cols = [_take(c, keep_idx, runs) for c in cols]
        missing = missing.difference(md.removed)

    # 2. shifts; in position space, the renumbering of the rows that stay
    if positional:
        keys, missing = _renumber(keys, missing, md)
    elif len(md.shift_starts):
        keys = _shift(keys, md.shift_starts, md.shift_ends, md.shift_dests)
        if len(missing):
            missing = RowSet.from_keys(_shift(missing.keys(), md.shift_starts, md.shift_ends, md.shift_dests))

    # 3. adds
    added_rs, incl_rs = md.added, md.added_included
    held: Optional[RowSet] = None
    if md.is_snapshot and not positional and len(added_rs) and len(keys):
        # a snapshot repeats the rows it announced before: only the others are new
        held = RowSet.from_keys(keys)
        added_rs = added_rs.difference(held)
    added_keys = added_rs.keys() if len(added_rs) else _EMPTY_KEYS
    add_data = _select_columns(update.added, field_index)
    n_incl = len(incl_rs)
    for j, arr in enumerate(add_data):
        if arr is not None and len(arr) != n_incl:
            raise ProtocolError(f"column {state.schema.field(j).name!r} carries {len(arr)} added rows; "
                                f"{n_incl} were announced")
    added_pos = _EMPTY_KEYS
    all_included = added_rs == incl_rs
    if len(added_keys) or n_incl:
        old_n = len(keys)
        if all_included and (old_n == 0 or added_keys[0] > keys[-1]):
            # appended at the end (time tables, most streams): a new chunk per column
            keys = np.concatenate((keys, added_keys)) if old_n else added_keys
            added_pos = np.arange(old_n, len(keys), dtype=np.int64)
            new_cols = []
            for j, c in enumerate(cols):
                arr = add_data[j]
                if arr is None:
                    arr = pa.nulls(n_incl, type=types[j])
                new_cols.append(_compact(pa.chunked_array(c.chunks + [arr], type=types[j])) if n_incl else c)
            cols = new_cols
        else:
            n_add = len(added_keys)
            if n_add and old_n and len((held or RowSet.from_keys(keys)).intersection(added_rs)):
                raise ProtocolError("the update adds rows under keys the client already holds")
            # merge two sorted key arrays: each element's place is its own index plus the count
            # of elements of the other array below it
            merged = np.empty(old_n + n_add, dtype=np.int64)
            added_pos = np.arange(n_add, dtype=np.int64) + np.searchsorted(keys, added_keys)
            old_pos = np.arange(old_n, dtype=np.int64) + np.searchsorted(added_keys, keys)
            merged[added_pos] = added_keys
            merged[old_pos] = keys
            # source row of each merged row: old row i -> i; included row k -> old_n + k; none -> null
            null_row = old_n + n_incl
            src = np.full(len(merged), null_row, dtype=np.int64)
            src[old_pos] = np.arange(old_n, dtype=np.int64)
            if n_incl:
                incl_pos = positions_of(merged, incl_rs, "included")
                src[incl_pos] = old_n + np.arange(n_incl, dtype=np.int64)
            # rows without data each get their own null row, so that runs of them stay runs
            null_rows = np.flatnonzero(src == null_row) if not all_included else _EMPTY_KEYS
            n_null = len(null_rows)
            if n_null:
                src[null_rows] = null_row + np.arange(n_null, dtype=np.int64)
            runs = _runs(src)
            new_cols = []
            for j, c in enumerate(cols):
                arr = add_data[j]
                if arr is None:
                    arr = pa.nulls(n_incl, type=types[j])
                chunks = c.chunks + [arr]
                if n_null:
                    chunks.append(pa.nulls(n_null, type=types[j]))
                new_cols.append(_take(pa.chunked_array(chunks, type=types[j]), src, runs))
            cols = new_cols
            keys = merged
        if len(missing) or not all_included:
            missing = missing.union(added_rs.difference(incl_rs)).difference(incl_rs)
    after_adds = TableState(state.schema, keys, tuple(cols), missing)

    # 4. modifies
    mod_data = _select_columns(update.modified, field_index)
    mod_rows = [md.modified[w] if w < len(md.modified) else RowSet.empty() for w in field_index]
    per_col: list[np.ndarray] = []
    union = RowSet.empty()
    last_rows: Optional[RowSet] = None
    last_pos = _EMPTY_KEYS
    last_idx_for: Optional[np.ndarray] = None
    idx = _EMPTY_KEYS
    idx_runs: Optional[tuple[np.ndarray, np.ndarray]] = None
    for j in range(ncols):
        rows = mod_rows[j]
        if len(rows) == 0:
            per_col.append(_EMPTY_KEYS)
            continue
        if last_rows is not None and rows == last_rows:
            pos = last_pos
        else:
            pos = after_adds.positions(rows, "modified")
            union = union.union(rows)
            last_rows, last_pos = rows, pos
        per_col.append(pos)
        arr = mod_data[j]
        if arr is None:
            continue  # a column not subscribed: its modifications are not carried
        if len(arr) != len(pos):
            raise ProtocolError(f"column {state.schema.field(j).name!r} carries {len(arr)} modified rows; "
                                f"{len(pos)} were announced")
        n = len(keys)
        if len(pos) == n:
            cols[j] = pa.chunked_array([arr], type=types[j])
        else:
            if pos is not last_idx_for:
                idx = np.arange(n, dtype=np.int64)
                idx[pos] = n + np.arange(len(pos), dtype=np.int64)
                idx_runs = _runs(idx)
                last_idx_for = pos
            cols[j] = _take(pa.chunked_array(cols[j].chunks + [arr], type=types[j]), idx, idx_runs)
    if last_rows is None:
        modified_pos = _EMPTY_KEYS
        after = after_adds
    else:
        modified_pos = last_pos if union == last_rows else after_adds.positions(union, "modified")
        after = TableState(state.schema, keys, tuple(cols), missing)
    return Applied(before, after_adds, after, removed_pos, added_pos, added_keys, modified_pos,
                   tuple(per_col), md)
