"""table.widget() in a real notebook: JupyterLab started here on loopback, the notebook run in
Debian's headless Chromium (driven by Playwright with the system browser), and the rendered cells
read back: the first rows appear, the mouse wheel and the page buttons move the viewport to the next
rows, a click on a column name sorts on the server, a filter box filters, and a change to a ticking
input table shows up in its cell. Every value is computed here from the formula that made it.

``DH_WIDGET_SCREENSHOTS=dir`` keeps screenshots of these states (docs/ has a set)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from playwright.sync_api import sync_playwright

from pydeephaven import DHError, Session
from pydeephaven.embedded import free_port
from pydeephaven.widget import filter_expression

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
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


def _notebook(path: Path, host: str, port: int, live_name: str) -> None:
    cells = [
        "from pydeephaven import Session\n"
        f"s = Session({host!r}, {port})\n"
        f"t = s.empty_table({N}).update(['Id = ii', 'V = (int) ((ii * 37 + 11) % {N})'])\n"
        f"t.widget(page={PAGE}, title='static')",
        f"s.open_table({live_name!r}).widget(page=5, title='live')",
    ]
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None}
                    for c in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A JupyterLab server on loopback (its own config, runtime and workspace folders), stopped by pid."""
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               IPYTHONDIR=str(tmp_path / "ipy"))
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         f"--LabApp.workspaces_dir={tmp_path / 'ws'}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (tmp_path / "lab.log").read_text()[-2000:]
                    raise AssertionError(f"JupyterLab did not start: {log_text}") from None
                time.sleep(0.3)
        yield port, token
    finally:
        try:  # the kernels first, so that their sessions close
            kernels = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernels?token={token}", timeout=5))
            for k in kernels:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels/{k['id']}?token={token}",
                                             method="DELETE")
                urllib.request.urlopen(req, timeout=10)
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _until(what: str, probe: Callable[[], Any], want: Callable[[Any], bool], timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if want(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {got!r} after {timeout} s")
        time.sleep(0.2)


def test_widget_in_jupyterlab(server, session: Session, lab: tuple[int, str], tmp_path: Path) -> None:
    live_name = f"widget_live_{secrets.token_hex(4)}"
    session.run_script(
        "from deephaven import input_table, new_table, dtypes as dht\n"
        "from deephaven.column import int_col\n"
        f"{live_name} = input_table({{'Id': dht.int32, 'V': dht.int32}}, key_cols=['Id'])\n"
        f"{live_name}.add(new_table([int_col('Id', [0, 1, 2, 3]), int_col('V', [100, 101, 102, 103])]))")
    shots = Path(os.environ.get("DH_WIDGET_SCREENSHOTS", str(tmp_path)))
    shots.mkdir(parents=True, exist_ok=True)
    port, token = lab
    _notebook(tmp_path / "widget.ipynb", server.host, server.port, live_name)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(f"http://127.0.0.1:{port}/lab/tree/widget.ipynb?token={token}")
                page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
                _until("the kernel", lambda: page.inner_text("#jp-main-statusbar"),
                       lambda s: "Idle" in s)
                page.click(".jp-Notebook .jp-Cell .jp-InputArea-editor")
                page.keyboard.press("Shift+Enter")
                page.keyboard.press("Shift+Enter")
                static = ".dh-widget[data-title='static']"
                live = ".dh-widget[data-title='live']"

                def rows(sel: str) -> list[list[str]]:
                    return page.eval_on_selector_all(
                        f"{sel} tbody tr", "trs => trs.map(tr => [...tr.children].map(td => td.textContent))")

                def status(sel: str) -> str:
                    return page.inner_text(f"{sel} .dh-status") if page.query_selector(f"{sel} .dh-status") else ""

                def expect(ids: list[int]) -> list[list[str]]:
                    return [[str(i), str(v_of(i))] for i in ids]

                # the first rows, the types, the size
                got = _until("the first rows", lambda: rows(static), lambda r: len(r) == PAGE)
                assert got == expect(list(range(PAGE)))
                assert page.eval_on_selector_all(f"{static} .dh-type", "els => els.map(e => e.textContent)") == \
                    ["int64", "int32"]
                _until("the size", lambda: status(static), lambda s: s == f"rows 1\u2013{PAGE} of {N}")
                page.screenshot(path=str(shots / "widget-rows.png"))

                # the wheel moves the viewport 3 rows, the page button a page: new rows from the server
                page.hover(f"{static} .dh-scroller")
                page.mouse.wheel(0, 200)
                _until("rows after the wheel", lambda: rows(static), lambda r: r == expect(list(range(3, 3 + PAGE))))
                page.click(f"{static} .dh-next")
                _until("the next page", lambda: rows(static),
                       lambda r: r == expect(list(range(3 + PAGE, 3 + 2 * PAGE))))
                assert status(static) == f"rows {4 + PAGE}\u2013{3 + 2 * PAGE} of {N}"
                page.click(f"{static} .dh-end")
                _until("the last rows", lambda: rows(static), lambda r: r == expect(list(range(N - PAGE, N))))
                page.screenshot(path=str(shots / "widget-scrolled.png"))

                # sorting on the server: ascending, then descending (back to the first rows)
                by_v = sorted(range(N), key=v_of)
                page.click(f"{static} th[data-column='V'] .dh-name")
                _until("sorted ascending", lambda: rows(static), lambda r: r == expect(by_v[:PAGE]))
                page.click(f"{static} th[data-column='V'] .dh-name")
                _until("sorted descending", lambda: rows(static), lambda r: r == expect(by_v[::-1][:PAGE]))
                assert page.inner_text(f"{static} th[data-column='V'] .dh-name").endswith("\u25bc")
                page.screenshot(path=str(shots / "widget-sorted.png"))

                # a filter box: V < 5, still sorted descending
                page.fill(f"{static} input.dh-filter[data-column='V']", "< 5")
                page.press(f"{static} input.dh-filter[data-column='V']", "Enter")
                kept = [i for i in by_v[::-1] if v_of(i) < 5]
                _until("filtered", lambda: rows(static), lambda r: r == expect(kept))
                _until("the filtered size", lambda: status(static),
                       lambda s: s == f"rows 1\u2013{len(kept)} of {len(kept)}")
                page.fill(f"{static} input.dh-filter[data-column='V']", "< oops")
                page.press(f"{static} input.dh-filter[data-column='V']", "Enter")
                _until("a refused filter", lambda: page.inner_text(f"{static} .dh-error"),
                       lambda s: "not a number" in s)
                assert rows(static) == expect(kept)  # the view stayed as it was

                # ticks: the input table changes on the server, the cell follows
                _until("the live rows", lambda: rows(live), lambda r: r == [["0", "100"], ["1", "101"], ["2", "102"],
                                                                            ["3", "103"]])
                session.run_script(f"{live_name}.add(new_table([int_col('Id', [2, 9]), int_col('V', [777, 909])]))")
                _until("the ticked rows", lambda: rows(live),
                       lambda r: r == [["0", "100"], ["1", "101"], ["2", "777"], ["3", "103"], ["9", "909"]])
                _until("the live size", lambda: status(live), lambda s: s == "rows 1\u20135 of 5")
                page.screenshot(path=str(shots / "widget-ticked.png"))
            finally:
                browser.close()
    finally:
        session.unbind(live_name)
