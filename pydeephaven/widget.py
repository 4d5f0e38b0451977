"""Live tables in Jupyter: ``table.widget()`` (``pip install 'pydeephaven[notebook]'``).

    w = session.open_table("trades").widget(page=20)
    w                                  # the last expression of a cell shows it

The widget shows ``page`` rows of a table at a time, with the column names and types, and keeps them
current as the table ticks: it holds a viewport subscription (``pydeephaven.ticking``) to the rows on
screen, and moves it when you scroll (the mouse wheel, or the arrow buttons), so a table of any size
costs only the rows shown. Clicking a column's name sorts by it (ascending, descending, unsorted);
the box under a name filters on it: ``> 5``, ``<= 2.5``, ``= AAPL``, ``!= 3`` or ``in AAPL, MSFT``
(a bare word means ``=``). Sorts and filters run on the server, as new table operations; a filter
the server refuses shows its error and leaves the view as it was. The row count follows the table
too (a one-row ``count_by`` subscription).

``widget()`` works on a ``Table``, a ``LiveTable`` (the table it copies), and a rollup or tree
table (``RollupTable.widget()``): rows indented by depth, opened and closed by a click on their
triangle, over a live view (``subscribe``) that also follows a ticking source.
``enable_display()`` makes every Table shown by a notebook cell a widget. ``close()`` ends the
subscriptions and releases the server tables the view made. The display runs in JupyterLab,
Notebook 7 and VS Code (anywidget).
"""

from __future__ import annotations

import importlib
import re
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from pydeephaven import formats
from pydeephaven._core.hierarchical import HierarchicalTableBase
from pydeephaven._table_interface import SortDirection
from pydeephaven.dherror import DHError
from pydeephaven.ticking import LiveTable

__all__ = ["widget", "enable_display", "filter_expression"]

_ASSETS = Path(__file__).resolve().parent
_CLASS: Any = None
_HIER_CLASS: Any = None
_OPS = ("<=", ">=", "!=", "==", "=", "<", ">")
_NUMERIC = ("int", "uint", "float", "double", "decimal")


def _quoted(value: str, text_column: bool) -> str:
    """``value`` as a filter operand: a string literal for a text column (backticks cannot occur
    in it), else the value as typed (a number)."""
    if not text_column:
        if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|true|false|null", value):
            raise DHError(f"filter: {value!r} is not a number")
        return value
    if "`" in value:
        raise DHError("filter: a value cannot hold a backtick")
    return f"`{value}`"


def filter_expression(column: str, text: str, type_name: str) -> Optional[str]:
    """The server filter for the box under ``column`` holding ``text`` (None when empty)."""
    text = text.strip()
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", column):
        raise DHError(f"filter: cannot filter on the column {column!r}")
    textual = not type_name.startswith(_NUMERIC) and type_name != "bool"
    if text.lower().startswith("in "):
        values = [v.strip() for v in text[3:].split(",") if v.strip()]
        if not values:
            raise DHError("filter: 'in' needs values")
        return f"{column} in {', '.join(_quoted(v, textual) for v in values)}"
    op = next((o for o in _OPS if text.startswith(o)), "=")
    value = text[len(op):].strip() if text.startswith(op) else text
    if not value:
        raise DHError(f"filter: {text!r} needs a value after {op}")
    return f"{column} {'==' if op in ('=', '==') else op} {_quoted(value, textual)}"


def _check_page(page: Any) -> None:
    if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= 1000:
        raise DHError(f"widget: page must be an int from 1 to 1000, got {page!r}")


