"""Row sets on the Barrage wire: decoding and encoding, done with numpy.

A row set (the server's ``RowSet``, formerly ``Index``) is an ordered set of non-negative 64-bit row
keys (or row positions). Here it is held as two int64 arrays, ``starts`` and ``ends``, of inclusive,
disjoint, increasing ranges; ``keys()`` expands it.

Wire form (deephaven/barrage ``docs/wire-guide.md``): a run of commands, each one byte whose high
five bits name the command and whose low three bits name the width of the little-endian signed
value that follows:

    commands: 1 offset (one value)   2 array of int16 (value = count)   3 array of int8 (count)
              4 end (no value)
    widths:   1 int16   2 int32   3 int64   4 int8

The values form one stream. Walking it with a running total of absolute values: a value >= 0 adds
to the total and opens a new element at the total; a negative value adds its magnitude and closes
the element opened just before into the range [opened, total]. So the total after each value is
``cumsum(abs(values))``, which is what lets the whole decode be vectorised.

Shift data (``RowSetShiftData``) is three such encodings back to back, ``starts``, ``ends`` and
``dests``, of equal length: the unmodified rows with keys in [start, end] move to
[dest, dest + end - start].

A column set is a bit set: bit i of byte i // 8 (least significant bit first) stands for column i.
"""

from __future__ import annotations

import struct
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

CMD_OFFSET = 1
CMD_SHORT_ARRAY = 2
CMD_BYTE_ARRAY = 3
CMD_END = 4

_WIDTH = {1: 2, 2: 4, 3: 8, 4: 1}  # value-type code -> bytes
_SIGNED = {1: "<h", 2: "<i", 3: "<q", 4: "<b"}

_EMPTY = np.zeros(0, dtype=np.int64)


class RowSetError(ValueError):
    """A row set on the wire that does not follow the encoding."""


