"""table.widget() in a real notebook: JupyterLab (and Notebook 7) started here on loopback, the notebook run in
Debian's headless Chromium (driven by Playwright with the system browser), and the rendered cells
read back: the first rows appear, the mouse wheel and the page buttons move the viewport to the next
rows, a click on a column name sorts on the server, a filter box filters, and a change to a ticking
input table shows up in its cell. Every value is computed here from the formula that made it.

``DH_WIDGET_SCREENSHOTS=dir`` keeps screenshots of these states (docs/ has a set)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from pydeephaven import DHError, Session
from pydeephaven.widget import filter_expression
from tests.support.notebook import jupyterlab, notebook_page, rows, until, write_notebook

N = 1000
PAGE = 10


def v_of(i: int) -> int:
    return (i * 37 + 11) % N  # a permutation of 0..N-1: every sort order is unique


def test_filter_expressions() -> None:
    assert filter_expression("V", "> 5", "int32") == "V > 5"
    assert filter_expression("V", "5", "int32") == "V == 5"
    assert filter_expression("S", "= AAPL", "string") == "S == `AAPL`"
    assert filter_expression("S", "in AAPL, MSFT", "string") == "S in `AAPL`, `MSFT`"
    assert filter_expression("V", "!= -2.5e3", "double") == "V != -2.5e3"
    assert filter_expression("V", "  ", "int32") is None

    with pytest.raises(DHError, match="not a number"):
        filter_expression("V", "> 5 || true", "int32")
    with pytest.raises(DHError, match="backtick"):
        filter_expression("S", "= a` || true", "string")
    with pytest.raises(DHError, match="cannot filter on the column"):
        filter_expression("a b", "1", "int32")


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_widget_in_a_notebook(server, session: Session, tmp_path: Path, app: str) -> None:
    """The same notebook in JupyterLab and in Notebook 7."""
    live_name = f"widget_live_{secrets.token_hex(4)}"
    session.run_script(
        "from deephaven import input_table, new_table, dtypes as dht\n"
        "from deephaven.column import int_col\n"
        f"{live_name} = input_table({{'Id': dht.int32, 'V': dht.int32}}, key_cols=['Id'])\n"
        f"{live_name}.add(new_table([int_col('Id', [0, 1, 2, 3]), int_col('V', [100, 101, 102, 103])]))")
    shots = Path(os.environ.get("DH_WIDGET_SCREENSHOTS", str(tmp_path))) / app
    shots.mkdir(parents=True, exist_ok=True)
    write_notebook(tmp_path / "widget.ipynb", [
        "from pydeephaven import Session\n"
        f"s = Session({server.host!r}, {server.port})\n"
        f"t = s.empty_table({N}).update(['Id = ii', 'V = (int) ((ii * 37 + 11) % {N})'])\n"
        f"t.widget(page={PAGE}, title='static')",
        f"s.open_table({live_name!r}).widget(page=5, title='live')",
        "from pydeephaven import agg\n"
        "r = s.empty_table(100).update(['G = (int) (ii % 4)', 'H = (int) (ii % 2)', 'Q = ii'])"
        ".rollup([agg.sum_('Q')], by=['G', 'H'])\n"
        "r.widget(page=10, title='rollup')",
    ])
    static = ".dh-widget[data-title='static']"
    live = ".dh-widget[data-title='live']"

    def expect(ids: list[int]) -> list[list[str]]:
        return [[str(i), str(v_of(i))] for i in ids]

    try:
        with jupyterlab(tmp_path, app=app) as (port, token), notebook_page(port, token, "widget.ipynb", app) as page:
            def status(sel: str) -> str:
                return page.inner_text(f"{sel} .dh-status") if page.query_selector(f"{sel} .dh-status") else ""

            # the first rows, the types, the size
            got = until("the first rows", lambda: rows(page, static), lambda r: len(r) == PAGE, page=page)
            assert got == expect(list(range(PAGE)))
            assert page.eval_on_selector_all(f"{static} .dh-type", "els => els.map(e => e.textContent)") == \
                ["int64", "int32"]
            until("the size", lambda: status(static), lambda s: s == f"rows 1\u2013{PAGE} of {N}")
            page.screenshot(path=str(shots / "widget-rows.png"))

            # the wheel moves the viewport 3 rows, the page button a page: new rows from the server
            page.hover(f"{static} .dh-scroller")
            page.mouse.wheel(0, 200)
            until("rows after the wheel", lambda: rows(page, static), lambda r: r == expect(list(range(3, 3 + PAGE))))
            page.click(f"{static} .dh-next")
            until("the next page", lambda: rows(page, static),
                  lambda r: r == expect(list(range(3 + PAGE, 3 + 2 * PAGE))))
            assert status(static) == f"rows {4 + PAGE}\u2013{3 + 2 * PAGE} of {N}"
            page.click(f"{static} .dh-end")
            until("the last rows", lambda: rows(page, static), lambda r: r == expect(list(range(N - PAGE, N))))
            page.screenshot(path=str(shots / "widget-scrolled.png"))

            # sorting on the server: ascending, then descending (back to the first rows)
            by_v = sorted(range(N), key=v_of)
            page.click(f"{static} th[data-column='V'] .dh-name")
            until("sorted ascending", lambda: rows(page, static), lambda r: r == expect(by_v[:PAGE]))
            page.click(f"{static} th[data-column='V'] .dh-name")
            until("sorted descending", lambda: rows(page, static), lambda r: r == expect(by_v[::-1][:PAGE]))
            assert page.inner_text(f"{static} th[data-column='V'] .dh-name").endswith("\u25bc")
            page.screenshot(path=str(shots / "widget-sorted.png"))

            # a filter box: V < 5, still sorted descending; a refused filter leaves the view
            box = f"{static} input.dh-filter[data-column='V']"
            page.fill(box, "< 5")
            page.press(box, "Enter")
            kept = [i for i in by_v[::-1] if v_of(i) < 5]
            until("filtered", lambda: rows(page, static), lambda r: r == expect(kept))
            until("the filtered size", lambda: status(static), lambda s: s == f"rows 1\u2013{len(kept)} of {len(kept)}")
            page.fill(box, "< oops")
            page.press(box, "Enter")
            until("a refused filter", lambda: page.inner_text(f"{static} .dh-error"), lambda s: "not a number" in s)
            assert rows(page, static) == expect(kept)

            # ticks: the input table changes on the server, the cell follows
            until("the live rows", lambda: rows(page, live),
                  lambda r: r == [["0", "100"], ["1", "101"], ["2", "102"], ["3", "103"]])
            session.run_script(f"{live_name}.add(new_table([int_col('Id', [2, 9]), int_col('V', [777, 909])]))")
            until("the ticked rows", lambda: rows(page, live),
                  lambda r: r == [["0", "100"], ["1", "101"], ["2", "777"], ["3", "103"], ["9", "909"]])
            until("the live size", lambda: status(live), lambda s: s == "rows 1\u20135 of 5")
            page.screenshot(path=str(shots / "widget-ticked.png"))

            # a rollup: the grand total and the first level; a click opens a group, another closes it
            rollup = ".dh-widget[data-title='rollup']"
            sums = {g: sum(i for i in range(100) if i % 4 == g) for g in range(4)}
            closed = [["\u25be null", "null", str(sum(range(100)))]] + \
                [[f"\u25b8 {g}", "null", str(sums[g])] for g in range(4)]
            until("the rollup", lambda: rows(page, rollup), lambda r: r == closed)
            page.click(f"{rollup} .dh-toggle[data-row='2']")  # G = 1
            opened = closed[:3] + [["1", "1", str(sums[1])]] + closed[3:]
            opened[2] = ["\u25be 1", "null", str(sums[1])]
            until("the opened group", lambda: rows(page, rollup), lambda r: r == opened)
            page.screenshot(path=str(shots / "widget-rollup.png"))
            page.click(f"{rollup} .dh-toggle[data-row='2']")
            until("the closed group", lambda: rows(page, rollup), lambda r: r == closed)
    finally:
        session.unbind(live_name)


def test_widget_python_side(session: Session) -> None:
    """What the browser is sent, without a browser: a LiveTable's widget, the rows of a moved viewport,
    a refused page size, and nothing left on the server after close()."""
    from pydeephaven.widget import widget

    t = session.empty_table(50).update(["Id = ii", "V = (int) ((ii * 37 + 11) % 50)"])
    before = len(session.live_exports())
    with t.subscribe() as live:
        w = widget(live, page=4)
        try:
            until("rows", lambda: w.rows, lambda r: r == [[str(i), str((i * 37 + 11) % 50)] for i in range(4)])
            until("size", lambda: w.size, lambda n: n == 50)
            assert w.columns == [{"name": "Id", "type": "int64"}, {"name": "V", "type": "int32"}]
            w.first = 46
            until("moved", lambda: w.rows, lambda r: [x[0] for x in r] == ["46", "47", "48", "49"])
            w.filters = {"V": "in 11, 12"}
            until("filtered", lambda: (w.size, w.rows), lambda s: s[0] == 2 and {r[1] for r in s[1]} == {"11", "12"})
            assert w.first == 0
        finally:
            w.close()
    until("released", lambda: len(session.live_exports()), lambda n: n <= before)
    with pytest.raises(DHError, match="page must be an int from 1 to 1000"):
        t.widget(page=0)
    with pytest.raises(DHError, match="expected a pydeephaven Table"):
        widget("not a table")
