"""The bounded soak of issue #18: a real server that is SIGKILLed and started again on the same port
every ``restart_every`` seconds, a ``FaultProxy`` in front of it injecting faults in between
(``drop_all``, ``blackhole(5)``, ``delay(0.3, 5)`` in turn), four workers doing mixed operations
through reconnecting sessions (two with the sync ``Session``, two with ``AsyncSession``, each on an
``Api`` of tests/support/apis.py), and two live subscriptions (a ``TableListener`` through
``ticking.listen`` and a ``subscribe()`` LiveTable) on a session of their own.

``run_soak(seconds, restart_every)`` returns a ``SoakReport``; ``report.problems == []`` is the
pass condition. A problem is: a wrong value (every result is checked against values computed in
the worker), an exception that is not a ``DHError``, an operation running past ``HANG_SECONDS``,
a session lost, a table lost, a subscription that ended, did not resume after a reconnect or did
not tick after the last fault, a ``pydeephaven`` thread left running after every session closed,
or more exports on the server at the end than after the setup. Every ``DHError`` is allowed and
counted by class (``OutcomeUnknownError`` for a write cut off, ``UnreachableError`` while
reconnecting, ...).

Each loop here is bounded in count and in time; the server and the proxy listen on 127.0.0.1, and
the server this module starts it also stops, by its pid.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import math
import os
import random
import signal
import statistics
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pyarrow as pa

from pydeephaven import DHError, ReconnectPolicy, SessionLostError, StateChange, TableLostError, agg
from pydeephaven.embedded import EmbeddedServer, start_server
from pydeephaven.ticking import TableListener, TableUpdate, listen
from tests.support.apis import Api
from tests.support.faultproxy import FaultProxy

SECOND = 1_000_000_000
#: the period of every time table of the soak; their rows are known: row K is due at T0 + K * PERIOD
PERIOD = SECOND
#: an operation running longer than this is a hang (the reconnect deadline plus a margin)
HANG_SECONDS = 170.0
RECONNECT_DEADLINE = 120.0
FAULT_KINDS = ("drop_all", "blackhole", "delay")
BLACKHOLE_SECONDS = 5.0
DELAY_SECONDS, DELAY_DURATION = 0.3, 5.0
#: the longest a worker runs in ops (a bound beside the time bound)
MAX_OPS_PER_WORKER = 200_000
OP_KINDS = ("import", "chain", "agg", "time", "script", "kept")


def _policy() -> ReconnectPolicy:
    return ReconnectPolicy(initial_backoff=0.2, max_backoff=2.0, deadline=RECONNECT_DEADLINE, replay_scripts=True)


@dataclass
class Fault:
    """One injected fault: its kind, when it began and ended (monotonic seconds), and the time from
    its end to the first operation that succeeded after it (None: none did)."""

    kind: str
    began: float
    ended: float
    recovery: Optional[float] = None
    note: str = ""


@dataclass
class SoakReport:
    seconds: float = 0.0
    wall_seconds: float = 0.0
    restarts: int = 0
    faults: list[Fault] = field(default_factory=list)
    ops: Counter = field(default_factory=Counter)
    ops_by_worker: dict[str, int] = field(default_factory=dict)
    failures: Counter = field(default_factory=Counter)
    failure_samples: dict[str, list[str]] = field(default_factory=dict)
    reconnects: dict[str, int] = field(default_factory=dict)
    resumes: dict[str, int] = field(default_factory=dict)
    resets: dict[str, int] = field(default_factory=dict)
    subscription_rows: dict[str, int] = field(default_factory=dict)
    live_checks: int = 0
    #: the subscriptions' session: (seconds into the schedule, what happened)
    #: the streams the subscriptions' session reports resumed (StateChange.resumed), in all
    streams_resumed: int = 0
    subscription_timeline: list[tuple[float, str]] = field(default_factory=list)
    #: seconds the schedule waited, in all, for the sessions to reconnect before a fault
    schedule_shift: float = 0.0
    exports: dict[str, tuple[int, int]] = field(default_factory=dict)
    threads_left: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def recovery_by_kind(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for f in self.faults:
            if f.recovery is not None:
                out.setdefault(f.kind, []).append(f.recovery)
        return out

    def summary(self) -> str:
        lines = [f"soak: {self.seconds:g} s scheduled, {self.wall_seconds:.0f} s wall, {self.restarts} restarts, "
                 f"{sum(1 for f in self.faults if f.kind != 'restart')} proxy faults; the schedule waited "
                 f"{self.schedule_shift:.0f} s in all for the sessions to reconnect before a fault"]
        lines.append(f"ops: {sum(self.ops.values())} in all: " + ", ".join(f"{k} {self.ops[k]}" for k in OP_KINDS))
        lines.append("ops tried by worker: " + ", ".join(f"{k} {v}" for k, v in self.ops_by_worker.items()))
        lines.append("failures (DHError by class): " + (", ".join(f"{k} {v}" for k, v in
                                                              self.failures.most_common()) or "none"))
        for name, samples in self.failure_samples.items():
            for text in samples[:2]:
                lines.append(f"  {name}: {text[:300]}")
        lines.append("reconnects per session: " + ", ".join(f"{k} {v}" for k, v in self.reconnects.items()))
        lines.append("subscriptions: " + ", ".join(
            f"{k}: {self.resumes.get(k, 0)} resumes, {self.resets.get(k, 0)} resets, "
            f"{self.subscription_rows.get(k, 0)} rows at the end" for k in self.resumes) +
            f"; {self.live_checks} LiveTable snapshots checked")
        lines.append("subscriptions' session: " + ", ".join(f"+{t:.1f} {what}" for t, what in
                                                            self.subscription_timeline))
        for kind, values in self.recovery_by_kind().items():
            lines.append(f"recovery after {kind} (fault end -> first successful op), {len(values)}x: "
                         f"min {min(values):.2f} s, median {statistics.median(values):.2f} s, "
                         f"max {max(values):.2f} s")
        for f in self.faults:
            rec = f"{f.recovery:.2f} s" if f.recovery is not None else "none"
            lines.append(f"  fault {f.kind} at +{f.began:.1f} s, {f.ended - f.began:.1f} s long, "
                         f"recovered in {rec}{(' (' + f.note + ')') if f.note else ''}")
        lines.append("exports (after setup, at the end): " + ", ".join(
            f"{k} {a}->{b}" for k, (a, b) in self.exports.items()))
        lines.append(f"threads left: {self.threads_left or 'none'}")
        lines.append(f"problems: {len(self.problems)}")
        lines.extend(f"  PROBLEM: {p}" for p in self.problems)
        return "\n".join(lines)


class _Shared:
    """What the workers, the subscriptions and the conductor share (under a lock)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ops: Counter = Counter()
        self.failures: Counter = Counter()
        self.samples: dict[str, list[str]] = {}
        self.problems: list[str] = []
        self.successes: list[float] = []  # completion times (monotonic) of successful ops

    def now(self) -> float:
        return time.monotonic() - self.t0

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 200:
                self.problems.append(f"+{self.now():.1f} s: {text}")

    def ok(self, kind: str) -> None:
        with self.lock:
            self.ops[kind] += 1
            self.successes.append(time.monotonic())

    def failed(self, kind: str, err: DHError) -> None:
        name = type(err).__name__
        with self.lock:
            self.failures[name] += 1
            samples = self.samples.setdefault(name, [])
            if len(samples) < 3:
                samples.append(f"[{kind}] {err}")


