"""Operations for ``Table.update_by``: cumulative, delta, forward-fill, exponential and rolling
window calculations, each adding a column per input column, optionally per group (``by``).

``cols`` name the columns, each either a name (``"Price"``, the result replaces the column) or a
rename (``"CumQty = Qty"``, a new column). Windows are given in ticks (rows) or in time: a time is
an int of nanoseconds or a duration string such as ``"PT10s"`` or ``"PT00:00:10"``
(``datetime.timedelta`` and numpy/pandas timedeltas are taken too).

Rolling windows: ``rev_ticks`` counts the current row (``rev_ticks=3`` means this row and the two
before it), ``fwd_ticks`` the rows after it; ``rev_time``/``fwd_time`` reach back/forward from the
current row's timestamp.

    from pydeephaven import updateby as uby
    t.update_by([uby.cum_sum("CumQty = Qty"), uby.rolling_avg_tick("Avg3 = Price", rev_ticks=3)], by="Sym")
"""

from __future__ import annotations

import datetime as _dt
from enum import Enum
from typing import Any, Optional, Union

from pydeephaven._proto import table_pb2
from pydeephaven._utils import check_int, check_number, check_str, str_tuple
from pydeephaven.dherror import DHError

__all__ = [
    "UpdateByOperation", "MathContext", "BadDataBehavior", "DeltaControl", "OperationControl",
    "cum_sum", "cum_prod", "cum_min", "cum_max", "cum_count_where", "forward_fill", "delta",
    "ema_tick", "ema_time", "ems_tick", "ems_time", "emmin_tick", "emmin_time", "emmax_tick", "emmax_time",
    "emstd_tick", "emstd_time",
    "rolling_sum_tick", "rolling_sum_time", "rolling_group_tick", "rolling_group_time", "rolling_avg_tick",
    "rolling_avg_time", "rolling_min_tick", "rolling_min_time", "rolling_max_tick", "rolling_max_time",
    "rolling_prod_tick", "rolling_prod_time", "rolling_count_tick", "rolling_count_time", "rolling_std_tick",
    "rolling_std_time", "rolling_wavg_tick", "rolling_wavg_time", "rolling_formula_tick", "rolling_formula_time",
    "rolling_count_where_tick", "rolling_count_where_time",
]

_Req = table_pb2.UpdateByRequest
_Op = _Req.UpdateByOperation
_Col = _Op.UpdateByColumn
_Spec = _Col.UpdateBySpec
_Scale = table_pb2.UpdateByWindowScale
_Rounding = table_pb2.MathContext.RoundingMode


class MathContext(Enum):
    """Precision and rounding of the big-number (BigInteger/BigDecimal) results."""

    UNLIMITED = (0, _Rounding.HALF_UP)
    """Unlimited precision, rounding half up."""
    DECIMAL32 = (7, _Rounding.HALF_EVEN)
    """7 digits (IEEE 754 decimal32), rounding half even."""
    DECIMAL64 = (16, _Rounding.HALF_EVEN)
    """16 digits (IEEE 754 decimal64), rounding half even."""
    DECIMAL128 = (34, _Rounding.HALF_EVEN)
    """34 digits (IEEE 754 decimal128), rounding half even."""

    def _pb(self) -> table_pb2.MathContext:
        return table_pb2.MathContext(precision=self.value[0], rounding_mode=self.value[1])


class BadDataBehavior(Enum):
    """What an exponential operation does on a null or NaN input."""

    RESET = table_pb2.RESET
    """Start over: the state is cleared and the output is null."""
    SKIP = table_pb2.SKIP
    """Ignore the value: the output repeats the previous one."""
    THROW = table_pb2.THROW
    """Fail the operation."""
    POISON = table_pb2.POISON
    """The output becomes NaN from then on."""


class DeltaControl(Enum):
    """How ``delta`` treats nulls."""

    NULL_DOMINATES = table_pb2.NULL_DOMINATES
    """A null before or at the row gives null."""
    VALUE_DOMINATES = table_pb2.VALUE_DOMINATES
    """After a null the current value itself is the result."""
    ZERO_DOMINATES = table_pb2.ZERO_DOMINATES
    """After a null the result is zero."""


