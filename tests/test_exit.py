"""The interpreter exits promptly when a program leaves a session open, whatever way it ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent("""
    import sys, time
    import pyarrow as pa
    from pydeephaven import Session, DHError
    s = Session("{host}", {port})
    begin = time.time_ns() - 2_000_000_000  # 2 s ago: about 200 rows at the first cycle
    ticking = s.time_table(10_000_000, start_time=begin)
    t = s.import_table(pa.table({{"A": list(range(1000))}}))
    assert t.to_arrow().column("A").to_pylist() == list(range(1000))
    deadline = time.monotonic() + 20
    got = ticking.to_arrow()
    while got.num_rows == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        got = ticking.to_arrow()
    stamps = [v.value for v in got.column("Timestamp")]
    assert stamps and stamps == [begin + 10_000_000 * i for i in range(len(stamps))], stamps[:3]
    how = sys.argv[1]
    if how == "exception":
        raise RuntimeError("boom")
    if how == "systemexit":
        sys.exit(3)
    if how == "failed-op":
        s.open_table("no_such_table_for_exit_test")
    if how == "second-session":
        s2 = Session("{host}", {port})
        s2.empty_table(1).to_arrow()
    print("done")
""")


@pytest.mark.parametrize("how, code", [("normal", 0), ("exception", 1), ("systemexit", 3), ("failed-op", 1),
                                       ("second-session", 0)])
def test_exit_is_prompt_with_an_open_session(server, tmp_path, how, code) -> None:
    path = tmp_path / "prog.py"
    path.write_text(SCRIPT.format(host=server.host, port=server.port))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(path), how], capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - start
    assert proc.returncode == code, proc.stderr
    assert seconds < 20, f"exit took {seconds:.1f} s"
    if how == "failed-op":
        assert "no_such_table_for_exit_test" in proc.stderr
