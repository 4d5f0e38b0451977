#!/usr/bin/env bash
# Regenerate the Python protobuf/gRPC modules in pydeephaven/_proto from the .proto files in proto/.
# Usage: scripts/gen_protos.sh [OUT_DIR]   (OUT_DIR defaults to the repository root; the modules land
# in OUT_DIR/pydeephaven/_proto). Needs grpcio-tools (the [dev] extra pins the version used).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mkdir -p "${1:-$root}" && cd "${1:-$root}" && pwd)"
PYTHON="${PYTHON:-python}"

cd "$root"
mkdir -p "$out/pydeephaven/_proto"
"$PYTHON" -m grpc_tools.protoc \
  -Iproto \
  --python_out="$out" \
  --pyi_out="$out" \
  --grpc_python_out="$out" \
  proto/pydeephaven/_proto/*.proto
