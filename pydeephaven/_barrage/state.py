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

Full subscriptions use the server's row keys; viewport subscriptions use positions within the
viewport as keys, so either way the rows of a state, in key order, are the rows as the server
orders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

from pydeephaven._barrage.messages import ProtocolError, UpdateMetadata
from pydeephaven._barrage.rowset import RowSet
from pydeephaven._barrage.stream import RawUpdate

#: Columns are kept chunked; appends add a chunk, and past this many chunks a column is compacted.
MAX_CHUNKS = 64

_EMPTY_KEYS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class TableState:
    schema: pa.Schema
    keys: np.ndarray
    columns: tuple[pa.ChunkedArray, ...]

    @classmethod
    def empty(cls, schema: pa.Schema) -> "TableState":
        cols = tuple(pa.chunked_array([], type=f.type) for f in schema)
        return cls(schema, _EMPTY_KEYS, cols)

    @property
    def num_rows(self) -> int:
        return len(self.keys)

    def to_table(self) -> pa.Table:
        return pa.Table.from_arrays(list(self.columns), schema=self.schema)

    def positions(self, keys: np.ndarray, what: str) -> np.ndarray:
        """Positions of ``keys`` (sorted) in this state; every key must be present."""
        if len(keys) == 0:
            return _EMPTY_KEYS
        pos = np.searchsorted(self.keys, keys)
        if len(pos) and (pos[-1] >= len(self.keys) or not np.array_equal(self.keys[pos], keys)):
            raise ProtocolError(f"the update names {what} rows the client does not hold")
        return pos


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


def _take(col: pa.ChunkedArray, idx: np.ndarray) -> pa.ChunkedArray:
    if len(idx) == 0:
        return pa.chunked_array([], type=col.type)
    return col.take(pa.array(idx, type=pa.int64()))


