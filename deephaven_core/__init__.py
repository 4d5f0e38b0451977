"""The module path where the official pydeephaven wheel keeps its generated protocol modules.

Only ``deephaven_core.proto`` lives here; see that module.
"""
