"""Write a snapshot of the official pydeephaven client's API (names and signatures) as JSON.

The official wheel's source is read with ``ast`` (never imported), so the snapshot needs neither
the official package installed nor its dependencies. ``tests/test_api_surface.py`` compares our
installed package against the snapshot.

    pip download --no-deps pydeephaven==42.7 -d /tmp/off && python -m zipfile -e /tmp/off/*.whl /tmp/off/wheel
    python scripts/official_api.py /tmp/off/wheel [tests/data/official_api.json]

What is recorded, per module of the official package (public modules, plus the private ones
listed in EXTRA_MODULES that other packages import):
- ``names``: public top-level names: functions, classes, assigned names (not loggers), and the
  names the module imports from the package's public modules (``from pydeephaven.session import
  SharedTicket`` works there);
- ``functions``: parameters of each public function;
- ``classes``: for each public class, its public methods (with parameters, ``__init__``
  included), properties, and attributes (class-level assignments, enum members, and the public
  ``self.X = ...`` of its methods).
A parameter is ``[name, kind, default]``: kind is one of posonly, pos, vararg, kwonly, varkw; the
default is the source text of the default expression, or None when there is none.
EXTRA_NAMES lists private names that the official test suite or published packages use.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any, Optional

#: private modules that published packages import (the Enterprise client: _table_ops.FetchTableOp)
EXTRA_MODULES = ["pydeephaven._table_ops"]

#: private names used by the official test suite (v42.4 py/client/tests) and published packages
EXTRA_NAMES = {
    "pydeephaven.filters": ["_CompareFilter", "_to_proto_value", "_datetime_to_nanos"],
}
#: private attributes of classes that the suite or published packages use
EXTRA_ATTRIBUTES = {
    "pydeephaven.session.Session": ["_r_lock"],
    "pydeephaven.filters._CompareFilter": ["_op"],
}


def _public(name: str) -> bool:
    return not name.startswith("_")


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[list[Optional[str]]]:
    a = fn.args
    out: list[list[Optional[str]]] = []
    positional = list(a.posonlyargs) + list(a.args)
    defaults: list[Optional[ast.expr]] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    for i, (arg, default) in enumerate(zip(positional, defaults)):
        kind = "posonly" if i < len(a.posonlyargs) else "pos"
        out.append([arg.arg, kind, ast.unparse(default) if default is not None else None])
    if a.vararg:
        out.append([a.vararg.arg, "vararg", None])
    for arg, kw_default in zip(a.kwonlyargs, a.kw_defaults):
        out.append([arg.arg, "kwonly", ast.unparse(kw_default) if kw_default is not None else None])
    if a.kwarg:
        out.append([a.kwarg.arg, "varkw", None])
    if out and out[0][0] in ("self", "cls"):
        out = out[1:]
    return out


def _decorators(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    return {ast.unparse(d) for d in fn.decorator_list}


def _class_facts(node: ast.ClassDef, extra_attrs: list[str]) -> dict[str, Any]:
    methods: dict[str, Any] = {}
    properties: set[str] = set()
    attributes: set[str] = set(extra_attrs)
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decos = _decorators(item)
            if "property" in decos:
                if _public(item.name):
                    properties.add(item.name)
            elif any(d.endswith(".setter") or d.endswith(".deleter") for d in decos):
                pass
            elif _public(item.name) or item.name == "__init__":
                methods[item.name] = _params(item)
            for sub in ast.walk(item):
                if isinstance(sub, (ast.Assign, ast.AnnAssign)):
                    targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                    for t in [e for x in targets for e in (x.elts if isinstance(x, ast.Tuple) else [x])]:
                        if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                                and _public(t.attr)):
                            attributes.add(t.attr)
        elif isinstance(item, (ast.Assign, ast.AnnAssign)):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            for t in [e for x in targets for e in (x.elts if isinstance(x, ast.Tuple) else [x])]:
                if isinstance(t, ast.Name) and _public(t.id):
                    attributes.add(t.id)
    attributes -= properties
    attributes -= set(methods)
    return {"bases": [ast.unparse(b) for b in node.bases], "methods": methods, "properties": sorted(properties),
            "attributes": sorted(attributes)}


def module_facts(name: str, source: str) -> dict[str, Any]:
    tree = ast.parse(source)
    extra = set(EXTRA_NAMES.get(name, []))
    names: set[str] = set()
    functions: dict[str, Any] = {}
    classes: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if _public(node.name) or node.name in extra:
                names.add(node.name)
                functions[node.name] = _params(node)
        elif isinstance(node, ast.ClassDef):
            if _public(node.name) or node.name in extra:
                names.add(node.name)
                classes[node.name] = _class_facts(node, EXTRA_ATTRIBUTES.get(f"{name}.{node.name}", []))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            if node.value is not None and "getLogger" in ast.unparse(node.value):
                continue  # a module's logger is not API
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in [e for x in targets for e in (x.elts if isinstance(x, ast.Tuple) else [x])]:
                if isinstance(t, ast.Name) and (_public(t.id) or t.id in extra) and t.id != "__all__":
                    names.add(t.id)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            own = node.level > 0 or mod == "pydeephaven" or mod.startswith("pydeephaven.")
            # names re-exported from the package's public modules (a private source module's
            # helpers, such as _utils.to_list, are not part of the API)
            if own and all(_public(p) for p in mod.split(".")[1 if node.level == 0 else 0:] if p):
                for alias in node.names:
                    n = alias.asname or alias.name
                    if _public(n):
                        names.add(n)
    return {"names": sorted(names), "functions": functions, "classes": classes}


def snapshot(wheel_dir: Path) -> dict[str, Any]:
    root = wheel_dir / "pydeephaven"
    if not root.is_dir():
        raise SystemExit(f"{root} is not a directory: give the folder the official wheel was unpacked into")
    modules: dict[str, Any] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(wheel_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if not all(_public(p) for p in parts[1:]) and name not in EXTRA_MODULES:
            continue
        modules[name] = module_facts(name, path.read_text(encoding="utf-8"))
    version = "?"
    for info in wheel_dir.glob("pydeephaven-*.dist-info"):
        version = info.name.removeprefix("pydeephaven-").removesuffix(".dist-info")
    return {"source": f"pydeephaven {version} wheel, read with ast by scripts/official_api.py",
            "modules": modules}


def main(argv: list[str]) -> int:
    wheel_dir = Path(argv[1]) if len(argv) > 1 else Path("/tmp/off/wheel")
    out = Path(argv[2]) if len(argv) > 2 else Path(__file__).resolve().parent.parent / "tests/data/official_api.json"
    data = snapshot(wheel_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    n = sum(len(m["names"]) for m in data["modules"].values())
    print(f"{out}: {len(data['modules'])} modules, {n} names ({data['source']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
