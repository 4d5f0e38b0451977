"""Start and stop a real Deephaven server from the ``deephaven-server`` pip package.

The server runs in a child process (the JVM cannot be unloaded from a Python process, so it never
runs in ours), listens on loopback only, and dies with us: the child watches its standard input and
exits when that pipe closes, so a crashed or killed parent never leaves a server behind.

    from pydeephaven.embedded import start_server
    from pydeephaven import Session

    with start_server() as server:
        with Session(server.host, server.port) as session:
            print(session.empty_table(3).to_arrow())

Install the extra first: ``pip install 'pydeephaven[server]'``. Java 17 or newer is needed; it is
found from ``JAVA_HOME``, then ``java`` on ``PATH``, then the usual install folders.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from pydeephaven.dherror import DHError

__all__ = ["EmbeddedServer", "start_server", "find_java_home", "free_port"]

ANONYMOUS_AUTH = "io.deephaven.auth.AnonymousAuthenticationHandler"
PSK_AUTH = "io.deephaven.authentication.psk.PskAuthenticationHandler"

_JAVA_DIRS = ("/usr/lib/jvm/*", "/usr/java/*", "/opt/java/*", "/Library/Java/JavaVirtualMachines/*/Contents/Home")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _java_major(java_home: str) -> Optional[int]:
    exe = os.path.join(java_home, "bin", "java")
    if not os.access(exe, os.X_OK):
        return None
    release = os.path.join(java_home, "release")
    text = ""
    if os.path.exists(release):
        with open(release, encoding="utf-8", errors="replace") as f:
            text = f.read()
    else:
        try:
            text = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30).stderr
        except (OSError, subprocess.TimeoutExpired):
            return None
    m = re.search(r'VERSION="?(\d+)(?:\.(\d+))?', text) or re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def find_java_home(minimum: int = 17) -> str:
    """The home folder of a Java ``minimum``+ runtime.

    JAVA_HOME wins when it qualifies; then ``java`` on PATH; then the usual install folders, where
    the lowest qualifying major version is preferred (the server's default JVM options target 17-21).
    """
    candidates: list[str] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(os.environ["JAVA_HOME"])
    on_path = shutil.which("java")
    if on_path:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(on_path))))
    scanned = []
    for pattern in _JAVA_DIRS:
        for home in glob.glob(pattern):
            major = _java_major(home)
            if major is not None and major >= minimum:
                scanned.append((major, home))
    candidates += [home for _, home in sorted(scanned)]
    for home in candidates:
        major = _java_major(home)
        if major is not None and major >= minimum:
            return home
    raise DHError(
        f"no Java {minimum}+ runtime found (looked at JAVA_HOME, java on PATH, {', '.join(_JAVA_DIRS)}); "
        f"install one, e.g. 'apt-get install openjdk-17-jre-headless', and set JAVA_HOME"
    )


@dataclass
class EmbeddedServer:
    """A running child-process Deephaven server. ``stop()`` (or leaving ``with``) ends it."""

    host: str
    port: int
    process: subprocess.Popen
    log_path: str
    auth_type: str = "Anonymous"
    auth_token: str = ""
    _tmpdir: Optional[str] = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server process (by its pid) and wait for it; idempotent."""
        proc = self.process
        if proc.poll() is None:
            try:
                if proc.stdin:
                    proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> "EmbeddedServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    port: Optional[int] = None,
    *,
    psk: Optional[str] = None,
    jvm_args: Sequence[str] = (),
    heap: str = "2g",
    java_home: Optional[str] = None,
    startup_timeout: float = 180.0,
    log_path: Optional[str] = None,
) -> EmbeddedServer:
    """Start a real Deephaven server on 127.0.0.1 and wait until it serves.

    Args:
        port: the port to listen on; a free one when None.
        psk: when given, the server uses pre-shared-key authentication with this key instead of
            anonymous access; connect with ``Session(auth_type=PSK_AUTH, auth_token=psk)``.
        jvm_args: extra JVM arguments, e.g. ``["-Dhttp.session.durationMs=10000"]``.
        heap: the JVM's maximum heap (``-Xmx``).
        java_home: the Java 17+ home to use; found automatically when None.
        startup_timeout: seconds to wait for the server to serve.
        log_path: where the server's output goes; a temporary file when None.

    Raises:
        DHError: the server package is missing, no Java was found, or the server did not start
            (the message carries the end of its log).
    """
    try:
        import deephaven_server  # noqa: F401  (only checks that the extra is installed)
    except ImportError as e:
        raise DHError(
            "the embedded server needs the 'deephaven-server' package: pip install 'pydeephaven[server]'"
        ) from e
    home = java_home or find_java_home()
    port = port or free_port()
    tmpdir = tempfile.mkdtemp(prefix="pydeephaven-server-")
    log_path = log_path or os.path.join(tmpdir, "server.log")
    ready_path = os.path.join(tmpdir, "ready")
    args = [f"-Xmx{heap}", f"-Ddeephaven.dataDir={os.path.join(tmpdir, 'data')}", *jvm_args]
    if psk is None:
        args.append(f"-DAuthHandlers={ANONYMOUS_AUTH}")
        auth_type, auth_token = "Anonymous", ""
    else:
        args += [f"-DAuthHandlers={PSK_AUTH}", f"-Dauthentication.psk={psk}"]
        auth_type, auth_token = PSK_AUTH, psk
    env = dict(os.environ, JAVA_HOME=home)
    cmd = [sys.executable, "-m", "pydeephaven._server_child", str(port), ready_path, *args]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = EmbeddedServer("127.0.0.1", port, proc, log_path, auth_type, auth_token, _tmpdir=tmpdir)
    deadline = time.monotonic() + startup_timeout
    while not os.path.exists(ready_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            why = "exited with status %s" % proc.returncode if proc.poll() is not None else (
                "did not start within %.0f s" % startup_timeout)
            tail = server.log_tail()
            server.stop()
            raise DHError(f"the embedded Deephaven server {why} (java: {home}); end of its log:\n{tail}")
        time.sleep(0.2)
    return server
