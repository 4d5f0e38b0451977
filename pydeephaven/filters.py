"""Structured filters for ``Table.where``: conditions built in Python and sent as data, so no
formula text has to be written or quoted.

A comparison takes two values. A value is a column when wrapped in :class:`ColumnName`, otherwise a
literal: str, bool, int, float, or a datetime (``datetime.datetime``, ``datetime.date``,
``numpy.datetime64``, ``pandas.Timestamp``; naive ones are taken as UTC).

    from pydeephaven.filters import ColumnName, and_, eq, gt, in_
    t.where(and_([gt(ColumnName("Price"), 10.5), in_("Sym", ["AAPL", "MSFT"])]))
    t.where(eq(ColumnName("Bid"), ColumnName("Ask")))
"""

from __future__ import annotations

import datetime as _dt
from abc import ABC, abstractmethod
from typing import Any, Sequence, Union

from pydeephaven._proto import table_pb2
from pydeephaven._utils import check_bool, check_str
from pydeephaven.dherror import DHError

__all__ = [
    "Filter", "ColumnName", "DatetimeLike", "or_", "and_", "not_", "is_null", "is_not_null", "matches",
    "contains", "in_", "eq", "ne", "lt", "gt", "le", "ge",
]

_Cmp = table_pb2.CompareCondition


class ColumnName(str):
    """A column name, as a value of a comparison (a plain str is a string literal)."""

    def __repr__(self) -> str:
        return f"ColumnName({str.__repr__(self)})"


DatetimeLike = Union[_dt.datetime, _dt.date, Any]  # also numpy.datetime64 and pandas.Timestamp


class Filter(ABC):
    """A filter condition. Made by the functions of this module, not directly."""

    __slots__ = ("_desc",)

    def __init__(self, desc: str) -> None:
        self._desc = desc

    @abstractmethod
    def make_grpc_message(self) -> table_pb2.Condition:
        """The filter as a protobuf Condition (the form the official client builds)."""

    def __repr__(self) -> str:
        return self._desc


class _Condition(Filter):
    __slots__ = ("_cond",)

    def __init__(self, desc: str, cond: table_pb2.Condition) -> None:
        super().__init__(desc)
        self._cond = cond

    def make_grpc_message(self) -> table_pb2.Condition:
        out = table_pb2.Condition()
        out.CopyFrom(self._cond)
        return out


# -- values ---------------------------------------------------------------------------------------

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _datetime_nanos(value: Any) -> Union[int, None]:
    """Nanoseconds since the epoch for a datetime-like value, None for anything else."""
    mod = type(value).__module__.split(".")[0]
    if mod == "pandas" and type(value).__name__ == "Timestamp":
        return int(value.value)  # UTC nanoseconds, whether zoned or naive
    if mod == "numpy" and type(value).__name__ == "datetime64":
        import numpy as np

        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        delta = value - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, _dt.date):
        return _datetime_nanos(_dt.datetime(value.year, value.month, value.day))
    return None


def _literal(where: str, value: Any) -> table_pb2.Literal:
    if isinstance(value, bool):
        return table_pb2.Literal(bool_value=value)
    if isinstance(value, str):
        return table_pb2.Literal(string_value=value)
    nanos = _datetime_nanos(value)
    if nanos is not None:
        return table_pb2.Literal(nano_time_value=nanos)
    mod = type(value).__module__.split(".")[0]
    if mod == "numpy" and hasattr(value, "item"):
        value = value.item()
        if isinstance(value, (bool, int, float)):
            return _literal(where, value)
    if isinstance(value, int):
        if not -2**63 <= value < 2**63:
            raise DHError(f"{where}: {value} does not fit in a long")
        return table_pb2.Literal(long_value=value)
    if isinstance(value, float):
        return table_pb2.Literal(double_value=value)
    raise DHError(f"{where}: a value must be a ColumnName, str, bool, int, float or datetime, "
                  f"got {type(value).__name__}: {value!r}")


def _value(where: str, value: Any) -> table_pb2.Value:
    if isinstance(value, ColumnName):
        check_str(where, "column name", str(value))
        return table_pb2.Value(reference=table_pb2.Reference(column_name=str(value)))
    return table_pb2.Value(literal=_literal(where, value))


def _ref(where: str, col: Any) -> table_pb2.Reference:
    return table_pb2.Reference(column_name=check_str(where, "col", col))


def _case(case_sensitive: Any, where: str) -> table_pb2.CaseSensitivity:
    flag = check_bool(where, "case_sensitive", case_sensitive)
    return table_pb2.MATCH_CASE if flag else table_pb2.IGNORE_CASE


