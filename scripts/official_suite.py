"""Run the official pydeephaven test suite against this package, from a temporary folder.

    python scripts/official_suite.py GIT_DIR [--tag v42.4] [--port PORT] [PYTEST_ARGS...]

GIT_DIR is a git directory of deephaven-core (a clone, or a bare mirror). The suite's files
(``py/client/tests`` at the tag, minus its Flight SQL test, which needs extra client packages) are
exported into a temporary folder that is deleted afterwards: they are never part of this
repository. Without ``--port`` a real server is started with ``pydeephaven.embedded`` and stopped
at the end. Prints pytest's summary; the exit code is pytest's.

The suite's console test runs a server-side script that imports ``numba``: the server's Python (the
environment that has ``deephaven-server``) needs ``pip install numba`` for it, whichever client is
tested.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile


def export_suite(git_dir: str, tag: str, dest: str) -> None:
    tar = subprocess.run(["git", "--git-dir", git_dir, "archive", "--format=tar", tag, "py/client/tests"],
                         check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(dest, filter="data")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("git_dir")
    parser.add_argument("--tag", default="v42.4")
    parser.add_argument("--port", type=int, default=None, help="an already running server on localhost")
    args, pytest_args = parser.parse_known_args()
    pytest_args = [a for a in pytest_args if a != "--"]
    git_dir = os.path.abspath(args.git_dir)
    with tempfile.TemporaryDirectory(prefix="official-suite-") as tmp:
        export_suite(git_dir, args.tag, tmp)
        root = os.path.join(tmp, "py", "client")
        os.remove(os.path.join(root, "tests", "test_flightsql.py"))
        server = None
        port = args.port
        if port is None:
            from pydeephaven.embedded import start_server

            server = start_server(heap=os.environ.get("DH_TEST_HEAP", "4g"))
            port = server.port
        try:
            env = dict(os.environ, DH_HOST="localhost", DH_PORT=str(port))
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *pytest_args]
            return subprocess.run(cmd, cwd=root, env=env).returncode
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
