"""pydeephaven.updateby: every operation through update_by, checked against numbers computed here
from the definitions of the calculations (numpy / plain Python)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest

from pydeephaven import DHError
from pydeephaven import updateby as uby
from pydeephaven.updateby import BadDataBehavior, DeltaControl, MathContext, OperationControl

SYM = ["a", "b", "a", "a", "b", "a", "b", "b", "a", "a"]
X = [2.0, 5.0, 3.0, -1.0, 4.0, 6.0, 1.5, 2.5, 0.5, 7.0]
W = [1.0, 2.0, 1.0, 3.0, 1.0, 0.5, 2.0, 1.0, 4.0, 1.0]
INTS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
# irregular times, seconds after T0
SECS = [0, 1, 2, 4, 5, 7, 8, 11, 12, 13]
T0 = dt.datetime(2024, 1, 2, 9, 30, tzinfo=dt.timezone.utc)
TS = [T0 + dt.timedelta(seconds=s) for s in SECS]
NANOS = 1_000_000_000


@pytest.fixture
def t(session):
    return session.import_table(pa.table({
        "Sym": SYM, "X": X, "W": W, "I": pa.array(INTS, pa.int64()),
        "Ts": pa.array(TS, pa.timestamp("ns", tz="UTC")),
    }))


def col(table, name):
    return table.to_arrow().column(name).to_pylist()


def per_group(values, keys, fn):
    """Apply fn (list -> list) to each group's values, keeping the original row order."""
    out = [None] * len(values)
    for k in dict.fromkeys(keys):
        pos = [i for i, kk in enumerate(keys) if kk == k]
        for i, v in zip(pos, fn([values[i] for i in pos])):
            out[i] = v
    return out


class approx:
    """Equality of result columns with float tolerance, for values that may be None, NaN or lists."""

    def __init__(self, expected):
        self.expected = expected

    @staticmethod
    def _same(a, b):
        if isinstance(b, list):
            return isinstance(a, list) and len(a) == len(b) and all(approx._same(x, y) for x, y in zip(a, b))
        if a is None or b is None:
            return a is None and b is None
        if isinstance(b, float) and math.isnan(b):
            return isinstance(a, float) and math.isnan(a)
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)

    def __eq__(self, got):
        return self._same(list(got), list(self.expected))

    def __repr__(self):
        return repr(self.expected)


# -- cumulative ------------------------------------------------------------------------------------


def test_cumulative(t):
    r = t.update_by([uby.cum_sum("CS = X"), uby.cum_prod(["CP = X"]), uby.cum_min("CMin = I"),
                     uby.cum_max("CMax = I")])
    assert col(r, "CS") == approx(list(np.cumsum(X)))
    assert col(r, "CP") == approx(list(np.cumprod(X)))
    assert col(r, "CMin") == list(np.minimum.accumulate(INTS))
    assert col(r, "CMax") == list(np.maximum.accumulate(INTS))


def test_cumulative_by_group_and_in_place(t):
    r = t.update_by(uby.cum_sum(["X", "SI = I"]), by="Sym")
    assert col(r, "X") == approx(per_group(X, SYM, lambda v: list(np.cumsum(v))))
    assert col(r, "SI") == per_group(INTS, SYM, lambda v: list(np.cumsum(v)))
    assert r.schema.names == ["Sym", "X", "W", "I", "Ts", "SI"]


def test_cum_count_where(t):
    r = t.update_by([uby.cum_count_where("Pos", "X > 2"), uby.cum_count_where("Both", ["X > 1", "I >= 3"])], by=["Sym"])
    assert col(r, "Pos") == per_group(X, SYM, lambda v: list(np.cumsum([x > 2 for x in v])))
    both = [x > 1 and i >= 3 for x, i in zip(X, INTS)]
    assert col(r, "Both") == per_group(both, SYM, lambda v: list(np.cumsum(v)))