def _filters(where: str, filters: Any) -> list[Filter]:
    items = [filters] if isinstance(filters, Filter) else filters
    if not isinstance(items, (list, tuple)):
        raise DHError(f"{where}: filters must be a Filter or a list of Filters, got {type(filters).__name__}")
    if not items:
        raise DHError(f"{where}: filters must not be empty")
    for f in items:
        if not isinstance(f, Filter):
            raise DHError(f"{where}: filters must hold only Filters (from pydeephaven.filters), "
                          f"got {type(f).__name__}: {f!r}")
    return list(items)


# -- combinators ----------------------------------------------------------------------------------


def and_(filters: Union[Filter, Sequence[Filter]]) -> Filter:
    """True when every one of ``filters`` is."""
    fs = _filters("filters.and_", filters)
    cond = table_pb2.Condition(**{"and": table_pb2.AndCondition(filters=[f.make_grpc_message() for f in fs])})
    return _Condition(f"and_({fs!r})", cond)


def or_(filters: Union[Filter, Sequence[Filter]]) -> Filter:
    """True when any one of ``filters`` is."""
    fs = _filters("filters.or_", filters)
    cond = table_pb2.Condition(**{"or": table_pb2.OrCondition(filters=[f.make_grpc_message() for f in fs])})
    return _Condition(f"or_({fs!r})", cond)


def not_(filter_: Filter) -> Filter:
    """True when ``filter_`` is false."""
    (f,) = _filters("filters.not_", [filter_])
    cond = table_pb2.Condition(**{"not": table_pb2.NotCondition(filter=f.make_grpc_message())})
    return _Condition(f"not_({f!r})", cond)


# -- null checks ----------------------------------------------------------------------------------


def is_null(col: str) -> Filter:
    """True where ``col`` is null."""
    cond = table_pb2.Condition(is_null=table_pb2.IsNullCondition(reference=_ref("filters.is_null", col)))
    return _Condition(f"is_null({col!r})", cond)


def is_not_null(col: str) -> Filter:
    """True where ``col`` is not null."""
    inner = table_pb2.Condition(is_null=table_pb2.IsNullCondition(reference=_ref("filters.is_not_null", col)))
    cond = table_pb2.Condition(**{"not": table_pb2.NotCondition(filter=inner)})
    return _Condition(f"is_not_null({col!r})", cond)


# -- strings --------------------------------------------------------------------------------------


def matches(col: str, regex: str, invert: bool = False, case_sensitive: bool = True) -> Filter:
    """True where the whole value of ``col`` matches the regular expression ``regex`` (false with
    ``invert``)."""
    where = "filters.matches"
    msg = table_pb2.MatchesCondition(
        reference=_ref(where, col), regex=check_str(where, "regex", regex, allow_empty=True),
        case_sensitivity=_case(case_sensitive, where),
        match_type=table_pb2.INVERTED if check_bool(where, "invert", invert) else table_pb2.REGULAR)
    return _Condition(f"matches({col!r}, {regex!r}, invert={invert}, case_sensitive={case_sensitive})",
                      table_pb2.Condition(matches=msg))


def contains(col: str, search_string: str, invert: bool = False, case_sensitive: bool = True) -> Filter:
    """True where the value of ``col`` contains ``search_string`` (false with ``invert``)."""
    where = "filters.contains"
    msg = table_pb2.ContainsCondition(
        reference=_ref(where, col), search_string=check_str(where, "search_string", search_string, allow_empty=True),
        case_sensitivity=_case(case_sensitive, where),
        match_type=table_pb2.INVERTED if check_bool(where, "invert", invert) else table_pb2.REGULAR)
    return _Condition(f"contains({col!r}, {search_string!r}, invert={invert}, case_sensitive={case_sensitive})",
                      table_pb2.Condition(contains=msg))


def in_(col: str, values: Sequence[Any], case_sensitive: bool = True) -> Filter:
    """True where the value of ``col`` is one of ``values`` (literals)."""
    where = "filters.in_"
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise DHError(f"{where}: values must be a list of values, got {type(values).__name__}: {values!r}")
    vals = list(values)
    if not vals:
        raise DHError(f"{where}: values must not be empty")
    msg = table_pb2.InCondition(
        target=table_pb2.Value(reference=_ref(where, col)),
        candidates=[table_pb2.Value(literal=_literal(where, v)) for v in vals],
        case_sensitivity=_case(case_sensitive, where), match_type=table_pb2.REGULAR)
    return _Condition(f"in_({col!r}, {vals!r}, case_sensitive={case_sensitive})", table_pb2.Condition(**{"in": msg}))


