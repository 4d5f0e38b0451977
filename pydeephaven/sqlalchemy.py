"""A SQLAlchemy dialect for Deephaven, on ``pydeephaven.dbapi`` (``pip install 'pydeephaven[sqlalchemy]'``).

    from sqlalchemy import create_engine, inspect, select, table, column
    import pandas as pd

    engine = create_engine("deephaven://localhost:10000")
    inspect(engine).get_table_names()                       # the tables of the server's scope
    pd.read_sql("SELECT Sym, SUM(Qty) AS Qty FROM trades GROUP BY Sym", engine)

The URL: ``deephaven://[user:password@]host[:port][?auth_type=...&auth_token=...&use_tls=true]``;
a user and password mean Basic authentication. Anything else ``Session`` takes goes in
``create_engine(..., connect_args={...})`` (``tls_root_certs``, ``extra_headers`` ...).

Reflection reads the server's global scope: each table's columns and their types (as SQLAlchemy
types); there are no keys, indexes or views. The server has no transactions: commits and rollbacks
do nothing. Statements the 42.7 server cannot run correctly (the README's SQL table) are refused when
they are compiled, before anything is sent: outer joins, OFFSET, HAVING, LIKE, ``%``, string
concatenation, CASE, window functions, INTERSECT and EXCEPT, the string functions, COALESCE, NULLIF,
SQRT, COUNT of a column, and INSERT, UPDATE and DELETE.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Optional

import pyarrow as pa
from sqlalchemy import exc
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import URL, default
from sqlalchemy.sql import compiler, operators

from pydeephaven import dbapi
from pydeephaven.dherror import NotFoundError
from pydeephaven.formats import is_char

__all__ = ["DeephavenDialect", "DeephavenCompiler", "sqlalchemy_type"]


def _refused(what: str, instead: str = "") -> exc.CompileError:
    return exc.CompileError(f"Deephaven's SQL (server 42.7) cannot run {what}{'; ' + instead if instead else ''}")


#: Functions the server refuses, by their lower-case name (the README's SQL table).
_REFUSED_FUNCTIONS = {"lower", "upper", "substring", "substr", "char_length", "character_length", "length",
                      "concat", "coalesce", "nullif", "sqrt", "mod"}


class DeephavenCompiler(compiler.SQLCompiler):
    """The default compiler, refusing what the server cannot run before it is sent."""

    def visit_join(self, join: Any, asfrom: bool = False, from_linter: Any = None, **kwargs: Any) -> str:
        if join.full:
            raise _refused("FULL OUTER JOIN (it runs as an inner join, dropping the unmatched rows)",
                           "use pydeephaven's Table methods (multi_join)")
        if join.isouter:
            raise _refused("LEFT OUTER JOIN (it runs as an inner join, dropping the unmatched rows)",
                           "use pydeephaven's Table.natural_join")
        return super().visit_join(join, asfrom=asfrom, from_linter=from_linter, **kwargs)

    def visit_select(self, select_stmt: Any, *args: Any, **kwargs: Any) -> str:
        if getattr(select_stmt, "_having_criteria", None):
            raise _refused("HAVING", "filter the grouped result in an outer SELECT ... WHERE")
        return super().visit_select(select_stmt, *args, **kwargs)

    def limit_clause(self, select: Any, **kw: Any) -> str:
        if select._offset_clause is not None:
            raise _refused("OFFSET")
        if select._limit_clause is None:
            return ""
        return "\n LIMIT " + self.process(select._limit_clause, **kw)

    def fetch_clause(self, select: Any, *args: Any, **kw: Any) -> str:
        raise _refused("FETCH FIRST", "use limit()")

    def visit_compound_select(self, cs: Any, asfrom: bool = False, compound_index: Any = None, **kwargs: Any) -> str:
        keyword = self.compound_keywords[cs.keyword]
        if not keyword.startswith("UNION"):
            raise _refused(keyword)
        return super().visit_compound_select(cs, asfrom=asfrom, compound_index=compound_index, **kwargs)

    def visit_function(self, func: Any, add_to_result_map: Any = None, **kwargs: Any) -> str:
        name = func.name.lower()
        if name in _REFUSED_FUNCTIONS:
            raise _refused(f"the function {func.name.upper()}")
        if name == "count":
            args = list(func.clauses)
            counted = args[0] if len(args) == 1 else None
            star = getattr(counted, "name", None) == "*"
            if counted is not None and not star and getattr(counted, "operator", None) is not operators.distinct_op:
                raise _refused("COUNT of a column (it does not skip nulls)", "use func.count() for COUNT(*)")
        return super().visit_function(func, add_to_result_map=add_to_result_map, **kwargs)

    def visit_over(self, over: Any, **kwargs: Any) -> str:
        raise _refused("window functions (OVER)")

    def visit_case(self, clause: Any, **kwargs: Any) -> str:
        raise _refused("CASE")

    def visit_like_op_binary(self, binary: Any, operator: Any, **kw: Any) -> str:
        raise _refused("LIKE")

    visit_not_like_op_binary = visit_ilike_op_binary = visit_not_ilike_op_binary = visit_like_op_binary

    def visit_ne_binary(self, binary: Any, operator: Any, **kw: Any) -> str:
        return self._generate_generic_binary(binary, " <> ", **kw)  # the server refuses "!="

    def visit_mod_binary(self, binary: Any, operator: Any, **kw: Any) -> str:
        raise _refused("% (modulo)")

    def visit_concat_op_binary(self, binary: Any, operator: Any, **kw: Any) -> str:
        raise _refused("|| (string concatenation)")

    def visit_insert(self, *args: Any, **kw: Any) -> str:
        raise _refused("INSERT", "use pydeephaven's input tables")

    def visit_update(self, *args: Any, **kw: Any) -> str:
        raise _refused("UPDATE")

    def visit_delete(self, *args: Any, **kw: Any) -> str:
        raise _refused("DELETE")


def sqlalchemy_type(t: pa.DataType, field: Optional[pa.Field] = None) -> sqltypes.TypeEngine[Any]:
    """The SQLAlchemy type of a column of Arrow type ``t`` (as the server sends it)."""
    if field is not None and is_char(field):
        return sqltypes.CHAR(1)
    types = pa.types
    for test, made in ((types.is_boolean, sqltypes.Boolean), (types.is_int8, sqltypes.SmallInteger),
                       (types.is_int16, sqltypes.SmallInteger), (types.is_int32, sqltypes.Integer),
                       (types.is_int64, sqltypes.BigInteger), (types.is_float32, sqltypes.REAL),
                       (types.is_float64, sqltypes.Double), (types.is_string, sqltypes.String),
                       (types.is_large_string, sqltypes.String), (types.is_date, sqltypes.Date),
                       (types.is_time, sqltypes.Time), (types.is_binary, sqltypes.LargeBinary),
                       (types.is_large_binary, sqltypes.LargeBinary), (types.is_duration, sqltypes.Interval)):
        if test(t):
            return made()
    if types.is_timestamp(t):
        return sqltypes.DateTime(timezone=t.tz is not None)
    if types.is_decimal(t):
        return sqltypes.Numeric(precision=t.precision, scale=t.scale)
    return sqltypes.NullType()


def _session(connection: Any) -> Any:
    """The pydeephaven Session under a SQLAlchemy Connection."""
    return connection.connection.dbapi_connection.session


_TRUE = ("1", "true", "yes", "on")


class DeephavenDialect(default.DefaultDialect):
    """``deephaven://host:port``: SQLAlchemy over ``pydeephaven.dbapi``."""

    name = "deephaven"
    driver = "pydeephaven"
    supports_statement_cache = True
    default_paramstyle = "qmark"
    statement_compiler = DeephavenCompiler
    supports_native_boolean = True
    supports_native_decimal = False
    supports_alter = False
    supports_sequences = False
    supports_default_values = False
    supports_empty_insert = False
    supports_multivalues_insert = False
    supports_sane_rowcount = False
    supports_sane_multi_rowcount = False
    postfetch_lastrowid = False
    returns_native_bytes = True

    @classmethod
    def import_dbapi(cls) -> ModuleType:
        return dbapi

    def create_connect_args(self, url: URL) -> tuple[list[Any], dict[str, Any]]:
        args: dict[str, Any] = {"host": url.host or "localhost", "port": url.port or 10000}
        query = dict(url.query)
        if url.username is not None:
            args["auth_type"] = "Basic"
            args["auth_token"] = f"{url.username}:{url.password or ''}"
        for key in ("auth_type", "auth_token", "session_type"):
            if key in query:
                args[key] = query.pop(key)
        for key in ("use_tls", "never_timeout"):
            if key in query:
                args[key] = str(query.pop(key)).lower() in _TRUE
        if query:
            raise exc.ArgumentError(f"deephaven URL: unknown option{'s' if len(query) > 1 else ''} "
                                    f"{', '.join(sorted(query))} (pass other Session arguments in connect_args)")
        return [], args

    # no transactions: nothing to begin, commit or roll back
    def do_begin(self, dbapi_connection: Any) -> None:
        pass

    def do_commit(self, dbapi_connection: Any) -> None:
        pass

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass

    def get_isolation_level(self, dbapi_connection: Any) -> Any:
        return "AUTOCOMMIT"

    def get_isolation_level_values(self, dbapi_connection: Any) -> list[Any]:
        return ["AUTOCOMMIT"]

    def set_isolation_level(self, dbapi_connection: Any, level: Any) -> None:
        if level != "AUTOCOMMIT":
            raise exc.ArgumentError(f"deephaven: isolation level {level!r}: the server has only AUTOCOMMIT")

    def do_ping(self, dbapi_connection: Any) -> bool:
        return bool(dbapi_connection.session.is_alive)

    def _get_server_version_info(self, connection: Any) -> Optional[tuple[int, ...]]:
        version = _session(connection).server_version or ""
        parts = tuple(int(p) for p in version.split(".") if p.isdigit())
        return parts or None

    # -- reflection: the server's global scope ----------------------------------------------------

    def get_schema_names(self, connection: Any, **kw: Any) -> list[str]:
        return []

    def get_table_names(self, connection: Any, schema: Optional[str] = None, **kw: Any) -> list[str]:
        return sorted(_session(connection).tables)

    def get_view_names(self, connection: Any, schema: Optional[str] = None, **kw: Any) -> list[str]:
        return []

    def has_table(self, connection: Any, table_name: str, schema: Optional[str] = None, **kw: Any) -> bool:
        return table_name in _session(connection).tables

    def get_columns(self, connection: Any, table_name: str, schema: Optional[str] = None,
                    **kw: Any) -> list[Any]:
        try:
            with _session(connection).open_table(table_name) as t:
                fields = list(t.schema)
        except NotFoundError:
            raise exc.NoSuchTableError(table_name) from None
        return [{"name": f.name, "type": sqlalchemy_type(f.type, f), "nullable": True, "default": None}
                for f in fields]

    def get_pk_constraint(self, connection: Any, table_name: str, schema: Optional[str] = None,
                          **kw: Any) -> Any:
        return {"constrained_columns": [], "name": None}

    def get_foreign_keys(self, connection: Any, table_name: str, schema: Optional[str] = None,
                         **kw: Any) -> list[Any]:
        return []

    def get_indexes(self, connection: Any, table_name: str, schema: Optional[str] = None, **kw: Any) -> list[Any]:
        return []

    def get_unique_constraints(self, connection: Any, table_name: str, schema: Optional[str] = None,
                               **kw: Any) -> list[Any]:
        return []

    def get_check_constraints(self, connection: Any, table_name: str, schema: Optional[str] = None,
                              **kw: Any) -> list[Any]:
        return []


dialect = DeephavenDialect
