"""The core: what the sync and the asyncio APIs share, written once and free of I/O.

Each operation that takes server calls is a *flow*: a generator that yields descriptions of the
calls it needs (``calls.Unary``, ``calls.Stream``, ``calls.Blocking``, ``calls.Do``) and is sent
their results, or has their errors thrown into it, so that checks, cleanup and error messages are
written once. ``Session`` drives flows with ``calls.drive`` and ``AsyncSession`` with
``calls.drive_async``; each performs the calls with its own transport. Nothing here opens a channel,
starts a thread or touches an event loop.
"""