class _States:
    """A session's state changes, in order: (monotonic time, state, cause, tables revived, lost,
    streams resumed). Only counts of the tables: a StateChange holds the tables it names, and
    keeping it would keep them (and their server copies) alive."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, str, int, int, int]] = []

    def __call__(self, change: StateChange) -> None:
        self.seen.append((time.monotonic(), change.state, change.cause, len(change.revived), len(change.lost),
                          change.resumed))

    def count(self, state: str) -> int:
        return sum(1 for x in self.seen if x[1] == state)


class _Recorder(TableListener):
    """What a subscription to a time table with ``K = ii`` saw: ("update", removed, [K...],
    [Timestamp...], when) and ("reconnect", when), in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.errors: list[BaseException] = []

    def on_update(self, update: TableUpdate) -> None:
        if update.num_added:
            added = update.added(["K", "Timestamp"])
            ks = added["K"].to_pylist()
            ts = added["Timestamp"].cast(pa.int64()).to_pylist()
        else:
            ks, ts = [], []
        self.events.append(("update", update.num_removed, ks, ts, time.monotonic()))

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)

    def on_reconnect(self) -> None:
        self.events.append(("reconnect", time.monotonic()))

    def reconnect_times(self) -> list[float]:
        return [e[1] for e in self.events if e[0] == "reconnect"]

    def check(self, name: str, t0_ns: int, step: int) -> tuple[list[str], int, int, int]:
        """Replay the events: (problems, rows at the end, resets, reconnects). The rows must be K =
        0, step, 2 step, ... with Timestamp T0 + K * PERIOD after every update; a removal must empty
        the copy (a reset), and each on_reconnect must follow a reset since the previous one."""
        problems: list[str] = []
        rows: list[tuple[int, int]] = []
        resets = reconnects = 0
        reset_since = False
        for i, e in enumerate(list(self.events)):
            if e[0] == "reconnect":
                reconnects += 1
                if not reset_since:
                    problems.append(f"{name}: on_reconnect #{reconnects} (event {i}) without a reset before it")
                reset_since = False
                continue
            _, removed, ks, ts, _ = e
            if removed:
                if removed != len(rows):
                    problems.append(f"{name}: event {i} removed {removed} of {len(rows)} rows (not a reset)")
                rows = []
                resets += 1
                reset_since = True
            rows.extend(zip(ks, ts))
            want_n = len(rows)
            if rows and (rows[-1][0] != (want_n - 1) * step or
                         any(k != j * step or t != t0_ns + k * PERIOD for j, (k, t) in enumerate(rows))):
                bad = next(((j, k, t) for j, (k, t) in enumerate(rows) if k != j * step or t != t0_ns + k * PERIOD),
                           None)
                problems.append(f"{name}: after event {i} the rows are not K = 0, {step}, ... with Timestamp = "
                                f"T0 + K s (first bad row (position, K, Timestamp): {bad})")
                break
        return problems, len(rows), resets, reconnects


