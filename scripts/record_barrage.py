"""Record the Barrage messages of a few subscriptions whose contents are known from how their tables
are made (tests/support/barrage_cases.py), for the offline tests (tests/test_offline_barrage.py).

    python scripts/record_barrage.py PORT [--out tests/data/barrage]

against a Deephaven server on 127.0.0.1:PORT. What is recorded is exactly what the subscription
engine feeds its assembler: every message ``Assembler.feed`` receives (a serialized FlightData), in
order, by a subclass of ``Assembler`` put in its place for the run. Each step (the first snapshot, an
input-table change, a viewport move) is confirmed twice before the next starts: by the server
(``to_arrow()``, another path than Barrage) and by the live copy; the number of messages fed so far
is then written down as the step's mark. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: pydeephaven and tests.support

from pydeephaven import Session  # noqa: E402
from pydeephaven._barrage import messages, stream  # noqa: E402
from pydeephaven._barrage.subscription import Spec, Subscription, viewport_rowset  # noqa: E402
from tests.support import barrage_cases as bc  # noqa: E402

TIMEOUT = 30.0
QUIET = 0.5  # after a step is confirmed: time for any late message of it to arrive before the mark


class RecordingAssembler(stream.Assembler):
    """An Assembler that keeps a copy of every message it is fed."""

    made: list["RecordingAssembler"] = []

    def __init__(self, schema: pa.Schema) -> None:
        super().__init__(schema)
        self.fed: list[bytes] = []
        RecordingAssembler.made.append(self)

    def feed(self, data: bytes) -> Any:
        self.fed.append(bytes(data))
        return super().feed(data)


def wait_until(what: str, ok: Callable[[], bool], describe: Callable[[], str], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not reached within {timeout} s: {describe()}")
        time.sleep(0.05)


class Recorder:
    """One subscription whose assembler is recorded."""

    def __init__(self, session: Session, table: Any, name: str, spec: Spec,
                 options: messages.SubscriptionOptions = messages.SubscriptionOptions()) -> None:
        self.name = name
        self.table = table
        self.error: Optional[BaseException] = None
        self.marks: list[int] = []
        before = len(RecordingAssembler.made)
        self.sub = Subscription(session, table.ticket.bytes, table.schema, spec, lambda applied: None,
                                self._ended, options, name=name)
        self.sub.start()
        if len(RecordingAssembler.made) != before + 1:
            raise SystemExit(f"{name}: the subscription did not make one assembler")
        self.assembler = RecordingAssembler.made[-1]

    def _ended(self, error: BaseException) -> None:
        self.error = error

    def rows(self) -> list[dict]:
        state, cols, error = self.sub.current()
        if error is not None:
            raise SystemExit(f"{self.name}: the subscription ended: {error}")
        names = [state.schema.field(i).name for i in cols]
        return pa.Table.from_arrays([state.columns[i] for i in cols], names=names).to_pylist()

    def step_done(self, expected: list[dict], server_rows: Callable[[], list[dict]]) -> None:
        """Wait for the server and then the live copy to show ``expected``; mark the step."""
        wait_until(f"{self.name} (server)", lambda: server_rows() == expected, lambda: str(server_rows()))
        wait_until(f"{self.name} (live copy)", lambda: self.sub.updates > 0 and self.rows() == expected,
                   lambda: str(self.rows()))
        time.sleep(QUIET)
        self.marks.append(len(self.assembler.fed))

    def save(self, out: Path) -> Path:
        self.sub.stop()
        path = out / f"{self.name}.bin"
        bc.write_recording(path, self.name, self.marks, self.assembler.schema, list(self.assembler.fed))
        return path


def col_index(table: Any, names: Optional[list[str]]) -> Optional[tuple[int, ...]]:
    if names is None:
        return None
    all_names = table.schema.names
    return tuple(sorted(all_names.index(n) for n in names))


def apply_step(session: Session, it: Any, op: str, items: list) -> None:
    if op == "add":
        it.add(session.import_table(pa.table({"K": [r[0] for r in items], "V": [r[1] for r in items],
                                              "X": [r[2] for r in items]}, schema=bc.KEYED_SCHEMA)))
    else:
        it.delete(session.import_table(pa.table({"K": items}, schema=pa.schema([bc.KEYED_SCHEMA.field("K")]))))


def record_static(session: Session, out: Path) -> list[Path]:
    table = session.empty_table(bc.STATIC_N).update(bc.static_formulas())
    every = bc.static_rows()

    def server(positions: Optional[list[int]] = None, columns: Optional[list[str]] = None) -> list[dict]:
        data = table.to_arrow().to_pylist()
        return [{k: v for k, v in data[p].items() if columns is None or k in columns}
                for p in (positions if positions is not None else range(len(data)))]

    paths = []
    for name in ("static", "static_batched"):
        rec = Recorder(session, table, name, Spec(None, None),
                       messages.SubscriptionOptions(batch_size=bc.CASES[name]["batch_size"]))
        rec.step_done(every, server)
        paths.append(rec.save(out))
    (vp, cols, reverse), *moves = bc.STATIC_VIEWPORTS
    rec = Recorder(session, table, "static_viewport", Spec(col_index(table, cols), viewport_rowset(vp), reverse))
    pos = bc.viewport_positions(vp, bc.STATIC_N, reverse)
    rec.step_done(bc.static_rows(pos, cols), lambda: server(pos, cols))
    for vp, cols, reverse in moves:
        rec.sub.change(Spec(col_index(table, cols), viewport_rowset(vp), reverse))
        pos = bc.viewport_positions(vp, bc.STATIC_N, reverse)
        rec.step_done(bc.static_rows(pos, cols), lambda pos=pos, cols=cols: server(pos, cols))
    paths.append(rec.save(out))
    return paths


def record_input(session: Session, out: Path) -> list[Path]:
    it = session.input_table(bc.KEYED_SCHEMA, key_cols="K")
    rec = Recorder(session, it, "input", Spec(None, None))
    model = bc.keyed_model(bc.INPUT_STEPS)

    def server() -> list[dict]:
        return it.to_arrow().to_pylist()

    rec.step_done(model[0], server)
    for k, (op, items) in enumerate(bc.INPUT_STEPS, start=1):
        apply_step(session, it, op, items)
        rec.step_done(model[k], server)
    return [rec.save(out)]


def record_sorted(session: Session, out: Path) -> list[Path]:
    it = session.input_table(bc.KEYED_SCHEMA, key_cols="K")
    srt = it.sort("K")
    full = Recorder(session, srt, "sorted", Spec(None, None))
    first, last = bc.SORTED_VIEWPORT
    vp = Recorder(session, srt, "sorted_viewport", Spec(None, viewport_rowset((first, last))))
    model = bc.sorted_model()

    def server(rows: Optional[slice] = None, columns: Optional[list[str]] = None) -> list[dict]:
        data = srt.to_arrow().to_pylist()
        data = data[rows] if rows is not None else data
        return [{k: v for k, v in r.items() if columns is None or k in columns} for r in data]

    window = slice(first, last + 1)
    for k in range(len(model)):
        if k:
            op, items = bc.SORTED_STEPS[k - 1]
            apply_step(session, it, op, items)
        full.step_done(model[k], server)
        vp.step_done(model[k][window], lambda: server(window))
    (first, last), cols = bc.SORTED_VIEWPORT_MOVE
    vp.sub.change(Spec(col_index(srt, cols), viewport_rowset((first, last))))
    window = slice(first, last + 1)
    moved = [{c: r[c] for c in cols} for r in model[-1][window]]
    vp.step_done(moved, lambda: server(window, cols))
    return [full.save(out), vp.save(out)]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int, help="the port of a Deephaven server on 127.0.0.1")
    parser.add_argument("--out", type=Path, default=bc.DATA_DIR, help="where the .bin files go")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stream.Assembler = RecordingAssembler  # type: ignore[misc]  # the streams make theirs from this name
    with Session("127.0.0.1", args.port) as session:
        paths = record_static(session, args.out) + record_input(session, args.out) + record_sorted(session, args.out)
    for p in paths:
        print(f"{p}: {p.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