def test_forward_fill(session):
    vals = [None, 1, None, None, 4, None]
    src = session.import_table(pa.table({"V": pa.array(vals, pa.int64())}))
    filled = col(src.update_by(uby.forward_fill("F = V")), "F")
    expected, last = [], None
    for v in vals:
        last = v if v is not None else last
        expected.append(last)
    assert filled == expected


def test_delta_controls(session):
    vals = [5, 7, None, 4, 10, None, None, 1]
    src = session.import_table(pa.table({"V": pa.array(vals, pa.int64())}))
    r = src.update_by([uby.delta("D = V"), uby.delta("DN = V", DeltaControl.NULL_DOMINATES),
                       uby.delta("DV = V", delta_control=DeltaControl.VALUE_DOMINATES),
                       uby.delta("DZ = V", DeltaControl.ZERO_DOMINATES)])

    def delta(after_null):
        """v - previous; a null row gives null; a row with no value before it (the first row, or
        one right after a null) gives null, the value itself, or zero, as the control says."""
        out, prev = [], None
        for v in vals:
            if v is None:
                out.append(None)
            elif prev is None:
                out.append({"null": None, "value": v, "zero": 0}[after_null])
            else:
                out.append(v - prev)
            prev = v
        return out

    assert col(r, "D") == col(r, "DN") == delta("null")
    assert col(r, "DV") == delta("value")
    assert col(r, "DZ") == delta("zero")


# -- exponential -----------------------------------------------------------------------------------


def em_reference(values, alphas, kind):
    """ems/emmin/emmax by their definitions; alphas[i] is the decay from row i-1 to row i."""
    out, state = [], None
    for x, a in zip(values, alphas):
        if state is None:
            state = x
        elif kind == "ems":
            state = a * state + x
        elif kind == "emmin":
            state = min(a * state, x)
        elif kind == "emmax":
            state = max(a * state, x)
        out.append(state)
    return out


def ema_and_std(values, alphas):
    """EMA and the exponential moving standard deviation: var_n = a*(var_{n-1} + (1-a)*(x_n - ema_{n-1})^2)."""
    ema, var, emas, stds = None, None, [], []
    for x, a in zip(values, alphas):
        if ema is None:
            ema, var = x, None
            stds.append(float("nan"))
        else:
            d = x - ema
            var = a * ((var or 0.0) + (1 - a) * d * d)
            ema = a * ema + (1 - a) * x
            stds.append(math.sqrt(var))
        emas.append(ema)
    return emas, stds


def tick_alphas(n, decay):
    return [math.exp(-1.0 / decay)] * n


def time_alphas(secs, decay_secs):
    return [math.exp(-(b - a) / decay_secs) if i else 1.0 for i, (a, b) in enumerate(zip([secs[0]] + secs, secs))]


def test_ema_ems_emmin_emmax_tick(t):
    r = t.update_by([uby.ema_tick(3, "Ema = X"), uby.ems_tick(2.5, "Ems = X"), uby.emmin_tick(2, "Min = X"),
                     uby.emmax_tick(4, ["Max = X"])])
    n = len(X)
    assert col(r, "Ema") == approx(ema_and_std(X, tick_alphas(n, 3))[0])
    assert col(r, "Ems") == approx(em_reference(X, tick_alphas(n, 2.5), "ems"))
    assert col(r, "Min") == approx(em_reference(X, tick_alphas(n, 2), "emmin"))
    assert col(r, "Max") == approx(em_reference(X, tick_alphas(n, 4), "emmax"))


def test_emstd_tick(t):
    r = t.update_by(uby.emstd_tick(3, "Std = X"))
    assert col(r, "Std") == approx(ema_and_std(X, tick_alphas(len(X), 3))[1])