# -- the workers --------------------------------------------------------------------------------------


class _Worker:
    """One worker: an Api (sync or async), its session through the proxy, kept tables made at setup
    with their expected values, and a loop of mixed operations, each result checked."""

    def __init__(self, name: str, api: Api, shared: _Shared, t0_ns: int, seed: int) -> None:
        self.name, self.api, self.shared, self.t0_ns = name, api, shared, t0_ns
        self.rng = random.Random(seed)
        self.idx = seed
        self.s: Any = None
        self.states = _States()
        self.ready = threading.Event()
        self.op_started: Optional[float] = None  # monotonic; None between ops
        self.op_kind = ""
        self.ops = 0
        self.exports_setup = -1
        #: tables made at setup: how to read each (a coroutine function) and how to check what it gave
        self.kept: dict[str, tuple[Callable[[], Any], Callable[[pa.Table], Optional[str]]]] = {}
        self.script_name = f"soak_src_{seed}"

    # the script's table: X = i, Y = i * 7 % 11 for 60 rows (computed here as well)
    def _src_rows(self) -> list[dict[str, int]]:
        return [{"X": i, "Y": i * 7 % 11} for i in range(60)]

    async def setup(self) -> None:
        api = self.api
        self.s = s = await api.session(reconnect=_policy(), keep_imports=True)
        s.on_state_change(self.states)
        await api.run(s.run_script(
            f"from deephaven import empty_table\n"
            f"{self.script_name} = empty_table(60).update(['X = (int) i', 'Y = (int) (i * 7 % 11)'])"))
        data = pa.table({"X": pa.array([3, 5, 8, 13, 21, 34], pa.int32()),
                         "V": [f"w{self.idx}-{j}" for j in range(6)]})
        kept_import = await api.run(s.import_table(data))
        src = await api.run(s.open_table(self.script_name))
        chain = await api.run(src.where("Y < 5").sort_descending("X").head(8))
        joined = await api.run(chain.natural_join(kept_import, on="X", joins="V"))
        tt = await api.run((await api.run(s.time_table(PERIOD, start_time=self.t0_ns))).update("K = ii"))
        rollup = await api.run((await api.run(src.rollup([agg.sum_("X")], by=["Y"]))).sort("Y"))
        want_chain = sorted((r for r in self._src_rows() if r["Y"] < 5), key=lambda r: -r["X"])[:8]
        v_by_x = dict(zip(data["X"].to_pylist(), data["V"].to_pylist()))
        want_joined = [{**r, "V": v_by_x.get(r["X"])} for r in want_chain]

        def same(want: Any) -> Callable[[pa.Table], Optional[str]]:
            def check(got: pa.Table) -> Optional[str]:
                rows = got.to_pylist()
                return None if rows == want else f"got {rows[:10]}, want {want[:10]}"
            return check

        def same_table(want: pa.Table) -> Callable[[pa.Table], Optional[str]]:
            return lambda got: None if got.equals(want) else f"got {got.to_pydict()}, want {want.to_pydict()}"

        sums: dict[int, int] = {}
        for r in self._src_rows():
            sums[r["Y"]] = sums.get(r["Y"], 0) + r["X"]
        want_rollup = ([{"Depth": 1, "Expanded": True, "Y": None, "X": sum(sums.values())}]
                       + [{"Depth": 2, "Expanded": None, "Y": y, "X": sums[y]} for y in sorted(sums)])
        self.kept = {"import": (lambda: api.arrow(kept_import), same_table(data)),
                     "chain": (lambda: api.arrow(chain), same(want_chain)),
                     "joined": (lambda: api.arrow(joined), same(want_joined)),
                     "rollup": (lambda: api.run(rollup.snapshot()), same(want_rollup))}
        self.tt = tt
        self.exports_setup = len(await api.run(s.live_exports()))

    # -- the operations: each returns None (right) or what is wrong -----------------------------

    async def op_import(self) -> Optional[str]:
        api, s, rng = self.api, self.s, self.rng
        n = rng.randint(1, 300)
        xs = [rng.randint(-10**6, 10**6) for _ in range(n)]
        k = rng.randint(-50, 50)
        t = await api.run(s.import_table(pa.table({"X": pa.array(xs, pa.int64())})))
        u = await api.run(t.update(f"Y = X * 3 + {k}"))
        try:
            got = await api.arrow(u)
        finally:
            await api.run(u.close())
            await api.run(t.close())
        want = {"X": xs, "Y": [x * 3 + k for x in xs]}
        return None if got.to_pydict() == want else f"import+update: got {got.to_pydict()}, want {want}"

    async def op_chain(self) -> Optional[str]:
        api, s, rng = self.api, self.s, self.rng
        n, m = rng.randint(10, 500), rng.randint(2, 9)
        base = await api.run(s.empty_table(n))
        t = await api.run(base.update(["X = (long) i", f"Y = X % {m}", "Z = X * X"]).where("Y < 2")
                          .sort_descending("X").head(5))
        try:
            got = (await api.arrow(t)).to_pylist()
        finally:
            await api.run(t.close())
        want = sorted(({"X": x, "Y": x % m, "Z": x * x} for x in range(n) if x % m < 2), key=lambda r: -r["X"])[:5]
        return None if got == want else f"chain n={n} m={m}: got {got}, want {want}"

    async def op_agg(self) -> Optional[str]:
        api, s, rng = self.api, self.s, self.rng
        n, g = rng.randint(1, 400), rng.randint(1, 6)
        base = await api.run(s.empty_table(n))
        t = await api.run(base.update([f"G = (int) (i % {g})", "V = (long) i * 2"])
                          .agg_by([agg.sum_("S = V"), agg.count_("C"), agg.max_("M = V")], by=["G"]).sort("G"))
        try:
            got = (await api.arrow(t)).to_pylist()
        finally:
            await api.run(t.close())
        want = []
        for grp in range(min(g, n)):
            vs = [2 * i for i in range(n) if i % g == grp]
            want.append({"G": grp, "S": sum(vs), "C": len(vs), "M": max(vs)})
        return None if got == want else f"agg n={n} g={g}: got {got}, want {want}"

    async def op_time(self) -> Optional[str]:
        api, rng = self.api, self.rng
        m, h = rng.randint(1, 5), rng.randint(1, 5)
        t = await api.run(self.tt.where(f"K % {m} == 0").head(h))
        try:
            got = await api.arrow(t)
        finally:
            await api.run(t.close())
        ks = got.column("K").to_pylist()
        ts = got.column("Timestamp").cast(pa.int64()).to_pylist()
        want_k = [j * m for j in range(h)]
        want_t = [self.t0_ns + k * PERIOD for k in want_k]
        return None if (ks, ts) == (want_k, want_t) else f"time m={m} h={h}: got K {ks} ts {ts}, want {want_k} {want_t}"

    async def op_script(self) -> Optional[str]:
        api, s, rng = self.api, self.s, self.rng
        lo = rng.randint(0, 59)
        src = await api.run(s.open_table(self.script_name))
        t = await api.run(src.where(f"X >= {lo}").head(5))
        try:
            got = (await api.arrow(t)).to_pylist()
        finally:
            await api.run(t.close())
            await api.run(src.close())
        want = [r for r in self._src_rows() if r["X"] >= lo][:5]
        return None if got == want else f"script table X>={lo}: got {got}, want {want}"

    async def op_kept(self) -> Optional[str]:
        wrong = []
        for name, (read, check) in self.kept.items():
            why = check(await read())
            if why is not None:
                wrong.append(f"kept {name}: {why}")
        return "; ".join(wrong) or None

    async def run(self, deadline: float) -> None:
        """Set up, then operate until told to stop (or ``deadline``, monotonic, or the op bound)."""
        shared = self.shared
        try:
            await self.setup()
        except BaseException as e:  # noqa: BLE001 (the soak reports it)
            shared.problem(f"{self.name}: setup failed: {type(e).__name__}: {e}")
            raise
        finally:
            self.ready.set()
        ops = {"import": self.op_import, "chain": self.op_chain, "agg": self.op_agg, "time": self.op_time,
               "script": self.op_script, "kept": self.op_kept}
        kinds = list(OP_KINDS)
        while not shared.stop.is_set() and time.monotonic() < deadline and self.ops < MAX_OPS_PER_WORKER:
            kind = kinds[self.ops % len(kinds)]
            self.ops += 1
            self.op_kind, self.op_started = kind, time.monotonic()
            try:
                if self.api.is_async:
                    wrong = await asyncio.wait_for(ops[kind](), HANG_SECONDS)
                else:
                    wrong = await ops[kind]()
            except (SessionLostError, TableLostError) as e:
                shared.failed(kind, e)
                shared.problem(f"{self.name} {kind}: {type(e).__name__}: {e}")
                if isinstance(e, SessionLostError):
                    break
            except DHError as e:
                shared.failed(kind, e)
            except asyncio.TimeoutError:
                shared.problem(f"{self.name} {kind}: no answer within {HANG_SECONDS:g} s (a hang)")
            except Exception as e:  # noqa: BLE001 (a non-DHError is a soak failure: reported)
                shared.problem(f"{self.name} {kind}: not a DHError: {type(e).__name__}: {e}\n"
                               f"{traceback.format_exc(limit=8)}")
            else:
                if wrong is None:
                    shared.ok(kind)
                else:
                    shared.problem(f"{self.name} {kind}: WRONG RESULT: {wrong}")
            finally:
                self.op_started = None
            await asyncio.sleep(0.02)

    async def exports_now(self) -> tuple[int, list[str]]:
        """The session's live exports: how many, and those no open table of the session holds
        (their export numbers, for the report)."""
        gc.collect()
        live = await self.api.run(self.s.live_exports())
        held = {t.ticket.bytes for t in self.s._reviver.live_tables() if t.ticket is not None}
        return len(live), [repr(tk) for tk in live if tk.bytes not in held]


