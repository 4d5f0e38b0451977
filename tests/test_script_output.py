"""A script's printed output, the server's log stream and a script's timeout, through both APIs
against the real server; the expected lines are written out here, beside the scripts that print
them."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from pydeephaven import DeadlineExceededError, DHError, ServerError
from pydeephaven.dherror import ArgumentError, ScriptTimeoutError


def _token(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def test_output_lines_in_order(api) -> None:
    tok = _token()
    script = ("import sys\n"
              f"print('{tok} one')\n"
              f"print('{tok} two', file=sys.stderr)\n"
              f"for i in range(3):\n"
              f"    print('{tok} loop', i * 7)\n"
              f"print('{tok} a\\n{tok} b')\n"
              f"sys.stderr.write('{tok} err end\\n')\n"
              f"print('{tok}', 'part', end='')\n"
              f"print(' joined')\n")
    expected = [(f"{tok} one", "STDOUT"), (f"{tok} two", "STDERR")]
    expected += [(f"{tok} loop {i * 7}", "STDOUT") for i in range(3)]
    expected += [(f"{tok} a", "STDOUT"), (f"{tok} b", "STDOUT"), (f"{tok} err end", "STDERR"),
                 (f"{tok} part joined", "STDOUT")]
    res = await api.run(api.s.run_script(script, capture_output=True))
    assert list(res.output) == [line for line, _ in expected]
    assert [(e.message, e.level) for e in res.output_entries] == expected
    assert all(res.start // 1000 - 1000 <= e.time <= res.end // 1000 for e in res.output_entries)
    # without capture_output there is none
    plain = await api.run(api.s.run_script(f"print('{tok} not captured')"))
    assert plain.output is None and plain.output_entries is None
    # a script that prints nothing has an empty output, not the lines of the one before
    quiet = await api.run(api.s.run_script("quiet_value = 3", capture_output=True))
    assert quiet.output == ()
    # back to back: each capture holds its own script's lines only
    for i in range(5):
        await api.run(api.s.run_script(f"print('{tok} plain {i}')"))
        res = await api.run(api.s.run_script(f"print('{tok} captured {i}')", capture_output=True))
        assert res.output == (f"{tok} captured {i}",)


async def test_output_of_many_lines(api) -> None:
    """More lines than the server's log history holds (about a thousand): all of them, in order."""
    n = 3000
    res = await api.run(api.s.run_script(f"for i in range({n}):\n    print('row', i, i * i)", capture_output=True))
    assert res.output == tuple(f"row {i} {i * i}" for i in range(n))


async def test_output_of_a_failing_script_is_kept_in_the_error(api) -> None:
    tok = _token()
    script = ("import sys\n"
              f"print('{tok} before')\n"
              f"print('{tok} warning', file=sys.stderr)\n"
              "x = 1 / 0\n"
              f"print('{tok} never')\n")
    with pytest.raises(ServerError) as info:
        await api.run(api.s.run_script(script, capture_output=True))
    err = info.value
    assert type(err) is ServerError and err.code is None
    assert err.output == (f"{tok} before", f"{tok} warning")
    text = str(err)
    assert f"{tok} before" in text and f"{tok} warning" in text and "ZeroDivisionError" in text
    assert f"{tok} never" not in text
    # without capture_output the error has the server's message and no output
    with pytest.raises(ServerError) as info:
        await api.run(api.s.run_script(script))
    assert info.value.output is None and "ZeroDivisionError" in str(info.value)


async def test_timeout_stops_a_running_script_on_the_server(api) -> None:
    name = _token("after_loop")
    tok = _token()
    script = ("import time\n"
              f"print('{tok} started')\n"
              "for _ in range(3000):\n"   # 300 s unless stopped
              "    time.sleep(0.1)\n"
              "from deephaven import empty_table\n"
              f"{name} = empty_table(1)\n")
    with pytest.raises(ScriptTimeoutError) as info:
        await api.run(api.s.run_script(script, capture_output=True, timeout=1.5))
    err = info.value
    assert isinstance(err, DeadlineExceededError)
    assert err.cancelled is True and err.timeout == 1.5
    assert "stopped on the server" in str(err) and "1.5 s" in str(err)
    assert err.output == (f"{tok} started",)
    # the session goes on: the next script runs (the server's script thread is free again) ...
    res = await api.run(api.s.run_script("x_after_timeout = 1\nprint(x_after_timeout + 41)", capture_output=True))
    assert res.output == ("42",)
    # ... and the stopped script never got to its last line
    assert name not in await api.run(api.s.tables)
    # an `except Exception` in the script does not swallow the stop
    with pytest.raises(ScriptTimeoutError) as info:
        await api.run(api.s.run_script("import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
                                       "    except Exception:\n        pass\n", timeout=1))
    assert info.value.cancelled is True
    assert (await api.run(api.s.run_script("print('free')", capture_output=True))).output == ("free",)