def test_exponential_time(t):
    decay = 3  # seconds
    alphas = time_alphas(SECS, decay)
    r = t.update_by([uby.ema_time("Ts", decay * NANOS, "Ema = X"), uby.ems_time("Ts", "PT3s", "Ems = X"),
                     uby.emmin_time("Ts", dt.timedelta(seconds=3), "Min = X"),
                     uby.emmax_time("Ts", np.timedelta64(3, "s"), "Max = X"),
                     uby.emstd_time("Ts", "PT00:00:03", "Std = X")])
    emas, stds = ema_and_std(X, alphas)
    assert col(r, "Ema") == approx(emas)
    assert col(r, "Ems") == approx(em_reference(X, alphas, "ems"))
    assert col(r, "Min") == approx(em_reference(X, alphas, "emmin"))
    assert col(r, "Max") == approx(em_reference(X, alphas, "emmax"))
    assert col(r, "Std") == approx(stds)


def test_exponential_by_group(t):
    r = t.update_by(uby.ema_tick(2, "E = X"), by="Sym")
    assert col(r, "E") == approx(per_group(X, SYM, lambda v: ema_and_std(v, tick_alphas(len(v), 2))[0]))


def test_operation_control_on_null_and_nan(session):
    vals = [1.0, 3.0, None, 5.0, float("nan"), 2.0]
    src = session.import_table(pa.table({"V": pa.array(vals, pa.float64())}))
    a = math.exp(-1.0 / 2)
    r = src.update_by([
        uby.ema_tick(2, "Skip = V", OperationControl()),  # SKIP, SKIP by default
        uby.ema_tick(2, "Reset = V", op_control=OperationControl(on_null=BadDataBehavior.RESET,
                                                                 on_nan=BadDataBehavior.RESET)),
        uby.ema_tick(2, "Poison = V", OperationControl(on_nan=BadDataBehavior.POISON)),
    ])

    def run(on_null, on_nan):
        out, s = [], None
        for v in vals:
            if v is None:
                if on_null == "reset":
                    s = None
                out.append(s)
            elif math.isnan(v):
                if on_nan == "reset":
                    s = None
                elif on_nan == "poison":
                    s = float("nan")
                out.append(s)
            else:
                s = v if s is None else a * s + (1 - a) * v
                out.append(s)
        return out

    assert col(r, "Skip") == approx(run("skip", "skip"))
    assert col(r, "Reset") == approx(run("reset", "reset"))
    assert col(r, "Poison") == approx(run("skip", "poison"))
    with pytest.raises(DHError) as info:
        src.update_by(uby.ema_tick(2, "Throw = V", OperationControl(on_null=BadDataBehavior.THROW)))
    assert str(info.value).startswith("update_by(ops=[ema_tick(") and "on_null=THROW" in str(info.value)
    assert "failed: INVALID_ARGUMENT" in str(info.value)


def big_decimal(raw: bytes):
    """A BigDecimal as the server sends a result column of unbounded precision: a little-endian
    int32 scale, then the unscaled value as big-endian two's complement bytes."""
    import decimal

    scale = int.from_bytes(raw[:4], "little", signed=True)
    return decimal.Decimal(int.from_bytes(raw[4:], "big", signed=True)).scaleb(-scale)


def test_math_context(session):
    import decimal

    vals = [decimal.Decimal("1.0"), decimal.Decimal("2.0"), decimal.Decimal("7.0")]
    src = session.import_table(pa.table({"V": pa.array(vals, pa.decimal128(10, 1))}))
    for ctx, digits in ((MathContext.DECIMAL32, 7), (MathContext.DECIMAL64, 16), (MathContext.DECIMAL128, 34),
                        (MathContext.UNLIMITED, None)):
        r = src.update_by(uby.ema_tick(3, "E = V", OperationControl(big_value_context=ctx)))
        got = [big_decimal(b) for b in col(r, "E")]
        expected = ema_and_std([float(v) for v in vals], tick_alphas(3, 3))[0]
        assert [float(g) for g in got] == pytest.approx(expected, rel=1e-6)
        last = got[-1]
        if digits is not None:
            assert len(last.normalize().as_tuple().digits) <= digits, (ctx, last)
        else:  # exact: more digits than DECIMAL64 keeps
            assert len(last.normalize().as_tuple().digits) > 16, (ctx, last)


