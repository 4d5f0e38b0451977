"""Argument checks shared by the public API: turn the loose forms the API accepts (a str or a list
of str, None for "none") into tuples, and reject wrong types with a DHError before any round trip."""

from __future__ import annotations

import numbers
import os
from typing import Any, Iterable, Optional

from pydeephaven.dherror import DHError, InvalidArgumentError


class ArgTypeError(InvalidArgumentError, TypeError):
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


INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def check_int(where: str, param: str, value: Any, *, minimum: Optional[int] = None,
              maximum: Optional[int] = None) -> int:
    """``value`` as an int (numpy integers are fine, bools and floats are not), within
    ``minimum``..``maximum``; both default to the range of a 64-bit signed int, the widest the
    server's requests carry."""
    index = getattr(type(value), "__index__", None)
    if isinstance(value, bool) or index is None:
        raise DHError(f"{where}: {param} must be an int, got {_type_name(value)}: {value!r}")
    value = int(index(value))
    low = INT64_MIN if minimum is None else minimum
    high = INT64_MAX if maximum is None else maximum
    if value < low:
        bound = " (the smallest 64-bit signed int)" if low == INT64_MIN else ""
        raise DHError(f"{where}: {param} must be >= {low}{bound}, got {value}")
    if value > high:
        bound = " (the largest 64-bit signed int)" if high == INT64_MAX else ""
        raise DHError(f"{where}: {param} must be <= {high}{bound}, got {value}")
    return value


def check_port(where: str, value: Any, source: str = "port") -> int:
    """A TCP port number, 1 to 65535: an int, or a str of digits (as the ``DH_PORT`` variable
    holds); ``source`` names where the value came from."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    index = getattr(type(value), "__index__", None)
    if isinstance(value, bool) or index is None:
        raise DHError(f"{where}: {source} must be a port number (an int from 1 to 65535), "
                      f"got {_type_name(value)}: {value!r}")
    port = int(index(value))
    if not 1 <= port <= 65535:
        raise DHError(f"{where}: {source} must be from 1 to 65535, got {port}")
    return port


def server_address(where: str, host: Any, port: Any) -> tuple[str, int]:
    """The (host, port) to connect to: the arguments, else the ``DH_HOST``/``DH_PORT`` environment
    variables, else localhost:10000; DHError for a host that is not a str or a port that is not
    a port number."""
    if host is None:
        host = os.environ.get("DH_HOST") or "localhost"
    elif not isinstance(host, str) or not host.strip():
        raise DHError(f"{where}: host must be a non-empty str, got {_type_name(host)}: {host!r}")
    if port is None:
        env = os.environ.get("DH_PORT")
        return host, (check_port(where, env, "the DH_PORT environment variable") if env else 10000)
    return host, check_port(where, port)


def pem_bytes(where: str, param: str, value: Any) -> Optional[bytes]:
    """A PEM argument (certificates, a key) as bytes: bytes as they are, a str encoded (PEM is
    text), None kept; DHError for anything else."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise DHError(f"{where}: {param} must be PEM bytes, got {_type_name(value)}")


def check_connection_args(where: str, auth_type: Any, auth_token: Any, client_opts: Any,
                          extra_headers: Any) -> None:
    """DHError for connection arguments of the wrong shape (before gRPC sees them)."""
    if not isinstance(auth_type, str) or not auth_type:
        raise DHError(f"{where}: auth_type must be a non-empty str, got {_type_name(auth_type)}: {auth_type!r}")
    if auth_token is not None and not isinstance(auth_token, str):
        raise DHError(f"{where}: auth_token must be a str, got {_type_name(auth_token)}")
    if client_opts is not None:
        if not isinstance(client_opts, (list, tuple)) or not all(
                isinstance(o, (list, tuple)) and len(o) == 2 and isinstance(o[0], str) for o in client_opts):
            raise DHError(f"{where}: client_opts must be a list of (name, value) pairs such as "
                          f"[('grpc.max_receive_message_length', -1)], got {client_opts!r}")
    if extra_headers is not None:
        if not isinstance(extra_headers, dict) or not all(isinstance(k, (str, bytes)) for k in extra_headers):
            raise DHError(f"{where}: extra_headers must be a dict of header names (bytes or str) to values, "
                          f"got {extra_headers!r}")


def check_ticket(where: str, param: str, value: Any) -> Any:
    """``value`` if it is a ticket (has ``pb_ticket``), else DHError."""
    if not hasattr(value, "pb_ticket"):
        raise DHError(f"{where}: {param} must be a Ticket (pydeephaven.ticket), got {_type_name(value)}: {value!r}")
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


def describe_args(args: Optional[dict[str, Any]]) -> str:
    if not args:
        return ""
    parts = []
    for k, v in args.items():
        text = repr(v)
        parts.append(f"{k}={text if len(text) <= 200 else text[:197] + '...'}")
    return ", ".join(parts)
