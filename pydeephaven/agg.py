"""Aggregations for ``Table.agg_by`` and ``Table.agg_all_by``.

Each function returns an :class:`Aggregation`, an immutable description that renders itself as the
protobuf message the server takes. Most take ``cols``: the columns to aggregate, each either a name
(``"Price"``) or a rename (``"AvgPrice = Price"``); ``cols`` may be left out only in ``agg_all_by``,
which applies the aggregation to every non-key column.

    from pydeephaven import agg
    t.agg_by([agg.sum_("Total = Qty"), agg.avg("Price"), agg.count_("N")], by="Sym")
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, Union

from pydeephaven._proto import table_pb2
from pydeephaven._utils import ArgTypeError, check_bool, check_number, check_str, str_tuple
from pydeephaven.dherror import DHError

__all__ = [
    "Aggregation", "abs_sum", "avg", "count_", "count_distinct", "count_where", "distinct", "first", "formula",
    "group", "last", "max_", "median", "min_", "partition", "pct", "sorted_first", "sorted_last", "std", "sum_",
    "unique", "var", "weighted_avg", "weighted_sum",
]

_Spec = table_pb2.AggSpec
_Agg = table_pb2.Aggregation


class Aggregation(ABC):
    """One aggregation. Made by the functions of this module, not directly."""

    __slots__ = ("_desc",)

    def __init__(self, desc: str) -> None:
        self._desc = desc

    @abstractmethod
    def make_grpc_message(self) -> table_pb2.Aggregation:
        """The aggregation as the protobuf message of an ``Aggregate`` request."""

    @property
    def agg_spec(self) -> Optional[table_pb2.AggSpec]:
        """The per-column spec for ``agg_all_by``; None for aggregations that are not column-wise
        (``count_``, ``count_where``, ``partition``, ``formula`` without a parameter)."""
        return None

    @property
    def cols(self) -> tuple[str, ...]:
        """The columns (or renames) the aggregation applies to; empty when it applies to all."""
        return ()

    @property
    def needs_cols(self) -> bool:
        """Whether ``agg_by`` needs ``cols`` to be given."""
        return False

    def __repr__(self) -> str:
        return self._desc

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, name):
            raise AttributeError(f"{type(self).__name__} is immutable")
        object.__setattr__(self, name, value)


class _ColumnsAggregation(Aggregation):
    """An aggregation given by a spec applied to each of ``cols``."""

    __slots__ = ("_spec", "_cols")

    def __init__(self, desc: str, spec: table_pb2.AggSpec, cols: tuple[str, ...]) -> None:
        super().__init__(desc)
        self._spec = spec
        self._cols = cols

    @property
    def agg_spec(self) -> table_pb2.AggSpec:
        out = _Spec()
        out.CopyFrom(self._spec)
        return out

    @property
    def cols(self) -> tuple[str, ...]:
        return self._cols

    @property
    def needs_cols(self) -> bool:
        return True

    def make_grpc_message(self) -> table_pb2.Aggregation:
        return _Agg(columns=_Agg.AggregationColumns(spec=self._spec, match_pairs=list(self._cols)))


class _MessageAggregation(Aggregation):
    """An aggregation that is a ready message (count, count_where, partition, formula)."""

    __slots__ = ("_msg",)

    def __init__(self, desc: str, msg: table_pb2.Aggregation) -> None:
        super().__init__(desc)
        self._msg = msg

    def make_grpc_message(self) -> table_pb2.Aggregation:
        out = _Agg()
        out.CopyFrom(self._msg)
        return out


def _desc(func: str, **kwargs: Any) -> str:
    return f"{func}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"


def _columns(func: str, field: str, cols: Any, sub: Any = None, **shown: Any) -> Aggregation:
    cols_t = str_tuple(f"agg.{func}", "cols", cols)
    spec_cls = _SPEC_TYPES[field]
    one_of: dict[str, Any] = {field: sub if sub is not None else spec_cls()}  # the field is named at run time
    spec = _Spec(**one_of)
    return _ColumnsAggregation(_desc(func, cols=list(cols_t), **shown), spec, cols_t)


_SPEC_TYPES = {
    "abs_sum": _Spec.AggSpecAbsSum, "avg": _Spec.AggSpecAvg, "count_distinct": _Spec.AggSpecCountDistinct,
    "distinct": _Spec.AggSpecDistinct, "first": _Spec.AggSpecFirst, "formula": _Spec.AggSpecFormula,
    "group": _Spec.AggSpecGroup, "last": _Spec.AggSpecLast, "max": _Spec.AggSpecMax,
    "median": _Spec.AggSpecMedian, "min": _Spec.AggSpecMin, "percentile": _Spec.AggSpecPercentile,
    "sorted_first": _Spec.AggSpecSorted, "sorted_last": _Spec.AggSpecSorted, "std": _Spec.AggSpecStd,
    "sum": _Spec.AggSpecSum, "unique": _Spec.AggSpecUnique, "weighted_avg": _Spec.AggSpecWeighted,
    "weighted_sum": _Spec.AggSpecWeighted, "var": _Spec.AggSpecVar,
}

ColsArg = Optional[Union[str, list[str]]]


def sum_(cols: ColsArg = None) -> Aggregation:
    """Sum of each column."""
    return _columns("sum_", "sum", cols)


def abs_sum(cols: ColsArg = None) -> Aggregation:
    """Sum of the absolute values of each column."""
    return _columns("abs_sum", "abs_sum", cols)


def group(cols: ColsArg = None) -> Aggregation:
    """The values of each column in a group, as an array per group."""
    return _columns("group", "group", cols)


def avg(cols: ColsArg = None) -> Aggregation:
    """Mean of each column."""
    return _columns("avg", "avg", cols)


def first(cols: ColsArg = None) -> Aggregation:
    """First value of each column in a group."""
    return _columns("first", "first", cols)


def last(cols: ColsArg = None) -> Aggregation:
    """Last value of each column in a group."""
    return _columns("last", "last", cols)


def min_(cols: ColsArg = None) -> Aggregation:
    """Minimum of each column."""
    return _columns("min_", "min", cols)


def max_(cols: ColsArg = None) -> Aggregation:
    """Maximum of each column."""
    return _columns("max_", "max", cols)


def std(cols: ColsArg = None) -> Aggregation:
    """Sample standard deviation of each column."""
    return _columns("std", "std", cols)


def var(cols: ColsArg = None) -> Aggregation:
    """Sample variance of each column."""
    return _columns("var", "var", cols)


def median(cols: ColsArg = None, average_evenly_divided: bool = True) -> Aggregation:
    """Median of each column; with an even count, the mean of the two middle values when
    ``average_evenly_divided`` (numeric columns), else the upper one."""
    flag = check_bool("agg.median", "average_evenly_divided", average_evenly_divided)
    return _columns("median", "median", cols, _Spec.AggSpecMedian(average_evenly_divided=flag),
                    average_evenly_divided=flag)


def pct(percentile: float, cols: ColsArg = None, average_evenly_divided: bool = False) -> Aggregation:
    """The ``percentile`` (0.0 to 1.0) of each column: the sorted value at rank
    ``percentile * (n - 1)``, halves rounded up."""
    p = check_number("agg.pct", "percentile", percentile)
    if not 0.0 <= p <= 1.0:
        raise DHError(f"agg.pct: percentile must be between 0.0 and 1.0, got {percentile!r}")
    flag = check_bool("agg.pct", "average_evenly_divided", average_evenly_divided)
    return _columns("pct", "percentile", cols, _Spec.AggSpecPercentile(percentile=p, average_evenly_divided=flag),
                    percentile=p, average_evenly_divided=flag)


def count_distinct(cols: ColsArg = None, count_nulls: bool = False) -> Aggregation:
    """Number of distinct values of each column (nulls counted as a value when ``count_nulls``)."""
    flag = check_bool("agg.count_distinct", "count_nulls", count_nulls)
    return _columns("count_distinct", "count_distinct", cols, _Spec.AggSpecCountDistinct(count_nulls=flag),
                    count_nulls=flag)


def distinct(cols: ColsArg = None, include_nulls: bool = False) -> Aggregation:
    """The distinct values of each column, as an array per group."""
    flag = check_bool("agg.distinct", "include_nulls", include_nulls)
    return _columns("distinct", "distinct", cols, _Spec.AggSpecDistinct(include_nulls=flag), include_nulls=flag)


def sorted_first(order_by: Union[str, list[str]], cols: ColsArg = None) -> Aggregation:
    """Each column's value in the row that sorts first by ``order_by``."""
    keys = str_tuple("agg.sorted_first", "order_by", order_by, required=True)
    sub = _Spec.AggSpecSorted(columns=[_Spec.AggSpecSortedColumn(column_name=k) for k in keys])
    return _columns("sorted_first", "sorted_first", cols, sub, order_by=order_by)


