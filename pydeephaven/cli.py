"""The ``pydeephaven`` command line (also ``python -m pydeephaven``).

    pydeephaven [connection options] COMMAND ...

      tables                       names of the tables in the server's scope, one a line
      run FILE                     run a server-side script; the tables it created are listed
                                   (--output: what it printed instead; --timeout SECONDS)
      sql QUERY                    run a SQL query: pretty text on a terminal, else CSV (--format, --out)
      import FILE --name NAME      load a CSV / Parquet / Arrow IPC file into a named server table
      export NAME --out FILE       write a named table to a file; the format comes from the extension
      tail NAME                    follow a live table, printing its changes until Ctrl-C
      logs                         follow the server's log (what scripts print, and its own log)
      info                         the server's version, configuration and Java heap
      storage ls [PATH]            the server's file storage (notebooks): list a directory,
      storage get PATH [DEST]      fetch a file (to stdout without DEST),
      storage put SRC PATH         store a file (--force replaces one)
      serve                        run an embedded real server in the foreground until Ctrl-C / SIGTERM

Connection options also come from the environment: DH_HOST, DH_PORT, DH_AUTH_TYPE, DH_AUTH_TOKEN.

Exit status: 0 success; 1 the server or the network refused (connection, authentication, a failing
query or script, a table that does not exist, ...); 2 a usage error (unknown command or option, a
bad value, a missing argument, an input file that does not exist, an output folder that does not
exist); 130 interrupted (Ctrl-C) and 143 terminated (SIGTERM), except for ``tail``, ``logs`` and
``serve``, which are meant to be stopped that way and exit 0. An error is one line on stderr; ``--debug`` adds
the whole message, the traceback and the client's debug log.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import os
import queue
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import click

from pydeephaven import formats
from pydeephaven.dherror import DHError, ServerError, ScriptTimeoutError
from pydeephaven.embedded import PSK_AUTH, start_server
from pydeephaven.formats import visible
from pydeephaven._transport import human_bytes
from pydeephaven.session import Session
from pydeephaven.ticking import listen

if TYPE_CHECKING:
    import pyarrow as pa

    from pydeephaven.embedded import EmbeddedServer
    from pydeephaven.table import Table

PROG = "pydeephaven"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

#: Short names accepted by --auth-type (any other value is passed to the server as it is).
AUTH_ALIASES = {"anonymous": "Anonymous", "basic": "Basic", "psk": PSK_AUTH}

#: File formats by the ending of a file's name (after any compression suffix), for export and sql --out.
_EXTENSIONS = {
    ".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet", ".pq": "parquet", ".parq": "parquet",
    ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow",
}
#: Compressed text files: the writers compress by the name (CSV and JSON only).
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
SQL_FORMATS = ("pretty", "csv", "json", "parquet", "arrow")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that every command cleans up the same way."""


class _PipeClosed(Exception):
    """The reader of our standard output went away (``... | head``): a normal end."""


# -- output ---------------------------------------------------------------------------------------


def _for_terminal(text: str) -> str:
    """``text`` with the characters that would act on a terminal (ESC sequences, other controls,
    bidirectional overrides) escaped visibly, line ends kept: for output a person reads (CSV rows
    of ``tail`` or ``sql --format csv`` on a terminal, error lines). Output to a pipe or a file is
    data and stays as it is."""
    return "\n".join(visible(line) for line in text.split("\n"))


def _write(text: str) -> None:
    """Write ``text`` to stdout and flush at once (followers of ``tail`` see each update); on a
    terminal, with control characters escaped (``_for_terminal``)."""
    try:
        if sys.stdout.isatty():
            text = _for_terminal(text)
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise _PipeClosed() from None


