"""Tests for simple_ntpd.daemon.logging_setup: formats, rotation, syslog, reopen."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simple_ntpd.daemon import logging_setup
from simple_ntpd.daemon.logging_setup import (
    JsonFormatter,
    LoggingSetupError,
    TextFormatter,
    escape_control,
    reopen_logs,
    setup_logging,
    shutdown_logging,
)

LABELS = {"environment": "production", "datacenter": "dc1", "region": "us-east-1"}


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    yield
    shutdown_logging()


def _log() -> logging.Logger:
    return logging.getLogger("simple_ntpd.runtime")


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("simple_ntpd.x", logging.WARNING, __file__, 1, msg, None, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_text_line_shape() -> None:
    buf = io.StringIO()
    setup_logging("INFO", "console", None, "text", stream=buf)
    _log().info("listening on %s", "127.0.0.1:123")
    (line,) = buf.getvalue().splitlines()
    stamp, level, rest = line.split(" ", 2)
    parsed = dt.datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == dt.timedelta(0)
    assert stamp.endswith("+00:00")
    assert len(stamp.split(".")[1].split("+")[0]) == 6  # microseconds
    assert abs((dt.datetime.now(dt.UTC) - parsed).total_seconds()) < 60
    assert level == "INFO"
    assert rest == "simple_ntpd.runtime: listening on 127.0.0.1:123"


def test_level_filters_and_is_replaced_on_second_call() -> None:
    buf = io.StringIO()
    setup_logging("WARNING", "console", None, "text", stream=buf)
    _log().info("hidden")
    _log().warning("shown")
    buf2 = io.StringIO()
    setup_logging("debug", "console", None, "text", stream=buf2)
    _log().debug("debug now")
    assert [line.split(": ", 1)[1] for line in buf.getvalue().splitlines()] == ["shown"]
    assert [line.split(": ", 1)[1] for line in buf2.getvalue().splitlines()] == ["debug now"]
    # exactly one handler from us on the logger after two calls
    ours = [
        h for h in logging.getLogger("simple_ntpd").handlers if h in logging_setup._State.handlers
    ]
    assert len(ours) == 1


def test_text_escapes_client_controlled_newlines() -> None:
    buf = io.StringIO()
    setup_logging("INFO", "console", None, "text", stream=buf)
    evil = "abc\n2026-12-04T00:00:00.000000+00:00 CRITICAL forged\r\x1b[31m\u2028\x85"
    _log().info("query from %s", evil, extra={"peer": evil})
    out = buf.getvalue()
    assert out.count("\n") == 1 and out.endswith("\n")
    assert "\r" not in out and "\x1b" not in out and "\u2028" not in out and "\x85" not in out
    assert "abc\\n2026" in out and "\\x1b[31m" in out and "\\u2028" in out
    assert 'peer="abc\\n2026' in out


@given(st.text())
def test_escape_control_leaves_no_control_characters(text: str) -> None:
    escaped = escape_control(text)
    assert len(escaped.splitlines()) <= 1
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in escaped)


def test_text_extra_fields_and_exception_stay_on_one_line() -> None:
    formatter = TextFormatter()
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = _record("failed", client="10.0.0.1", count=3)
        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line
    assert " client=10.0.0.1 count=3 " in line
    assert "exception=" in line and "ValueError: bad\\nthing" in line


def test_json_lines_parse_and_carry_fields(tmp_path: Path) -> None:
    path = tmp_path / "ntpd.log"
    setup_logging("INFO", "file", str(path), "json", labels=LABELS)
    _log().info("client %s", "a\nb", extra={"client": "192.0.2.1", "version": 4})
    _log().warning("plain", extra={"fields": {"offset": 0.001}})
    logging.getLogger("simple_ntpd").handlers[0].flush()
    lines = _lines(path)
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "client a\nb"
    assert first["level"] == "INFO"
    assert first["logger"] == "simple_ntpd.runtime"
    assert first["hostname"] == socket.gethostname()
    for key, value in LABELS.items():
        assert first[key] == value
    assert first["fields"] == {"client": "192.0.2.1", "version": 4}
    assert second["fields"] == {"offset": 0.001}
    ts = dt.datetime.fromisoformat(first["timestamp"])
    assert ts.utcoffset() == dt.timedelta(0)
    assert "." in first["timestamp"] and len(first["timestamp"].split(".")[1]) == 6 + 6


def test_json_without_hostname_and_with_exception() -> None:
    formatter = JsonFormatter(hostname=None, labels={"environment": "", "message": "x"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    obj = json.loads(formatter.format(record))
    assert "hostname" not in obj and "environment" not in obj
    assert obj["message"] == "failed"  # a label cannot shadow a reserved key
    assert "RuntimeError: boom" in obj["exception"]
    assert "fields" not in obj


def test_json_unserializable_extra_is_stringified() -> None:
    obj = json.loads(JsonFormatter().format(_record("m", where=Path("/x"))))
    assert obj["fields"] == {"where": "/x"}


def test_rotation_happens_at_the_size(tmp_path: Path) -> None:
    path = tmp_path / "ntpd.log"
    setup_logging("INFO", "file", str(path), "text", max_file_size=1000, max_files=2)
    payload = "x" * 100
    line_len = None
    for i in range(30):
        _log().info("%02d %s", i, payload)
        if line_len is None:
            line_len = path.stat().st_size
    assert line_len is not None
    # the live file never exceeds the limit, and two rotated files are kept
    assert path.stat().st_size <= 1000
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert rotated == ["ntpd.log", "ntpd.log.1", "ntpd.log.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 1000
    # rotation happened exactly when the next line would have crossed the size
    per_file = 1000 // line_len
    assert len(_lines(path.with_name("ntpd.log.1"))) == per_file
    # the newest line is in the live file, and lines are not lost within the kept files
    assert _lines(path)[-1].endswith("29 " + payload)


def test_reopen_after_file_moved(tmp_path: Path) -> None:
    path = tmp_path / "ntpd.log"
    moved = tmp_path / "ntpd.log.1"
    setup_logging("INFO", "file", str(path), "text")
    _log().info("before")
    path.rename(moved)
    reopen_logs()
    _log().info("after")
    assert [line.rsplit(": ", 1)[1] for line in _lines(moved)] == ["before"]
    assert [line.rsplit(": ", 1)[1] for line in _lines(path)] == ["after"]


def test_reopen_of_size_rotating_handler(tmp_path: Path) -> None:
    path = tmp_path / "ntpd.log"
    moved = tmp_path / "moved.log"
    setup_logging("INFO", "file", str(path), "json", max_file_size=10_000, max_files=3)
    _log().info("before")
    path.rename(moved)
    reopen_logs()
    _log().info("after")
    assert [json.loads(x)["message"] for x in _lines(moved)] == ["before"]
    assert [json.loads(x)["message"] for x in _lines(path)] == ["after"]


def test_watched_file_reopens_without_signal(tmp_path: Path) -> None:
    path = tmp_path / "ntpd.log"
    setup_logging("INFO", "file", str(path), "text")
    _log().info("one")
    path.rename(tmp_path / "old.log")
    _log().info("two")  # no reopen_logs(): the handler notices the move
    assert [line.rsplit(": ", 1)[1] for line in _lines(path)] == ["two"]


def _syslog_socket(tmp_path: Path) -> tuple[socket.socket, str]:
    address = str(tmp_path / "log.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock, address


def test_syslog_output_reaches_socket(tmp_path: Path) -> None:
    sock, address = _syslog_socket(tmp_path)
    with sock:
        setup_logging(
            "INFO",
            "syslog",
            None,
            "text",
            syslog_facility="local3",
            syslog_tag="ntp-test",
            syslog_address=address,
        )
        _log().warning("upstream %s lost", "pool\n1")
        data = sock.recv(4096)
    # RFC 3164 PRI = facility * 8 + severity: local3 (19) and warning (4)
    pri = 19 * 8 + 4
    expected = (
        f"<{pri}>ntp-test[{os.getpid()}]: WARNING simple_ntpd.runtime: upstream pool\\n1 lost"
    )
    assert data.rstrip(b"\x00").decode() == expected


def test_enable_syslog_adds_to_file_output(tmp_path: Path) -> None:
    sock, address = _syslog_socket(tmp_path)
    path = tmp_path / "ntpd.log"
    with sock:
        setup_logging(
            "INFO",
            "file",
            str(path),
            "json",
            labels=LABELS,
            enable_syslog=True,
            syslog_address=address,
        )
        _log().info("synchronized", extra={"stratum": 2})
        data = sock.recv(4096).rstrip(b"\x00").decode()
    prefix = f"<{3 * 8 + 6}>simple-ntpd[{os.getpid()}]: "
    assert data.startswith(prefix)
    obj = json.loads(data[len(prefix) :])
    assert obj["message"] == "synchronized" and obj["fields"] == {"stratum": 2}
    assert json.loads(_lines(path)[0])["environment"] == "production"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"level": "LOUD"}, "level"),
        ({"output": "journal"}, "output"),
        ({"log_format": "xml"}, "format"),
        ({"output": "file", "log_file": None}, "log_file"),
        ({"output": "syslog", "syslog_facility": "nope"}, "facility"),
        ({"output": "syslog", "syslog_address": "nohostport"}, "syslog address"),
        ({"max_file_size": -1}, "negative"),
    ],
)
def test_invalid_values_raise_and_keep_old_handlers(kwargs: dict[str, object], match: str) -> None:
    buf = io.StringIO()
    setup_logging("INFO", "console", None, "text", stream=buf)
    args: dict[str, object] = {
        "level": "INFO",
        "output": "console",
        "log_file": None,
        "log_format": "text",
    }
    args.update(kwargs)
    with pytest.raises(LoggingSetupError, match=match):
        setup_logging(**args)  # type: ignore[arg-type]
    _log().info("still here")
    assert buf.getvalue().endswith("still here\n")


def test_unwritable_file_raises_typed_error(tmp_path: Path) -> None:
    with pytest.raises(LoggingSetupError, match="cannot open log file"):
        setup_logging("INFO", "file", str(tmp_path / "missing" / "x.log"), "text")


def test_syslog_started_later_still_receives(tmp_path: Path) -> None:
    # like openlog(3), a syslog socket that is not there yet is not an error
    address = str(tmp_path / "log.sock")
    setup_logging("INFO", "syslog", None, "text", syslog_address=address)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(2.0)
        _log().error("late")
        assert sock.recv(4096).rstrip(b"\x00").decode().endswith("ERROR simple_ntpd.runtime: late")


def test_forked_worker_follows_rotation_instead_of_rotating(tmp_path: Path) -> None:
    path = tmp_path / "ntpd.log"
    setup_logging("INFO", "file", str(path), "text", max_file_size=300, max_files=3)
    _log().info("main before fork")
    read_end, write_end = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(write_end)
            os.read(read_end, 1)  # wait until the parent has rotated
            for i in range(10):  # far past max_file_size: a rotating child would rotate
                _log().info("worker line %d %s", i, "w" * 40)
            code = 0
        finally:
            os.write(go_write, b"x")
            os._exit(code)
    os.close(read_end)
    for i in range(5):
        _log().info("main line %d %s", i, "m" * 60)  # rotates in the parent
    assert path.with_name("ntpd.log.1").exists()
    os.write(write_end, b"x")
    os.read(go_read, 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    live = path.read_text()
    # every worker line went to the current live file, and the worker did not rotate
    assert live.count("worker line") == 10
    rotated = [p.read_text() for p in tmp_path.glob("ntpd.log.*")]
    assert all("worker line" not in text for text in rotated)
