"""``python -m pydeephaven``: the command line (see ``pydeephaven.cli``)."""

from pydeephaven.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