# -- the conductor ----------------------------------------------------------------------------------


def _schedule(seconds: float, restart_every: float, faults_between: int) -> list[tuple[float, str]]:
    """(offset in seconds, "restart" or a fault kind), in order: a restart at each multiple of
    ``restart_every`` (not at 0), ``faults_between`` proxy faults spread evenly between restarts,
    the kinds in turn."""
    events: list[tuple[float, str]] = []
    n = 0
    for j in range(int(math.ceil(seconds / restart_every))):
        base = j * restart_every
        if j > 0:
            events.append((base, "restart"))
        for f in range(faults_between):
            at = base + restart_every * (f + 1) / (faults_between + 1)
            if at < seconds:
                events.append((at, FAULT_KINDS[n % len(FAULT_KINDS)]))
                n += 1
    return events


def _restart(srv: EmbeddedServer, port: int, heap: str) -> tuple[EmbeddedServer, str]:
    """SIGKILL the server and start one again on the same port (two tries); (server, note)."""
    os.kill(srv.pid, signal.SIGKILL)
    srv.process.wait(30)
    srv.stop()  # reaps and removes its files
    last: Optional[BaseException] = None
    for _ in range(2):
        try:
            return start_server(port=port, heap=heap), ""
        except DHError as e:
            last = e
            time.sleep(2)
    raise RuntimeError(f"the server could not be started again on port {port}: {last}")