async def test_timeout_in_a_blocking_call(api) -> None:
    """A script inside one long sleep: the caller gets its error after the timeout (and the
    grace), the server stops the script when the sleep returns."""
    name = _token("after_sleep")
    tok = _token()
    script = f"import time\nprint('{tok} sleeping')\ntime.sleep(6)\nfrom deephaven import empty_table\n" \
             f"{name} = empty_table(1)\n"
    with pytest.raises(ScriptTimeoutError) as info:
        await api.run(api.s.run_script(script, capture_output=True, timeout=1))
    err = info.value
    assert err.cancelled is False
    assert "blocking call" in str(err) and "1 s" in str(err)
    assert err.output == (f"{tok} sleeping",)
    # the next script waits for the sleep to end, then runs; the stopped one made nothing
    res = await api.run(api.s.run_script(f"print({name!r} in globals())", capture_output=True))
    assert res.output == ("False",)
    assert name not in await api.run(api.s.tables)


async def test_run_script_arguments_checked_before_any_call(api) -> None:
    for bad in (0, -1, "5", True):
        text = await api.no_round_trip(lambda bad=bad: api.s.run_script("x = 1", timeout=bad))
        assert "timeout" in text
    with pytest.raises(ArgumentError):
        await api.run(api.s.run_script("x = 1", timeout=0))


async def test_logs_sees_a_printed_line(api) -> None:
    tok = _token()
    stream = api.s.logs(levels=["STDOUT"], since=time.time() - 5, timeout=60)
    seen: list = []
    if api.is_async:
        async with stream:
            first = asyncio.ensure_future(stream.__anext__())  # the subscription starts with the first read
            await asyncio.sleep(0)
            await api.run(api.s.run_script(f"print('{tok} logged')"))
            entry = await first
            while tok not in entry.message:
                entry = await stream.__anext__()
            seen.append(entry)
    else:
        with stream:
            await api.run(api.s.run_script(f"print('{tok} logged')"))
            for entry in stream:
                if tok in entry.message:
                    seen.append(entry)
                    break
    assert [(e.level, e.message) for e in seen] == [("STDOUT", f"{tok} logged")]
    assert seen[0].time > (time.time() - 120) * 1e6


async def test_logs_ends_at_its_timeout(api) -> None:
    """An iteration bounded by the caller ends by itself (a level no record has: none arrives)."""
    stream = api.s.logs(levels=["NO_SUCH_LEVEL"], timeout=1)
    if api.is_async:
        got = [e async for e in stream]
    else:
        got = list(stream)
    assert got == []


async def test_on_log_calls_back_with_a_printed_line(api) -> None:
    tok = _token()
    got: list = []
    sub = await api.run(api.s.on_log(got.append, levels=["STDOUT", "STDERR"], since=time.time() - 5))
    try:
        assert sub.is_active
        await api.run(api.s.run_script(f"import sys\nprint('{tok} out')\nprint('{tok} err', file=sys.stderr)"))
        deadline = time.monotonic() + 30
        while sum(tok in e.message for e in got) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        mine = [(e.level, e.message) for e in got if tok in e.message]
        assert mine == [("STDOUT", f"{tok} out"), ("STDERR", f"{tok} err")]
    finally:
        sub.close()
    deadline = time.monotonic() + 10
    while sub.is_active and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not sub.is_active and sub.error is None
    sub.cancel()  # idempotent
    text = await api.no_round_trip(lambda: api.s.on_log("not callable"))
    assert "callable" in text
    text = await api.no_round_trip(lambda: api.s.on_log(got.append, levels="STDOUT"))
    assert "levels" in text


async def test_log_streams_end_with_their_session(api) -> None:
    other = await api.session()
    sub = await api.run(other.on_log(lambda e: None))
    stream = other.logs(timeout=60)
    if api.is_async:
        first = asyncio.ensure_future(stream.__anext__())
        await first  # the history replay: at least the server's start-up lines
    else:
        next(stream)
    await api.run(other.close())
    deadline = time.monotonic() + 10
    while sub.is_active and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not sub.is_active
    if api.is_async:
        rest = [e async for e in stream]  # what was queued before the close, then the end
    else:
        rest = list(stream)
    assert isinstance(rest, list)
    leftover = [t.name for t in threading.enumerate()
                if t.name in ("pydeephaven-logs", "pydeephaven-on_log", "pydeephaven-run_script")
                and t.is_alive()]
    assert leftover == []
    with pytest.raises(DHError, match="closed"):
        await api.run(other.on_log(lambda e: None))
