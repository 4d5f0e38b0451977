"""Barrage, the Deephaven extension of Arrow Flight that streams table updates: wire formats
(``messages``, ``rowset``, ``arrays``), the DoExchange stream (``stream``), the client copy of a
table and how updates change it (``state``), and the subscription engine (``subscription``).
The public API is ``pydeephaven.ticking``."""
