"""The [logging] flags that reach other loggers: client queries, sync events."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from simple_ntpd.daemon.logging_setup import (
    QUERY_LOGGER,
    SYNC_LOGGER,
    describe_query,
    rotate_logs_if_needed,
    setup_logging,
    shutdown_logging,
)
from simple_ntpd.reasons import DropReason


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    yield out
    shutdown_logging()
    logging.getLogger(QUERY_LOGGER).setLevel(logging.NOTSET)
    logging.getLogger(SYNC_LOGGER).setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(x) for x in stream.getvalue().splitlines()]


def test_client_queries_logged_at_info_even_when_level_is_warning(stream: io.StringIO) -> None:
    setup_logging("WARNING", "console", None, "json", stream=stream, log_client_queries=True)
    query = logging.getLogger(QUERY_LOGGER)
    assert query.isEnabledFor(logging.INFO)
    message, fields = describe_query("192.0.2.1", 40000, b"\x23" + bytes(47), bytearray(48))
    query.info("%s", message, extra={"fields": fields})
    logging.getLogger("simple_ntpd.other").info("not shown")
    (line,) = lines(stream)
    assert line["logger"] == QUERY_LOGGER
    assert line["fields"] == {
        "client": "192.0.2.1",
        "port": 40000,
        "version": 4,
        "mode": 3,
        "length": 48,
        "outcome": "response",
    }


def test_client_queries_off_is_off_even_at_debug(stream: io.StringIO) -> None:
    setup_logging("DEBUG", "console", None, "json", stream=stream, log_client_queries=False)
    assert not logging.getLogger(QUERY_LOGGER).isEnabledFor(logging.CRITICAL)


def test_sync_events_flag(stream: io.StringIO) -> None:
    setup_logging("INFO", "console", None, "text", stream=stream, log_sync_events=False)
    sync = logging.getLogger(SYNC_LOGGER)
    assert not sync.isEnabledFor(logging.INFO) and sync.isEnabledFor(logging.WARNING)
    setup_logging("INFO", "console", None, "text", stream=stream, log_sync_events=True)
    assert sync.isEnabledFor(logging.INFO)


def test_query_line_is_bounded_and_names_the_drop() -> None:
    message, fields = describe_query("2001:db8::1", 123, b"\xff" * 5000, DropReason.TOO_LONG)
    assert fields["outcome"] == "dropped: too_long" and fields["length"] == 5000
    assert len(message) < 120 and "\\x" not in message
    message, fields = describe_query("192.0.2.1", 1, b"", DropReason.TOO_SHORT)
    assert fields["version"] == 0 and "dropped: too_short" in message


def test_periodic_size_check_rotates_lines_written_by_other_processes(tmp_path: Path) -> None:
    log_file = tmp_path / "d.log"
    setup_logging("INFO", "file", str(log_file), "text", max_file_size=100, max_files=2)
    try:
        assert rotate_logs_if_needed() == 0
        # A worker (another process) appended past the size: no line of ours yet.
        with open(log_file, "a") as f:
            f.write("x" * 150 + "\n")
        assert rotate_logs_if_needed() == 1
        assert Path(f"{log_file}.1").stat().st_size == 151
        assert log_file.stat().st_size == 0
        assert rotate_logs_if_needed() == 0
    finally:
        shutdown_logging()
