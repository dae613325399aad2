"""Startup order: arguments, configuration, logging, sockets, workers, serve.

Configuration errors stop the daemon before anything is bound, with the
message naming file, line and key, and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

from simple_ntpd import __version__
from simple_ntpd.config.load import LoadedConfig, load_config, load_default_config
from simple_ntpd.config.parse import Value, format_value
from simple_ntpd.daemon.logging_setup import reopen_logs, setup_logging, shutdown_logging
from simple_ntpd.daemon.privileges import PrivilegeError
from simple_ntpd.errors import ConfigError, SimpleNtpdError
from simple_ntpd.runtime.timekeeping import upstream_specs
from simple_ntpd.server.policy import SecurityPolicy

log = logging.getLogger("simple_ntpd.daemon")

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_RUNTIME = 2


def _load(args: argparse.Namespace, default_config_path: str) -> LoadedConfig:
    loaded = (
        load_default_config()
        if args.default_config
        else load_config(args.config or default_config_path)
    )
    # upstream_servers entries have their own small grammar: check it at load time,
    # so --test-config and startup refuse a bad entry, not the first poll.
    upstream_specs(loaded.config)
    return loaded


def apply_logging(loaded: LoadedConfig, level_override: str | None) -> None:
    lc = loaded.config.logging
    setup_logging(
        level_override or lc.level,
        lc.output,
        lc.log_file or None,
        lc.log_format,
        labels=loaded.labels,
        max_file_size=lc.max_file_size,
        max_files=lc.max_files,
        enable_syslog=lc.enable_syslog,
        syslog_facility=lc.syslog_facility,
        syslog_tag=lc.syslog_tag,
        include_hostname=lc.log_include_hostname,
        log_client_queries=lc.log_client_queries,
        log_sync_events=lc.log_sync_events,
    )


def test_config_report(loaded: LoadedConfig, security: list[str] | None = None) -> str:
    lines = [f"configuration OK: {loaded.source}"]
    lines += [f"warning: {w}" for w in loaded.warnings]
    lines += [f"security: {note}" for note in security or ()]
    if loaded.inactive:
        lines.append("set but not yet active (accepted, no effect in this version):")
        lines += [f"  {key}" for key in loaded.inactive]
    return "\n".join(lines)


def dump_config(loaded: LoadedConfig) -> str:
    """The effective configuration in the INI format, every key with its value."""
    out = [f"# effective configuration from {loaded.source}"]
    for section, values in loaded.config.model_dump(mode="json").items():
        out.append(f"\n[{section}]")
        for key, value in values.items():
            out.append(f"{key} = {format_value(_as_value(value))}")
    return "\n".join(out) + "\n"


def _as_value(obj: object) -> Value:
    if isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, list | tuple):
        return [_as_value(v) for v in obj]
    return "" if obj is None else str(obj)


def run(args: argparse.Namespace, *, default_config_path: str) -> int:
    try:
        loaded = _load(args, default_config_path)
    except ConfigError as exc:
        print(f"simple-ntpd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from simple_ntpd.daemon import security

    config_path = None if args.default_config else (args.config or default_config_path)
    # Unsafe key or configuration files stop the daemon (and fail --test-config).
    problems = security.file_problems(config_path, loaded.config)
    policy: SecurityPolicy | None = None
    if not problems:
        try:
            policy = security.build_policy(loaded.config)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        for problem in problems:
            print(f"simple-ntpd: refusing to start: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    assert policy is not None
    if args.test_config:
        notes = security.security_notes(loaded.config, policy.keys)
        print(test_config_report(loaded, notes))
        return EXIT_OK
    if args.dump_config:
        sys.stdout.write(dump_config(loaded))
        return EXIT_OK
    try:
        apply_logging(loaded, args.log_level)
    except SimpleNtpdError as exc:
        print(f"simple-ntpd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for warning in loaded.warnings:
        log.warning("%s", warning)
    for key in loaded.inactive:
        log.warning("%s is set but not yet active in this version", key)

    if not args.foreground and not _under_service_manager():
        if loaded.config.logging.output == "console":
            # A detached daemon has no console: log to syslog instead, as chronyd does
            # without -d (say so on the console before it goes away).
            log.warning("detaching: logging.output is console, so the log goes to syslog")
            try:
                setup_logging(
                    args.log_level or loaded.config.logging.level,
                    "syslog",
                    None,
                    loaded.config.logging.log_format,
                    labels=loaded.labels,
                    syslog_facility=loaded.config.logging.syslog_facility,
                    syslog_tag=loaded.config.logging.syslog_tag,
                )
            except SimpleNtpdError as exc:
                log.error("cannot log to syslog: %s", exc)
        _daemonize()
    pid_file = Path(args.pid_file) if args.pid_file else None
    if pid_file is not None:
        pid_file.write_text(f"{os.getpid()}\n")

    from simple_ntpd.runtime.supervisor import Supervisor

    def reload_config() -> LoadedConfig:
        new = load_default_config() if config_path is None else load_config(config_path)
        refused = security.file_problems(config_path, new.config)
        if refused:
            raise ConfigError("; ".join(refused))
        return new

    def relog(new: LoadedConfig) -> None:
        try:
            apply_logging(new, args.log_level)
        except SimpleNtpdError as exc:
            log.error("reload: logging configuration kept: %s", exc)

    def drop() -> None:
        security.drop_to_service_user(loaded.config)

    sup = Supervisor(
        loaded,
        reload_config=reload_config,
        on_reload_logging=relog,
        on_reopen_logs=reopen_logs,
        policy=policy,
        make_policy=security.build_policy,
        drop_privileges=drop,
    )
    for note in security.security_notes(loaded.config, policy.keys):
        log.info("security: %s", note)
    log.info("simple-ntpd %s starting (configuration %s)", __version__, loaded.source)
    if args.default_config:
        net = loaded.config.network
        sup.ready_callbacks.append(
            lambda: log.info(
                "query it with: .venv/bin/simple-ntpd query %s:%d",
                net.listen_address,
                net.listen_port,
            )
        )
    from simple_ntpd.runtime.observability import Observability

    try:
        # Socket activation, HTTP listener, health, systemd notify, statistics.
        Observability.attach(sup)
        asyncio.run(sup.run())
    except OSError as exc:
        log.error("cannot serve: %s", exc)
        return EXIT_RUNTIME
    except PrivilegeError as exc:
        log.error("cannot drop privileges, refusing to serve: %s", exc)
        return EXIT_RUNTIME
    finally:
        if pid_file is not None:
            with contextlib.suppress(OSError):
                pid_file.unlink()
        shutdown_logging()
    return EXIT_OK


def _under_service_manager() -> bool:
    """systemd (Type=notify/simple) wants the main process not to fork."""
    return bool(os.environ.get("NOTIFY_SOCKET") or os.environ.get("INVOCATION_ID"))


def _daemonize() -> None:
    """Classic double fork: detach from the terminal and the session."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