def _widget_class() -> Any:
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    try:
        anywidget: Any = importlib.import_module("anywidget")
        traitlets: Any = importlib.import_module("traitlets")
    except ImportError:
        raise DHError("widget() needs the optional package 'anywidget': pip install 'pydeephaven[notebook]'") from None
    t = traitlets

    class TableWidget(anywidget.AnyWidget):
        """A live view of a server table in a notebook (see ``pydeephaven.widget``)."""

        _esm = _ASSETS / "_widget.js"
        _css = _ASSETS / "_widget.css"
        title = t.Unicode("").tag(sync=True)
        columns = t.List().tag(sync=True)  # [{"name", "type"}]
        rows = t.List().tag(sync=True)  # the visible rows, as display texts
        first = t.Int(0).tag(sync=True)  # the position of the first visible row
        page = t.Int(20).tag(sync=True)
        size = t.Int(0).tag(sync=True)  # rows in the (sorted, filtered) view
        sort = t.List().tag(sync=True)  # [[column, "asc" | "desc"]]
        filters = t.Dict().tag(sync=True)  # column -> the text of its filter box
        error = t.Unicode("").tag(sync=True)
        updates = t.Int(0).tag(sync=True)  # viewport updates shown so far
        depths = t.List().tag(sync=True)  # a rollup's or tree's: each row's depth (1: the top)
        expandable = t.List().tag(sync=True)  # ... and whether it is open (True/False, None: a leaf)
        sortable = t.Bool(True).tag(sync=True)

        def __init__(self, table: Any, page: int = 20, title: str = "") -> None:
            if not hasattr(table, "ticket") or not hasattr(table, "session"):
                raise DHError(f"widget: expected a pydeephaven Table, got {type(table).__name__}")
            _check_page(page)
            super().__init__(page=page, title=title or "")
            self._source = table
            self._lock = threading.RLock()
            self._view: Any = None
            self._live: Optional[LiveTable] = None
            self._count: Optional[LiveTable] = None
            self._made: list[Any] = []  # server tables this widget made (closed with it)
            self.columns = [{"name": f.name, "type": formats.type_name(f)} for f in table.schema]
            self._types = {c["name"]: c["type"] for c in self.columns}
            self._rebuild(None)
            self.observe(self._rebuild, names=["sort", "filters"])
            self.observe(self._move, names=["first", "page"])

        # -- the view on the server -----------------------------------------------------------

        def _make_view(self) -> tuple[Any, list[Any]]:
            view, made = self._source, []
            exprs = [e for e in (filter_expression(c, str(v), self._types.get(c, ""))
                                 for c, v in sorted(self.filters.items())) if e]
            if exprs:
                view = view.where(exprs)
                made.append(view)
            if self.sort:
                cols = [c for c, _ in self.sort]
                dirs = [SortDirection.DESCENDING if d == "desc" else SortDirection.ASCENDING for _, d in self.sort]
                view = view.sort(cols, dirs)
                made.append(view)
            return view, made

        def _rebuild(self, change: Any) -> None:
            with self._lock:  # the callbacks of the new subscriptions wait until they are current
                try:
                    view, made = self._make_view()
                    count = view.count_by("N")
                    made.append(count)
                    mine: dict[str, LiveTable] = {}
                    live = mine["rows"] = LiveTable(view, viewport=self._viewport(0), on_error=self._on_error,
                                                    on_update=lambda _u: self._on_rows(mine["rows"]))
                    counter = mine["count"] = LiveTable(count, on_error=self._on_error,
                                                        on_update=lambda _u: self._on_count(mine["count"]))
                except DHError as e:
                    self.error = str(e)
                    return
                old = self._live, self._count, self._made
                self._view, self._live, self._count, self._made = view, live, counter, made
                self.error = ""
                if self.first != 0:
                    self.first = 0
            self._stop(*old)

        def _viewport(self, first: int) -> tuple[int, int]:
            return (first, first + self.page - 1)

        def _move(self, change: Any) -> None:
            with self._lock:
                if self._live is not None:
                    self._live.set_viewport(self._viewport(max(0, self.first)))

        # -- updates, on the subscriptions' threads (those of replaced views are ignored) -----

        def _on_rows(self, live: LiveTable) -> None:
            with self._lock:
                if live is self._live:
                    self.rows = formats.display_cells(live.snapshot())
                    self.updates += 1

        def _on_count(self, counter: LiveTable) -> None:
            with self._lock:
                if counter is self._count:
                    n = counter.snapshot()
                    self.size = int(n.column("N")[0].as_py()) if n.num_rows else 0

        def _on_error(self, error: Exception) -> None:
            self.error = str(error)

        # -- the end --------------------------------------------------------------------------

        @staticmethod
        def _stop(live: Optional[LiveTable], count: Optional[LiveTable], made: list[Any]) -> None:
            """End a view's subscriptions and release its tables (outside the lock: a subscription's
            thread may be waiting for it)."""
            for sub in (live, count):
                if sub is not None:
                    sub.close()
            for table in reversed(made):
                table.close()

        def close(self) -> None:
            """End the subscriptions, release the server tables of the view, close the widget."""
            if "_lock" not in self.__dict__:  # refused in __init__: nothing was started
                super().close()
                return
            with self._lock:
                old = self._live, self._count, self._made
                self._live = self._count = None
                self._made = []
            self._stop(*old)
            super().close()

    class HierarchyWidget(TableWidget):
        """A live view of a rollup or tree in a notebook: rows opened and closed by clicking their
        triangle (see ``pydeephaven.widget``)."""

        def __init__(self, table: Any, page: int = 20, title: str = "") -> None:
            if not hasattr(table, "subscribe") or not hasattr(table, "snapshot"):
                raise DHError(f"widget: expected a rollup or tree table, got {type(table).__name__}")
            _check_page(page)
            anywidget.AnyWidget.__init__(self, page=page, title=title or "", sortable=False, size=-1)
            self._lock = threading.RLock()
            self._keys: list[Any] = []
            self._hier = table
            with self._lock:
                self._view = table.subscribe(rows=self._viewport(0), on_update=lambda _rows: self._on_view(),
                                             on_error=self._on_error)
                self._on_view()
            self.observe(self._move, names=["first", "page"])
            self.on_msg(self._on_message)

        def _on_view(self) -> None:
            with self._lock:
                view = getattr(self, "_view", None)
                if view is None or view.is_closed:
                    return
                try:
                    rows = view.snapshot()
                except DHError:
                    return  # no rows yet: the first update brings them
                keys = view.row_keys()
                if not self.columns:
                    self.columns = [{"name": f.name, "type": formats.type_name(f)} for f in rows.schema][2:]
                self.depths = rows.column(0).to_pylist()
                self.expandable = rows.column(1).to_pylist()
                self.rows = formats.display_cells(rows.drop_columns(["Depth", "Expanded"]))
                self._keys = keys
                self.updates += 1

        def _move(self, change: Any) -> None:
            self._act(lambda view: view.set_rows(*self._viewport(max(0, self.first))))

        def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
            i = content.get("toggle") if isinstance(content, dict) else None
            if not isinstance(i, int) or not 0 <= i < len(self._keys) or self._keys[i] is None:
                return
            key, opened = self._keys[i], self.expandable[i]
            self._act(lambda view: view.collapse(key) if opened else view.expand(key))

        def _act(self, change: Callable[[Any], Any]) -> None:
            view = self._view
            if view is None:
                return
            try:
                change(view)
                self.error = ""
            except DHError as e:
                self.error = str(e)
            self._on_view()

        def close(self) -> None:
            """End the live view and close the widget (the rollup or tree stays open)."""
            view, self._view = getattr(self, "_view", None), None
            if view is not None:
                view.close()
            anywidget.AnyWidget.close(self)

    global _HIER_CLASS
    _CLASS, _HIER_CLASS = TableWidget, HierarchyWidget
    return _CLASS


def widget(table: Any, page: int = 20, title: str = "") -> Any:
    """A live notebook view of ``table`` (a Table, a LiveTable: its table, or a rollup or tree
    table): see the module doc."""
    if isinstance(table, LiveTable):
        table = table.table
    cls = _widget_class()
    if isinstance(table, HierarchicalTableBase):
        return _HIER_CLASS(table, page=page, title=title)
    return cls(table, page=page, title=title)


def enable_display(page: int = 20) -> None:
    """Show every pydeephaven Table that a notebook cell returns as a live widget (in IPython)."""
    ipython = importlib.import_module("IPython")
    shell = ipython.get_ipython()
    if shell is None:
        raise DHError("enable_display: not running in IPython or Jupyter")
    def show(table: Any) -> None:
        ipython.display.display(widget(table, page=page))

    formatter = shell.display_formatter.ipython_display_formatter
    formatter.for_type_by_name("pydeephaven.table", "Table", show)
    formatter.for_type(LiveTable, show)