class OperationControl:
    """Options of the exponential operations: what to do on null and NaN inputs, and the math
    context of big-number results."""

    def __init__(self, on_null: BadDataBehavior = BadDataBehavior.SKIP, on_nan: BadDataBehavior = BadDataBehavior.SKIP,
                 big_value_context: MathContext = MathContext.DECIMAL128) -> None:
        for name, value, kind in (("on_null", on_null, BadDataBehavior), ("on_nan", on_nan, BadDataBehavior),
                                  ("big_value_context", big_value_context, MathContext)):
            if not isinstance(value, kind):
                raise DHError(f"OperationControl: {name} must be a {kind.__name__}, got {value!r}")
        self.on_null = on_null
        self.on_nan = on_nan
        self.big_value_context = big_value_context

    def make_grpc_message(self) -> table_pb2.UpdateByEmOptions:
        return table_pb2.UpdateByEmOptions(on_null_value=self.on_null.value, on_nan_value=self.on_nan.value,
                                           big_value_context=self.big_value_context._pb())

    def __repr__(self) -> str:
        return (f"OperationControl(on_null={self.on_null.name}, on_nan={self.on_nan.name}, "
                f"big_value_context={self.big_value_context.name})")


class UpdateByOperation:
    """One update_by operation. Made by the functions of this module, not directly."""

    __slots__ = ("_desc", "_spec", "_cols")

    def __init__(self, ub_column: Any = None, *, desc: str = "", spec: Any = None, cols: tuple[str, ...] = ()) -> None:
        if ub_column is not None:  # the official client's form: a protobuf UpdateByColumn
            spec, cols = ub_column.spec, tuple(ub_column.match_pairs)
            desc = desc or f"UpdateByOperation({spec.WhichOneof('type')}, cols={list(cols)})"
        self._desc = desc
        self._spec = spec
        self._cols = cols

    @property
    def ub_column(self) -> Any:
        """The operation as a protobuf UpdateByColumn (the official client's attribute)."""
        return _Col(spec=self._spec, match_pairs=list(self._cols))

    @property
    def cols(self) -> tuple[str, ...]:
        return self._cols

    def make_grpc_message(self) -> Any:
        """The operation as the protobuf message of an ``UpdateBy`` request."""
        return _Op(column=_Col(spec=self._spec, match_pairs=list(self._cols)))

    def __repr__(self) -> str:
        return self._desc


# -- helpers --------------------------------------------------------------------------------------


def _desc(func: str, **kwargs: Any) -> str:
    return f"{func}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def _cols(func: str, cols: Any) -> tuple[str, ...]:
    return str_tuple(f"updateby.{func}", "cols", cols, required=True)


def _ticks(func: str, param: str, value: Any) -> Any:
    n = check_int(f"updateby.{func}", param, value)
    return _Scale(ticks=_Scale.UpdateByWindowTicks(ticks=float(n)))


def _decay_ticks(func: str, value: Any) -> Any:
    # any number: the server takes 0 and negative decays too (it does not refuse them)
    n = check_number(f"updateby.{func}", "decay_ticks", value)
    return _Scale(ticks=_Scale.UpdateByWindowTicks(ticks=n))


def _nanos(value: Any) -> Optional[int]:
    """A timedelta-like value in nanoseconds, None when ``value`` is not one."""
    if isinstance(value, _dt.timedelta):
        return (value.days * 86400 + value.seconds) * 1_000_000_000 + value.microseconds * 1000
    mod = type(value).__module__.split(".")[0]
    if mod == "numpy" and type(value).__name__ == "timedelta64":
        import numpy as np

        return int(value.astype("timedelta64[ns]").astype(np.int64))
    if mod == "pandas" and type(value).__name__ == "Timedelta":
        return int(value.value)
    return None


