"""The full soak of issue #18 from the command line: by default 10 minutes with a server restart
(SIGKILL, started again on the same port) every 2 minutes and three proxy faults between restarts
(drop_all, blackhole 5 s, delay 0.3 s for 5 s, in turn), four workers (two sync Sessions, two
AsyncSessions) doing mixed operations with every result checked, and two live subscriptions.
It starts (and stops) its own server on a free loopback port; see tests/support/soak.py.

    python scripts/soak.py                       # 10 minutes, a restart every 2 minutes
    python scripts/soak.py --minutes 3 --restart-every 1

Prints the report; exits 1 when the soak found problems.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.soak import run_soak  # noqa: E402 (after the path is set)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the schedule (default 10)")
    parser.add_argument("--restart-every", type=float, default=2.0, help="minutes between restarts (default 2)")
    parser.add_argument("--faults-between", type=int, default=3, help="proxy faults between restarts (default 3)")
    parser.add_argument("--heap", default="1g", help="the server's heap (default 1g)")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds each wait after the schedule may take (default 120)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.restart_every <= 0 or args.faults_between < 0:
        parser.error("--minutes and --restart-every must be positive, --faults-between not negative")
    started = time.monotonic()
    report = run_soak(seconds=args.minutes * 60.0, restart_every=args.restart_every * 60.0,
                      faults_between=args.faults_between, heap=args.heap, settle_seconds=args.settle,
                      log=lambda line: print(f"[soak {time.monotonic() - started:6.1f} s] {line}", flush=True))
    print(report.summary(), flush=True)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
