"""``pydeephaven_ticking.table_listener`` as the add-on names it; everything lives in
``pydeephaven.ticking``."""

from pydeephaven.ticking import (  # noqa: F401
    ColDictType,
    DictGeneratorType,
    TableListener,
    TableListenerHandle,
    TableUpdate,
    listen,
)

__all__ = ["ColDictType", "DictGeneratorType", "TableListener", "TableListenerHandle", "TableUpdate", "listen"]