def _time(func: str, param: str, ts_col: str, value: Any) -> Any:
    w = _Scale.UpdateByWindowTime(column=ts_col)
    if isinstance(value, str):
        if not value.strip():
            raise DHError(f"updateby.{func}: {param} must not be an empty string")
        w.duration_string = value
    elif isinstance(value, int) and not isinstance(value, bool):
        w.nanos = check_int(f"updateby.{func}", param, value)
    else:
        n = _nanos(value)
        if n is None:
            try:
                n = check_int(f"updateby.{func}", param, value)
            except DHError:
                raise DHError(f"updateby.{func}: {param} must be nanoseconds (int) or a duration string "
                              f"such as 'PT10s', got {type(value).__name__}: {value!r}") from None
        w.nanos = check_int(f"updateby.{func}", param, n)
    return _Scale(time=w)


def _op(desc: str, field: str, sub: Any, cols: tuple[str, ...]) -> UpdateByOperation:
    return UpdateByOperation(desc=desc, spec=_Spec(**{field: sub}), cols=cols)


def _em_options(func: str, op_control: Optional[OperationControl]) -> Optional[table_pb2.UpdateByEmOptions]:
    if op_control is None:
        return None
    if not isinstance(op_control, OperationControl):
        raise DHError(f"updateby.{func}: op_control must be an OperationControl, got {op_control!r}")
    return op_control.make_grpc_message()


# -- cumulative, delta, fill ----------------------------------------------------------------------


def cum_sum(cols: Union[str, list[str]]) -> UpdateByOperation:
    """Running sum of each column."""
    c = _cols("cum_sum", cols)
    return _op(_desc("cum_sum", cols=list(c)), "sum", _Spec.UpdateByCumulativeSum(), c)


def cum_prod(cols: Union[str, list[str]]) -> UpdateByOperation:
    """Running product of each column."""
    c = _cols("cum_prod", cols)
    return _op(_desc("cum_prod", cols=list(c)), "product", _Spec.UpdateByCumulativeProduct(), c)


def cum_min(cols: Union[str, list[str]]) -> UpdateByOperation:
    """Running minimum of each column."""
    c = _cols("cum_min", cols)
    return _op(_desc("cum_min", cols=list(c)), "min", _Spec.UpdateByCumulativeMin(), c)


def cum_max(cols: Union[str, list[str]]) -> UpdateByOperation:
    """Running maximum of each column."""
    c = _cols("cum_max", cols)
    return _op(_desc("cum_max", cols=list(c)), "max", _Spec.UpdateByCumulativeMax(), c)


def cum_count_where(col: str, filters: Union[str, list[str]]) -> UpdateByOperation:
    """Running count of the rows that pass all ``filters`` (formula strings), in a new column ``col``."""
    c = check_str("updateby.cum_count_where", "col", col)
    f = str_tuple("updateby.cum_count_where", "filters", filters, required=True)
    sub = _Spec.UpdateByCumulativeCountWhere(result_column=c, filters=list(f))
    return _op(_desc("cum_count_where", col=c, filters=list(f)), "count_where", sub, ())


def forward_fill(cols: Union[str, list[str]]) -> UpdateByOperation:
    """Each null replaced by the last non-null value before it."""
    c = _cols("forward_fill", cols)
    return _op(_desc("forward_fill", cols=list(c)), "fill", _Spec.UpdateByFill(), c)


def delta(cols: Union[str, list[str]], delta_control: DeltaControl = DeltaControl.NULL_DOMINATES) -> UpdateByOperation:
    """Difference between each value and the one before it (the first row gives null)."""
    c = _cols("delta", cols)
    if not isinstance(delta_control, DeltaControl):
        raise DHError(f"updateby.delta: delta_control must be a DeltaControl, got {delta_control!r}")
    sub = _Spec.UpdateByDelta(options=table_pb2.UpdateByDeltaOptions(null_behavior=delta_control.value))
    return _op(_desc("delta", cols=list(c), delta_control=delta_control.name), "delta", sub, c)


# -- exponential ----------------------------------------------------------------------------------