def sorted_last(order_by: Union[str, list[str]], cols: ColsArg = None) -> Aggregation:
    """Each column's value in the row that sorts last by ``order_by``."""
    keys = str_tuple("agg.sorted_last", "order_by", order_by, required=True)
    sub = _Spec.AggSpecSorted(columns=[_Spec.AggSpecSortedColumn(column_name=k) for k in keys])
    return _columns("sorted_last", "sorted_last", cols, sub, order_by=order_by)


def weighted_avg(wcol: str, cols: ColsArg = None) -> Aggregation:
    """Mean of each column weighted by ``wcol``."""
    w = check_str("agg.weighted_avg", "wcol", wcol)
    return _columns("weighted_avg", "weighted_avg", cols, _Spec.AggSpecWeighted(weight_column=w), wcol=w)


def weighted_sum(wcol: str, cols: ColsArg = None) -> Aggregation:
    """Sum of each column weighted by ``wcol``."""
    w = check_str("agg.weighted_sum", "wcol", wcol)
    return _columns("weighted_sum", "weighted_sum", cols, _Spec.AggSpecWeighted(weight_column=w), wcol=w)


def unique(cols: ColsArg = None, include_nulls: bool = False, non_unique_sentinel: Any = None) -> Aggregation:
    """The single distinct value of each column in a group; null when the group is empty, and
    ``non_unique_sentinel`` (null when None) when it has more than one distinct value.

    The sentinel's Python type picks the server type: bool, str, int (long), float (double), or a
    numpy scalar for an exact width (int8 byte, int16 short, uint16 char, int32 int, int64 long,
    float32 float, float64 double). It must suit the aggregated columns' type. Other numpy types
    (uint8, uint32, uint64, float16 ...) raise a DHError that is also a TypeError.
    """
    flag = check_bool("agg.unique", "include_nulls", include_nulls)
    sub = _Spec.AggSpecUnique(include_nulls=flag, non_unique_sentinel=_sentinel(non_unique_sentinel))
    return _columns("unique", "unique", cols, sub, include_nulls=flag, non_unique_sentinel=non_unique_sentinel)