class RowSet:
    """An immutable ordered set of row keys, as inclusive ranges ``starts[i]..ends[i]``."""

    __slots__ = ("starts", "ends", "_size")

    def __init__(self, starts: np.ndarray, ends: np.ndarray) -> None:
        self.starts = starts
        self.ends = ends
        self._size = int((ends - starts).sum() + len(starts)) if len(starts) else 0

    @classmethod
    def empty(cls) -> "RowSet":
        return cls(_EMPTY, _EMPTY)

    @classmethod
    def from_range(cls, first: int, last: int) -> "RowSet":
        if last < first:
            return cls.empty()
        return cls(np.array([first], dtype=np.int64), np.array([last], dtype=np.int64))

    @classmethod
    def from_ranges(cls, ranges: Iterable[Tuple[int, int]]) -> "RowSet":
        """From (first, last) pairs in any order, overlapping or touching ones merged."""
        pairs = sorted((int(a), int(b)) for a, b in ranges if int(b) >= int(a))
        starts: list[int] = []
        ends: list[int] = []
        for a, b in pairs:
            if a < 0:
                raise ValueError(f"row sets hold non-negative values, got range ({a}, {b})")
            if ends and a <= ends[-1] + 1:
                ends[-1] = max(ends[-1], b)
            else:
                starts.append(a)
                ends.append(b)
        return cls(np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64))

    @classmethod
    def from_keys(cls, keys: np.ndarray) -> "RowSet":
        """From a sorted array of distinct keys."""
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) == 0:
            return cls.empty()
        steps = np.diff(keys)
        if keys[0] < 0 or (steps <= 0).any():
            raise RowSetError("row keys must be non-negative, increasing and distinct")
        breaks = np.flatnonzero(steps != 1)
        starts = np.concatenate(([keys[0]], keys[breaks + 1]))
        ends = np.concatenate((keys[breaks], [keys[-1]]))
        return cls(starts, ends)

    def __len__(self) -> int:
        return self._size

    @property
    def size(self) -> int:
        return self._size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RowSet):
            return NotImplemented
        return np.array_equal(self.starts, other.starts) and np.array_equal(self.ends, other.ends)

    def __hash__(self) -> int:  # pragma: no cover - sets of row sets are not a use
        return hash((self.starts.tobytes(), self.ends.tobytes()))

    def __repr__(self) -> str:
        parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(self.starts[:8].tolist(), self.ends[:8].tolist())]
        more = ", ..." if len(self.starts) > 8 else ""
        return f"RowSet({{{', '.join(parts)}{more}}}, size={self._size})"

    def union(self, other: "RowSet") -> "RowSet":
        if len(other) == 0:
            return self
        if len(self) == 0:
            return other
        starts = np.concatenate((self.starts, other.starts))
        ends = np.concatenate((self.ends, other.ends))
        order = np.argsort(starts, kind="stable")
        starts, ends = starts[order], ends[order]
        # a range starts a new group unless it begins at or before (the furthest end so far) + 1
        reach = np.maximum.accumulate(ends)
        new_group = np.empty(len(starts), dtype=bool)
        new_group[0] = True
        new_group[1:] = starts[1:] > reach[:-1] + 1
        group_starts = np.flatnonzero(new_group)
        group_ends = np.concatenate((group_starts[1:], [len(starts)])) - 1
        return RowSet(starts[group_starts], reach[group_ends])

    def _combine(self, other: "RowSet", keep_a_only: bool) -> "RowSet":
        # elementary intervals between every range boundary of both sets; each lies wholly inside
        # or outside each set, so testing its first value decides it
        bounds = np.concatenate((self.starts, self.ends + 1, other.starts, other.ends + 1))
        bounds.sort(kind="stable")
        distinct = np.empty(len(bounds), dtype=bool)
        distinct[:1] = True
        np.not_equal(bounds[1:], bounds[:-1], out=distinct[1:])
        bounds = bounds[distinct]
        lo, hi = bounds[:-1], bounds[1:] - 1
        in_a = self.contains(lo)
        in_b = other.contains(lo)
        keep = in_a & ~in_b if keep_a_only else in_a & in_b
        return _coalesce(lo[keep], hi[keep])

    def difference(self, other: "RowSet") -> "RowSet":
        """The members not in ``other``."""
        if len(self) == 0 or len(other) == 0:
            return self
        return self._combine(other, True)

    def intersection(self, other: "RowSet") -> "RowSet":
        if len(self) == 0 or len(other) == 0:
            return RowSet.empty()
        return self._combine(other, False)

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``values`` are members."""
        if len(self.starts) == 0 or len(values) == 0:
            return np.zeros(len(values), dtype=bool)
        idx = np.searchsorted(self.starts, values, side="right") - 1
        inside = idx >= 0
        out = np.zeros(len(values), dtype=bool)
        out[inside] = values[inside] <= self.ends[idx[inside]]
        return out

    def keys(self) -> np.ndarray:
        """Every member, in order, as an int64 array."""
        return expand_ranges(self.starts, self.ends)

    def ranges(self) -> list[Tuple[int, int]]:
        return list(zip(self.starts.tolist(), self.ends.tolist()))


def expand_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """All integers of the inclusive ranges, in order."""
    if len(starts) == 0:
        return _EMPTY
    lengths = ends - starts + 1
    total = int(lengths.sum())
    if len(starts) == 1:
        return np.arange(starts[0], ends[0] + 1, dtype=np.int64)
    # each output value is its own index plus the shift of the range it falls in
    first_index = np.cumsum(lengths) - lengths
    shift = np.repeat(starts - first_index, lengths)
    return np.arange(total, dtype=np.int64) + shift


# -- decoding ---------------------------------------------------------------------------------------


def _values(data: memoryview, pos: int) -> Tuple[np.ndarray, int]:
    """The value stream of one encoded row set starting at ``pos``; returns it and the position
    just after its end command."""
    pieces: list[np.ndarray] = []
    scalars: list[int] = []
    n = len(data)
    while True:
        if pos >= n:
            raise RowSetError("row set ends without an end command")
        cmd_byte = data[pos]
        pos += 1
        cmd, vtype = cmd_byte >> 3, cmd_byte & 7
        if cmd == CMD_END:
            break
        width = _WIDTH.get(vtype)
        if width is None or cmd not in (CMD_OFFSET, CMD_SHORT_ARRAY, CMD_BYTE_ARRAY):
            raise RowSetError(f"unknown row set command byte 0x{cmd_byte:02x} at {pos - 1}")
        if pos + width > n:
            raise RowSetError("row set value runs past the end of the data")
        (value,) = struct.unpack_from(_SIGNED[vtype], data, pos)
        pos += width
        if cmd == CMD_OFFSET:
            scalars.append(value)
            continue
        if value < 0:
            raise RowSetError(f"negative array length {value} in row set")
        if scalars:
            pieces.append(np.array(scalars, dtype=np.int64))
            scalars = []
        if cmd == CMD_SHORT_ARRAY:
            end = pos + 2 * value
            if end > n:
                raise RowSetError("row set array runs past the end of the data")
            pieces.append(np.frombuffer(data[pos:end], dtype="<i2").astype(np.int64))
        else:
            end = pos + value
            if end > n:
                raise RowSetError("row set array runs past the end of the data")
            pieces.append(np.frombuffer(data[pos:end], dtype=np.int8).astype(np.int64))
        pos = end
    if scalars:
        pieces.append(np.array(scalars, dtype=np.int64))
    if not pieces:
        return _EMPTY, pos
    return (pieces[0] if len(pieces) == 1 else np.concatenate(pieces)), pos


def _ranges_from_values(values: np.ndarray) -> RowSet:
    if len(values) == 0:
        return RowSet.empty()
    negative = values < 0
    if negative[0]:
        raise RowSetError("row set starts with a range end")
    if len(values) > 1 and np.any(negative[1:] & negative[:-1]):
        raise RowSetError("row set has a range end that closes no element")
    totals = np.cumsum(np.abs(values))
    opens = np.flatnonzero(~negative)
    starts = totals[opens]
    closes = opens + 1
    has_end = np.zeros(len(opens), dtype=bool)
    inside = closes < len(values)
    has_end[inside] = negative[closes[inside]]
    ends = starts.copy()
    ends[has_end] = totals[closes[has_end]]
    if len(starts) > 1 and np.any(starts[1:] <= ends[:-1]):
        raise RowSetError("row set values are not increasing")
    return _coalesce(starts, ends)


def _coalesce(starts: np.ndarray, ends: np.ndarray) -> RowSet:
    """Merge ranges that touch (the encoder may write 5 then 6 as two elements)."""
    if len(starts) > 1:
        touching = starts[1:] == ends[:-1] + 1
        if touching.any():
            keep = np.concatenate(([True], ~touching))
            group = np.cumsum(keep) - 1
            new_starts = starts[keep]
            new_ends = np.zeros(len(new_starts), dtype=np.int64)
            np.maximum.at(new_ends, group, ends)
            return RowSet(new_starts, new_ends)
    return RowSet(starts, ends)


def decode(data: Optional[bytes | memoryview], pos: int = 0) -> RowSet:
    """Decode one row set (an absent or empty field is the empty set)."""
    if data is None or len(data) == 0:
        return RowSet.empty()
    values, _ = _values(memoryview(data), pos)
    return _ranges_from_values(values)


def decode_shifts(data: Optional[bytes | memoryview]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode shift data into (starts, ends, dests) int64 arrays of equal length."""
    if data is None or len(data) == 0:
        return _EMPTY, _EMPTY, _EMPTY
    mv = memoryview(data)
    out = []
    pos = 0
    for _ in range(3):
        values, pos = _values(mv, pos)
        rs = _ranges_from_values(values)
        # each of the three is a set of single values, not ranges, in practice; expand defensively
        out.append(rs.keys())
    starts, ends, dests = out
    if not (len(starts) == len(ends) == len(dests)):
        raise RowSetError(f"shift data has {len(starts)} starts, {len(ends)} ends and {len(dests)} destinations")
    return starts, ends, dests


