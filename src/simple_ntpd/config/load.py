"""Loading a configuration: the one place in ``config/`` that reads files and the environment.

Startup, SIGHUP reload and ``--test-config`` all call :func:`load_config` (or
:func:`load_default_config`), so they accept and reject exactly the same things.

Steps, in order:

1. parse the text (:mod:`simple_ntpd.config.parse`): syntax errors stop here;
2. unknown *sections* are errors (a misspelt ``[netwrok]`` would silently drop a whole
   section); unknown *keys* in a known section are warnings, so that a file written for a
   newer version still loads;
3. environment overrides ``SIMPLE_NTPD_<SECTION>__<KEY>=value`` replace file values;
4. the schema validates everything; every problem is reported, each with file, line, section
   and key (or the environment variable);
5. keys set explicitly whose feature is not implemented yet are listed as inactive.

:func:`parse_config_text` does steps 1-5 on text and an explicit environment mapping, with no
I/O; :func:`load_config` adds the file read and ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from simple_ntpd.config.embedded import DEFAULT_CONFIG_TEXT
from simple_ntpd.config.parse import (
    FORMATS,
    ConfigDocument,
    ConfigFileError,
    ConfigProblem,
    Entry,
    Value,
    format_for_path,
    parse_document,
    parse_value,
)
from simple_ntpd.config.schema import ACTIVE_KEYS, SECTIONS, Config, describe_error

__all__ = [
    "DEFAULT_CONFIG_TEXT",
    "DEFAULT_SOURCE",
    "ENV_PREFIX",
    "LoadedConfig",
    "load_config",
    "load_default_config",
    "parse_config_text",
]

ENV_PREFIX = "SIMPLE_NTPD_"
"""Prefix of every environment variable the loader looks at."""
DEFAULT_SOURCE = "<embedded default>"
_LABEL_VARS = {
    "SIMPLE_NTPD_ENVIRONMENT": "environment",
    "SIMPLE_NTPD_DATACENTER": "datacenter",
    "SIMPLE_NTPD_REGION": "region",
}


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and what the operator should be told about it."""

    config: Config
    source: str
    """The path, or ``<embedded default>``."""
    warnings: tuple[str, ...] = ()
    """Unknown keys (ignored), environment overrides applied."""
    inactive: tuple[str, ...] = ()
    """``section.key`` names set explicitly whose feature is not implemented yet."""
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """``environment``/``datacenter``/``region`` from SIMPLE_NTPD_ENVIRONMENT etc."""