def _write_bytes(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise _PipeClosed() from None


def _line(text: str) -> None:
    _write(text if text.endswith("\n") else text + "\n")


def _note(text: str) -> None:
    """A status message for a person: on stderr, and only when stderr is a terminal."""
    if sys.stderr.isatty():
        click.echo(text, err=True)


def one_line(message: str) -> str:
    """A one-line form of a (possibly multi-line) error message: its first line, then the last
    line that says something (for a server-side script, the exception that ended it), skipping
    stack frames."""
    lines = [_for_terminal(ln.strip()) for ln in str(message).splitlines() if ln.strip()]
    if not lines:
        return "failed (no message)"
    if len(lines) == 1:
        return lines[0]
    frames = ("at ", 'File "', "Traceback (", "...", "^")
    telling = [ln for ln in lines[1:] if not ln.startswith(frames)]
    head = lines[0].rstrip(":").rstrip()
    tail = telling[-1] if telling else ""
    text = f"{head}: {tail}" if tail and tail not in head else head
    return f"{text} (--debug shows the whole message)"


# -- connection -----------------------------------------------------------------------------------


@dataclass
class Connection:
    """The global options, and the session made from them on first use (closed when the command ends)."""

    host: Optional[str] = None
    port: Optional[int] = None
    auth_type: str = "Anonymous"
    auth_token: str = ""
    tls: bool = False
    ca: Optional[str] = None
    client_cert: Optional[str] = None
    client_key: Optional[str] = None
    embedded: bool = False
    debug: bool = False
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)
    _session: Any = field(default=None, repr=False)

    def session(self, session_type: str = "python") -> "Session":
        if self._session is None:
            self._session = self._connect(session_type)
        return self._session

    def _connect(self, session_type: str) -> "Session":
        host, port, auth_type, auth_token = self.host, self.port, self.auth_type, self.auth_token
        if self.embedded:
            server = self.start_embedded()
            host, port = server.host, server.port
            auth_type, auth_token = server.auth_type, server.auth_token
        tls = self.tls or bool(self.ca or self.client_cert)
        session = Session(
            host, port, auth_type=auth_type, auth_token=auth_token, session_type=session_type, use_tls=tls,
            tls_root_certs=_read_file(self.ca), client_cert_chain=_read_file(self.client_cert),
            client_private_key=_read_file(self.client_key),
        )
        self._stack.callback(session.close)
        return session

    def start_embedded(self) -> "EmbeddedServer":
        _note("starting an embedded Deephaven server (about 30-40 s) ...")
        server = start_server()
        self._stack.callback(server.stop)
        return server

    def close(self) -> None:
        self._stack.close()


