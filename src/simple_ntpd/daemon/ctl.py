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


def _fmt_s(value: object) -> str:
    """Seconds in the unit chronyc uses for the size: ns, us, ms or s."""
    if not isinstance(value, int | float):
        return "-"
    v = float(value)
    for unit, scale in (("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3)):
        if abs(v) < 1000 * scale:
            return f"{v / scale:+.0f}{unit}" if unit == "ns" else f"{v / scale:+.3f}{unit}"
    return f"{v:+.3f}s"


_MARK = {
    "selected": "*",
    "combined": "+",
    "outlier": "-",
    "falseticker": "x",
    "unconfirmed": "?",
    "unselectable": "~",
    "no-data": "?",
    "unreachable": "?",
    "noselect": "-",
    "demobilized": "x",
}


def print_sources(reply: dict[str, object]) -> None:
    """A table like ``chronyc sources``: state, address, stratum, poll, reach, offsets."""
    sources = reply.get("sources")
    rows = sources if isinstance(sources, list) else []
    print(
        f"{'S':<2}{'Address':<40}{'St':>3}{'Poll':>5}{'Reach':>6}{'LastRx':>8}  "
        f"{'Offset':>12}{'Delay':>12}{'Jitter':>12}  State"
    )
    for s in rows:
        if not isinstance(s, dict):
            continue
        age = s.get("last_sample_age")
        addr = f"{s.get('address')}:{s.get('port')}" if s.get("port") != 123 else s.get("address")
        print(
            f"{_MARK.get(str(s.get('state')), ' '):<2}{addr!s:<40}{s.get('stratum', 0):>3}"
            f"{s.get('poll', 0):>5}{int(s.get('reach', 0)):>6o}"
            f"{'-' if age is None else f'{float(age):.0f}':>8}  "
            f"{_fmt_s(s.get('offset')):>12}{_fmt_s(s.get('delay')):>12}"
            f"{_fmt_s(s.get('jitter')):>12}  {s.get('state')}"
        )


def print_tracking(reply: dict[str, object]) -> None:
    """Lines like ``chronyc tracking``."""
    t = reply.get("tracking")
    if not isinstance(t, dict):
        return
    refid = str(t.get("reference_id", ""))
    addr = t.get("reference_address")
    rows = [
        ("Reference ID", f"{refid.upper()} ({addr})" if addr else refid.upper()),
        ("Mode", t.get("mode")),
        ("Stratum", t.get("stratum")),
        (
            "Leap status",
            {0: "Normal", 1: "Insert second", 2: "Delete second"}.get(
                int(t.get("leap", 3)), "Not synchronised"
            ),
        ),
        ("Offset", _fmt_s(t.get("offset"))),
        ("Frequency", f"{float(t.get('frequency_ppm', 0.0)):+.3f} ppm"),
        ("Skew", f"{float(t.get('skew_ppm', 0.0)):.3f} ppm"),
        ("Root delay", f"{float(t.get('root_delay', 0.0)):.9f} seconds"),
        ("Root dispersion", f"{float(t.get('root_dispersion', 0.0)):.9f} seconds"),
        ("System jitter", _fmt_s(t.get("system_jitter"))),
        (
            "Last update",
            "never"
            if t.get("last_update_age") is None
            else f"{float(t['last_update_age']):.1f} seconds ago",
        ),
        ("Updates / steps", f"{t.get('updates')} / {t.get('steps')}"),
    ]
    for name, value in rows:
        print(f"{name:<16}: {value}")


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
    elif command == "sources":
        print_sources(reply)
    elif command == "tracking":
        print_tracking(reply)
    else:
        _print_table(reply)
    return EXIT_OK