_EM_FIELDS = {"ema": ("ema", "UpdateByEma"), "ems": ("ems", "UpdateByEms"), "emmin": ("em_min", "UpdateByEmMin"),
              "emmax": ("em_max", "UpdateByEmMax"), "emstd": ("em_std", "UpdateByEmStd")}


def _em_tick(kind: str, decay_ticks: Any, cols: Any, op_control: Optional[OperationControl]) -> UpdateByOperation:
    func = f"{kind}_tick"
    c = _cols(func, cols)
    field, cls_name = _EM_FIELDS[kind]
    sub = getattr(_Spec, cls_name)(options=_em_options(func, op_control), window_scale=_decay_ticks(func, decay_ticks))
    return _op(_desc(func, decay_ticks=decay_ticks, cols=list(c), op_control=op_control), field, sub, c)


def _em_time(kind: str, ts_col: str, decay_time: Any, cols: Any,
             op_control: Optional[OperationControl]) -> UpdateByOperation:
    func = f"{kind}_time"
    ts = check_str(f"updateby.{func}", "ts_col", ts_col)
    c = _cols(func, cols)
    field, cls_name = _EM_FIELDS[kind]
    sub = getattr(_Spec, cls_name)(options=_em_options(func, op_control),
                                   window_scale=_time(func, "decay_time", ts, decay_time))
    return _op(_desc(func, ts_col=ts, decay_time=decay_time, cols=list(c), op_control=op_control), field, sub, c)


def ema_tick(decay_ticks: float, cols: Union[str, list[str]],
             op_control: Optional[OperationControl] = None) -> UpdateByOperation:
    """Exponential moving average with a decay of ``decay_ticks`` rows:
    ``a = exp(-1/decay_ticks)``, ``ema = a*ema_prev + (1-a)*value``."""
    return _em_tick("ema", decay_ticks, cols, op_control)


def ema_time(ts_col: str, decay_time: Union[int, str], cols: Union[str, list[str]],
             op_control: Optional[OperationControl] = None) -> UpdateByOperation:
    """Exponential moving average decaying with time: ``a = exp(-dt/decay_time)``."""
    return _em_time("ema", ts_col, decay_time, cols, op_control)


def ems_tick(decay_ticks: float, cols: Union[str, list[str]],
             op_control: Optional[OperationControl] = None) -> UpdateByOperation:
    """Exponential moving sum: ``ems = a*ems_prev + value``, ``a = exp(-1/decay_ticks)``."""
    return _em_tick("ems", decay_ticks, cols, op_control)


def ems_time(ts_col: str, decay_time: Union[int, str], cols: Union[str, list[str]],
             op_control: Optional[OperationControl] = None) -> UpdateByOperation:
    """Exponential moving sum decaying with time."""
    return _em_time("ems", ts_col, decay_time, cols, op_control)


def emmin_tick(decay_ticks: float, cols: Union[str, list[str]],
               op_control: Optional[OperationControl] = None) -> UpdateByOperation:
    """Exponential moving minimum: ``min(a*prev, value)``."""
    return _em_tick("emmin", decay_ticks, cols, op_control)


def emmin_time(ts_col: str, decay_time: Union[int, str], cols: Union[str, list[str]],
               op_control: Optional[OperationControl] = None) -> UpdateByOperation:
    """Exponential moving minimum decaying with time."""
    return _em_time("emmin", ts_col, decay_time, cols, op_control)


def emmax_tick(decay_ticks: float, cols: Union[str, list[str]],
               op_control: Optional[OperationControl] = None) -> UpdateByOperation:
    """Exponential moving maximum: ``max(a*prev, value)``."""
    return _em_tick("emmax", decay_ticks, cols, op_control)


def emmax_time(ts_col: str, decay_time: Union[int, str], cols: Union[str, list[str]],
               op_control: Optional[OperationControl] = None) -> UpdateByOperation:
    """Exponential moving maximum decaying with time."""
    return _em_time("emmax", ts_col, decay_time, cols, op_control)