def _wait(pred: Callable[[], bool], seconds: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def _check_live(live: Any, t0_ns: int, step: int) -> Optional[str]:
    """A LiveTable snapshot of ``where K % step == 0`` on a time table: K = 0, step, ... and
    Timestamp = T0 + K s."""
    snap = live.snapshot()
    ks = snap.column("K").to_pylist()
    ts = snap.column("Timestamp").cast(pa.int64()).to_pylist()
    want_k = [j * step for j in range(len(ks))]
    if ks != want_k or ts != [t0_ns + k * PERIOD for k in ks]:
        return f"LiveTable snapshot: K {ks[:20]}..., Timestamp {ts[:5]}..., want K {want_k[:20]}... from T0 {t0_ns}"
    return None


def _pydeephaven_threads(before: set[int]) -> list[str]:
    return [th.name for th in threading.enumerate() if th.ident not in before and th.is_alive()]


def run_soak(seconds: float = 600.0, restart_every: float = 120.0, faults_between: int = 3, heap: str = "1g",
             settle_seconds: float = 120.0, log: Callable[[str], None] = lambda _: None) -> SoakReport:
    """Run the soak for ``seconds`` (the schedule), then let it settle (subscriptions tick, workers
    stop, exports are counted, everything closes), bounded by ``settle_seconds`` per wait."""
    report = SoakReport(seconds=seconds)
    wall0 = time.monotonic()
    threads_before = {th.ident for th in threading.enumerate() if th.ident is not None}
    srv = start_server(heap=heap)
    port = srv.port
    proxy = FaultProxy(port)
    t0_ns = (time.time_ns() // SECOND - 60) * SECOND  # the time tables' start: a minute of rows at once
    shared = _Shared(time.monotonic())
    apis = [Api(kind, "127.0.0.1", proxy.port) for kind in ("sync", "async", "sync", "async")]
    workers = [_Worker(f"{a.kind}-{i}", a, shared, t0_ns, i) for i, a in enumerate(apis)]
    futures: list[concurrent.futures.Future[Any]] = []
    subs: Any = None
    sub_states = _States()
    listener_rec, live_rec = _Recorder(), _Recorder()
    handle: Any = None
    live: Any = None
    subs_exports_setup = -1
    live_step = 2
    try:
        # the subscriptions' session (sync) and its two subscriptions
        from pydeephaven import Session
        subs = Session("127.0.0.1", proxy.port, reconnect=_policy())
        subs.on_state_change(sub_states)
        tt = subs.time_table(PERIOD, start_time=t0_ns).update("K = ii")
        evens = tt.where(f"K % {live_step} == 0")
        handle = listen(tt, listener_rec)
        handle.start()
        live = evens.subscribe(on_update=live_rec)
        if not _wait(lambda: live.size > 0 and len(listener_rec.events) > 0, 60):
            shared.problem("the subscriptions had no rows 60 s after they started")
        subs_exports_setup = len(subs.live_exports())

        # the workers (each on its Api's loop thread)
        run_deadline = time.monotonic() + seconds + settle_seconds + 60
        for w in workers:
            futures.append(w.api.submit(w.run(run_deadline)))
        for w in workers:
            if not w.ready.wait(120):
                shared.problem(f"{w.name}: not set up within 120 s")
        log(f"set up in {time.monotonic() - wall0:.1f} s; the schedule starts")

        shared.t0 = start = time.monotonic()
        events = _schedule(seconds, restart_every, faults_between)
        next_live_check = 0.0
        all_states = [w.states for w in workers] + [sub_states]

        def subs_resumed() -> bool:  # each subscription told on_reconnect since its session's last reconnect
            last = max((x[0] for x in sub_states.seen if x[1] == "reconnected"), default=None)
            return last is None or all(rec.reconnect_times() and rec.reconnect_times()[-1] >= last
                                       for rec in (listener_rec, live_rec))

        def settled() -> bool:  # no session is between "disconnected" and "reconnected"; streams resumed
            return (all(not st.seen or st.seen[-1][1] in ("connected", "reconnected", "lost") for st in all_states)
                    and subs_resumed())

        def tick() -> None:  # between events: check the LiveTable, watch for hangs
            nonlocal next_live_check
            now = time.monotonic()
            if now >= next_live_check:
                next_live_check = now + 1.0
                try:
                    wrong = _check_live(live, t0_ns, live_step)
                    report.live_checks += 1
                    if wrong:
                        shared.problem(wrong)
                except DHError as e:
                    shared.problem(f"LiveTable snapshot raised {type(e).__name__}: {e}")
            for w in workers:
                began = w.op_started
                if began is not None and now - began > HANG_SECONDS:
                    shared.problem(f"{w.name}: {w.op_kind} has run {now - began:.0f} s (a hang)")
                    w.op_started = None  # reported once
            time.sleep(0.2)

        shift = 0.0  # the schedule waits for the sessions to have reconnected before the next fault
        for at, kind in events + [(seconds, "end")]:
            while time.monotonic() - start - shift < at:
                tick()
            if kind == "end":
                break
            waited_from = time.monotonic()
            while not settled() and time.monotonic() - waited_from < RECONNECT_DEADLINE:
                tick()
            if not settled():
                shared.problem(f"the sessions had not reconnected {RECONNECT_DEADLINE:g} s after the time of the "
                               f"{kind}")
            shift += time.monotonic() - waited_from
            began = time.monotonic()
            note = ""
            if kind == "restart":
                srv, note = _restart(srv, port, heap)
                report.restarts += 1
                ended = time.monotonic()
                note = f"kill to serving {ended - began:.1f} s"
            elif kind == "drop_all":
                note = f"{proxy.drop_all()} connections reset"
                ended = time.monotonic()
            elif kind == "blackhole":
                proxy.blackhole(BLACKHOLE_SECONDS)
                ended = began + BLACKHOLE_SECONDS
            else:
                proxy.delay(DELAY_SECONDS, DELAY_DURATION)
                ended = began + DELAY_DURATION
            report.faults.append(Fault(kind, began - start, ended - start, note=note))
            report.schedule_shift = shift
            log(f"+{began - start:.1f} s {kind} {note}")

        # after the last fault: the subscriptions resume (once per reconnect) and tick
        last_end = start + max((f.ended for f in report.faults), default=0.0)
        while time.monotonic() < last_end:
            time.sleep(0.2)
        rows_at_end = listener_rec.check("listener", t0_ns, 1)[1]
        live_at_end = live.size

        def streams_resumed() -> int:  # what the session's reconnects report as resumed, in all
            return sum(x[5] for x in sub_states.seen if x[1] == "reconnected")

        def resumed_and_ticking() -> bool:
            return (subs_resumed()
                    and not subs._reviver.busy
                    and listener_rec.check("listener", t0_ns, 1)[1] >= rows_at_end + 3
                    and live.size >= live_at_end + 2)

        if not _wait(resumed_and_ticking, settle_seconds, 0.5):
            shared.problem(f"after the last fault the subscriptions did not resume and tick within {settle_seconds:g}"
                           f" s: {sub_states.count('reconnected')} reconnects, on_reconnect listener "
                           f"{len(listener_rec.reconnect_times())} LiveTable {len(live_rec.reconnect_times())}, rows "
                           f"{rows_at_end}->{listener_rec.check('listener', t0_ns, 1)[1]} (listener), "
                           f"{live_at_end}->{live.size} (LiveTable)")
        # and the workers have one success each after the last fault (they recovered)
        _wait(lambda: any(t > last_end for t in shared.successes), settle_seconds)

        # stop the workers
        shared.stop.set()
        for w, f in zip(workers, futures):
            try:
                f.result(HANG_SECONDS + 30)
            except concurrent.futures.TimeoutError:
                shared.problem(f"{w.name}: did not stop within {HANG_SECONDS + 30:g} s (a hang in {w.op_kind})")
            except BaseException as e:  # noqa: BLE001 (reported; setup failures were reported already)
                shared.problem(f"{w.name}: ended with {type(e).__name__}: {e}")

        # the subscriptions: their events replayed and checked
        n_reconnects = sub_states.count("reconnected")
        for name, rec, step in (("listener", listener_rec, 1), ("LiveTable", live_rec, live_step)):
            problems, rows, resets, reconnects = rec.check(name, t0_ns, step)
            for p in problems:
                shared.problem(p)
            report.resumes[name], report.resets[name], report.subscription_rows[name] = reconnects, resets, rows
            if reconnects < 1 and n_reconnects >= 1:
                shared.problem(f"{name}: never resumed ({n_reconnects} reconnects of its session)")
            if rec.errors:
                shared.problem(f"{name}: on_error called: {rec.errors[:3]}")
        if not handle.is_running:
            shared.problem(f"the listener is not running at the end: {handle.error}")
        if not live.is_alive:
            shared.problem(f"the LiveTable is not alive at the end: {live.error}")

        # each stream a reconnect resumed told its listener at most once, after its new snapshot
        # (a stream cut again before that snapshot came is resumed by the next reconnect, which
        # tells it then: one reset, one on_reconnect); after the last reconnect both told it
        told = report.resumes["listener"] + report.resumes["LiveTable"]
        report.streams_resumed = streams_resumed()
        if told > streams_resumed():
            shared.problem(f"on_reconnect was called {told} times in all, the reconnects resumed only "
                           f"{streams_resumed()} streams")
        if not subs_resumed():
            shared.problem("the subscriptions did not both resume after their session's last reconnect")
        report.subscription_timeline = (
            [(x[0] - start, f"{x[1]} (resumed {x[5]})") for x in sub_states.seen
             if x[1] in ("disconnected", "reconnected")]
            + [(t - start, "listener on_reconnect") for t in listener_rec.reconnect_times()]
            + [(t - start, "LiveTable on_reconnect") for t in live_rec.reconnect_times()])
        report.subscription_timeline.sort()

        # exports: back to what they were after setup once the workers' own tables are released
        # (the kept tables were counted after setup and are still held: a reconnect revives the
        # same set, so the count is the same whatever happened in between)
        for w in workers:
            if w.s is None or w.exports_setup < 0:
                continue
            got, unheld = -1, []
            for _ in range(20):  # bounded: releases go out in the background
                got, unheld = w.api.block(w.exports_now(), 60)
                if got <= w.exports_setup:
                    break
                time.sleep(0.5)
            report.exports[w.name] = (w.exports_setup, got)
            if unheld:
                shared.problem(f"{w.name}: live exports that no open table of the session holds: {unheld}")
        handle.stop()
        live.close()
        handle = live = None
        gc.collect()
        got = len(subs.live_exports())
        report.exports["subscriptions"] = (subs_exports_setup, got)
    except BaseException as e:
        shared.problem(f"the soak itself failed: {type(e).__name__}: {e}\n{traceback.format_exc(limit=10)}")
        if not isinstance(e, Exception):
            raise
    finally:
        shared.stop.set()
        report.wall_seconds = time.monotonic() - wall0
        for name, states in [(w.name, w.states) for w in workers] + [("subscriptions", sub_states)]:
            report.reconnects[name] = states.count("reconnected")
            if states.count("lost"):
                causes = [x[2] for x in states.seen if x[1] == "lost"]
                shared.problem(f"{name}: the session was lost: {causes}")
        for f in futures:
            try:
                f.result(HANG_SECONDS + 30)
            except BaseException:  # noqa: BLE001 (reported above)
                pass
        if handle is not None:
            handle.stop()
        if live is not None:
            live.close()
        closed: list[Any] = []
        for w in workers:
            if w.s is not None:
                try:
                    w.api.block(w.api.run(w.s.close()), 60)
                    closed.append(w.s)
                except BaseException as e:  # noqa: BLE001
                    shared.problem(f"{w.name}: close raised {type(e).__name__}: {e}")
            w.api.close()
        if subs is not None:
            subs.close()
            closed.append(subs)
        for s in closed:
            if s.is_connected:
                shared.problem(f"{s!r} still connected after close()")
        proxy.close()
        srv.stop()
        report.ops_by_worker = {w.name: w.ops for w in workers}
        workers.clear()
        gc.collect()
        if not _wait(lambda: not _pydeephaven_threads(threads_before), 30, 0.5):
            report.threads_left = _pydeephaven_threads(threads_before)
            shared.problem(f"threads left running 30 s after every session closed: {report.threads_left}")

    # figures
    for name, (before, after) in report.exports.items():
        if after != before:
            shared.problem(f"{name}: {after} exports live at the end, {before} after setup")
    successes = sorted(shared.successes)
    for fault in report.faults:
        end = shared.t0 + fault.ended
        fault.recovery = next((t - end for t in successes if t >= end), None)
        if fault.recovery is None:
            shared.problem(f"no operation succeeded after the {fault.kind} at +{fault.began:.1f} s")
    report.ops = shared.ops
    report.failures = shared.failures
    report.failure_samples = shared.samples
    report.problems = list(shared.problems)
    return report