def _compact(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if col.num_chunks > MAX_CHUNKS:
        return pa.chunked_array([col.combine_chunks()], type=col.type)
    return col


def _chunked(arr: pa.Array | pa.ChunkedArray, t: pa.DataType) -> pa.ChunkedArray:
    if isinstance(arr, pa.ChunkedArray):
        return arr
    return pa.chunked_array([arr], type=t)


def _select_columns(raw: Sequence[Optional[pa.Array]], index: Sequence[int]) -> list[Optional[pa.Array]]:
    return [raw[i] if i < len(raw) else None for i in index]


def apply(state: TableState, update: RawUpdate, field_index: Sequence[int]) -> Applied:
    """Apply ``update`` to ``state``. ``field_index[j]`` is the wire (schema) index of the state's
    column j."""
    md = update.metadata
    ncols = len(state.columns)
    types = [f.type for f in state.schema]
    before = state

    # 1. removes
    keys = state.keys
    cols = list(state.columns)
    removed_keys = md.removed.keys() if len(md.removed) else _EMPTY_KEYS
    removed_pos = state.positions(removed_keys, "removed")
    if len(removed_pos):
        keep = np.ones(len(keys), dtype=bool)
        keep[removed_pos] = False
        keep_idx = np.flatnonzero(keep)
        keys = keys[keep_idx]
        if len(keep_idx) == 0:
            cols = [pa.chunked_array([], type=t) for t in types]
        elif len(removed_pos) == removed_pos[-1] + 1:  # a prefix: slice instead of take
            cols = [c.slice(len(removed_pos)) for c in cols]
        else:
            cols = [_take(c, keep_idx) for c in cols]

    # 2. shifts
    if len(md.shift_starts) and len(keys):
        lo = np.searchsorted(keys, md.shift_starts, side="left")
        hi = np.searchsorted(keys, md.shift_ends, side="right")
        delta = np.zeros(len(keys) + 1, dtype=np.int64)
        np.add.at(delta, lo, md.shift_dests - md.shift_starts)
        np.add.at(delta, hi, md.shift_starts - md.shift_dests)
        keys = keys + np.cumsum(delta[:-1])
        if len(keys) > 1 and np.any(keys[1:] <= keys[:-1]):
            raise ProtocolError("the shifts of an update reorder or collide rows")

    # 3. adds
    added_keys = md.added.keys() if len(md.added) else _EMPTY_KEYS
    incl_keys = md.added_included.keys() if len(md.added_included) else _EMPTY_KEYS
    add_data = _select_columns(update.added, field_index)
    n_incl = len(incl_keys)
    for j, arr in enumerate(add_data):
        if arr is not None and len(arr) != n_incl:
            raise ProtocolError(f"column {state.schema.field(j).name!r} carries {len(arr)} added rows; "
                                f"{n_incl} were announced")
    added_pos = _EMPTY_KEYS
    if len(added_keys) or n_incl:
        appending = (len(added_keys) == n_incl and (len(keys) == 0 or added_keys[0] > keys[-1])
                     and (n_incl == 0 or np.array_equal(added_keys, incl_keys)))
        if appending:
            old_n = len(keys)
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
            old_n = len(keys)
            if len(added_keys) and old_n and np.isin(added_keys, keys, assume_unique=True).any():
                raise ProtocolError("the update adds rows under keys the client already holds")
            merged = np.union1d(keys, added_keys) if len(added_keys) else keys
            added_pos = np.searchsorted(merged, added_keys)
            # source of each merged row: old row i -> i; included row k -> old_n + k; neither -> null row
            src = np.full(len(merged), old_n + n_incl, dtype=np.int64)
            old_pos = np.searchsorted(merged, keys)
            src[old_pos] = np.arange(old_n, dtype=np.int64)
            if n_incl:
                incl_pos = np.searchsorted(merged, incl_keys)
                if incl_pos[-1] >= len(merged) or not np.array_equal(merged[incl_pos], incl_keys):
                    raise ProtocolError("the update includes data for rows it neither adds nor holds")
                src[incl_pos] = old_n + np.arange(n_incl, dtype=np.int64)
            need_null = bool(np.any(src == old_n + n_incl))
            new_cols = []
            for j, c in enumerate(cols):
                arr = add_data[j]
                if arr is None:
                    arr = pa.nulls(n_incl, type=types[j])
                chunks = c.chunks + [arr]
                if need_null:
                    chunks.append(pa.nulls(1, type=types[j]))
                new_cols.append(_take(pa.chunked_array(chunks, type=types[j]), src))
            cols = new_cols
            keys = merged
    after_adds = TableState(state.schema, keys, tuple(cols))

    # 4. modifies
    mod_data = _select_columns(update.modified, field_index)
    mod_keys = [md.modified[w] if w < len(md.modified) else RowSet.empty() for w in field_index]
    per_col: list[np.ndarray] = []
    for j in range(ncols):
        mk = mod_keys[j]
        if len(mk) == 0:
            per_col.append(_EMPTY_KEYS)
            continue
        arr = mod_data[j]
        k = mk.keys()
        pos = after_adds.positions(k, "modified")
        per_col.append(pos)
        if arr is None:
            continue  # a column not subscribed: its modifications are not carried
        if len(arr) != len(pos):
            raise ProtocolError(f"column {state.schema.field(j).name!r} carries {len(arr)} modified rows; "
                                f"{len(pos)} were announced")
        n = len(keys)
        if len(pos) == n:
            cols[j] = pa.chunked_array([arr], type=types[j])
        else:
            idx = np.arange(n, dtype=np.int64)
            idx[pos] = n + np.arange(len(pos), dtype=np.int64)
            cols[j] = _take(pa.chunked_array(cols[j].chunks + [arr], type=types[j]), idx)
    nonempty = [p for p in per_col if len(p)]
    if not nonempty:
        modified_pos = _EMPTY_KEYS
    elif len(nonempty) == 1:
        modified_pos = nonempty[0]
    else:
        modified_pos = np.unique(np.concatenate(nonempty))
    after = TableState(state.schema, keys, tuple(cols)) if nonempty else after_adds
    return Applied(before, after_adds, after, removed_pos, added_pos, added_keys, modified_pos,
                   tuple(per_col), md)
