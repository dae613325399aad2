"""Configuration text to a located tree: the INI/TOML-like format, JSON and YAML.

This module owns the *syntax* of configuration files and nothing else. It turns text into a
:class:`ConfigDocument` (``{section: {key: value}}`` where every value remembers the line it
came from) and raises :class:`ConfigFileError` for text that is not well formed. It does not
know which sections or keys exist, what types they have, or what sizes like ``"1GB"`` mean:
that is :mod:`simple_ntpd.config.schema`. It reads no file: text comes in as an argument.

The INI format (the one in the deployment guide) is::

    # full-line comment (also ``;``)
    [section]
    key = value            # inline comment

Values are TOML-like: ``"basic strings"`` with TOML escapes, ``'literal strings'``, ``true`` /
``false``, integers (``-5``, ``1_000``), floats (``0.5``, ``1e-3``), lists ``[a, "b", [1, 2]]``
that may span lines and end with a trailing comma, and bare single-token strings such as
``0.0.0.0``, ``::1`` or ``INFO``. Section and key names are case-insensitive (stored lower-case).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn, TypeAlias

import yaml

from simple_ntpd.errors import ConfigError

Value: TypeAlias = "str | int | float | bool | list[Value]"
"""A configuration value as the parser produces it (lists are plain lists)."""

FORMATS = ("ini", "json", "yaml")

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")
# TOML 1.0 integer/float grammar (decimal only): underscores only between digits, no
# leading zeros. Anything else that is a single token is a bare string.
_INT_RE = re.compile(r"[+-]?(?:0|[1-9](?:_?[0-9])*)")
_FLOAT_RE = re.compile(
    r"[+-]?(?:0|[1-9](?:_?[0-9])*)"
    r"(?:\.[0-9](?:_?[0-9])*(?:[eE][+-]?[0-9](?:_?[0-9])*)?|[eE][+-]?[0-9](?:_?[0-9])*)"
)
# Characters that end a bare token. Quotes and brackets are reserved so that a typo such as
# ``key = abc"def`` is reported instead of being read as a strange string.
_BARE_STOP = frozenset(" \t\r\n,[]#\"'")
# TOML basic-string escapes (TOML 1.0 "String" section); \uXXXX and \UXXXXXXXX handled apart.
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
# Lists nest; a hostile file must not blow the Python stack.
MAX_LIST_DEPTH = 32


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a configuration, located as precisely as we know."""

    source: str
    """File path, ``<string>``, ``<embedded default>`` or ``environment``."""
    message: str
    """What is wrong, e.g. ``unterminated string``."""
    line: int | None = None
    """1-based line number, when the format has them."""
    section: str | None = None
    key: str | None = None
    variable: str | None = None
    """Environment variable that supplied the value, if any."""

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.variable is not None:
            where = f"environment variable {self.variable}"
        what = ""
        if self.section is not None:
            what = f"[{self.section}]" if self.key is None else f"[{self.section}] {self.key}"
        elif self.key is not None:
            what = self.key
        return f"{where}: {what}: {self.message}" if what else f"{where}: {self.message}"


