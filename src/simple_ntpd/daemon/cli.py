"""The ``simple-ntpd`` command line.

``simple-ntpd [options]`` runs the daemon (or checks/dumps its configuration);
``simple-ntpd query HOST[:PORT]`` is a small SNTP client, like ntpdig.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from simple_ntpd import __version__

DEFAULT_CONFIG_PATH = "/etc/simple-ntpd/simple-ntpd.conf"
DEFAULT_CONTROL_SOCKET = "/run/simple-ntpd/simple-ntpd.sock"
CONTROL_COMMANDS = ("counters", "status", "sources", "tracking")
SUBCOMMANDS = ("query", *CONTROL_COMMANDS)


def daemon_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simple-ntpd",
        description="A production NTP server. Subcommands: query HOST[:PORT] (an SNTP client).",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        default=None,
        help=f"configuration file (INI, .json or .yaml; default {DEFAULT_CONFIG_PATH})",
    )
    src.add_argument(
        "--default-config",
        action="store_true",
        help="use the embedded default configuration (127.0.0.1:11123, local clock)",
    )
    p.add_argument("--foreground", "-f", action="store_true", help="do not detach")
    p.add_argument("--test-config", action="store_true", help="validate the configuration and exit")
    p.add_argument(
        "--dump-config", action="store_true", help="print the effective configuration and exit"
    )
    p.add_argument("--version", action="version", version=f"simple-ntpd {__version__}")
    p.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=None,
        help="override logging.level (DEBUG, INFO, WARNING, ERROR)",
    )
    p.add_argument("--pid-file", metavar="PATH", default=None, help="write the process id here")
    return p


def query_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simple-ntpd query",
        description="Query an NTP server (SNTP) and print offset, delay, stratum, refid, leap. "
        "Exits non-zero when the server is unreachable, sends a kiss-o'-death, "
        "or is unsynchronized.",
    )
    p.add_argument("server", metavar="HOST[:PORT]", help="e.g. 127.0.0.1:11123 or [::1]:123")
    p.add_argument("-c", "--count", type=int, default=1, help="number of queries (default 1)")
    p.add_argument(
        "-t", "--timeout", type=float, default=2.0, help="seconds to wait for each reply"
    )
    p.add_argument("-i", "--interval", type=float, default=1.0, help="seconds between queries")
    p.add_argument(
        "-V", "--ntp-version", type=int, default=4, choices=(1, 2, 3, 4), help="NTP version"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per reply")
    return p


def control_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"simple-ntpd {command}",
        description=f"Ask the running daemon for its {command} over the local control socket.",
    )
    p.add_argument("--socket", "-s", metavar="PATH", default=None, help="control socket path")
    p.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        default=None,
        help=f"read the socket path from this configuration (default {DEFAULT_CONFIG_PATH})",
    )
    p.add_argument("--json", action="store_true", help="print the raw JSON reply")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "query":
        from simple_ntpd.daemon.query import run_query

        return run_query(query_parser().parse_args(args[1:]))
    if args and args[0] in CONTROL_COMMANDS:
        from simple_ntpd.daemon.ctl import run_control

        return run_control(
            args[0],
            control_parser(args[0]).parse_args(args[1:]),
            default_config_path=DEFAULT_CONFIG_PATH,
            default_socket=DEFAULT_CONTROL_SOCKET,
        )
    from simple_ntpd.daemon.main import run

    return run(daemon_parser().parse_args(args), default_config_path=DEFAULT_CONFIG_PATH)


if __name__ == "__main__":
    sys.exit(main())
