"""Argument checks shared by the public API: turn the loose forms the API accepts (a str or a list
of str, None for "none") into tuples, and reject wrong types with a DHError before any round trip."""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Optional

from pydeephaven.dherror import DHError


class ArgTypeError(DHError, TypeError):
    """A DHError for an argument of a type the call cannot take; also a TypeError, where the
    official client raises one."""


def to_list(value: Any) -> list[Any]:
    """None -> [], a single value -> [value], a list or tuple -> a list of its items."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _type_name(value: Any) -> str:
    return type(value).__name__


def str_tuple(where: str, param: str, value: Any, *, required: bool = False) -> tuple[str, ...]:
    """``value`` (None, a str, or a list/tuple of str) as a tuple of str.

    Raises DHError naming ``where`` and ``param`` when an item is not a non-empty str, or when
    ``required`` and there are no items.
    """
    if value is None:
        items: Iterable[Any] = ()
    elif isinstance(value, str):
        items = (value,)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise DHError(f"{where}: {param} must be a str or a list of str, got {_type_name(value)}: {value!r}")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise DHError(f"{where}: {param} must hold only str, got {_type_name(item)}: {item!r}")
        if not item.strip():
            raise DHError(f"{where}: {param} must not hold empty strings")
        out.append(item)
    if required and not out:
        raise DHError(f"{where}: {param} must not be empty")
    return tuple(out)


def check_str(where: str, param: str, value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DHError(f"{where}: {param} must be a str, got {_type_name(value)}: {value!r}")
    if not allow_empty and not value.strip():
        raise DHError(f"{where}: {param} must not be empty")
    return value


def check_int(where: str, param: str, value: Any, *, minimum: Optional[int] = None) -> int:
    """``value`` as an int (numpy integers are fine, bools and floats are not)."""
    index = getattr(type(value), "__index__", None)
    if isinstance(value, bool) or index is None:
        raise DHError(f"{where}: {param} must be an int, got {_type_name(value)}: {value!r}")
    value = int(index(value))
    if minimum is not None and value < minimum:
        raise DHError(f"{where}: {param} must be >= {minimum}, got {value}")
    return value


def check_int32(where: str, param: str, value: Any) -> int:
    """``value`` as an int that fits the protocol's int32 field (any sign: the server decides)."""
    n = check_int(where, param, value)
    if not -2**31 <= n < 2**31:
        raise DHError(f"{where}: {param} must fit in 32 bits (-2**31 to 2**31 - 1), got {n}")
    return n


def check_bool(where: str, param: str, value: Any) -> bool:
    """``value`` as a bool: a bool, a numpy bool, or an int (any int is a bool, as in Python's
    ``if``: 0 is False, others True). Floats, strings and None are refused."""
    if isinstance(value, bool):
        return value
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool"):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return bool(value)
    raise DHError(f"{where}: {param} must be a bool, got {_type_name(value)}: {value!r}")


def check_number(where: str, param: str, value: Any) -> float:
    """``value`` as a float: an int or float (numpy scalars too), not a bool or a str."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DHError(f"{where}: {param} must be a number, got {_type_name(value)}: {value!r}")
    return float(value)