def _read_file(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise DHError(f"cannot read {path!r}: {e.strerror or e}") from None


def _auth_type(_ctx: click.Context, _param: click.Parameter, value: Optional[str]) -> str:
    if not value:
        return "Anonymous"
    return AUTH_ALIASES.get(value.lower(), value)


def _conn(ctx: click.Context) -> Connection:
    return ctx.find_object(Connection)  # type: ignore[return-value]


def _from_command_line(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


# -- the command group ----------------------------------------------------------------------------

_EXISTING_FILE = click.Path(exists=True, dir_okay=False, readable=True)
_EXISTING_FILE_OR_DASH = click.Path(exists=True, dir_okay=False, readable=True, allow_dash=True)


def _output_path(_ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    """An output file whose folder exists (else a usage error)."""
    if value is None:
        return None
    p = Path(value)
    if p.is_dir():
        raise click.BadParameter(f"{value!r} is a directory; give a file path", param=param)
    if not p.parent.exists():
        raise click.BadParameter(f"the directory {str(p.parent)!r} does not exist", param=param)
    return value


def _table_name(_ctx: click.Context, param: click.Parameter, value: str) -> str:
    import keyword

    if not value.isidentifier() or keyword.iskeyword(value):
        raise click.BadParameter(f"{value!r} is not a usable table name (a Python identifier, not a keyword)",
                                 param=param)
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--host", envvar="DH_HOST", show_envvar=True, help="Server host [default: localhost].")
@click.option("--port", envvar="DH_PORT", show_envvar=True, type=click.IntRange(1, 65535),
              help="Server port [default: 10000].")
@click.option("--auth-type", envvar="DH_AUTH_TYPE", show_envvar=True, callback=_auth_type,
              help="Anonymous (default), Basic, psk (the pre-shared-key handler), or the class name of a "
                   "server authentication handler.")
@click.option("--auth-token", envvar="DH_AUTH_TOKEN", show_envvar=True,
              help="The credential for --auth-type (prefer the environment variable to the command line).")
@click.option("--tls", is_flag=True, help="Connect with TLS (implied by --ca and --client-cert).")
@click.option("--ca", type=_EXISTING_FILE, metavar="FILE", help="PEM file of the CA certificates to trust.")
@click.option("--client-cert", type=_EXISTING_FILE, metavar="FILE", help="PEM certificate chain for mutual TLS.")
@click.option("--client-key", type=_EXISTING_FILE, metavar="FILE", help="PEM private key for mutual TLS.")
@click.option("--embedded", is_flag=True,
              help="Start a throwaway real server for this one command (needs pydeephaven[server] and Java 17+).")
@click.option("--debug", is_flag=True, help="On errors print the whole message and the traceback; log debug.")
@click.version_option(package_name="pydeephaven", prog_name=PROG)
@click.pass_context
def cli(ctx: click.Context, host: Optional[str], port: Optional[int], auth_type: str, auth_token: Optional[str],
        tls: bool, ca: Optional[str], client_cert: Optional[str], client_key: Optional[str], embedded: bool,
        debug: bool) -> None:
    """A command line client for Deephaven servers."""
    if bool(client_cert) != bool(client_key):
        raise click.UsageError("--client-cert and --client-key go together")
    if embedded and (_from_command_line(ctx, "host") or _from_command_line(ctx, "port")):
        raise click.UsageError("--embedded starts its own server: drop --host and --port")
    if debug:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("pydeephaven").setLevel(logging.DEBUG)
    conn = Connection(host, port, auth_type, auth_token or "", tls, ca, client_cert, client_key, embedded, debug)
    ctx.obj = conn
    ctx.call_on_close(conn.close)
    _STATE["debug"] = debug


_STATE: dict[str, Any] = {"debug": False}


# -- tables, run ----------------------------------------------------------------------------------


@cli.command(short_help="Names of the tables in the server's scope.")
@click.pass_context
def tables(ctx: click.Context) -> None:
    """Names of the tables in the server's scope, one a line (sorted)."""
    for name in sorted(_conn(ctx).session().tables):
        _line(name)


@cli.command(short_help="Run a server-side script; list the tables it created.")
@click.argument("file", type=_EXISTING_FILE_OR_DASH)
@click.option("--language", type=click.Choice(["python", "groovy"]),
              help="The script's language [default: groovy for a .groovy file, else python].")
@click.option("--output", "show_output", is_flag=True,
              help="Print what the script printed (its stdout and stderr lines, in order) instead of the names "
                   "of the tables it created; also when it fails.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
              help="Stop the script on the server after this many seconds (exit status 1).")
@click.pass_context
def run(ctx: click.Context, file: str, language: Optional[str], show_output: bool, timeout: Optional[float]) -> None:
    """Run FILE (- for standard input) as a script on the server, then list the names of the
    tables it created, one a line (with --output: the lines the script printed)."""
    if file == "-":
        script = sys.stdin.read()
    else:
        try:
            script = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DHError(f"run: cannot read {file!r}: {e}") from None
    lang = language or ("groovy" if file.lower().endswith(".groovy") else "python")
    session = _conn(ctx).session(lang)
    if show_output:
        try:
            result = session.run_script(script, capture_output=True, timeout=timeout)
        except (ServerError, ScriptTimeoutError) as e:
            for line in e.output or ():
                _line(line)
            raise
        for line in result.output or ():
            _line(line)
        return
    before = set(session.tables)
    session.run_script(script, timeout=timeout)
    for name in sorted(set(session.tables) - before):
        _line(name)


# -- info -----------------------------------------------------------------------------------------



@cli.command(short_help="The server's version, configuration and Java heap.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help='text: lines for a person; json: {"version": ..., "heap": {...}, "config": {...}}.')
@click.pass_context
def info(ctx: click.Context, fmt: str) -> None:
    """The server's Deephaven version, the configuration values it shows clients (the versions
    of its Java, Python, Barrage ...) and its Java heap (bytes: max_memory, the most it may use;
    total_memory, taken now; free_memory, of that unused)."""
    session = _conn(ctx).session()
    config = session.server_config
    heap = session.heap_info()
    if fmt == "json":
        _line(json.dumps({"version": session.server_version, "heap": heap, "config": config}, indent=2,
                         sort_keys=True))
        return
    used = heap["total_memory"] - heap["free_memory"]
    _line(f"server: {session.host}:{session.port}")
    _line(f"version: {session.server_version or 'unknown'}")
    _line(f"heap: {human_bytes(used)} used of {human_bytes(heap['total_memory'])} taken, "
          f"at most {human_bytes(heap['max_memory'])}")
    _line("config:")
    for key in sorted(config):
        _line(f"  {key} = {config[key]}")


# -- storage --------------------------------------------------------------------------------------


def _storage_path(_ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    if value is not None and not value.startswith("/"):
        raise click.BadParameter(f"{value!r}: storage paths start at its root, '/'", param=param)
    return value


@cli.group(short_help="The server's file storage (notebooks): ls, get, put.")
def storage() -> None:
    """The server's file storage, where its web UI keeps notebooks and layouts (paths from its
    root, /)."""


@storage.command("ls", short_help="List a directory of the storage.")
@click.argument("path", default="/", callback=_storage_path)
@click.option("--long", "-l", "long_", is_flag=True,
              help="Tab-separated: kind, size in bytes, etag (- for none), path.")
@click.option("--glob", metavar="PATTERN", help="Only the names matching PATTERN, e.g. '*.py'.")
@click.pass_context
def storage_ls(ctx: click.Context, path: str, long_: bool, glob: Optional[str]) -> None:
    """The entries of the storage directory PATH (default /), one a line, sorted; a directory's
    path ends with /."""
    for item in sorted(_conn(ctx).session().storage.ls(path, glob), key=lambda i: i.path):
        if long_:
            _line(f"{item.kind}\t{item.size}\t{item.etag or '-'}\t{item.path}")
        else:
            _line(item.path + ("/" if item.kind == "directory" else ""))


@storage.command("get", short_help="Fetch a file of the storage.")
@click.argument("path", callback=_storage_path)
@click.argument("dest", required=False)
@click.pass_context
def storage_get(ctx: click.Context, path: str, dest: Optional[str]) -> None:
    """Fetch the storage file PATH into DEST (a file, or a directory to put it in under its own
    name); to stdout without DEST or with -."""
    target: Optional[Path] = None
    if dest is not None and dest != "-":
        target = Path(dest)
        if target.is_dir():
            target = target / Path(path).name
        elif not target.parent.exists():
            raise click.BadParameter(f"the directory {str(target.parent)!r} does not exist", param_hint="'DEST'")
    data = _conn(ctx).session().storage.read(path)
    if target is None:
        _write_bytes(data)
        return
    tmp = target.with_name(f".{target.name}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DHError(f"cannot write {str(target)!r}: {e.strerror or e}") from None
    _line(f"wrote {len(data)} bytes from {path} to {target}")


@storage.command("put", short_help="Store a file in the storage.")
@click.argument("src", type=_EXISTING_FILE_OR_DASH)
@click.argument("path", callback=_storage_path)
@click.option("--force", "-f", is_flag=True, help="Replace the file if it exists (else that is an error).")
@click.pass_context
def storage_put(ctx: click.Context, src: str, path: str, force: bool) -> None:
    """Store the local file SRC (- for standard input) as the storage file PATH (a PATH ending in
    / is a directory: the file keeps its name)."""
    if path.endswith("/"):
        if src == "-":
            raise click.BadParameter("give the file's name in PATH when reading standard input", param_hint="'PATH'")
        path += Path(src).name
    try:
        data = sys.stdin.buffer.read() if src == "-" else Path(src).read_bytes()
    except OSError as e:
        raise DHError(f"cannot read {src!r}: {e.strerror or e}") from None
    _conn(ctx).session().storage.write(path, data, allow_overwrite=force)
    _line(f"stored {len(data)} bytes from {src} at {path}")


# -- sql ------------------------------------------------------------------------------------------


def _kind_from_name(path: str) -> Optional[str]:
    """The file format of ``path`` from its name ("csv", "tsv", "json", "jsonl", "parquet", "arrow")."""
    name = Path(path).name.lower()
    compressed = next((c for c in _COMPRESSED if name.endswith(c)), None)
    if compressed:
        name = name[: -len(compressed)]
    for ext, kind in _EXTENSIONS.items():
        if name.endswith(ext):
            if compressed and kind not in ("csv", "tsv", "json", "jsonl"):
                return None
            return kind
    return None


def _write_table_file(table: "Table", path: str, kind: str, progress: Optional[bool]) -> int:
    """Write ``table`` to ``path`` as ``kind``, streamed, with the Table's own file writers."""
    if kind == "csv":
        return int(table.to_csv(path, progress=progress))
    if kind == "tsv":
        return int(table.to_csv(path, progress=progress, delimiter="\t"))
    if kind in ("json", "jsonl"):
        return int(table.to_json(path, lines=kind == "jsonl", progress=progress))
    if kind == "parquet":
        return table.to_parquet(path, progress=progress)
    if kind == "arrow":
        return table.to_feather(path, progress=progress)
    raise AssertionError(kind)


_PROGRESS = click.option("--progress/--no-progress", default=None,
                         help="Show a progress bar on stderr [default: on a terminal, for transfers over a second].")


def _extension_list() -> str:
    return ", ".join(sorted(_EXTENSIONS)) + f" (CSV and JSON also {'/'.join(_COMPRESSED)})"


@cli.command(short_help="Run a SQL query; print or save the result.")
@click.argument("query")
@click.option("--format", "-f", "fmt", type=click.Choice(SQL_FORMATS, case_sensitive=False),
              help="Output format [default: from the --out name; else pretty on a terminal, csv otherwise]. "
                   "arrow is an Arrow IPC stream on stdout, an Arrow IPC file with --out.")
@click.option("--out", "-o", metavar="FILE", callback=_output_path,
              help="Write the result to FILE instead of stdout (written whole or not at all).")
@click.option("--max-rows", type=click.IntRange(1), default=10, show_default=True,
              help="Rows shown by the pretty format.")
@_PROGRESS
@click.pass_context
def sql(ctx: click.Context, query: str, fmt: Optional[str], out: Optional[str], max_rows: int,
        progress: Optional[bool]) -> None:
    """Run a SQL QUERY on the server (it sees the tables of the server's scope) and print or save
    the result."""
    if fmt is None and out is not None:
        kind = _kind_from_name(out)
        if kind is None:
            raise click.BadParameter(f"cannot tell the format of {out!r} from its name; give --format "
                                     f"or one of {_extension_list()}", param_hint="'--out'")
        fmt = {"tsv": "csv", "jsonl": "json"}.get(kind, kind)
    if fmt is None:
        fmt = "pretty" if sys.stdout.isatty() else "csv"
    fmt = fmt.lower()
    if out is None and fmt in ("parquet", "arrow") and sys.stdout.isatty():
        raise click.UsageError(f"--format {fmt} writes binary data: give --out FILE or redirect stdout")
    session = _conn(ctx).session()
    if out is not None:
        if fmt == "pretty":
            text = session.sql(query, "pretty", max_rows=max_rows)
            _save_text(out, text)
            return
        named = _kind_from_name(out)
        kind = named if named is not None and (fmt, named) in (("csv", "tsv"), ("json", "jsonl")) else fmt
        with session.sql(query, "table") as table:
            _write_table_file(table, out, kind, progress)
        return
    if fmt == "pretty":
        _line(session.sql(query, "pretty", max_rows=max_rows))
    elif fmt in ("csv", "json"):
        _line(session.sql(query, fmt))
    else:
        _write_bytes(_binary(session.sql(query, "arrow"), fmt))


def _save_text(path: str, text: str) -> None:
    tmp = Path(path).with_name(f".{Path(path).name}.part")
    try:
        tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DHError(f"cannot write {path!r}: {e.strerror or e}") from None


def _binary(data: "pa.Table", fmt: str) -> bytes:
    """``data`` as an Arrow IPC stream or a Parquet file, in memory."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    if fmt == "arrow":
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
    else:
        import pyarrow.parquet as pq

        pq.write_table(data, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


# -- import, export -------------------------------------------------------------------------------


@cli.command("import", short_help="Load a CSV / Parquet / Arrow file into a server table.")
@click.argument("file", type=_EXISTING_FILE)
@click.option("--name", "-n", required=True, callback=_table_name, help="The server table to create or replace.")
@click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "parquet", "arrow"], case_sensitive=False),
              help="The file's format [default: from its name: .csv .tsv (optionally .gz .bz2 .zst), "
                   ".parquet .pq, .arrow .feather .ipc].")
@click.option("--encoding", metavar="NAME", help="The text encoding of a CSV file, e.g. latin-1 [default: UTF-8, "
              "and a file that is not UTF-8 is refused].")
@_PROGRESS
@click.pass_context
def import_(ctx: click.Context, file: str, name: str, fmt: Optional[str], encoding: Optional[str],
            progress: Optional[bool]) -> None:
    """Load a CSV, Parquet or Arrow IPC FILE into the server table NAME (streamed; files larger
    than memory load)."""
    session = _conn(ctx).session()
    table = session.import_file(file, fmt.lower() if fmt else None, progress=progress, encoding=encoding)
    with table:
        session.bind_table(name, table)
        cols = len(table.schema) if table.schema is not None else 0
        _line(f"imported {table.size} rows x {cols} columns from {file} into {name}")


@cli.command(short_help="Write a server table to a file (format from the extension).")
@click.argument("name")
@click.option("--out", "-o", required=True, metavar="FILE", callback=_output_path,
              help="The file to write (written whole or not at all).")
@_PROGRESS
@click.pass_context
def export(ctx: click.Context, name: str, out: str, progress: Optional[bool]) -> None:
    """Write the server table NAME to a file, in the format its extension names: .csv .tsv .json
    .jsonl/.ndjson (CSV and JSON optionally .gz .bz2 .zst .lz4), .parquet .pq, .arrow .feather .ipc."""
    kind = _kind_from_name(out)
    if kind is None:
        raise click.BadParameter(f"cannot tell the format of {out!r} from its name; use one of {_extension_list()}",
                                 param_hint="'--out'")
    session = _conn(ctx).session()
    with session.open_table(name) as table:
        rows = _write_table_file(table, out, kind, progress)
    _line(f"exported {rows} rows from {name} to {out}")


# -- logs -----------------------------------------------------------------------------------------


def _log_line(entry: Any, fmt: str) -> str:
    when = datetime.datetime.fromtimestamp(entry.time / 1e6, datetime.timezone.utc)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    if fmt == "json":
        return json.dumps({"time": stamp, "micros": entry.time, "level": entry.level, "message": entry.message}) + "\n"
    return f"{stamp} {entry.level} {entry.message}\n"


@cli.command(short_help="Follow the server's log until Ctrl-C.")
@click.option("--level", "-l", "levels", multiple=True, metavar="LEVEL",
              help="Only this level (repeatable): STDOUT, STDERR (what scripts print), INFO, WARN, ERROR ... "
                   "[default: all].")
@click.option("--history", is_flag=True, help="Start with the server's recent history (about its last thousand "
                                               "records) instead of the records from now on (this computer's clock).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help='text: "TIME LEVEL MESSAGE" lines (UTC); json: one {"time", "micros", "level", "message"} a line.')
@click.option("--seconds", type=click.FloatRange(0, min_open=True), help="Stop after this many seconds.")
@click.option("--max-entries", type=click.IntRange(1), help="Stop after this many records.")
@click.pass_context
def logs(ctx: click.Context, levels: tuple[str, ...], history: bool, fmt: str, seconds: Optional[float],
         max_entries: Optional[int]) -> None:
    """Print the server's log records as they arrive, of every session: what scripts print
    (levels STDOUT, STDERR) and the server's own log, until Ctrl-C (or --seconds, --max-entries)."""
    session = _conn(ctx).session()
    count = 0
    try:
        with session.logs(levels=list(levels) or None, since=None if history else time.time(),
                          timeout=seconds) as stream:
            for entry in stream:
                text = _log_line(entry, fmt)
                _write(text)
                count += 1
                if max_entries is not None and count >= max_entries:
                    break
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM: the way logs is meant to end


# -- tail -----------------------------------------------------------------------------------------


def _render_rows(parts: Sequence[tuple[str, "pa.Table"]], fmt: str, header: bool) -> str:
    """Rows marked with their op (= initial, - removed, + added, ~ modified): CSV lines with an
    "op" column first, or JSON lines {"op": ..., "row": {...}}."""
    import pyarrow as pa

    schema = parts[0][1].schema
    kept = [(op, t) for op, t in parts if t.num_rows]
    data = pa.concat_tables([t for _, t in kept]) if kept else schema.empty_table()
    ops = [op for op, t in kept for _ in range(t.num_rows)]
    if fmt == "json":
        records = formats.to_json_text(data, lines=True).splitlines()
        return "".join(f'{{"op": {json.dumps(op)}, "row": {rec}}}\n' for op, rec in zip(ops, records))
    if not ops and not header:
        return ""
    marked = pa.Table.from_arrays([pa.array(ops, pa.string()), *data.columns],
                                  schema=pa.schema([pa.field("op", pa.string()), *schema]))
    return formats.to_csv_text(marked, include_header=header)


def _update_parts(update: Any, first: bool, rows: int) -> list[tuple[str, "pa.Table"]]:
    """The rows of one TableUpdate to print, read on the subscription's thread."""
    import pyarrow as pa

    if first:
        whole = update.table
        return [("=", whole.slice(max(0, whole.num_rows - rows)) if rows else whole.slice(0, 0))]
    schema = update.table.schema

    def as_table(cols: dict) -> pa.Table:
        if not cols:
            return schema.empty_table()
        return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)

    return [("-", as_table(update.removed())), ("+", as_table(update.added())), ("~", as_table(update.modified()))]


@cli.command(short_help="Follow a live table, printing its changes until Ctrl-C.")
@click.argument("name")
@click.option("--rows", "-n", type=click.IntRange(0), default=10, show_default=True,
              help="How many of the table's last rows to print first.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="csv: a header, then one line per row with an op column; json: one object per row, "
                   '{"op": ..., "row": {...}}.')
@click.option("--max-updates", type=click.IntRange(1), help="Stop after this many changes (for scripts and tests).")
@click.option("--seconds", type=click.FloatRange(0, min_open=True), help="Stop after this many seconds.")
@click.pass_context
def tail(ctx: click.Context, name: str, rows: int, fmt: str, max_updates: Optional[int],
         seconds: Optional[float]) -> None:
    """Follow the server table NAME: print its last rows (op "="), then every change as it happens
    (op "-" removed rows, "+" added rows, "~" modified rows with their new values), until Ctrl-C.
    A static table's rows are printed once. The whole table is subscribed to."""
    session = _conn(ctx).session()
    table = session.open_table(name)
    events: "queue.Queue[Any]" = queue.Queue()
    state = {"first": True}

    def on_update(update: Any) -> None:
        first = state["first"]
        state["first"] = False
        events.put(_render_rows(_update_parts(update, first, rows), fmt, header=first))

    def on_error(error: Exception) -> None:
        events.put(error if isinstance(error, DHError) else DHError(f"tail({name!r}) failed: {error}"))

    deadline = None if seconds is None else time.monotonic() + seconds
    changes = 0
    handle = listen(table, on_update, on_error)
    handle.start()
    try:
        got_snapshot = False
        while True:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                item = events.get(timeout=wait)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            _write(item)
            if not got_snapshot:
                got_snapshot = True
                if table.is_static:
                    break
                continue
            changes += 1
            if max_updates is not None and changes >= max_updates:
                break
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM: the way tail is meant to end
    finally:
        handle.stop(timeout=10)
        table.close()


# -- serve ----------------------------------------------------------------------------------------


@cli.command(short_help="Run an embedded real server in the foreground.")
@click.option("--port", "-p", type=click.IntRange(1, 65535),
              help="The port to listen on [default: the global --port / DH_PORT, else 10000].")
@click.option("--psk", envvar="DH_PSK", show_envvar=True,
              help="Require this pre-shared key (auth type psk) instead of anonymous access; prefer DH_PSK.")
@click.option("--heap", default="2g", show_default=True, help="The server JVM's maximum heap (-Xmx).")
@click.pass_context
def serve(ctx: click.Context, port: Optional[int], psk: Optional[str], heap: str) -> None:
    """Run a real Deephaven server (from the deephaven-server package, Java 17+) on 127.0.0.1 in the
    foreground, until Ctrl-C or SIGTERM."""
    conn = _conn(ctx)
    if conn.embedded:
        raise click.UsageError("serve runs a server itself: drop --embedded")
    port = port or conn.port or 10000
    _note(f"starting a Deephaven server on 127.0.0.1:{port} (about 30-40 s) ...")
    server = start_server(port, psk=psk, heap=heap)
    try:
        auth = "pre-shared key (--auth-type psk)" if psk else "anonymous"
        _line(f"serving on {server.host}:{server.port} (auth: {auth}, pid {server.pid}); Ctrl-C to stop")
        while server.is_running():
            time.sleep(0.5)
        raise DHError(f"the server exited by itself with status {server.process.returncode}; end of its log:\n"
                      f"{server.log_tail(10)}")
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


# -- entry point ----------------------------------------------------------------------------------


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise _Terminated()


def _usage_line(e: click.UsageError) -> str:
    ctx = e.ctx
    where = ctx.command_path if ctx is not None else PROG
    return f"{where}: usage error: {e.format_message()} (see '{where} --help')"


def _divert_native_stderr() -> Optional[tuple[int, Any]]:
    """Point file descriptor 2 at /dev/null and keep ``sys.stderr`` on the real stderr.

    gRPC's C core writes log lines of its own to descriptor 2 (e.g. "Handshake failed ..." on a
    TLS mismatch, on top of the error we report); the environment variable that quiets it is read
    when grpc is imported, before any code of ours runs. Everything Python writes (our messages,
    progress bars, warnings) still reaches the real stderr. Returns what ``_restore_stderr`` needs.
    """
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, AttributeError, ValueError):
        return None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        os.close(real)
        return None
    previous = sys.stderr
    encoding = getattr(previous, "encoding", None) or "utf-8"
    sys.stderr = io.TextIOWrapper(io.FileIO(real, "w", closefd=False), encoding=encoding, errors="backslashreplace",
                                  line_buffering=True, write_through=True)
    return real, previous


def _restore_stderr(saved: Optional[tuple[int, Any]]) -> None:
    if saved is None:
        return
    real, previous = saved
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    sys.stderr = previous
    with contextlib.suppress(OSError):
        os.dup2(real, 2)
        os.close(real)


def _wants_debug(argv: Sequence[str]) -> bool:
    """Whether --debug is among the global options (before the command), read before click parses."""
    for arg in argv:
        if arg == "--debug":
            return True
        if arg in cli.commands:
            return False
    return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = list(argv) if argv is not None else sys.argv[1:]
    _STATE["debug"] = False
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: leave SIGTERM alone
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    saved = None if _wants_debug(args) else _divert_native_stderr()
    try:
        return _main(args)
    finally:
        _restore_stderr(saved)
        if previous is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, previous)


def _main(args: list[str]) -> int:
    try:
        result = cli.main(args=args, prog_name=PROG, standalone_mode=False)
        return result if isinstance(result, int) else EXIT_OK
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()
        return EXIT_USAGE
    except click.UsageError as e:
        click.echo(_usage_line(e), err=True)
        return EXIT_USAGE
    except click.ClickException as e:
        click.echo(f"{PROG}: error: {e.format_message()}", err=True)
        return e.exit_code
    except click.Abort as e:
        terminated = isinstance(e.__cause__, _Terminated)
        click.echo(f"{PROG}: {'terminated' if terminated else 'interrupted'}", err=True)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except _PipeClosed:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except DHError as e:
        if _STATE["debug"]:
            traceback.print_exc()
            click.echo(f"{PROG}: error: {e}", err=True)
        else:
            click.echo(f"{PROG}: error: {one_line(str(e))}", err=True)
        return EXIT_FAILED
    except Exception as e:  # a failure the client did not expect: still one line unless --debug
        if _STATE["debug"]:
            traceback.print_exc()
        text = one_line(f"{type(e).__name__}: {e}")
        click.echo(f"{PROG}: error: {text}" + ("" if _STATE["debug"] else " (--debug shows the traceback)"),
                   err=True)
        return EXIT_FAILED


def run_main() -> None:
    """The console script's entry point."""
    sys.exit(main())
