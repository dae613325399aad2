"""Logging for the daemon: where records go, what a line looks like, reopening.

This module owns the handlers of the ``simple_ntpd`` logger (every module logs
under it with ``logging.getLogger(__name__)``). :func:`setup_logging` installs
them from the ``[logging]`` configuration and may be called again on SIGHUP:
it builds the new handlers first and swaps them in only when all of them could
be built, so a bad reload leaves the old logging in place. :func:`reopen_logs`
reopens log files after logrotate moved them (SIGUSR1).

Two line formats:

* ``text``: ``2026-12-04T15:54:31.123456+00:00 INFO simple_ntpd.runtime: message``
  followed by ``key=value`` pairs for fields passed with ``extra=``.
* ``json``: one object per line with ``timestamp``, ``level``, ``logger``,
  ``message``, ``hostname`` (when enabled), the labels (``environment``,
  ``datacenter``, ``region``) at top level, fields passed with ``extra=`` under
  ``fields``, and ``exception`` when a traceback is attached.

A client controls some of the text we log (addresses are safe, but a request's
bytes or a hostname from a control request are not), so text lines escape every
control character, including newlines: one record is always exactly one line
and a client cannot forge a line. JSON lines get the same guarantee from the
JSON encoder (``ensure_ascii`` leaves no raw control or separator characters).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import logging.handlers
import os
import socket
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TextIO

from simple_ntpd.errors import SimpleNtpdError
from simple_ntpd.reasons import DropReason

ROOT_LOGGER = "simple_ntpd"
QUERY_LOGGER = "simple_ntpd.queries"
"""Workers log each client request here at INFO when ``log_client_queries`` is on."""
SYNC_LOGGER = "simple_ntpd.sync"
"""Timekeeping logs source selection, steps and slews here; ``log_sync_events = false``
keeps only its warnings and errors."""
PERFORMANCE_LOGGER = "simple_ntpd.performance"
"""The main process's periodic summary lines (``log_performance_metrics``)."""
_OFF = logging.CRITICAL + 10

OUTPUTS = ("console", "file", "syslog")
FORMATS = ("text", "json")
LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}

_NO_LABELS: Mapping[str, str] = MappingProxyType({})

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RESERVED_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}

# Keys the JSON formatter writes itself; labels may not shadow them.
_JSON_KEYS = frozenset(
    {"timestamp", "level", "logger", "message", "hostname", "fields", "exception"}
)


class LoggingSetupError(SimpleNtpdError):
    """The logging configuration cannot be applied (bad value, unwritable file)."""


def _control_escapes() -> dict[int, str]:
    table: dict[int, str] = {}
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    # C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators
    # that some tools (str.splitlines, editors) treat as line breaks.
    for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)]:
        table[code] = named.get(code, f"\\x{code:02x}")
    table[0x2028] = "\\u2028"
    table[0x2029] = "\\u2029"
    return table


_ESCAPES = _control_escapes()


def escape_control(text: str) -> str:
    """``text`` with every control character written as a C-style escape.

    Printable text, including non-ASCII letters, is kept as it is.
    """
    return text.translate(_ESCAPES)


def _iso_utc(created: float) -> str:
    """ISO 8601 in UTC with microseconds: ``2026-12-04T15:54:31.123456+00:00``."""
    return _dt.datetime.fromtimestamp(created, tz=_dt.UTC).isoformat(timespec="microseconds")


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller attached with ``extra=`` (a ``fields`` mapping is merged in)."""
    fields: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _RESERVED_ATTRS:
            continue
        if key == "fields" and isinstance(value, Mapping):
            fields.update({str(k): v for k, v in value.items()})
        else:
            fields[key] = value
    return fields


def _format_value(value: Any) -> str:
    text = escape_control(value if isinstance(value, str) else repr(value))
    if not text or any(c in text for c in ' "='):
        return '"' + text.replace('"', '\\"') + '"'
    return text


class TextFormatter(logging.Formatter):
    """``<ISO 8601 UTC> <LEVEL> <logger>: <message> [key=value ...]`` on one line.

    With ``timestamp=False`` (syslog, which stamps lines itself) the time is left out.
    """

    def __init__(self, *, timestamp: bool = True) -> None:
        super().__init__()
        self._timestamp = timestamp

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        parts = [f"{record.levelname} {record.name}: {escape_control(message)}"]
        if self._timestamp:
            parts.insert(0, _iso_utc(record.created))
        for key, value in extra_fields(record).items():
            parts.append(f"{escape_control(key)}={_format_value(value)}")
        if record.exc_info:
            parts.append("exception=" + _format_value(self.formatException(record.exc_info)))
        elif record.stack_info:
            parts.append("stack=" + _format_value(record.stack_info))
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; see the module docstring for the keys."""

    def __init__(
        self, *, hostname: str | None = None, labels: Mapping[str, str] = _NO_LABELS
    ) -> None:
        super().__init__()
        self._hostname = hostname
        self._labels = {k: v for k, v in labels.items() if v and k not in _JSON_KEYS}

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "timestamp": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._hostname is not None:
            obj["hostname"] = self._hostname
        obj.update(self._labels)
        fields = extra_fields(record)
        if fields:
            obj["fields"] = fields
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            obj["exception"] = record.stack_info
        # ensure_ascii: no raw control characters or line separators survive.
        return json.dumps(obj, ensure_ascii=True, default=str, separators=(",", ":"))


