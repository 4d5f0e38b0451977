"""Our package against a snapshot of the official 42.7 client's API (tests/data/official_api.json,
written by scripts/official_api.py from the official wheel's source).

Every official module, name, class method, property and attribute must exist in ours; every
official parameter must exist in ours at the same position (positional ones) with a compatible
default. Ours may add parameters after the official ones, if they have defaults or are keyword-only.
No server needed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any, Optional

import pytest

SNAPSHOT = json.loads((Path(__file__).parent / "data" / "official_api.json").read_text(encoding="utf-8"))
MODULES: dict[str, Any] = SNAPSHOT["modules"]

_EMPTY = ("None", "[]", "()", "''", '""', "{}")

#: Differences kept on purpose, each with its reason. A difference found and not listed fails.
KNOWN_DIFFERENCES = {
    # Both stream classes are made by PluginClient, never by users; ours wrap our transport's call
    # (typed errors, close) instead of the official raw queue and gRPC iterator.
    "pydeephaven.experimental.plugin_client.PluginRequestStream.__init__",
    "pydeephaven.experimental.plugin_client.PluginRequestStream.req_queue",
    "pydeephaven.experimental.plugin_client.PluginResponseStream.__init__",
    "pydeephaven.experimental.plugin_client.PluginResponseStream.stream_resp",
    "pydeephaven.experimental.plugin_client.PluginResponseStream.session",
}


def _known(problem: str) -> bool:
    return problem.split(":", 1)[0] in KNOWN_DIFFERENCES


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return _Unevaluated(text)


class _Unevaluated(str):
    """A default the snapshot holds only as source text (e.g. ``SortDirection.ASCENDING``)."""


def default_compatible(official: Optional[str], ours: Any) -> bool:
    """Whether our default may stand for the official one."""
    if official is None:
        return True  # official requires the argument: any default of ours is more lenient
    if ours is inspect.Parameter.empty:
        return False
    value = _literal(official)
    if isinstance(value, _Unevaluated):
        # e.g. an enum member: compare by the member name at the end of the expression
        tail = official.rsplit(".", 1)[-1]
        return getattr(ours, "name", repr(ours)) == tail or repr(ours).endswith(tail)
    if official in _EMPTY and ours in (None, [], (), "", {}):
        return True  # "nothing given": None and an empty list mean the same to the API
    if isinstance(value, bool) or isinstance(ours, bool):
        return type(value) is type(ours) and value == ours
    return bool(value == ours)


def signature_problems(where: str, official: list[list[Any]], func: Any) -> list[str]:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as e:
        return [f"{where}: no signature ({e})"]
    params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
    ours_by_name = {p.name: p for p in params}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
    has_varkw = any(p.kind == p.VAR_KEYWORD for p in params)
    problems = []
    official_pos = [p for p in official if p[1] in ("posonly", "pos")]
    for i, (name, _kind, default) in enumerate(official_pos):
        if i >= len(positional):
            if not has_varargs:
                problems.append(f"{where}: missing positional parameter {name!r} (position {i})")
            continue
        ours = positional[i]
        if ours.name != name:
            problems.append(f"{where}: parameter {i} is {ours.name!r}, the official one {name!r}")
            continue
        if not default_compatible(default, ours.default):
            problems.append(f"{where}: parameter {name!r} defaults to {ours.default!r}, officially {default}")
    for name, kind, default in official:
        if kind == "kwonly":
            ours_p = ours_by_name.get(name)
            if ours_p is None:
                if not has_varkw:
                    problems.append(f"{where}: missing keyword parameter {name!r}")
            elif not default_compatible(default, ours_p.default):
                problems.append(f"{where}: parameter {name!r} defaults to {ours_p.default!r}, officially {default}")
        elif kind == "vararg" and not has_varargs:
            problems.append(f"{where}: takes no *{name}")
        elif kind == "varkw" and not has_varkw:
            problems.append(f"{where}: takes no **{name}")
    # what ours adds after the official parameters must be optional
    for p in positional[len(official_pos):]:
        if p.default is inspect.Parameter.empty and p.name not in {o[0] for o in official}:
            problems.append(f"{where}: our extra parameter {p.name!r} is required")
    return problems


def _instance_attributes(cls: type) -> set[str]:
    """The ``self.X = ...`` names in the methods of ``cls`` and its bases (our source, read with ast)."""
    names: set[str] = set()
    for klass in inspect.getmro(cls):
        if klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            targets: list[Any] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for t in [e for x in targets for e in (x.elts if isinstance(x, ast.Tuple) else [x])]:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    names.add(t.attr)
    return names


def class_problems(where: str, facts: dict[str, Any], cls: Any) -> list[str]:
    if not inspect.isclass(cls):
        return [f"{where}: ours is not a class ({type(cls).__name__})"]
    problems = []
    for name, params in facts["methods"].items():
        member = inspect.getattr_static(cls, name, None)
        if member is None:
            problems.append(f"{where}.{name}: missing method")
            continue
        func = getattr(cls, name)
        if name == "__init__" and func is object.__init__:
            if params:
                problems.append(f"{where}.__init__: takes no parameters, officially {[p[0] for p in params]}")
            continue
        problems += signature_problems(f"{where}.{name}", params, func)
    attrs: Optional[set[str]] = None
    for name in facts["properties"] + facts["attributes"]:
        if inspect.getattr_static(cls, name, None) is not None or name in getattr(cls, "__members__", {}):
            continue
        if attrs is None:
            attrs = _instance_attributes(cls)
        if name not in attrs and name not in getattr(cls, "__dataclass_fields__", {}):
            problems.append(f"{where}.{name}: missing attribute or property")
    return problems


@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_module_matches_official(module_name: str) -> None:
    facts = MODULES[module_name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        pytest.fail(f"{module_name}: the official module cannot be imported from ours: {e}")
    problems = []
    for name in facts["names"]:
        if not hasattr(module, name):
            problems.append(f"{module_name}.{name}: missing")
    for name, params in facts["functions"].items():
        if hasattr(module, name):
            problems += signature_problems(f"{module_name}.{name}", params, getattr(module, name))
    for name, class_facts in facts["classes"].items():
        if hasattr(module, name):
            problems += class_problems(f"{module_name}.{name}", class_facts, getattr(module, name))
    problems = [p for p in problems if not _known(p)]
    assert not problems, f"{len(problems)} differences from the official API:\n" + "\n".join(problems)


def test_snapshot_covers_the_official_surface() -> None:
    """The snapshot is not empty or truncated: it names the modules and calls everyone uses."""
    assert {"pydeephaven", "pydeephaven.session", "pydeephaven.table", "pydeephaven.query", "pydeephaven.agg",
            "pydeephaven.updateby", "pydeephaven.filters", "pydeephaven.utils",
            "pydeephaven._table_ops"} <= set(MODULES)
    session = MODULES["pydeephaven.session"]["classes"]["Session"]
    assert {"open_table", "import_table", "run_script", "wrap_rpc"} <= set(session["methods"])
    assert "table_service" in session["properties"] and "_r_lock" in session["attributes"]
    assert [p[0] for p in session["methods"]["__init__"]][:4] == ["host", "port", "auth_type", "auth_token"]


def test_the_checker_finds_differences() -> None:
    """The comparison itself can fail: a renamed, a missing and a re-defaulted parameter are caught."""
    official = [["num_rows", "pos", None], ["by", "pos", "None"]]

    def renamed(n, cols=None):  # noqa: ANN001, ANN202
        return None

    def missing(num_rows):  # noqa: ANN001, ANN202
        return None

    def redefaulted(num_rows, by="X"):  # noqa: ANN001, ANN202
        return None

    def same(num_rows, by=None, extra=1):  # noqa: ANN001, ANN202
        return None

    assert signature_problems("f", official, renamed)
    assert signature_problems("f", official, missing)
    assert signature_problems("f", official, redefaulted)
    assert signature_problems("f", official, same) == []