def parse_config_text(
    text: str,
    *,
    source: str = "<string>",
    fmt: str = "ini",
    env: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Parse and validate configuration text. Pure: ``env`` None means no environment.

    Args:
        text: the file contents.
        source: name used in messages (normally the path).
        fmt: ``ini``, ``json`` or ``yaml``.
        env: environment variables to take overrides and labels from.

    Raises:
        ConfigFileError: (a :class:`~simple_ntpd.errors.ConfigError`) listing every problem.
    """
    if fmt not in FORMATS:
        raise ConfigFileError([ConfigProblem(source, f"unknown configuration format {fmt!r}")])
    doc = parse_document(text, source=source, fmt=fmt)
    env = env or {}
    warnings: list[str] = []
    problems: list[ConfigProblem] = []

    tree: dict[str, dict[str, Entry]] = {}
    for name, section in doc.sections.items():
        if name not in SECTIONS:
            problems.append(
                ConfigProblem(
                    source,
                    f"unknown section (known: {', '.join(SECTIONS)})",
                    section.line,
                    section=name,
                )
            )
            continue
        known = SECTIONS[name].model_fields
        tree[name] = {}
        for key, entry in section.entries.items():
            if key in known:
                tree[name][key] = entry
            else:
                where = source if entry.line is None else f"{source}:{entry.line}"
                warnings.append(f"{where}: unknown key [{name}] {key} (ignored)")

    _apply_env(env, doc, tree, warnings, problems)
    if problems:
        raise ConfigFileError(problems)

    data = {name: {k: e.value for k, e in entries.items()} for name, entries in tree.items()}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError(
            [_locate(err, source, tree) for err in exc.errors(include_url=False)]
        ) from None

    inactive = sorted(
        f"{name}.{key}" for name, entries in tree.items() for key in entries
        if f"{name}.{key}" not in ACTIVE_KEYS
    )  # fmt: skip
    labels = {label: env[var] for var, label in _LABEL_VARS.items() if var in env}
    return LoadedConfig(
        config=config,
        source=source,
        warnings=tuple(warnings),
        inactive=tuple(inactive),
        labels=MappingProxyType(labels),
    )


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, parse and validate a configuration file; the format follows the extension.

    ``.json`` is JSON, ``.yaml``/``.yml`` is YAML, anything else the INI format.
    ``env`` None means ``os.environ``.

    Raises:
        ConfigError: the file is missing or unreadable, or the configuration is invalid.
    """
    p = Path(path)
    name = os.fspath(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        message = (
            f"configuration file not found: {name} "
            "(use --config PATH, or --default-config for the embedded default)"
        )
        raise ConfigFileError([ConfigProblem(name, "file not found")], message) from None
    except IsADirectoryError:
        raise ConfigFileError([ConfigProblem(name, "is a directory, not a file")]) from None
    except OSError as exc:
        raise ConfigFileError(
            [ConfigProblem(name, f"cannot read: {exc.strerror or exc}")]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigFileError(
            [ConfigProblem(name, f"not valid UTF-8 (byte {exc.start})", line)]
        ) from None
    return parse_config_text(
        text,
        source=name,
        fmt=format_for_path(name),
        env=os.environ if env is None else env,
    )


def load_default_config(env: Mapping[str, str] | None = None) -> LoadedConfig:
    """The embedded default configuration, with environment overrides (None = os.environ)."""
    return parse_config_text(
        DEFAULT_CONFIG_TEXT, source=DEFAULT_SOURCE, env=os.environ if env is None else env
    )


def _apply_env(
    env: Mapping[str, str],
    doc: ConfigDocument,
    tree: dict[str, dict[str, Entry]],
    warnings: list[str],
    problems: list[ConfigProblem],
) -> None:
    """Overlay ``SIMPLE_NTPD_<SECTION>__<KEY>`` variables on the parsed tree."""
    for var in sorted(env):
        if not var.upper().startswith(ENV_PREFIX) or "__" not in var:
            continue  # labels (SIMPLE_NTPD_REGION) and anything else are not overrides
        section, _, key = var[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        if section not in SECTIONS:
            problems.append(
                ConfigProblem(
                    "environment",
                    f"unknown section (known: {', '.join(SECTIONS)})",
                    section=section,
                    key=key,
                    variable=var,
                )
            )
            continue
        if key not in SECTIONS[section].model_fields:
            warnings.append(f"environment variable {var}: unknown key [{section}] {key} (ignored)")
            continue
        try:
            value = _env_value(env[var])
        except ConfigFileError as exc:
            problems.extend(
                ConfigProblem("environment", p.message, section=section, key=key, variable=var)
                for p in exc.problems
            )
            continue
        previous = tree.setdefault(section, {}).get(key)
        tree[section][key] = Entry(key, value, None, (), var)
        if previous is not None and previous.line is not None:
            replaced = f" (replaces {doc.source}:{previous.line})"
        elif previous is not None:
            replaced = f" (replaces the value in {doc.source})"
        else:
            replaced = ""
        warnings.append(f"environment variable {var} sets [{section}] {key}{replaced}")


def _env_value(text: str) -> Value:
    """An override's value: the INI value syntax, else the whole text as a string.

    The fallback makes ``SIMPLE_NTPD_MONITORING__SNMP_LOCATION=Data Center 1`` work without
    shell-quoting gymnastics; text that *starts* like a quoted string or a list must parse, so
    that a broken list is reported rather than taken as a string.
    """
    stripped = text.strip()
    try:
        return parse_value(stripped)
    except ConfigFileError:
        if stripped[:1] in ('"', "'", "["):
            raise
        return stripped


def _locate(
    err: Mapping[str, Any], source: str, tree: Mapping[str, Mapping[str, Entry]]
) -> ConfigProblem:
    """Attach file, line, section, key (or env variable) to one pydantic error."""
    loc = tuple(err.get("loc", ()))
    section = str(loc[0]) if loc else None
    key = str(loc[1]) if len(loc) > 1 else None
    if key is None and err.get("type") == "cross_field":
        key = str((err.get("ctx") or {}).get("key"))
    message = describe_error(err)
    entry = tree.get(section or "", {}).get(key or "")
    if entry is None:
        # A default value failed a cross-field check: point at the section.
        return ConfigProblem(source, message, None, section=section, key=key)
    line = entry.line
    if len(loc) > 2 and isinstance(loc[2], int):
        index = loc[2]
        message = f"item {index + 1}: {message}"
        if index < len(entry.item_lines):
            line = entry.item_lines[index]
    if entry.variable is not None:
        return ConfigProblem(
            "environment", message, section=section, key=key, variable=entry.variable
        )
    return ConfigProblem(source, message, line, section=section, key=key)
