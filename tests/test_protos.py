"""The committed generated modules are exactly what scripts/gen_protos.sh produces."""

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_script(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run(["bash", str(ROOT / "scripts" / "gen_protos.sh"), str(tmp_path)], check=True, env=env)
    fresh = tmp_path / "pydeephaven" / "_proto"
    committed = ROOT / "pydeephaven" / "_proto"
    made = sorted(p.name for p in fresh.iterdir() if p.is_file())
    assert made, "the script produced nothing"
    have = sorted(p.name for p in committed.iterdir() if p.is_file() and p.name != "__init__.py")
    assert made == have, f"generated files differ in name: {set(made) ^ set(have)}"
    differing = [n for n in made if not filecmp.cmp(fresh / n, committed / n, shallow=False)]
    assert not differing, f"committed generated code is stale, rerun scripts/gen_protos.sh: {differing}"


def test_services_have_the_server_paths() -> None:
    from pydeephaven._proto import session_pb2, table_pb2

    svc = table_pb2.DESCRIPTOR.services_by_name["TableService"]
    assert svc.full_name == "io.deephaven.proto.backplane.grpc.TableService"
    assert "Batch" in svc.methods_by_name and "EmptyTable" in svc.methods_by_name
    assert session_pb2.DESCRIPTOR.services_by_name["SessionService"].methods_by_name["NewSession"]