# -- rolling ---------------------------------------------------------------------------------------


def tick_window(n, i, rev, fwd):
    return range(max(0, i - rev + 1), min(n, i + fwd + 1))


def time_window(i, rev_s, fwd_s):
    return [j for j, s in enumerate(SECS) if SECS[i] - rev_s <= s <= SECS[i] + fwd_s]


def rolling(values, windows, fn):
    """fn over each window; an empty window gives null (a count gives 0, a group an empty array)."""
    empty = {len: 0, list: []}.get(fn)
    return [fn([values[j] for j in w]) if len(w) else empty for w in windows]


def sample_std(v):
    return float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")


REDUCERS = {
    "sum": sum, "avg": lambda v: float(np.mean(v)), "min": min, "max": max, "prod": lambda v: float(np.prod(v)),
    "std": sample_std, "count": len, "group": list,
}


@pytest.mark.parametrize("kind", sorted(REDUCERS))
def test_rolling_tick(t, kind):
    make = getattr(uby, f"rolling_{kind}_tick")
    r = t.update_by([make("Back = X", rev_ticks=3), make(["Both = X"], 2, 2),
                     make("Fwd = X", rev_ticks=0, fwd_ticks=2)])
    n = len(X)
    fn = REDUCERS[kind]
    for name, rev, fwd in (("Back", 3, 0), ("Both", 2, 2), ("Fwd", 0, 2)):
        expected = rolling(X, [tick_window(n, i, rev, fwd) for i in range(n)], fn)
        assert col(r, name) == approx(expected), (kind, name)


@pytest.mark.parametrize("kind", sorted(REDUCERS))
def test_rolling_time(t, kind):
    make = getattr(uby, f"rolling_{kind}_time")
    r = t.update_by([make("Ts", "Back = X", rev_time="PT2.5s"),
                     make("Ts", ["Both = X"], rev_time=int(1.5 * NANOS), fwd_time=int(2.5 * NANOS)),
                     make("Ts", "Fwd = X", rev_time=0, fwd_time=dt.timedelta(seconds=3.5))])
    fn = REDUCERS[kind]
    for name, rev, fwd in (("Back", 2.5, 0), ("Both", 1.5, 2.5), ("Fwd", 0, 3.5)):
        expected = rolling(X, [time_window(i, rev, fwd) for i in range(len(X))], fn)
        assert col(r, name) == approx(expected), (kind, name)


def test_rolling_by_group(t):
    r = t.update_by(uby.rolling_sum_tick("S = X", rev_ticks=2), by="Sym")
    assert col(r, "S") == approx(per_group(X, SYM, lambda v: rolling(
        v, [tick_window(len(v), i, 2, 0) for i in range(len(v))], sum)))


def test_rolling_count_skips_nulls(session):
    vals = [1, None, 3, None, None, 6]
    src = session.import_table(pa.table({"V": pa.array(vals, pa.int64())}))
    got = col(src.update_by(uby.rolling_count_tick("C = V", rev_ticks=3)), "C")
    assert got == [sum(1 for j in tick_window(6, i, 3, 0) if vals[j] is not None) for i in range(6)]


def test_rolling_wavg(t):
    n = len(X)

    def wavg(idx):
        return sum(X[j] * W[j] for j in idx) / sum(W[j] for j in idx)

    r = t.update_by([uby.rolling_wavg_tick("W", "WT = X", rev_ticks=3, fwd_ticks=1),
                     uby.rolling_wavg_time("Ts", "W", ["WTime = X"], rev_time="PT3s")])
    assert col(r, "WT") == approx([wavg(tick_window(n, i, 3, 1)) for i in range(n)])
    assert col(r, "WTime") == approx([wavg(time_window(i, 3, 0)) for i in range(n)])


