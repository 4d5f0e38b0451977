"""Running the programs of examples/ against the test server, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent


def run_example(server: Any, name: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """examples/<name>.py run against ``server`` (DH_HOST/DH_PORT) from the repository's root; it
    must succeed within ``timeout`` seconds."""
    env = dict(os.environ, DH_HOST=server.host, DH_PORT=str(server.port))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc
