"""Control-socket commands of the CLI: ``simple-ntpd counters|status|sources|tracking``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from simple_ntpd.config.load import load_config
from simple_ntpd.errors import ConfigError
from simple_ntpd.runtime.control_socket import request

EXIT_OK = 0
EXIT_FAILED = 1


def socket_path(args: argparse.Namespace, default_config_path: str, default_socket: str) -> str:
    if args.socket:
        return str(args.socket)
    path = args.config or (default_config_path if os.path.exists(default_config_path) else None)
    if path is None:
        return default_socket
    try:
        return load_config(path).config.monitoring.control_socket or default_socket
    except ConfigError as exc:
        print(f"simple-ntpd: {exc}", file=sys.stderr)
        return default_socket


def _print_table(reply: dict[str, object]) -> None:
    for key, value in reply.items():
        if key in ("ok", "version"):
            continue
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k:<28} {v}")
        else:
            print(f"{key:<30} {value}")


def run_control(
    command: str, args: argparse.Namespace, *, default_config_path: str, default_socket: str
) -> int:
    path = socket_path(args, default_config_path, default_socket)
    try:
        reply = request(path, command)
    except OSError as exc:
        print(f"simple-ntpd {command}: cannot reach the daemon at {path}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not reply.get("ok"):
        print(f"simple-ntpd {command}: {reply.get('error')}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(reply, indent=2, sort_keys=True))
    else:
        _print_table(reply)
    return EXIT_OK
