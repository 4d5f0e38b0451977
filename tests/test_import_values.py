"""import_table never changes a value: each value comes back equal, or the import is refused naming
the column. Property-style, against the real server, for every Arrow type it takes.

The test keeps its own list of the values the server changes (worked out from the bits each type is
read through on the server, see the table in pydeephaven/_arrow.py) and proves each of them with the
server: with the client's guard switched off, such a value must come back changed (or be refused by
the server). So a refusal the server does not need fails the test as surely as a changed value.
"""

from __future__ import annotations

import decimal
from typing import Any, Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pydeephaven import DHError, _arrow

SEED = 20261201
N = 200  # random values per case
I64_MAX = 2**63 - 1
DAY_MS = 86_400_000


def _bits(t: pa.DataType) -> pa.DataType:
    return {8: pa.int8(), 16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[t.bit_width]


def _from_bits(t: pa.DataType, bits: np.ndarray, nulls: Optional[np.ndarray] = None) -> pa.Array:
    storage = pa.array(bits.astype(_bits(t).to_pandas_dtype()), type=_bits(t), mask=nulls)
    return storage if storage.type.equals(t) else storage.view(t)


def _full_range(width: int) -> tuple[int, int]:
    return -(2 ** (width - 1)), 2 ** (width - 1) - 1


# Each kind: an Arrow type, a way to draw random valid storage values (as signed ints of the type's
# width, or a ready pyarrow array), valid extremes, and the values the server would change.
class Kind:
    def __init__(self, name: str, t: pa.DataType, draw: Callable[[np.random.Generator, int], np.ndarray],
                 good: list[int], bad: list[int]) -> None:
        self.name, self.t, self.draw, self.good, self.bad = name, t, draw, good, bad

    def values(self, rng: np.random.Generator, extra: list[int]) -> pa.Array:
        return self.values_and_extras(rng, extra)[0]

    def values_and_extras(self, rng: np.random.Generator, extra: list[int]) -> tuple[pa.Array, np.ndarray]:
        """Random valid values, the valid extremes, and the ``extra`` values; and where the extras are."""
        drawn = self.draw(rng, N)
        drawn = drawn[~np.isin(drawn, np.array(self.bad, dtype=drawn.dtype))] if self.bad else drawn
        bits = np.concatenate([drawn, np.array(self.good + extra, dtype=drawn.dtype)])
        rng.shuffle(bits)
        nulls = rng.random(len(bits)) < 0.1
        where = np.isin(bits, np.array(extra, dtype=bits.dtype))
        nulls[where] = False  # the injected value itself stays
        return _from_bits(self.t, bits, nulls), where


def _ints(lo: int, hi: int) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, n: rng.integers(lo, hi, size=n, endpoint=True, dtype=np.int64)


def _f_bits(width: int) -> Callable[[np.random.Generator, int], np.ndarray]:
    lo, hi = _full_range(width)
    return lambda rng, n: rng.integers(lo, hi, size=n, endpoint=True, dtype=np.int64)


def _days_ms(rng: np.random.Generator, n: int) -> np.ndarray:
    days = rng.integers(-(I64_MAX // DAY_MS), I64_MAX // DAY_MS, size=n, endpoint=True, dtype=np.int64)
    return days * DAY_MS


def _limit(unit: str) -> int:
    return I64_MAX // {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]


def _f16(x: float) -> int:
    return int(np.array([x], np.float16).view(np.int16)[0])


def _f32(x: float) -> int:
    return int(np.array([x], np.float32).view(np.int32)[0])


def _f64(x: float) -> int:
    return int(np.array([x], np.float64).view(np.int64)[0])


def _kinds() -> list[Kind]:
    ks = []
    for w, t in ((8, pa.int8()), (16, pa.int16()), (32, pa.int32()), (64, pa.int64())):
        lo, hi = _full_range(w)
        ks.append(Kind(str(t), t, _ints(lo, hi), [lo + 1, hi, 0, -1], [lo]))
    # unsigned: stored bits as signed; the server reads them through a signed Java type of the same width
    ks.append(Kind("uint8", pa.uint8(), _ints(-128, 127), [0, -1, 127, -127], [-128]))  # 128
    ks.append(Kind("uint16", pa.uint16(), _ints(-(2**15), 2**15 - 1), [0, -2, -(2**15)], [-1]))  # 65535
    ks.append(Kind("uint32", pa.uint32(), _ints(-(2**31), 2**31 - 1), [0, -1, 2**31 - 1], [-(2**31)]))  # 2**31
    ks.append(Kind("uint64", pa.uint64(), _ints(-(2**63), I64_MAX), [0, -1, I64_MAX, -(2**63) + 1], [-(2**63)]))
    nan16 = [0x7E00, 0x7C00 - 2**16, 0x7C00, 0x0001]  # NaN, -inf, inf, smallest subnormal
    ks.append(Kind("float16", pa.float16(), _f_bits(16), nan16 + [_f16(-65504.0), _f16(65504.0), 0],
                   [-(2**15)]))  # -0.0
    ks.append(Kind("float32", pa.float32(), _f_bits(32),
                   [_f32(float("-inf")), _f32(float("nan")), _f32(-0.0), _f32(3.4028234663852886e38),
                    _f32(float(np.nextafter(np.float32(-3.4028234663852886e38), np.float32(0))))],
                   [_f32(-3.4028234663852886e38)]))
    ks.append(Kind("float64", pa.float64(), _f_bits(64),
                   [_f64(float("-inf")), _f64(float("nan")), _f64(-0.0), _f64(1.7976931348623157e308),
                    _f64(float(np.nextafter(-1.7976931348623157e308, 0)))],
                   [_f64(-1.7976931348623157e308)]))
    ks.append(Kind("date32", pa.date32(), _ints(-(2**31), 2**31 - 1), [-(2**31) + 1, 2**31 - 1, 0], [-(2**31)]))
    ks.append(Kind("date64", pa.date64(), _days_ms, [(I64_MAX // DAY_MS) * DAY_MS, -(I64_MAX // DAY_MS) * DAY_MS],
                   [1, -1, DAY_MS + 1, -(2**63)]))
    for t, day in ((pa.time32("s"), 86_400), (pa.time32("ms"), 86_400_000), (pa.time64("us"), 86_400 * 10**6),
                   (pa.time64("ns"), 86_400 * 10**9)):
        lo = _full_range(t.bit_width)[0]
        ks.append(Kind(str(t), t, _ints(0, day - 1), [0, day - 1], [-1, day, lo]))
    for make in (pa.timestamp, pa.duration):
        for unit in ("s", "ms", "us", "ns"):
            t, lim = make(unit), _limit(unit)
            bad = [-(2**63)] + ([lim + 1, -lim - 1, I64_MAX] if unit != "ns" else [])
            ks.append(Kind(str(t), t, _ints(-lim, lim), [lim, -lim, 0], bad))
    ks.append(Kind("timestamp[us, UTC]", pa.timestamp("us", tz="UTC"), _ints(-_limit("us"), _limit("us")),
                   [_limit("us")], [_limit("us") + 1, -(2**63)]))
    return ks


KINDS = {k.name: k for k in _kinds()}

# Types drawn differently (values, not bits); the server keeps every value of them.
OTHERS: dict[str, Callable[[np.random.Generator], pa.Array]] = {
    "bool": lambda rng: pa.array(rng.random(N) < 0.5, mask=rng.random(N) < 0.1),
    "string": lambda rng: pa.array(["", "a\x00b", "çé", "\U0001F600", None] * (N // 5)),
    "binary": lambda rng: pa.array([bytes(rng.integers(0, 256, size=int(k), dtype=np.uint8)) for k in
                                    rng.integers(0, 9, size=N)]),
    "fixed_size_binary": lambda rng: pa.array([rng.bytes(3) for _ in range(N)], pa.binary(3)),
    "decimal128": lambda rng: pa.array([decimal.Decimal(int(v)) for v in rng.integers(-(2**62), 2**62, size=N)]
                                       + [decimal.Decimal(10**38 - 1), decimal.Decimal(-(10**38 - 1)), None],
                                       pa.decimal128(38, 0)),
    "decimal256": lambda rng: pa.array([decimal.Decimal("9" * 75 + ".9"), decimal.Decimal("-1.5"), None],
                                      pa.decimal256(76, 1)),
    "month_day_nano": lambda rng: pa.array([(1, 2, 3), None, (-(2**31), -(2**31), -(2**63)), (2**31 - 1, 0, I64_MAX)],
                                           pa.month_day_nano_interval()),
    "null": lambda rng: pa.nulls(5),
}


def _leaf(a: pa.Array) -> pa.Array:
    while True:
        t = a.type
        if pa.types.is_dictionary(t):
            a = a.dictionary_decode()
        elif pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_list_view(t):
            a = a.flatten()
        elif pa.types.is_union(t):
            a = a.field(0).filter(pc.equal(a.type_codes, 0))
        elif pa.types.is_map(t) and pa.types.is_floating(a.keys.type):
            a = a.keys.slice(a.offsets[0].as_py(), a.offsets[-1].as_py() - a.offsets[0].as_py())
        elif pa.types.is_map(t):
            a = a.items.slice(a.offsets[0].as_py(), a.offsets[-1].as_py() - a.offsets[0].as_py())
        else:
            return a


def _same(sent: pa.Array, back: pa.Array) -> bool:
    """Equal values and nulls, NaN equal to NaN (the server keeps a NaN a NaN, not its payload bits)."""
    if not back.type.equals(sent.type) or len(back) != len(sent):
        return False
    if back.equals(sent):
        return True
    if pa.types.is_run_end_encoded(sent.type):
        sent, back = pc.run_end_decode(sent), pc.run_end_decode(back)
    if not (pa.types.is_floating(sent.type) or pa.types.is_union(sent.type)):
        if not pc.is_null(back).equals(pc.is_null(sent)):
            return False
    a, b = _leaf(sent), _leaf(back)
    if not pa.types.is_floating(a.type) or len(a) != len(b) or not pc.is_null(a).equals(pc.is_null(b)):
        return False
    fa = a.cast(pa.float64()).to_numpy(zero_copy_only=False)
    fb = b.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return bool(np.all((fa == fb) | (np.isnan(fa) & np.isnan(fb)) | (pc.is_null(a).to_numpy(zero_copy_only=False))))


def _wrap(how: str, values: pa.Array, extras: np.ndarray, rng: np.random.Generator) -> Optional[pa.Array]:
    if how == "plain":
        return values
    if how == "dict":
        return values.dictionary_encode()
    if how == "fixed_size_list":
        return pa.FixedSizeListArray.from_arrays(values, 1)
    if how == "run_end_encoded":
        ends = np.cumsum(rng.integers(1, 4, size=len(values))).astype(np.int32)
        try:
            return pa.RunEndEncodedArray.from_arrays(pa.array(ends), values)
        except pa.ArrowInvalid:  # pyarrow itself refuses such values here (times outside a day, ...)
            return None
    if how == "map_key":  # one entry per map, the values as keys (keys cannot be null)
        return pa.MapArray.from_arrays(pa.array(np.arange(len(values) + 1, dtype=np.int32)), values,
                                       pa.array(np.zeros(len(values), np.int8)))
    if how == "union":  # a sparse union of the values and strings; the extras are always selected
        ids = np.where((rng.random(len(values)) < 0.3) & ~extras, 1, 0).astype(np.int8)
        return pa.UnionArray.from_sparse(pa.array(ids), [values, pa.array(["s"] * len(values))], ["v", "s"])
    cuts = np.sort(rng.choice(np.arange(1, len(values)), size=min(20, len(values) - 1), replace=False))
    offsets = pa.array(np.concatenate([[0], cuts, [len(values)]]).astype(np.int32))
    if how == "list":
        return pa.ListArray.from_arrays(offsets, values)
    if how == "list_view":
        return pa.ListViewArray.from_arrays(offsets[:-1], pc.subtract(offsets[1:], offsets[:-1]), values)
    keys = pa.array([f"k{i}" for i in range(len(values))])  # one key per entry: never a key twice in a map
    return pa.MapArray.from_arrays(offsets, keys, values)


def _column(rng: np.random.Generator, kind: Kind, how: str, extra: list[int]) -> Optional[pa.Array]:
    values, extras = kind.values_and_extras(rng, extra)
    if how in ("map", "union", "map_key"):  # keep the comparison simple: no nulls inside
        values = values.fill_null(values.drop_null()[0])
    return _wrap(how, values, extras, rng)


def _import_or_refusal(session: Any, data: pa.Table) -> tuple[Optional[pa.Table], Optional[str]]:
    try:
        t = session.import_table(data)
    except DHError as e:
        return None, str(e)
    try:
        return t.to_arrow(), None
    finally:
        t.close()


def _check_case(session: Any, col: pa.Array, expect_refusal: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    data = pa.table({"Id": pa.array(np.arange(len(col), dtype=np.int32)), "V": col})
    before = len(session.live_exports())
    back, refusal = _import_or_refusal(session, data)
    if refusal is not None:
        assert "column 'V'" in refusal, refusal
        assert len(session.live_exports()) == before, "a refused import left an export behind"
        assert expect_refusal, f"refused a value the server keeps: {refusal}"
        # the proof: without the guard the server changes the value (or refuses it itself)
        with monkeypatch.context() as m:
            m.setattr(_arrow, "check_values", lambda batch: None)
            raw, server_refusal = _import_or_refusal(session, data)
        assert server_refusal is not None or not _same(col, raw.column("V").combine_chunks()), \
            f"the server keeps what the client refused: {refusal}"
        return
    assert not expect_refusal, f"imported a value the server changes ({col.type})"
    assert back is not None
    assert back.column("Id").to_pylist() == list(range(len(col)))
    assert _same(col, back.column("V").combine_chunks()), f"{col.type} changed on the way"


WRAPS = ("plain", "list", "dict", "map", "list_view", "fixed_size_list", "union", "run_end_encoded", "map_key")


def _changes_as_key(kind: Kind, bad: int) -> bool:
    """Map keys keep the null markers (measured); what wraps still wraps."""
    t = kind.t
    if pa.types.is_timestamp(t) or pa.types.is_duration(t):
        return bad != -(2**63) or t.unit != "ns"
    return pa.types.is_time(t) or pa.types.is_date64(t)


def _cases() -> list[tuple[str, str]]:
    # every kind in every wrapping, except float16 dictionaries, which pyarrow cannot encode
    return [(name, how) for name in KINDS for how in WRAPS
            if not (how == "dict" and pa.types.is_floating(KINDS[name].t) and KINDS[name].t.bit_width == 16)]


@pytest.mark.parametrize(("name", "how"), _cases())
def test_each_value_comes_back_or_is_refused(session, monkeypatch, name: str, how: str) -> None:
    kind = KINDS[name]
    rng = np.random.default_rng([SEED, list(KINDS).index(name), WRAPS.index(how)])
    clean = _column(rng, kind, how, [])
    assert clean is not None
    _check_case(session, clean, False, monkeypatch)
    for bad in kind.bad:
        col = _column(rng, kind, how, [bad])
        if col is not None:
            _check_case(session, col, how != "map_key" or _changes_as_key(kind, bad), monkeypatch)


@pytest.mark.parametrize("name", list(OTHERS))
def test_other_types_come_back_equal(session, monkeypatch, name: str) -> None:
    rng = np.random.default_rng([SEED, 99, list(OTHERS).index(name)])
    col = OTHERS[name](rng)
    _check_case(session, col, False, monkeypatch)
    if name not in ("null", "month_day_nano"):
        _check_case(session, pa.ListArray.from_arrays(pa.array([0, 1, len(col)], pa.int32()), col), False, monkeypatch)


def test_async_import_refuses_or_keeps(arun) -> None:
    rng = np.random.default_rng([SEED, 7])

    async def body(s: Any) -> int:
        checked = 0
        for name, kind in KINDS.items():
            for extra in [[]] + [[b] for b in kind.bad]:
                col = kind.values(rng, extra)
                before = len(await s.live_exports())
                try:
                    t = await s.import_table(pa.table({"V": col}))
                except DHError as e:
                    assert extra and "column 'V'" in str(e), (name, str(e))
                    assert len(await s.live_exports()) == before, name
                else:
                    assert not extra, (name, extra)
                    back = await t.to_arrow()
                    assert _same(col, back.column("V").combine_chunks()), name
                    await t.close()
                checked += 1
        return checked

    assert arun(body) == sum(1 + len(k.bad) for k in KINDS.values())


def _reader_with_marker_in_second_batch() -> pa.RecordBatchReader:
    parts = [pa.record_batch({"V": pa.array([1, 2], pa.int64())}),
             pa.record_batch({"V": pa.array([3, -(2**63)], pa.int64())})]
    return pa.RecordBatchReader.from_batches(parts[0].schema, iter(parts))


def test_a_reader_refused_part_way_leaves_nothing(session) -> None:
    before = len(session.live_exports())
    with pytest.raises(DHError, match="column 'V' holds -9223372036854775808"):
        session.import_table(_reader_with_marker_in_second_batch())
    assert len(session.live_exports()) == before


def test_an_async_reader_refused_part_way_leaves_nothing(arun) -> None:
    async def body(s: Any) -> None:
        before = len(await s.live_exports())
        with pytest.raises(DHError, match="column 'V' holds -9223372036854775808"):
            await s.import_table(_reader_with_marker_in_second_batch())
        assert len(await s.live_exports()) == before

    arun(body)


@pytest.mark.parametrize("size", [5, _arrow._SMALL + 5])
def test_the_marker_bits_under_a_null_are_no_value(session, size: int) -> None:
    """A null slot may hold any bits, the marker's too: that is a null, not a value to refuse;
    the same marker in a valid slot is refused. Both for small arrays (read with numpy) and
    large ones (pyarrow compute), and for the range checks of timestamps."""
    marker = np.full(size, 7, dtype=np.int64)
    marker[1] = -2**63
    valid = np.ones(size, dtype=bool)
    valid[1] = False
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    hidden = pa.Array.from_buffers(pa.int64(), size, [bitmap, pa.py_buffer(marker.tobytes())], null_count=1)
    wide = marker.copy()
    wide[1] = 2**62  # year 146,000 in microseconds, under a null
    stamps = pa.Array.from_buffers(pa.timestamp("us"), size, [bitmap, pa.py_buffer(wide.tobytes())], null_count=1)
    t = session.import_table(pa.table({"A": hidden, "T": stamps}))
    back = t.to_arrow()
    assert back.column("A").to_pylist() == hidden.to_pylist() and back.column("A").null_count == 1
    assert back.column("T").null_count == 1 and back.column("T")[2].value == 7
    shown = pa.Array.from_buffers(pa.int64(), size, [None, pa.py_buffer(marker.tobytes())])
    with pytest.raises(DHError, match=r"column 'A' holds -9223372036854775808"):
        session.import_table(pa.table({"A": shown}))
    far = pa.Array.from_buffers(pa.timestamp("us"), size, [None, pa.py_buffer(wide.tobytes())])
    with pytest.raises(DHError, match=r"column 'T' .*outside the range the server can carry"):
        session.import_table(pa.table({"T": far}))
