"""Writes the statistics export files (``enable_statistics``) and prunes old ones.

What goes in a line and which files have expired is decided in
:mod:`simple_ntpd.observe.stats_export`; this module only touches the
directory. One file per UTC day, appended to: ``stats-YYYY-MM-DD.jsonl`` (or
``.csv`` with a header line). A write error is logged (once per kind of error
until a write succeeds again) and never stops the daemon.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simple_ntpd.observe.stats_export import (
    csv_header,
    csv_row,
    expired_files,
    json_line,
    stats_file_name,
)

log = logging.getLogger(__name__)


class StatsWriter:
    """Appends records to the day's file in ``directory``; :meth:`prune` removes old days."""

    def __init__(self, directory: str | Path, fmt: str = "json", retention_days: int = 30) -> None:
        self.directory = Path(directory)
        self.fmt = fmt
        self.retention_days = retention_days
        self._last_error: str | None = None

    def write(self, record: Mapping[str, Any], now_ns: int) -> Path | None:
        """Append one record; the file written, or None when it could not be."""
        path = self.directory / stats_file_name(now_ns, self.fmt)
        try:
            self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
            new = not path.exists()
            # O_APPEND: a line is never interleaved with another writer's.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                if self.fmt == "csv":
                    f.write((csv_header() if new else "") + csv_row(record))
                else:
                    f.write(json_line(record))
        except OSError as exc:
            self._report(f"cannot write statistics to {path}: {exc.strerror or exc}")
            return None
        self._last_error = None
        return path

    def prune(self, now_ns: int) -> list[str]:
        """Delete the files older than ``retention_days``; the names deleted."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._report(f"cannot list {self.directory}: {exc.strerror or exc}")
            return []
        removed = []
        for name in expired_files(names, now_ns, self.retention_days):
            try:
                (self.directory / name).unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                self._report(f"cannot remove {self.directory / name}: {exc.strerror or exc}")
                continue
            removed.append(name)
        if removed:
            log.info(
                "statistics: removed %d file(s) older than %d days",
                len(removed),
                self.retention_days,
            )
        return removed

    def _report(self, message: str) -> None:
        if message != self._last_error:
            log.warning("%s", message)
            self._last_error = message
