"""A real JupyterLab on loopback and Debian's headless Chromium driven by Playwright: what the
notebook widget's tests (tests/test_widget.py) and its benchmark (benchmarks/bench_widget.py) run."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from pydeephaven.embedded import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# the flags that keep Chromium off the network (this machine's is closed) and quiet
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def write_notebook(path: Path, cells: Sequence[str]) -> None:
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None}
                    for c in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@contextmanager
def jupyterlab(root: Path, timeout: float = 90.0, app: str = "lab") -> Iterator[tuple[int, str]]:
    """``(port, token)`` of a JupyterLab (``app="notebook"``: a Notebook 7) serving ``root`` (its
    config, runtime and workspace folders under it), stopped by pid on leaving, its kernels shut down
    first."""
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / "cfg"), JUPYTER_RUNTIME_DIR=str(root / "rt"),
               IPYTHONDIR=str(root / "ipy"))
    log_path = root / "lab.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", app, "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--{'LabApp' if app == 'lab' else 'JupyterNotebookApp'}.workspaces_dir={root / 'ws'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{base}/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"JupyterLab did not start: {log_path.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield port, token
    finally:
        try:
            for k in json.load(urllib.request.urlopen(f"{base}/kernels?token={token}", timeout=5)):
                urllib.request.urlopen(urllib.request.Request(f"{base}/kernels/{k['id']}?token={token}",
                                                              method="DELETE"), timeout=10)
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@contextmanager
def notebook_page(port: int, token: str, name: str, app: str = "lab") -> Iterator[Any]:
    """A Playwright page of Debian's headless Chromium with the notebook ``name`` open in ``app``
    (as ``jupyterlab`` took it), its cells run."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/{'lab/tree' if app == 'lab' else 'notebooks'}/{name}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell .jp-InputArea-editor")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            prompts = ".jp-Notebook .jp-CodeCell .jp-InputPrompt"

            dialogs: list[str] = []

            def accept_dialogs() -> None:
                # a busy machine can make JupyterLab ask (e.g. which kernel to start): take its default
                for dialog in page.query_selector_all(".jp-Dialog"):
                    dialogs.append(" ".join(dialog.inner_text().split()))
                    button = dialog.query_selector(".jp-mod-accept")
                    if button is not None:
                        button.click()

            def run_all() -> None:
                accept_dialogs()
                try:
                    page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=10_000)
                    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')", timeout=10_000)
                except PlaywrightTimeout:  # a dialog came up meanwhile: accepted, and asked again, below
                    page.keyboard.press("Escape")

            run_all()
            deadline = time.monotonic() + 180
            asked = time.monotonic()
            while True:
                shown = [p.strip() for p in page.eval_on_selector_all(prompts, "ps => ps.map(p => p.textContent)")]
                if shown and shown[-1] not in ("[ ]:", "[*]:"):
                    break  # the last cell has run
                if time.monotonic() > deadline:
                    raise AssertionError(f"the notebook's cells did not run: {shown}; dialogs: {dialogs}")
                accept_dialogs()
                if all(p == "[ ]:" for p in shown) and time.monotonic() - asked > 15:
                    run_all()  # asked before the kernel was connected, nothing is queued: ask again
                    asked = time.monotonic()
                time.sleep(0.2)
            yield page
        finally:
            browser.close()


def until(what: str, probe: Callable[[], Any], want: Callable[[Any], bool], timeout: float = 90.0,
          page: Any = None) -> Any:
    """``probe()`` once ``want`` holds of it, polled for at most ``timeout`` seconds; the failure
    names what the notebook's cells printed when ``page`` is given."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if want(got):
            return got
        if time.monotonic() > deadline:
            shown = ""
            if page is not None:
                try:
                    shown = f"; the cells' outputs: {outputs(page)}"
                except Exception as e:  # noqa: BLE001 (the failure above is the one to report)
                    shown = f"; the cells' outputs could not be read: {e}"
            raise AssertionError(f"{what}: still {got!r} after {timeout} s{shown}")
        time.sleep(0.05)


def outputs(page: Any) -> list[str]:
    """The text of each cell output of the notebook (errors, printed lines, widget views)."""
    return page.eval_on_selector_all(".jp-OutputArea-output", "els => els.map(e => e.innerText.slice(0, 2000))")


def rows(page: Any, widget: str) -> list[list[str]]:
    """The texts of the rendered rows of the widget selected by ``widget``."""
    return page.eval_on_selector_all(f"{widget} tbody tr",
                                     "trs => trs.map(tr => [...tr.children].map(td => td.textContent))")
