"""Configuration: the file format, the typed schema, and loading.

``parse`` (syntax) and ``schema`` (meaning) are pure; ``load`` is the only module here that
reads files and the environment. See docs/configuration.md for every key.
"""

from simple_ntpd.config.load import (
    DEFAULT_CONFIG_TEXT,
    LoadedConfig,
    load_config,
    load_default_config,
    parse_config_text,
)
from simple_ntpd.config.parse import ConfigFileError, ConfigProblem
from simple_ntpd.config.schema import ACTIVE_KEYS, ALL_KEYS, Config

__all__ = [
    "ACTIVE_KEYS",
    "ALL_KEYS",
    "DEFAULT_CONFIG_TEXT",
    "Config",
    "ConfigFileError",
    "ConfigProblem",
    "LoadedConfig",
    "load_config",
    "load_default_config",
    "parse_config_text",
]
