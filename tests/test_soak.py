"""The soak of issue #18, short form (about 2.5 minutes): one server restart (SIGKILL, started again
on the same port) and six proxy faults (drop_all, blackhole, delay, twice), four workers (two sync
Sessions, two AsyncSessions) doing mixed operations and two live subscriptions, every result
checked (tests/support/soak.py). The full soak is ``python scripts/soak.py`` (10 minutes, a
restart every 2 minutes). ``pytest -s`` prints the figures."""

from __future__ import annotations

import pytest

from tests.support.soak import OP_KINDS, run_soak


@pytest.mark.soak
@pytest.mark.timeout(420)
def test_soak_short() -> None:
    report = run_soak(seconds=80.0, restart_every=40.0, faults_between=3, heap="1g", settle_seconds=90.0,
                      log=lambda line: print(f"[soak] {line}", flush=True))
    print("\n" + report.summary())
    assert report.problems == [], "\n".join(report.problems)
    assert report.restarts == 1
    assert sorted(f.kind for f in report.faults if f.kind != "restart") == sorted(
        ["drop_all", "blackhole", "delay"] * 2)
    assert all(report.ops[kind] > 0 for kind in OP_KINDS), report.ops
    # the restart and the two drop_all each cut the subscriptions' streams, and the schedule waits
    # for both to resume before the next fault: at least three resumes each, one per stream resumed
    assert report.reconnects["subscriptions"] >= 3, report.reconnects
    assert all(report.resumes[name] >= 3 for name in ("listener", "LiveTable")), report.resumes
    assert sum(report.resumes.values()) == report.streams_resumed, (report.resumes, report.streams_resumed)
    assert all(v >= 1 for v in report.reconnects.values()), report.reconnects
    assert report.threads_left == []
    assert all(before == after for before, after in report.exports.values()), report.exports
