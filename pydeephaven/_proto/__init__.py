"""Generated protobuf modules; regenerate with scripts/gen_protos.sh."""