# -- comparisons ----------------------------------------------------------------------------------


_MIRROR = {_Cmp.LESS_THAN: _Cmp.GREATER_THAN, _Cmp.GREATER_THAN: _Cmp.LESS_THAN,
           _Cmp.LESS_THAN_OR_EQUAL: _Cmp.GREATER_THAN_OR_EQUAL, _Cmp.GREATER_THAN_OR_EQUAL: _Cmp.LESS_THAN_OR_EQUAL,
           _Cmp.EQUALS: _Cmp.EQUALS, _Cmp.NOT_EQUALS: _Cmp.NOT_EQUALS}


def _compare(func: str, op: table_pb2.CompareCondition.CompareOperation, left: Any, right: Any,
             case_sensitive: bool = True) -> Filter:
    where = f"filters.{func}"
    case = _case(case_sensitive, where)
    lhs, rhs = _value(where, left), _value(where, right)
    desc = f"{func}({left!r}, {right!r}{'' if case_sensitive else ', case_sensitive=False'})"
    if lhs.HasField("literal") and rhs.HasField("reference"):
        # The server (42.7) mirrors a literal-on-the-left comparison wrongly (5 < X is taken as
        # X >= 5), so the column goes on the left here, with the operator mirrored.
        lhs, rhs, op = rhs, lhs, _MIRROR[op]
    return _Condition(desc, table_pb2.Condition(compare=_Cmp(operation=op, case_sensitivity=case, lhs=lhs, rhs=rhs)))


def eq(left: Any, right: Any, case_sensitive: bool = True) -> Filter:
    """True where ``left == right``."""
    return _compare("eq", _Cmp.EQUALS, left, right, case_sensitive)


def ne(left: Any, right: Any, case_sensitive: bool = True) -> Filter:
    """True where ``left != right``.

    Sent as built, so the server answers as it does to the official client. A 42.7 server gets
    ``case_sensitive=False`` wrong here: it keeps the rows equal to ``right`` in any case, as
    ``eq`` does (and so for ``not_`` of a case-insensitive ``eq``). For the rows that differ from
    a string in any case, use ``not_(in_(col, [value], case_sensitive=False))``, which it
    evaluates as meant."""
    return _compare("ne", _Cmp.NOT_EQUALS, left, right, case_sensitive)


def lt(left: Any, right: Any) -> Filter:
    """True where ``left < right``."""
    return _compare("lt", _Cmp.LESS_THAN, left, right)


def le(left: Any, right: Any) -> Filter:
    """True where ``left <= right``."""
    return _compare("le", _Cmp.LESS_THAN_OR_EQUAL, left, right)


def gt(left: Any, right: Any) -> Filter:
    """True where ``left > right``."""
    return _compare("gt", _Cmp.GREATER_THAN, left, right)


def ge(left: Any, right: Any) -> Filter:
    """True where ``left >= right``."""
    return _compare("ge", _Cmp.GREATER_THAN_OR_EQUAL, left, right)


# -- names of the official client's module that its test suite and other packages use ---------------


def _datetime_to_nanos(dt: DatetimeLike) -> int:
    """Nanoseconds since the epoch for a datetime, date, numpy.datetime64 or pandas.Timestamp
    (a naive datetime is taken as UTC). Raises TypeError for anything else."""
    nanos = _datetime_nanos(dt)
    if nanos is None:
        raise TypeError(f"Unsupported datetime type: {type(dt)}")
    return nanos


def _to_proto_value(v: Any) -> table_pb2.Value:
    """The protobuf Value of a filter operand: a ColumnName is a column reference, anything else a
    literal. Raises TypeError for a type a filter cannot hold."""
    try:
        return _value("filters", v)
    except DHError as e:
        raise TypeError(f"Unsupported type for proto value: {type(v)} ({e})") from None


class _CompareFilter(Filter):
    """A comparison ``left <op> right`` with a CompareCondition operation ``op`` as given (no
    rewriting: ``eq``, ``lt`` ... are the functions to use)."""

    def __init__(self, op: Any, left: Any, right: Any, case_sensitive: bool = True) -> None:
        super().__init__(f"compare({_Cmp.CompareOperation.Name(op)}, {left!r}, {right!r})")
        self._op = op
        self._lhs = _to_proto_value(left)
        self._rhs = _to_proto_value(right)
        self._case_sensitivity = _case(case_sensitive, "filters._CompareFilter")

    def make_grpc_message(self) -> table_pb2.Condition:
        return table_pb2.Condition(compare=_Cmp(operation=self._op, case_sensitivity=self._case_sensitivity,
                                                lhs=self._lhs, rhs=self._rhs))