class _Reopenable:
    """Reopen the stream of a file handler in place (after logrotate moved the file)."""

    def reopen(self) -> None:
        handler: Any = self
        with handler.lock:
            stream = handler.stream
            if stream is not None:
                try:
                    stream.flush()
                finally:
                    stream.close()
            handler.stream = handler._open()
            if hasattr(handler, "_statstream"):
                handler._statstream()


class ReopeningFileHandler(_Reopenable, logging.handlers.WatchedFileHandler):
    """A file handler that reopens when the file is moved or on :func:`reopen_logs`.

    WatchedFileHandler notices a moved file by itself (one stat per record), so
    a missed SIGUSR1 loses no lines either.
    """


class SizeRotatingFileHandler(_Reopenable, logging.handlers.RotatingFileHandler):
    """Rotation by size, done by the daemon itself (``max_file_size``/``max_files``).

    Only the process that created the handler rotates. Forked data-plane workers
    inherit it; if each rotated on its own they would rename the file under one
    another. In a worker the handler instead follows the file like
    WatchedFileHandler: when the main process has rotated it, the worker
    reopens the new file on its next line.
    """

    def __init__(self, filename: str, *, maxBytes: int, backupCount: int, encoding: str) -> None:
        super().__init__(filename, maxBytes=maxBytes, backupCount=backupCount, encoding=encoding)
        self._owner_pid = os.getpid()

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if os.getpid() == self._owner_pid:
            return bool(super().shouldRollover(record))
        self._follow()
        return False

    def owned(self) -> bool:
        """True in the process that created the handler (the only one that rotates)."""
        return os.getpid() == self._owner_pid

    def rotate_if_over(self) -> int:
        """Rotate now if the file on disk is at least ``maxBytes``; 1 if rotated."""
        if self.maxBytes <= 0:
            return 0
        try:
            size = os.stat(self.baseFilename).st_size
        except FileNotFoundError:
            return 0
        if size < self.maxBytes:
            return 0
        self.acquire()
        try:
            self.doRollover()
        finally:
            self.release()
        return 1

    def _follow(self) -> None:
        stream = self.stream
        try:
            on_disk = os.stat(self.baseFilename)
        except FileNotFoundError:
            on_disk = None
        if stream is not None:
            opened = os.fstat(stream.fileno())
            if on_disk is not None and (on_disk.st_dev, on_disk.st_ino) == (
                opened.st_dev,
                opened.st_ino,
            ):
                return
        self.reopen()


class _State:
    handlers: list[logging.Handler] = []


def _level(level: str) -> int:
    try:
        return LEVELS[level.strip().upper()]
    except KeyError:
        raise LoggingSetupError(
            f"logging level {level!r} is not one of {', '.join(LEVELS)}"
        ) from None


def _facility(name: str) -> int:
    try:
        return logging.handlers.SysLogHandler.facility_names[name.strip().lower()]
    except KeyError:
        names = ", ".join(sorted(logging.handlers.SysLogHandler.facility_names))
        raise LoggingSetupError(f"syslog facility {name!r} is not one of {names}") from None


def _syslog_address(address: str) -> str | tuple[str, int]:
    """A Unix socket path, or ``host:port`` for syslog over UDP."""
    if address.startswith("/"):
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise LoggingSetupError(f"syslog address {address!r} is neither a path nor host:port")
    return host.strip("[]"), int(port)


def _file_handler(log_file: str, max_file_size: int, max_files: int) -> logging.Handler:
    try:
        if max_file_size > 0:
            # max_files counts the rotated files kept besides the live one, like
            # logrotate's "rotate N"; rotating by size with none kept would lose
            # the whole file at each rotation, so keep at least one.
            return SizeRotatingFileHandler(
                log_file, maxBytes=max_file_size, backupCount=max(1, max_files), encoding="utf-8"
            )
        return ReopeningFileHandler(log_file, encoding="utf-8")
    except OSError as exc:
        raise LoggingSetupError(f"cannot open log file {log_file}: {exc.strerror}") from exc


def _syslog_handler(facility: str, tag: str, address: str) -> logging.Handler:
    try:
        handler = logging.handlers.SysLogHandler(
            address=_syslog_address(address), facility=_facility(facility)
        )
    except OSError as exc:
        raise LoggingSetupError(f"cannot reach syslog at {address}: {exc.strerror}") from exc
    # RFC 3164 section 4.1.3: TAG[pid]: precedes the content.
    handler.ident = f"{tag}[{os.getpid()}]: "
    return handler


