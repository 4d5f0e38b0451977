#!/usr/bin/env bash
# Regenerate the Python protobuf/gRPC modules in pydeephaven/_proto from proto/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python}"

"$PYTHON" -m grpc_tools.protoc \
  -Iproto \
  --python_out=. \
  --pyi_out=. \
  --grpc_python_out=. \
  proto/pydeephaven/_proto/*.proto