def emstd_tick(decay_ticks: float, cols: Union[str, list[str]],
               op_control: Optional[OperationControl] = None) -> UpdateByOperation:
    """Exponential moving standard deviation."""
    return _em_tick("emstd", decay_ticks, cols, op_control)


def emstd_time(ts_col: str, decay_time: Union[int, str], cols: Union[str, list[str]],
               op_control: Optional[OperationControl] = None) -> UpdateByOperation:
    """Exponential moving standard deviation decaying with time."""
    return _em_time("emstd", ts_col, decay_time, cols, op_control)


# -- rolling --------------------------------------------------------------------------------------

_ROLLING = {"sum": ("rolling_sum", "UpdateByRollingSum"), "group": ("rolling_group", "UpdateByRollingGroup"),
            "avg": ("rolling_avg", "UpdateByRollingAvg"), "min": ("rolling_min", "UpdateByRollingMin"),
            "max": ("rolling_max", "UpdateByRollingMax"), "prod": ("rolling_product", "UpdateByRollingProduct"),
            "count": ("rolling_count", "UpdateByRollingCount"), "std": ("rolling_std", "UpdateByRollingStd"),
            "wavg": ("rolling_wavg", "UpdateByRollingWAvg"), "formula": ("rolling_formula", "UpdateByRollingFormula"),
            "count_where": ("rolling_count_where", "UpdateByRollingCountWhere")}


def _rolling_tick(kind: str, cols: Any, rev_ticks: Any, fwd_ticks: Any, shown: dict[str, Any],
                  **extra: Any) -> UpdateByOperation:
    func = f"rolling_{kind}_tick"
    c = () if kind == "count_where" else _cols(func, cols)
    rev = _ticks(func, "rev_ticks", rev_ticks)
    fwd = _ticks(func, "fwd_ticks", fwd_ticks)
    field, cls_name = _ROLLING[kind]
    sub = getattr(_Spec, cls_name)(reverse_window_scale=rev, forward_window_scale=fwd, **extra)
    desc = _desc(func, **shown, **({} if kind == "count_where" else {"cols": list(c)}),
                 rev_ticks=rev_ticks, fwd_ticks=fwd_ticks)
    return _op(desc, field, sub, c)


def _rolling_time(kind: str, ts_col: str, cols: Any, rev_time: Any, fwd_time: Any, shown: dict[str, Any],
                  **extra: Any) -> UpdateByOperation:
    func = f"rolling_{kind}_time"
    ts = check_str(f"updateby.{func}", "ts_col", ts_col)
    c = () if kind == "count_where" else _cols(func, cols)
    rev = _time(func, "rev_time", ts, rev_time)
    fwd = _time(func, "fwd_time", ts, fwd_time)
    field, cls_name = _ROLLING[kind]
    sub = getattr(_Spec, cls_name)(reverse_window_scale=rev, forward_window_scale=fwd, **extra)
    desc = _desc(func, ts_col=ts, **shown, **({} if kind == "count_where" else {"cols": list(c)}),
                 rev_time=rev_time, fwd_time=fwd_time)
    return _op(desc, field, sub, c)


def rolling_sum_tick(cols: Union[str, list[str]], rev_ticks: int, fwd_ticks: int = 0) -> UpdateByOperation:
    """Sum over a window of rows."""
    return _rolling_tick("sum", cols, rev_ticks, fwd_ticks, {})