def setup_logging(
    level: str,
    output: str,
    log_file: str | None,
    log_format: str,
    *,
    labels: Mapping[str, str] = _NO_LABELS,
    max_file_size: int = 0,
    max_files: int = 0,
    enable_syslog: bool = False,
    syslog_facility: str = "daemon",
    syslog_tag: str = "simple-ntpd",
    syslog_address: str = "/dev/log",
    include_hostname: bool = True,
    stream: TextIO | None = None,
    log_client_queries: bool = False,
    log_sync_events: bool = True,
) -> None:
    """Configure the ``simple_ntpd`` logger, replacing what an earlier call installed.

    ``output`` is ``console`` (stderr, or ``stream``), ``file`` (``log_file``,
    rotated at ``max_file_size`` bytes keeping ``max_files`` old files when
    ``max_file_size > 0``, else reopened when moved) or ``syslog``;
    ``enable_syslog`` adds syslog beside the main output. Raises
    :class:`LoggingSetupError` and keeps the previous handlers when a value is
    invalid or the log file cannot be opened. A local syslog socket that is not
    there yet is not an error (as with openlog(3)): lines reach it once it is.

    ``log_client_queries`` opens :data:`QUERY_LOGGER` at INFO whatever ``level``
    is (an explicit request for those lines); off, it is closed entirely.
    ``log_sync_events = false`` raises :data:`SYNC_LOGGER` to WARNING. Forked
    workers inherit these levels, so the data plane tests one cached flag.
    """
    numeric_level = _level(level)
    if output not in OUTPUTS:
        raise LoggingSetupError(f"logging output {output!r} is not one of {', '.join(OUTPUTS)}")
    if log_format not in FORMATS:
        raise LoggingSetupError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    if max_file_size < 0 or max_files < 0:
        raise LoggingSetupError("max_file_size and max_files must not be negative")

    hostname = socket.gethostname() if include_hostname else None
    if log_format == "json":
        main_formatter: logging.Formatter = JsonFormatter(hostname=hostname, labels=labels)
        syslog_formatter: logging.Formatter = main_formatter
    else:
        main_formatter = TextFormatter()
        syslog_formatter = TextFormatter(timestamp=False)

    built: list[logging.Handler] = []
    try:
        if output == "console":
            main: logging.Handler = logging.StreamHandler(stream or sys.stderr)
        elif output == "file":
            if not log_file:
                raise LoggingSetupError("logging output is 'file' but log_file is not set")
            main = _file_handler(log_file, max_file_size, max_files)
        else:
            main = _syslog_handler(syslog_facility, syslog_tag, syslog_address)
        main.setFormatter(syslog_formatter if output == "syslog" else main_formatter)
        built.append(main)
        if enable_syslog and output != "syslog":
            extra = _syslog_handler(syslog_facility, syslog_tag, syslog_address)
            extra.setFormatter(syslog_formatter)
            built.append(extra)
    except BaseException:
        for handler in built:
            handler.close()
        raise

    logger = logging.getLogger(ROOT_LOGGER)
    old = _State.handlers
    for handler in built:
        logger.addHandler(handler)
    for handler in old:
        logger.removeHandler(handler)
        handler.close()
    _State.handlers = built
    logger.setLevel(numeric_level)
    logging.getLogger(QUERY_LOGGER).setLevel(logging.INFO if log_client_queries else _OFF)
    logging.getLogger(SYNC_LOGGER).setLevel(logging.NOTSET if log_sync_events else logging.WARNING)


def rotate_logs_if_needed() -> int:
    """Rotate every size-rotated log file of this process that is at or over its size.

    Rotation otherwise happens only when the rotating (main) process itself writes
    a line, and with ``log_client_queries`` most lines come from the workers; the
    main process calls this periodically so the file cannot grow far past
    ``max_file_size``. Returns how many files were rotated.
    """
    rotated = 0
    for handler in _State.handlers:
        if isinstance(handler, SizeRotatingFileHandler) and handler.owned():
            rotated += handler.rotate_if_over()
    return rotated


def reopen_logs() -> None:
    """Reopen every log file (SIGUSR1 after logrotate). Call it from the event loop.

    Not from a raw signal handler: the handler lock is taken, and a signal
    arriving in the middle of a write on the same thread would re-enter it.
    """
    for handler in _State.handlers:
        if isinstance(handler, _Reopenable):
            handler.reopen()


def shutdown_logging() -> None:
    """Flush and close the handlers :func:`setup_logging` installed."""
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in _State.handlers:
        logger.removeHandler(handler)
        handler.close()
    _State.handlers = []


def describe_query(
    addr: str, port: int, data: bytes, outcome: object
) -> tuple[str, dict[str, Any]]:
    """Message and fields of one client-query log line (``log_client_queries``).

    Bounded whatever the client sent: the address and port as the kernel gave
    them, the version and mode from the first octet, the length, and the
    outcome (``response`` or the drop reason); never the request's bytes.
    """
    b0 = data[0] if data else 0
    version, mode = (b0 >> 3) & 7, b0 & 7
    result = "dropped: " + outcome.name.lower() if isinstance(outcome, DropReason) else "response"
    fields: dict[str, Any] = {
        "client": addr,
        "port": port,
        "version": version,
        "mode": mode,
        "length": len(data),
        "outcome": result,
    }
    return (
        f"query from {addr} port {port}: v{version} mode {mode}, {len(data)} octets, {result}",
        fields,
    )
