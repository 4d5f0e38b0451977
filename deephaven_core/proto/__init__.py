"""``deephaven_core.proto.<name>_pb2``: the official client's import path for the generated protocol
modules, kept for programs and tests written against it.

There is one set of generated modules, ``pydeephaven._proto``: the server's message names can be
registered only once per process, so each ``deephaven_core.proto.X`` is the very module
``pydeephaven._proto.X`` (same module object, same message classes), not a copy.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import pydeephaven._proto as _generated

__all__: list[str] = []

for _info in pkgutil.iter_modules(_generated.__path__):
    _module = importlib.import_module(f"{_generated.__name__}.{_info.name}")
    sys.modules[f"{__name__}.{_info.name}"] = _module
    globals()[_info.name] = _module
    __all__.append(_info.name)
del _info, _module