def rolling_sum_time(ts_col: str, cols: Union[str, list[str]], rev_time: Union[int, str],
                     fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """Sum over a window of time."""
    return _rolling_time("sum", ts_col, cols, rev_time, fwd_time, {})


def rolling_group_tick(cols: Union[str, list[str]], rev_ticks: int, fwd_ticks: int = 0) -> UpdateByOperation:
    """The values in a window of rows, as an array."""
    return _rolling_tick("group", cols, rev_ticks, fwd_ticks, {})


def rolling_group_time(ts_col: str, cols: Union[str, list[str]], rev_time: Union[int, str],
                       fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """The values in a window of time, as an array."""
    return _rolling_time("group", ts_col, cols, rev_time, fwd_time, {})


def rolling_avg_tick(cols: Union[str, list[str]], rev_ticks: int, fwd_ticks: int = 0) -> UpdateByOperation:
    """Mean over a window of rows."""
    return _rolling_tick("avg", cols, rev_ticks, fwd_ticks, {})


def rolling_avg_time(ts_col: str, cols: Union[str, list[str]], rev_time: Union[int, str],
                     fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """Mean over a window of time."""
    return _rolling_time("avg", ts_col, cols, rev_time, fwd_time, {})


def rolling_min_tick(cols: Union[str, list[str]], rev_ticks: int, fwd_ticks: int = 0) -> UpdateByOperation:
    """Minimum over a window of rows."""
    return _rolling_tick("min", cols, rev_ticks, fwd_ticks, {})


def rolling_min_time(ts_col: str, cols: Union[str, list[str]], rev_time: Union[int, str],
                     fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """Minimum over a window of time."""
    return _rolling_time("min", ts_col, cols, rev_time, fwd_time, {})


def rolling_max_tick(cols: Union[str, list[str]], rev_ticks: int, fwd_ticks: int = 0) -> UpdateByOperation:
    """Maximum over a window of rows."""
    return _rolling_tick("max", cols, rev_ticks, fwd_ticks, {})


def rolling_max_time(ts_col: str, cols: Union[str, list[str]], rev_time: Union[int, str],
                     fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """Maximum over a window of time."""
    return _rolling_time("max", ts_col, cols, rev_time, fwd_time, {})


def rolling_prod_tick(cols: Union[str, list[str]], rev_ticks: int, fwd_ticks: int = 0) -> UpdateByOperation:
    """Product over a window of rows."""
    return _rolling_tick("prod", cols, rev_ticks, fwd_ticks, {})


def rolling_prod_time(ts_col: str, cols: Union[str, list[str]], rev_time: Union[int, str],
                      fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """Product over a window of time."""
    return _rolling_time("prod", ts_col, cols, rev_time, fwd_time, {})


def rolling_count_tick(cols: Union[str, list[str]], rev_ticks: int, fwd_ticks: int = 0) -> UpdateByOperation:
    """Number of non-null values in a window of rows."""
    return _rolling_tick("count", cols, rev_ticks, fwd_ticks, {})


def rolling_count_time(ts_col: str, cols: Union[str, list[str]], rev_time: Union[int, str],
                       fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """Number of non-null values in a window of time."""
    return _rolling_time("count", ts_col, cols, rev_time, fwd_time, {})


def rolling_std_tick(cols: Union[str, list[str]], rev_ticks: int, fwd_ticks: int = 0) -> UpdateByOperation:
    """Sample standard deviation over a window of rows."""
    return _rolling_tick("std", cols, rev_ticks, fwd_ticks, {})


def rolling_std_time(ts_col: str, cols: Union[str, list[str]], rev_time: Union[int, str],
                     fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """Sample standard deviation over a window of time."""
    return _rolling_time("std", ts_col, cols, rev_time, fwd_time, {})


def rolling_wavg_tick(wcol: str, cols: Union[str, list[str]], rev_ticks: int, fwd_ticks: int = 0) -> UpdateByOperation:
    """Mean weighted by ``wcol`` over a window of rows."""
    w = check_str("updateby.rolling_wavg_tick", "wcol", wcol)
    return _rolling_tick("wavg", cols, rev_ticks, fwd_ticks, {"wcol": w}, weight_column=w)


def rolling_wavg_time(ts_col: str, wcol: str, cols: Union[str, list[str]], rev_time: Union[int, str],
                      fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """Mean weighted by ``wcol`` over a window of time."""
    w = check_str("updateby.rolling_wavg_time", "wcol", wcol)
    return _rolling_time("wavg", ts_col, cols, rev_time, fwd_time, {"wcol": w}, weight_column=w)


def _formula_args(func: str, formula: Any, formula_param: Any, cols: Any) -> tuple[str, str, Any]:
    f = check_str(f"updateby.{func}", "formula", formula)
    if formula_param is None:
        if cols:
            raise DHError(f"updateby.{func}: cols need formula_param (the name standing for each column)")
        return f, "", None
    return f, check_str(f"updateby.{func}", "formula_param", formula_param), cols


def rolling_formula_tick(formula: str, formula_param: Optional[str], cols: Optional[Union[str, list[str]]],
                         rev_ticks: int, fwd_ticks: int = 0) -> UpdateByOperation:
    """A user formula over a window of rows.

    With ``formula_param``, ``formula`` is applied to each column of ``cols`` (as an array) with
    ``formula_param`` standing for it, e.g. ``rolling_formula_tick("sum(x*x)", "x", "SumSq = Val", 3)``.
    With ``formula_param`` and ``cols`` None, ``formula`` is a full assignment over the windows of
    any columns, e.g. ``"Out = sum(A) - sum(B)"``.
    """
    f, p, c = _formula_args("rolling_formula_tick", formula, formula_param, cols)
    if c is None:
        rev = _ticks("rolling_formula_tick", "rev_ticks", rev_ticks)
        fwd = _ticks("rolling_formula_tick", "fwd_ticks", fwd_ticks)
        sub = _Spec.UpdateByRollingFormula(reverse_window_scale=rev, forward_window_scale=fwd, formula=f)
        return _op(_desc("rolling_formula_tick", formula=f, rev_ticks=rev_ticks, fwd_ticks=fwd_ticks),
                   "rolling_formula", sub, ())
    return _rolling_tick("formula", c, rev_ticks, fwd_ticks, {"formula": f, "formula_param": p},
                         formula=f, param_token=p)


def rolling_formula_time(ts_col: str, formula: str, formula_param: Optional[str],
                         cols: Optional[Union[str, list[str]]], rev_time: Union[int, str],
                         fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """A user formula over a window of time (see ``rolling_formula_tick``)."""
    f, p, c = _formula_args("rolling_formula_time", formula, formula_param, cols)
    if c is None:
        ts = check_str("updateby.rolling_formula_time", "ts_col", ts_col)
        rev = _time("rolling_formula_time", "rev_time", ts, rev_time)
        fwd = _time("rolling_formula_time", "fwd_time", ts, fwd_time)
        sub = _Spec.UpdateByRollingFormula(reverse_window_scale=rev, forward_window_scale=fwd, formula=f)
        return _op(_desc("rolling_formula_time", ts_col=ts, formula=f, rev_time=rev_time, fwd_time=fwd_time),
                   "rolling_formula", sub, ())
    return _rolling_time("formula", ts_col, c, rev_time, fwd_time, {"formula": f, "formula_param": p},
                         formula=f, param_token=p)


def rolling_count_where_tick(col: str, filters: Union[str, list[str]], rev_ticks: int,
                             fwd_ticks: int = 0) -> UpdateByOperation:
    """Number of rows passing all ``filters`` in a window of rows, in a new column ``col``."""
    c = check_str("updateby.rolling_count_where_tick", "col", col)
    f = str_tuple("updateby.rolling_count_where_tick", "filters", filters, required=True)
    return _rolling_tick("count_where", None, rev_ticks, fwd_ticks, {"col": c, "filters": list(f)},
                         result_column=c, filters=list(f))


def rolling_count_where_time(ts_col: str, col: str, filters: Union[str, list[str]], rev_time: Union[int, str],
                             fwd_time: Union[int, str] = 0) -> UpdateByOperation:
    """Number of rows passing all ``filters`` in a window of time, in a new column ``col``."""
    c = check_str("updateby.rolling_count_where_time", "col", col)
    f = str_tuple("updateby.rolling_count_where_time", "filters", filters, required=True)
    return _rolling_time("count_where", ts_col, None, rev_time, fwd_time, {"col": c, "filters": list(f)},
                         result_column=c, filters=list(f))