def test_rolling_formula(t):
    n = len(X)
    r = t.update_by([
        uby.rolling_formula_tick("sum(x * x)", "x", "SumSq = X", 3),
        uby.rolling_formula_tick("Spread = max(X) - min(I)", None, None, rev_ticks=2, fwd_ticks=1),
        uby.rolling_formula_time("Ts", "count(x)", "x", ["N = X"], "PT4s"),
        uby.rolling_formula_time("Ts", "Mix = sum(X) + sum(I)", None, None, rev_time="PT2s", fwd_time="PT1s"),
    ])
    assert col(r, "SumSq") == approx([sum(X[j] ** 2 for j in tick_window(n, i, 3, 0)) for i in range(n)])
    assert col(r, "Spread") == approx([max(X[j] for j in w) - min(INTS[j] for j in w)
                                       for w in (tick_window(n, i, 2, 1) for i in range(n))])
    assert col(r, "N") == [len(time_window(i, 4, 0)) for i in range(n)]
    assert col(r, "Mix") == approx([sum(X[j] for j in w) + sum(INTS[j] for j in w)
                                    for w in (time_window(i, 2, 1) for i in range(n))])


def test_rolling_count_where(t):
    n = len(X)
    r = t.update_by([uby.rolling_count_where_tick("CT", "X > 2", rev_ticks=3, fwd_ticks=1),
                     uby.rolling_count_where_time("Ts", "CTime", ["X > 1", "I > 2"], rev_time="PT3s")])
    assert col(r, "CT") == [sum(1 for j in tick_window(n, i, 3, 1) if X[j] > 2) for i in range(n)]
    assert col(r, "CTime") == [sum(1 for j in time_window(i, 3, 0) if X[j] > 1 and INTS[j] > 2) for i in range(n)]


# -- errors ------------------------------------------------------------------------------------------


def test_updateby_argument_errors_before_any_round_trip(session, t):
    before = session.stats.total_calls
    cases = [
        (lambda: uby.cum_sum([]), "cols must not be empty"),
        (lambda: uby.cum_sum(None), "cols must not be empty"),
        (lambda: uby.ema_tick("3", "X"), "decay_ticks must be a number"),
        (lambda: uby.ema_time("Ts", 1.5, "X"), "decay_time must be nanoseconds"),
        (lambda: uby.ema_time("Ts", "", "X"), "must not be an empty string"),
        (lambda: uby.ema_tick(3, "X", op_control="skip"), "op_control must be an OperationControl"),
        (lambda: OperationControl(on_null="skip"), "on_null must be a BadDataBehavior"),
        (lambda: uby.delta("X", delta_control="null"), "delta_control must be a DeltaControl"),
        (lambda: uby.rolling_sum_tick("X", rev_ticks=2.5), "rev_ticks must be an int"),
        (lambda: uby.rolling_avg_time("", "X", "PT1s"), "ts_col must not be empty"),
        (lambda: uby.rolling_formula_tick("sum(x)", None, "X", 3), "formula_param"),
        (lambda: uby.cum_count_where("C", []), "filters must not be empty"),
        (lambda: t.update_by(["cum_sum"]), "UpdateByOperations"),
    ]
    for fn, expected in cases:
        with pytest.raises(DHError) as info:
            fn()
        assert expected in str(info.value), (expected, str(info.value))
    assert session.stats.total_calls == before


def test_server_error_names_update_by_and_ops(t):
    with pytest.raises(DHError) as info:
        t.update_by(uby.rolling_sum_time("NoTs", "S = X", "PT1s"))
    msg = str(info.value)
    assert msg.startswith("update_by(") and "rolling_sum_time(ts_col='NoTs'" in msg and "NoTs" in msg
