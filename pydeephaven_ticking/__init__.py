"""Compatibility name for code written for the ``pydeephaven-ticking`` add-on: its
``pydeephaven_ticking.table_listener`` module is served by ``pydeephaven.ticking``, in pure Python."""
