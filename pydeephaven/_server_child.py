"""Child-process entry point of :mod:`pydeephaven.embedded`: ``python -m pydeephaven._server_child
PORT READY_FILE JVM_ARG...``. Starts the server on 127.0.0.1, writes READY_FILE once it serves,
then lives until its standard input closes (the parent stopped it or died)."""

import os
import sys


def main() -> None:
    port, ready_path, jvm_args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    from deephaven_server import Server

    Server(host="127.0.0.1", port=port, jvm_args=jvm_args).start()
    with open(ready_path + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(ready_path + ".tmp", ready_path)
    sys.stdin.read()  # returns at EOF: the parent closed the pipe or exited
    os._exit(0)  # the JVM has non-daemon threads; leave at once


if __name__ == "__main__":
    main()
