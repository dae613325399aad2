"""The control socket: a Unix stream socket serving :mod:`simple_ntpd.control`.

Access is restricted by file permissions (mode 0660, in a directory the
daemon owns), as chronyc's socket is: anyone who can connect can read the
daemon's state, so it is never a network socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from simple_ntpd.control import MAX_REQUEST_BYTES, Handler, decode_reply, dispatch, encode_request

log = logging.getLogger(__name__)
_TIMEOUT_S = 5.0


class ControlServer:
    def __init__(self, path: str, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> bool:
        """Listen; on failure log why and return False (the daemon serves on)."""
        p = Path(self.path)
        try:
            p.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            if p.is_socket() or p.exists():
                p.unlink()
            old_umask = os.umask(0o117)
            try:
                self._server = await asyncio.start_unix_server(
                    self._serve, path=self.path, limit=2 * MAX_REQUEST_BYTES
                )
            finally:
                os.umask(old_umask)
            os.chmod(self.path, 0o660)
        except OSError as exc:
            log.warning("control socket %s unavailable: %s", self.path, exc)
            return False
        log.info("control socket at %s", self.path)
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), _TIMEOUT_S)
            if len(line) > MAX_REQUEST_BYTES:
                line = line[: MAX_REQUEST_BYTES + 1]
            writer.write(dispatch(line, self.handlers))
            await asyncio.wait_for(writer.drain(), _TIMEOUT_S)
        except (TimeoutError, ConnectionError, ValueError) as exc:
            log.debug("control connection dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def request(path: str, command: str, timeout: float = 5.0) -> dict[str, object]:
    """Client side: one request, one reply (raises OSError when the daemon is not there)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(encode_request(command))
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return decode_reply(b"".join(chunks))