# -- encoding ---------------------------------------------------------------------------------------


def _value_code(v: int) -> int:
    if -(1 << 7) <= v < (1 << 7):
        return 4
    if -(1 << 15) <= v < (1 << 15):
        return 1
    if -(1 << 31) <= v < (1 << 31):
        return 2
    return 3


def encode(rows: RowSet | Sequence[Tuple[int, int]]) -> bytes:
    """Encode a row set (or (first, last) ranges) in the wire form; offsets only, smallest widths."""
    rs = rows if isinstance(rows, RowSet) else RowSet.from_ranges(rows)
    out = bytearray()
    last = 0
    for a, b in zip(rs.starts.tolist(), rs.ends.tolist()):
        for v in ((a - last,) if a == b else (a - last, -(b - a))):
            code = _value_code(v)
            out.append((CMD_OFFSET << 3) | code)
            out += struct.pack(_SIGNED[code], v)
        last = b
    out.append(CMD_END << 3)
    return bytes(out)


def encode_bitset(indices: Iterable[int]) -> bytes:
    """A bit set with the given bit indices set (little-endian bit order)."""
    idx = sorted(set(int(i) for i in indices))
    if not idx:
        return b""
    out = bytearray((idx[-1] // 8) + 1)
    for i in idx:
        if i < 0:
            raise ValueError(f"bit index must be >= 0, got {i}")
        out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def decode_bitset(data: Optional[bytes | memoryview]) -> list[int]:
    """The indices of the set bits."""
    if not data:
        return []
    bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8), bitorder="little")
    return np.flatnonzero(bits).tolist()
