"""The local control protocol (``simple-ntpd counters``, ``sources``, ``tracking``).

One request per connection on a Unix stream socket: a JSON object on one
line, ``{"command": NAME}``; one JSON object back, ``{"ok": true, ...}`` or
``{"ok": false, "error": ...}``. Pure: the socket lives in
:mod:`simple_ntpd.runtime.control_socket`. Requests are bounded in size and
parsed strictly; an invalid request gets an error reply, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_REQUEST_BYTES = 4096
PROTOCOL_VERSION = 1


@dataclass(frozen=True, slots=True)
class ControlRequest:
    command: str
    args: Mapping[str, Any]


class ControlProtocolError(ValueError):
    """A request that is not valid; the message is safe to send back."""


def encode_request(command: str, **args: Any) -> bytes:
    return (json.dumps({"command": command, **args}) + "\n").encode()


def decode_request(data: bytes) -> ControlRequest:
    if len(data) > MAX_REQUEST_BYTES:
        raise ControlProtocolError("request too large")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlProtocolError(f"request is not JSON: {exc.__class__.__name__}") from None
    if not isinstance(obj, dict):
        raise ControlProtocolError("request must be a JSON object")
    command = obj.pop("command", None)
    if not isinstance(command, str) or not command.isidentifier():
        raise ControlProtocolError("request needs a 'command' name")
    return ControlRequest(command=command, args=obj)


Handler = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def dispatch(data: bytes, handlers: Mapping[str, Handler]) -> bytes:
    """Decode, run the named handler, encode the reply. Never raises."""
    try:
        req = decode_request(data)
        handler = handlers.get(req.command)
        if handler is None:
            raise ControlProtocolError(
                f"unknown command {req.command!r}; known: {', '.join(sorted(handlers))}"
            )
        reply: dict[str, Any] = {"ok": True, "version": PROTOCOL_VERSION, **handler(req.args)}
    except ControlProtocolError as exc:
        reply = {"ok": False, "version": PROTOCOL_VERSION, "error": str(exc)}
    except Exception as exc:  # a bug in a handler must not take the daemon down
        reply = {"ok": False, "version": PROTOCOL_VERSION, "error": f"internal error: {exc!r}"}
    return (json.dumps(reply, default=str) + "\n").encode()


def decode_reply(data: bytes) -> dict[str, Any]:
    obj = json.loads(data.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ControlProtocolError("reply is not a JSON object")
    return obj