class ConfigFileError(ConfigError):
    """A configuration is invalid; carries every problem found, each located."""

    def __init__(
        self,
        problems: tuple[ConfigProblem, ...] | list[ConfigProblem],
        message: str | None = None,
    ) -> None:
        """``message`` replaces the text built from the problems (for whole-file errors)."""
        self.problems = tuple(problems)
        super().__init__(message or "\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``key = value`` with where it came from."""

    key: str
    value: Value
    line: int | None = None
    """Line of the key (None for JSON, or for an environment override)."""
    item_lines: tuple[int, ...] = ()
    """For a list value: the line of each top-level item (empty when unknown)."""
    variable: str | None = None
    """The environment variable that set this value, when it came from the environment."""


@dataclass(frozen=True, slots=True)
class Section:
    """A ``[section]`` and its entries in file order."""

    name: str
    entries: Mapping[str, Entry]
    line: int | None = None


@dataclass(frozen=True, slots=True)
class ConfigDocument:
    """The whole parsed file: sections in file order."""

    source: str
    fmt: str
    sections: Mapping[str, Section]


def format_for_path(name: str) -> str:
    """Pick the format from a file name: ``.json``, ``.yaml``/``.yml``, anything else INI."""
    lower = name.lower()
    if lower.endswith(".json"):
        return "json"
    if lower.endswith((".yaml", ".yml")):
        return "yaml"
    return "ini"


def parse_document(text: str, *, source: str = "<string>", fmt: str = "ini") -> ConfigDocument:
    """Parse configuration text in the given format.

    Raises:
        ConfigFileError: the text is not well formed; the problem names source, line,
            section and key where known.
    """
    if fmt == "ini":
        return _IniParser(text, source).parse()
    if fmt == "json":
        return _parse_json(text, source)
    if fmt == "yaml":
        return _parse_yaml(text, source)
    raise ConfigFileError([ConfigProblem(source, f"unknown configuration format {fmt!r}")])


def parse_value(text: str) -> Value:
    """Parse one value in the INI value syntax (the whole text must be the value).

    Used for environment overrides and tests.

    Raises:
        ConfigFileError: not a well-formed value.
    """
    p = _IniParser(text, "<value>")
    p._skip_spaces()
    value, _ = p.value_at_cursor(section=None, key=None)
    p.expect_line_end(section=None, key=None)
    p.skip_blank_and_comments_inside_list()  # nothing but whitespace may follow
    if p.pos < len(p.text):
        p.fail("unexpected text after the value", section=None, key=None)
    return value


def format_value(value: Value) -> str:
    """Render a value in the INI syntax so that :func:`parse_value` gives it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if not _FLOAT_RE.fullmatch(text):  # e.g. "1e+16" has no fraction and is fine; "inf" is not
            raise ValueError(f"float {value!r} has no representation in the format")
        return text
    if isinstance(value, str):
        out = []
        for ch in value:
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif ch in "\b\t\n\f\r" or ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append(f"\\u{ord(ch):04X}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    return "[" + ", ".join(format_value(v) for v in value) + "]"


# --------------------------------------------------------------------------------------------
# INI


class _IniParser:
    """Cursor over the whole text: values may span lines (lists), so it is not line-split."""

    def __init__(self, text: str, source: str) -> None:
        # A BOM is an editor artefact, not content.
        self.text = text[1:] if text.startswith("\ufeff") else text
        self.source = source
        self.pos = 0
        self.line = 1

    # -- errors

    def fail(self, message: str, *, section: str | None, key: str | None) -> NoReturn:
        raise ConfigFileError(
            [ConfigProblem(self.source, message, line=self.line, section=section, key=key)]
        )

    # -- low-level cursor

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _advance(self) -> str:
        ch = self.text[self.pos]
        self.pos += 1
        if ch == "\n":
            self.line += 1
        return ch

    def _skip_spaces(self) -> None:
        while self._peek() in (" ", "\t"):
            self.pos += 1

    def _skip_comment(self) -> None:
        if self._peek() == "#":
            while self.pos < len(self.text) and self.text[self.pos] != "\n":
                self.pos += 1

    def expect_line_end(self, *, section: str | None, key: str | None) -> None:
        """After a value or header: spaces, an optional ``#`` comment, then end of line."""
        self._skip_spaces()
        self._skip_comment()
        ch = self._peek()
        if ch == "\r" and self.text[self.pos : self.pos + 2] == "\r\n":
            self.pos += 1
            ch = "\n"
        if ch == "\n":
            self._advance()
        elif ch != "":
            rest = self.text[self.pos :].split("\n", 1)[0].strip()
            self.fail(
                f"unexpected text after the value: {rest!r} "
                "(quote strings that contain spaces, and start comments with '#')",
                section=section,
                key=key,
            )

    def skip_blank_and_comments_inside_list(self) -> None:
        while True:
            ch = self._peek()
            if ch in (" ", "\t", "\r", "\n"):
                self._advance()
            elif ch == "#":
                self._skip_comment()
            else:
                return

    # -- document

    def parse(self) -> ConfigDocument:
        sections: dict[str, Section] = {}
        entries: dict[str, Entry] | None = None
        current: str | None = None
        section_line = 0
        while self.pos < len(self.text):
            self._skip_spaces()
            ch = self._peek()
            if ch == "":
                break
            if ch == "\r" and self.text[self.pos : self.pos + 2] == "\r\n":
                self.pos += 1
                ch = "\n"
            if ch == "\n":
                self._advance()
                continue
            if ch == "\r":
                self.fail("stray carriage return", section=current, key=None)
            if ch in ("#", ";"):
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self.pos += 1
                continue
            if ch == "[":
                if current is not None and entries is not None:
                    sections[current] = Section(current, entries, section_line)
                current, section_line = self._section_header(sections), self.line
                entries = {}
                self.expect_line_end(section=current, key=None)
                continue
            key = self._key(current)
            if current is None or entries is None:
                self.fail(
                    "key outside a section (put it under a [section] header)",
                    section=None,
                    key=key,
                )
            key_line = self.line
            if key in entries:
                self.fail(
                    f"duplicate key (first set on line {entries[key].line})",
                    section=current,
                    key=key,
                )
            self._skip_spaces()
            if self._peek() != "=":
                self.fail("expected '=' after the key", section=current, key=key)
            self.pos += 1
            self._skip_spaces()
            if self._peek() in ("\n", "\r", "#", ""):
                self.fail("missing value after '='", section=current, key=key)
            value, item_lines = self.value_at_cursor(section=current, key=key)
            entries[key] = Entry(key, value, key_line, item_lines)
            self.expect_line_end(section=current, key=key)
        if current is not None and entries is not None:
            sections[current] = Section(current, entries, section_line)
        return ConfigDocument(self.source, "ini", sections)

    def _section_header(self, sections: Mapping[str, Section]) -> str:
        self.pos += 1  # '['
        self._skip_spaces()
        if self._peek() == "[":
            self.fail("[[array tables]] are not supported", section=None, key=None)
        m = _NAME_RE.match(self.text, self.pos)
        if m is None:
            self.fail("expected a section name after '['", section=None, key=None)
        name = m.group(0).lower()
        self.pos = m.end()
        self._skip_spaces()
        if self._peek() != "]":
            self.fail("section header is missing its closing ']'", section=name, key=None)
        self.pos += 1
        if name in sections:
            self.fail(
                f"duplicate section (first on line {sections[name].line})",
                section=name,
                key=None,
            )
        return name

    def _key(self, section: str | None) -> str:
        m = _KEY_RE.match(self.text, self.pos)
        if m is None:
            self.fail("expected 'key = value', a [section] or a comment", section=section, key=None)
        self.pos = m.end()
        return m.group(0).lower()

    # -- values

    def value_at_cursor(
        self, *, section: str | None, key: str | None, depth: int = 0
    ) -> tuple[Value, tuple[int, ...]]:
        """Parse the value starting at the cursor; for lists also the line of each item."""
        ch = self._peek()
        if ch == '"':
            return self._basic_string(section, key), ()
        if ch == "'":
            return self._literal_string(section, key), ()
        if ch == "[":
            return self._list(section, key, depth)
        if ch in ("", "\n", "\r", ",", "]", "#"):
            self.fail("missing value", section=section, key=key)
        return self._bare(section, key), ()

    def _basic_string(self, section: str | None, key: str | None) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            if self.pos >= len(self.text) or self.text[self.pos] in "\r\n":
                self.fail("unterminated string (missing closing '\"')", section=section, key=key)
            ch = self.text[self.pos]
            self.pos += 1
            if ch == '"':
                return "".join(out)
            if ch == "\\":
                out.append(self._escape(section, key))
            elif (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
                self.fail(
                    f"control character U+{ord(ch):04X} in a string (use an escape)",
                    section=section,
                    key=key,
                )
            else:
                out.append(ch)

    def _escape(self, section: str | None, key: str | None) -> str:
        ch = self._peek()
        if ch in _ESCAPES:
            self.pos += 1
            return _ESCAPES[ch]
        if ch in ("u", "U"):
            n = 4 if ch == "u" else 8
            digits = self.text[self.pos + 1 : self.pos + 1 + n]
            if len(digits) != n or not all(c in "0123456789abcdefABCDEF" for c in digits):
                self.fail(f"bad \\{ch} escape: needs {n} hex digits", section=section, key=key)
            code = int(digits, 16)
            # TOML: any Unicode scalar value, i.e. no surrogates and not above U+10FFFF.
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                self.fail(f"\\{ch}{digits} is not a Unicode scalar value", section=section, key=key)
            self.pos += 1 + n
            return chr(code)
        shown = "end of line" if ch in ("", "\n", "\r") else repr("\\" + ch)
        self.fail(
            f"invalid escape {shown} in a string "
            '(valid: \\b \\t \\n \\f \\r \\" \\\\ \\uXXXX \\UXXXXXXXX; '
            "or use a 'literal string')",
            section=section,
            key=key,
        )

    def _literal_string(self, section: str | None, key: str | None) -> str:
        self.pos += 1
        start = self.pos
        while True:
            if self.pos >= len(self.text) or self.text[self.pos] in "\r\n":
                self.fail('unterminated string (missing closing "\'")', section=section, key=key)
            ch = self.text[self.pos]
            if ch == "'":
                value = self.text[start : self.pos]
                self.pos += 1
                return value
            if (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
                self.fail(
                    f"control character U+{ord(ch):04X} in a string",
                    section=section,
                    key=key,
                )
            self.pos += 1

    def _list(
        self, section: str | None, key: str | None, depth: int
    ) -> tuple[list[Value], tuple[int, ...]]:
        if depth >= MAX_LIST_DEPTH:
            self.fail(f"lists nested deeper than {MAX_LIST_DEPTH}", section=section, key=key)
        open_line = self.line
        self.pos += 1  # '['
        items: list[Value] = []
        lines: list[int] = []
        while True:
            self.skip_blank_and_comments_inside_list()
            ch = self._peek()
            if ch == "":
                self.line = open_line  # point at the '[' that was never closed
                self.fail(
                    "broken list: missing ']' before the end of the file",
                    section=section,
                    key=key,
                )
            if ch == "]":
                self.pos += 1
                return items, tuple(lines)
            if ch == ",":
                self.fail(
                    "broken list: empty item (two commas, or a leading comma)",
                    section=section,
                    key=key,
                )
            lines.append(self.line)
            item, _ = self.value_at_cursor(section=section, key=key, depth=depth + 1)
            items.append(item)
            self.skip_blank_and_comments_inside_list()
            ch = self._peek()
            if ch == ",":
                self.pos += 1
            elif ch == "]":
                continue
            elif ch == "":
                self.line = open_line  # point at the '[' that was never closed
                self.fail(
                    "broken list: missing ']' before the end of the file",
                    section=section,
                    key=key,
                )
            else:
                self.fail(
                    f"broken list: expected ',' or ']' before {ch!r} "
                    f"(list opened on line {open_line})",
                    section=section,
                    key=key,
                )

    def _bare(self, section: str | None, key: str | None) -> Value:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _BARE_STOP:
            ch = self.text[self.pos]
            if ord(ch) < 0x20 or ord(ch) == 0x7F:
                self.fail(f"control character U+{ord(ch):04X} in a value", section=section, key=key)
            self.pos += 1
        token = self.text[start : self.pos]
        if not token:
            self.fail(
                f"unexpected {self._peek()!r} where a value should be", section=section, key=key
            )
        if self._peek() in ("'", '"'):
            self.fail(
                f"unexpected quote after {token!r} (quote the whole value)",
                section=section,
                key=key,
            )
        return classify_bare(token)


def classify_bare(token: str) -> Value:
    """The value of an unquoted token: boolean, integer, float, or else the string itself.

    Only lower-case ``true``/``false`` are booleans (as in TOML); ``yes``/``on``/``True`` stay
    strings so that the schema rejects them instead of guessing.
    """
    if token == "true":
        return True
    if token == "false":
        return False
    if _INT_RE.fullmatch(token):
        try:
            return int(token.replace("_", ""))
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            return token
    if _FLOAT_RE.fullmatch(token):
        number = float(token.replace("_", ""))
        # 1e400 overflows to inf: keep the text so the schema rejects it as not a number.
        return number if math.isfinite(number) else token
    return token


# --------------------------------------------------------------------------------------------
# JSON


def _parse_json(text: str, source: str) -> ConfigDocument:
    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in items:
            if k in out:
                raise _DuplicateJsonKeyError(k)
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except _DuplicateJsonKeyError as exc:
        raise ConfigFileError(
            [ConfigProblem(source, f"duplicate key {exc.key!r} in a JSON object")]
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigFileError(
            [ConfigProblem(source, f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno)]
        ) from None
    except RecursionError:
        raise ConfigFileError([ConfigProblem(source, "JSON nested too deeply")]) from None
    except ValueError as exc:  # e.g. an integer with more digits than int() accepts
        raise ConfigFileError([ConfigProblem(source, f"invalid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigFileError([ConfigProblem(source, "top level must be an object of sections")])
    sections: dict[str, Section] = {}
    for raw_name, body in data.items():
        name = raw_name.lower()
        if name in sections:
            raise ConfigFileError([ConfigProblem(source, "duplicate section", section=name)])
        if not isinstance(body, dict):
            raise ConfigFileError(
                [ConfigProblem(source, "a section must be an object of keys", section=name)]
            )
        entries: dict[str, Entry] = {}
        for raw_key, raw_value in body.items():
            key = raw_key.lower()
            if key in entries:
                raise ConfigFileError(
                    [ConfigProblem(source, "duplicate key", section=name, key=key)]
                )
            entries[key] = Entry(key, _json_value(raw_value, source, name, key, 0))
        sections[name] = Section(name, entries)
    return ConfigDocument(source, "json", sections)


class _DuplicateJsonKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _json_value(raw: object, source: str, section: str, key: str, depth: int) -> Value:
    if isinstance(raw, bool | int | str):
        return raw
    if isinstance(raw, float):
        if raw != raw or raw in (float("inf"), float("-inf")):
            raise ConfigFileError(
                [
                    ConfigProblem(
                        source, "NaN and infinity are not allowed", section=section, key=key
                    )
                ]
            )
        return raw
    if isinstance(raw, list):
        if depth >= MAX_LIST_DEPTH:
            raise ConfigFileError(
                [ConfigProblem(source, "lists nested too deeply", section=section, key=key)]
            )
        return [_json_value(v, source, section, key, depth + 1) for v in raw]
    if raw is None:
        msg = 'null is not a value here (write "" for an empty string, or remove the key)'
    else:
        msg = "objects are not allowed as values"
    raise ConfigFileError([ConfigProblem(source, msg, section=section, key=key)])


# --------------------------------------------------------------------------------------------
# YAML


def _parse_yaml(text: str, source: str) -> ConfigDocument:
    # compose() builds nodes without constructing Python objects: no arbitrary tags are
    # executed, and every node has a start mark (line numbers). Scalars are typed below with
    # the same rules as INI bare tokens, so YAML 1.1 surprises (yes/on -> true, 010 -> 8,
    # 1:20 -> 80) cannot happen.
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigFileError(
            [ConfigProblem(source, f"invalid YAML: {exc.problem or exc.context}", line)]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigFileError([ConfigProblem(source, f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise ConfigFileError([ConfigProblem(source, "YAML nested too deeply")]) from None
    sections: dict[str, Section] = {}
    if root is None:
        return ConfigDocument(source, "yaml", sections)
    if not isinstance(root, yaml.MappingNode):
        raise ConfigFileError(
            [ConfigProblem(source, "top level must be a mapping of sections", _line(root))]
        )
    for name_node, body in root.value:
        name = _yaml_name(name_node, source, None)
        if name in sections:
            raise ConfigFileError(
                [
                    ConfigProblem(
                        source,
                        f"duplicate section (first on line {sections[name].line})",
                        _line(name_node),
                        section=name,
                    )
                ]
            )
        entries: dict[str, Entry] = {}
        if isinstance(body, yaml.ScalarNode) and body.tag == "tag:yaml.org,2002:null":
            pass  # "network:" with nothing under it: an empty section
        elif not isinstance(body, yaml.MappingNode):
            raise ConfigFileError(
                [ConfigProblem(source, "a section must be a mapping", _line(body), section=name)]
            )
        else:
            for key_node, value_node in body.value:
                key = _yaml_name(key_node, source, name)
                if key in entries:
                    raise ConfigFileError(
                        [
                            ConfigProblem(
                                source,
                                f"duplicate key (first set on line {entries[key].line})",
                                _line(key_node),
                                section=name,
                                key=key,
                            )
                        ]
                    )
                value = _yaml_value(value_node, source, name, key, 0)
                item_lines = (
                    tuple(_line(n) for n in value_node.value)
                    if isinstance(value_node, yaml.SequenceNode)
                    else ()
                )
                entries[key] = Entry(key, value, _line(key_node), item_lines)
        sections[name] = Section(name, entries, _line(name_node))
    return ConfigDocument(source, "yaml", sections)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _yaml_name(node: yaml.Node, source: str, section: str | None) -> str:
    if not isinstance(node, yaml.ScalarNode) or not isinstance(node.value, str) or not node.value:
        raise ConfigFileError(
            [ConfigProblem(source, "names must be plain strings", _line(node), section=section)]
        )
    return node.value.lower()


def _yaml_value(node: yaml.Node, source: str, section: str, key: str, depth: int) -> Value:
    if isinstance(node, yaml.ScalarNode):
        text = node.value
        if node.style in ('"', "'", "|", ">"):
            return str(text)
        if node.tag == "tag:yaml.org,2002:null":
            raise ConfigFileError(
                [
                    ConfigProblem(
                        source,
                        'missing value (YAML null); write "" for an empty string',
                        _line(node),
                        section,
                        key,
                    )
                ]
            )
        return classify_bare(str(text))
    if isinstance(node, yaml.SequenceNode):
        if depth >= MAX_LIST_DEPTH:
            raise ConfigFileError(
                [ConfigProblem(source, "lists nested too deeply", _line(node), section, key)]
            )
        return [_yaml_value(n, source, section, key, depth + 1) for n in node.value]
    raise ConfigFileError(
        [ConfigProblem(source, "mappings are not allowed as values", _line(node), section, key)]
    )
