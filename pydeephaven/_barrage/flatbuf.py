"""A small flatbuffers reader, enough for the Barrage and Arrow IPC headers we receive.

Layout facts used (the flatbuffers binary format): a buffer opens with a uint32 offset to the root
table; a table opens with an int32 that, subtracted from the table's position, gives its vtable;
the vtable is uint16s: its own size in bytes, the table's inline size, then one offset per field
slot (0 = field absent, default value applies). Offsets to sub-tables and vectors are uint32s,
relative to where they are stored; a vector is a uint32 element count followed by the elements.

Writing uses the ``flatbuffers`` runtime's Builder (see ``messages.py``); reading is done here with
``struct`` because it is faster than the runtime's accessors and needs no generated code.
"""

from __future__ import annotations

import struct
from typing import Optional

_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_i32 = struct.Struct("<i").unpack_from


class FlatbufferError(ValueError):
    """A flatbuffer that cannot be read (truncated, or offsets pointing outside it)."""


class FbTable:
    """One table inside a flatbuffer: read fields by slot number."""

    __slots__ = ("buf", "pos", "_vt", "_vt_len")

    def __init__(self, buf: memoryview, pos: int) -> None:
        n = len(buf)
        if pos < 0 or pos + 4 > n:
            raise FlatbufferError(f"table position {pos} outside a buffer of {n} bytes")
        self.buf = buf
        self.pos = pos
        vt = pos - _i32(buf, pos)[0]
        if vt < 0 or vt + 4 > n:
            raise FlatbufferError(f"vtable position {vt} outside a buffer of {n} bytes")
        self._vt = vt
        self._vt_len = _u16(buf, vt)[0]

    @classmethod
    def root(cls, data: bytes | memoryview) -> "FbTable":
        buf = memoryview(data)
        if len(buf) < 8:
            raise FlatbufferError(f"a flatbuffer of {len(buf)} bytes is too short")
        return cls(buf, _u32(buf, 0)[0])

    def _field(self, slot: int) -> int:
        """Absolute position of field ``slot``, or 0 when absent."""
        entry = 4 + 2 * slot
        if entry + 2 > self._vt_len:
            return 0
        off = _u16(self.buf, self._vt + entry)[0]
        return self.pos + off if off else 0

    def has(self, slot: int) -> bool:
        return self._field(slot) != 0

    def scalar(self, slot: int, fmt: str, default: int | float | bool = 0) -> int | float | bool:
        p = self._field(slot)
        if not p:
            return default
        return struct.unpack_from(fmt, self.buf, p)[0]

    def _target(self, slot: int) -> int:
        p = self._field(slot)
        if not p:
            return 0
        t = p + _u32(self.buf, p)[0]
        if t + 4 > len(self.buf):
            raise FlatbufferError(f"field {slot} points outside the buffer")
        return t

    def table(self, slot: int) -> Optional["FbTable"]:
        t = self._target(slot)
        return FbTable(self.buf, t) if t else None

    def bytes_view(self, slot: int) -> Optional[memoryview]:
        """A [byte]/[ubyte] vector (or string) as a memoryview, None when absent."""
        t = self._target(slot)
        if not t:
            return None
        n = _u32(self.buf, t)[0]
        if t + 4 + n > len(self.buf):
            raise FlatbufferError(f"vector of field {slot} runs past the buffer")
        return self.buf[t + 4:t + 4 + n]

    def vector(self, slot: int) -> tuple[int, int]:
        """(position of the first element, element count) of a vector; (0, 0) when absent."""
        t = self._target(slot)
        if not t:
            return 0, 0
        return t + 4, _u32(self.buf, t)[0]

    def struct_vector(self, slot: int, fmt: str) -> list[tuple]:
        """A vector of fixed-size structs, each unpacked with ``fmt``."""
        start, n = self.vector(slot)
        if not n:
            return []
        s = struct.Struct(fmt)
        if start + n * s.size > len(self.buf):
            raise FlatbufferError(f"struct vector of field {slot} runs past the buffer")
        return list(s.iter_unpack(self.buf[start:start + n * s.size]))

    def table_vector(self, slot: int) -> list["FbTable"]:
        start, n = self.vector(slot)
        out = []
        for i in range(n):
            p = start + 4 * i
            out.append(FbTable(self.buf, p + _u32(self.buf, p)[0]))
        return out