_SENTINEL_FIELDS = {"int8": "byte_value", "int16": "short_value", "uint16": "char_value", "int32": "int_value",
                    "int64": "long_value", "float32": "float_value", "float64": "double_value",
                    "bool": "bool_value"}


def _sentinel(value: Any) -> table_pb2.AggSpec.AggSpecNonUniqueSentinel:
    S = _Spec.AggSpecNonUniqueSentinel
    if value is None:
        return S(null_value=table_pb2.NULL_VALUE)
    if isinstance(value, bool):
        return S(bool_value=value)
    if isinstance(value, str):
        return S(string_value=value)
    if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
        kind = value.dtype.name  # e.g. np.longlong is int64 here
        field = _SENTINEL_FIELDS.get(kind)
        if field is None:
            # the server has no unsigned types but char (16 bits): uint8/32/64 and the other numpy
            # types have no exact server type; a TypeError, as with the official client
            raise ArgTypeError(f"agg.unique: non_unique_sentinel of numpy type {kind} has no server type; use "
                               f"int8, int16, uint16 (a char), int32, int64, float32, float64 or bool_ "
                               f"(or a Python int, float, bool or str)")
        return S(**{field: value.item()})
    if isinstance(value, int):
        if not -2**63 <= value < 2**63:
            raise DHError(f"agg.unique: non_unique_sentinel {value} does not fit in a long")
        return S(long_value=value)
    if isinstance(value, float):
        return S(double_value=value)
    raise ArgTypeError(f"agg.unique: non_unique_sentinel must be a bool, str, int, float or numpy scalar, "
                       f"got {type(value).__name__}")


def count_(col: str) -> Aggregation:
    """The number of rows in each group, in a new column ``col``. Not usable in ``agg_all_by``."""
    c = check_str("agg.count_", "col", col)
    return _MessageAggregation(_desc("count_", col=c), _Agg(count=_Agg.AggregationCount(column_name=c)))


def count_where(col: str, filters: Union[str, list[str]]) -> Aggregation:
    """The number of rows in each group that pass all ``filters`` (formula strings), in a new
    column ``col``. Not usable in ``agg_all_by``."""
    c = check_str("agg.count_where", "col", col)
    f = str_tuple("agg.count_where", "filters", filters, required=True)
    msg = _Agg(count_where=_Agg.AggregationCountWhere(column_name=c, filters=list(f)))
    return _MessageAggregation(_desc("count_where", col=c, filters=list(f)), msg)


def partition(col: str, include_by_columns: bool = True) -> Aggregation:
    """Each group's rows as a sub-table, in a new column ``col`` (the key columns kept in the
    sub-tables when ``include_by_columns``). Not usable in ``agg_all_by``."""
    c = check_str("agg.partition", "col", col)
    flag = check_bool("agg.partition", "include_by_columns", include_by_columns)
    msg = _Agg(partition=_Agg.AggregationPartition(column_name=c, include_group_by_columns=flag))
    return _MessageAggregation(_desc("partition", col=c, include_by_columns=flag), msg)


def formula(formula: str, formula_param: Optional[str] = None, cols: ColsArg = None) -> Aggregation:
    """A user formula over each group.

    Without ``formula_param``, ``formula`` is a full assignment over the group's arrays, e.g.
    ``"Spread = max(Price) - min(Price)"``, and ``cols`` must be left out. With ``formula_param``,
    ``formula`` is applied to each column of ``cols`` with ``formula_param`` standing for it, e.g.
    ``formula("max(each) - min(each)", "each", ["PriceRange = Price"])``.
    """
    f = check_str("agg.formula", "formula", formula)
    if formula_param is None:
        if cols:
            raise DHError("agg.formula: cols need formula_param (the name standing for each column in the formula)")
        msg = _Agg(formula=_Agg.AggregationFormula(selectable=table_pb2.Selectable(raw=f)))
        return _MessageAggregation(_desc("formula", formula=f), msg)
    p = check_str("agg.formula", "formula_param", formula_param)
    return _columns("formula", "formula", cols, _Spec.AggSpecFormula(formula=f, param_token=p),
                    formula=f, formula_param=p)
