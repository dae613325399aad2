"""The INI/TOML-like syntax, and the JSON and YAML readers (simple_ntpd.config.parse)."""

from __future__ import annotations

import pytest

from simple_ntpd.config.parse import (
    ConfigFileError,
    format_for_path,
    format_value,
    parse_document,
    parse_value,
)
from simple_ntpd.errors import ConfigError


def entries(text: str, section: str = "s") -> dict[str, object]:
    doc = parse_document(text, source="t.conf")
    return {k: e.value for k, e in doc.sections[section].entries.items()}


def error_of(text: str, fmt: str = "ini", source: str = "t.conf") -> ConfigFileError:
    with pytest.raises(ConfigFileError) as info:
        parse_document(text, source=source, fmt=fmt)
    assert isinstance(info.value, ConfigError)
    return info.value


# -- value kinds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"hello"', "hello"),
        ('""', ""),
        ("'C:\\path\\no escapes'", "C:\\path\\no escapes"),
        ("0.0.0.0", "0.0.0.0"),
        ("::1", "::1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("INFO", "INFO"),
        ("1GB", "1GB"),
        ("true", True),
        ("false", False),
        # Only lower-case true/false are booleans (TOML); the schema rejects the rest.
        ("True", "True"),
        ("yes", "yes"),
        ("0", 0),
        ("123", 123),
        ("+5", 5),
        ("-17", -17),
        ("1_000_000", 1000000),
        ("26214400", 26214400),
        ("0.5", 0.5),
        ("-1.25", -1.25),
        ("1e3", 1000.0),
        ("6.02E+23", 6.02e23),
        ("1_0.0_1", 10.01),
        # Not TOML numbers: kept as the string the operator wrote.
        ("0123", "0123"),
        ("1__0", "1__0"),
        ("1.", "1."),
        (".5", ".5"),
        ("inf", "inf"),
        ("[]", []),
        ("[1, 2, 3]", [1, 2, 3]),
        ('["a", b, 1.5, true]', ["a", "b", 1.5, True]),
        ("[[1, 2], [], [[3]]]", [[1, 2], [], [[3]]]),
        ("[1, 2, ]", [1, 2]),
    ],
)
def test_value_kinds(text: str, expected: object) -> None:
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r'"tab\there"', "tab\there"),
        (r'"line\nbreak"', "line\nbreak"),
        (r'"quote \" inside"', 'quote " inside'),
        (r'"back\\slash"', "back\\slash"),
        (r'"\b\f\r"', "\b\f\r"),
        (r'"\u00e9t\u00E9"', "été"),
        (r'"\U0001F600"', "\U0001f600"),
        ("'literal \\n stays'", "literal \\n stays"),
        ("'has \"double\" quotes'", 'has "double" quotes'),
        ("\"has 'single' quotes\"", "has 'single' quotes"),
    ],
)
def test_string_escapes(text: str, expected: str) -> None:
    assert parse_value(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (r'"\q"', "invalid escape"),
        (r'"\u12"', "needs 4 hex digits"),
        (r'"\uD800"', "not a Unicode scalar value"),
        (r'"\U00110000"', "not a Unicode scalar value"),
        ('"ctrl\x01"', "control character U+0001"),
        ('"open', "unterminated string"),
        ("'open", "unterminated string"),
        ("", "missing value"),
        ("a b", "unexpected text after the value"),
        ('abc"def', "unexpected quote"),
        ("[1 2]", "expected ',' or ']'"),
        ("[1,,2]", "empty item"),
        ("[,]", "empty item"),
        ("[1, 2", "missing ']'"),
        ("]", "missing value"),
    ],
)
def test_bad_values(text: str, fragment: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_value(text)
    assert fragment in str(info.value)


def test_deeply_nested_list_is_an_error_not_a_crash() -> None:
    with pytest.raises(ConfigFileError, match="nested deeper"):
        parse_value("[" * 1000 + "]" * 1000)


# -- documents --------------------------------------------------------------------------------


def test_comments_blank_lines_and_inline_comments() -> None:
    text = (
        "# full-line comment\n"
        "; also a comment\n"
        "\n"
        "[s]   # comment after a header\n"
        "   # indented comment\n"
        "a = 1   # inline comment\n"
        'b = "keep # this"  # but not this\n'
        "c = 'and # this'\n"
        "d = value#comment\n"
        "worker_threads = 8  # Match CPU cores\n"
    )
    assert entries(text) == {
        "a": 1,
        "b": "keep # this",
        "c": "and # this",
        "d": "value",
        "worker_threads": 8,
    }


def test_multiline_list_with_comments_and_trailing_comma() -> None:
    text = (
        "[ntp_server]\n"
        "upstream_servers = [\n"
        '    "pool.ntp.org",      # the pool\n'
        "\n"
        "    # a comment line inside the list\n"
        '    "time.nist.gov",\n'
        "    [1, 2],\n"
        "]\n"
        "after = 1\n"
    )
    doc = parse_document(text, source="t.conf")
    entry = doc.sections["ntp_server"].entries["upstream_servers"]
    assert entry.value == ["pool.ntp.org", "time.nist.gov", [1, 2]]
    assert entry.line == 2
    assert entry.item_lines == (3, 6, 7)
    assert doc.sections["ntp_server"].entries["after"].line == 9


def test_guide_list_without_trailing_comma() -> None:
    text = '[security]\nallow_query_from = [\n    "10.0.0.0/8",\n    "192.168.0.0/16"\n]\n'
    assert entries(text, "security") == {"allow_query_from": ["10.0.0.0/8", "192.168.0.0/16"]}


def test_names_are_case_insensitive_and_line_numbers_kept() -> None:
    doc = parse_document("\n[Network]\nListen_Port = 5\n", source="t.conf")
    section = doc.sections["network"]
    assert section.line == 2
    assert section.entries["listen_port"].line == 3
    assert section.entries["listen_port"].value == 5


def test_crlf_and_bom() -> None:
    assert entries("\ufeff[s]\r\na = 1\r\nb = [1,\r\n 2]\r\n") == {"a": 1, "b": [1, 2]}


def test_empty_document() -> None:
    assert parse_document("", source="t.conf").sections == {}
    assert parse_document("# only comments\n\n", source="t.conf").sections == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[s]\nk = "abc\n', "t.conf:2: [s] k: unterminated string (missing closing '\"')"),
        (
            "[s]\nk = [1,\n  2\n",
            "t.conf:2: [s] k: broken list: missing ']' before the end of the file",
        ),
        (
            '[s]\nk = [\n  "a",\n  "b"\nj = 2\n',
            "t.conf:5: [s] k: broken list: expected ',' or ']' before 'j' (list opened on line 2)",
        ),
        ("k = 1\n", "t.conf:1: k: key outside a section (put it under a [section] header)"),
        ("[s]\n[t]\n[s]\n", "t.conf:3: [s]: duplicate section (first on line 1)"),
        ("[s]\nk = 1\n\nk = 2\n", "t.conf:4: [s] k: duplicate key (first set on line 2)"),
        ("[s]\nK = 1\nk = 2\n", "t.conf:3: [s] k: duplicate key (first set on line 2)"),
        ("[s]\nk 1\n", "t.conf:2: [s] k: expected '=' after the key"),
        ("[s]\nk =\n", "t.conf:2: [s] k: missing value after '='"),
        ("[s]\nk = # nothing\n", "t.conf:2: [s] k: missing value after '='"),
        ("[s\nk = 1\n", "t.conf:1: [s]: section header is missing its closing ']'"),
        ("[[s]]\n", "t.conf:1: [[array tables]] are not supported"),
        ("[s]\n= 1\n", "t.conf:2: [s]: expected 'key = value', a [section] or a comment"),
        (
            "[s]\nsnmp_location = Data Center 1\n",
            "t.conf:2: [s] snmp_location: unexpected text after the value: 'Center 1' "
            "(quote strings that contain spaces, and start comments with '#')",
        ),
    ],
)
def test_syntax_errors_name_file_line_section_key(text: str, expected: str) -> None:
    assert str(error_of(text)) == expected


def test_error_carries_structured_problem() -> None:
    problem = error_of('[net]\nx = 1\ny = "open\n').problems[0]
    assert (problem.source, problem.line, problem.section, problem.key) == ("t.conf", 3, "net", "y")


# -- format_value -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [True, False, 0, -5, 1.5, 1e16, 1e-5, "", "plain", 'q"uo\\te', "tab\tnl\n#", [1, ["a", []]]],
)
def test_format_value_round_trips(value: object) -> None:
    assert parse_value(format_value(value)) == value  # type: ignore[arg-type]


def test_format_value_rejects_non_finite_floats() -> None:
    with pytest.raises(ValueError, match="no representation"):
        format_value(float("inf"))


# -- JSON and YAML ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.json", "json"),
        ("a.JSON", "json"),
        ("a.yaml", "yaml"),
        ("a.yml", "yaml"),
        ("a.conf", "ini"),
        ("a.ini", "ini"),
        ("a", "ini"),
    ],
)
def test_format_for_path(name: str, fmt: str) -> None:
    assert format_for_path(name) == fmt


def test_json_tree() -> None:
    doc = parse_document(
        '{"Network": {"listen_port": 5, "enable_ipv6": false, "x": [1, "a"], "f": 0.5}}',
        source="c.json",
        fmt="json",
    )
    got = {k: e.value for k, e in doc.sections["network"].entries.items()}
    assert got == {"listen_port": 5, "enable_ipv6": False, "x": [1, "a"], "f": 0.5}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"network": {"a": 1,}}', "c.json:1: invalid JSON"),
        ("[1]", "top level must be an object of sections"),
        ('{"network": 5}', "[network]: a section must be an object of keys"),
        ('{"network": {"a": null}}', "[network] a: null is not a value here"),
        ('{"network": {"a": {"b": 1}}}', "[network] a: objects are not allowed as values"),
        ('{"network": {"a": 1, "a": 2}}', "duplicate key 'a'"),
        ('{"network": {"a": NaN}}', "NaN and infinity are not allowed"),
    ],
)
def test_json_errors(text: str, fragment: str) -> None:
    assert fragment in str(error_of(text, "json", "c.json"))


def test_yaml_tree_has_lines_and_strict_scalars() -> None:
    text = (
        "network:\n"
        "  listen_address: 0.0.0.0\n"
        "  enable_ipv6: yes\n"  # YAML 1.1 would make this True; we keep the string
        "  listen_port: 0123\n"  # YAML 1.1 would make this octal 83
        "  quoted: '5'\n"
        "  time: 1:20\n"  # YAML 1.1 sexagesimal 80
        "  flag: true\n"
        "  items:\n"
        "    - a\n"
        "    - 2\n"
        "empty:\n"
    )
    doc = parse_document(text, source="c.yaml", fmt="yaml")
    net = doc.sections["network"].entries
    assert {k: e.value for k, e in net.items()} == {
        "listen_address": "0.0.0.0",
        "enable_ipv6": "yes",
        "listen_port": "0123",
        "quoted": "5",
        "time": "1:20",
        "flag": True,
        "items": ["a", 2],
    }
    assert net["enable_ipv6"].line == 3
    assert net["items"].item_lines == (9, 10)
    assert doc.sections["empty"].entries == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("network:\n  a: [1, 2\n", "c.yaml:3: invalid YAML"),
        ("- 1\n", "c.yaml:1: top level must be a mapping of sections"),
        ("network: 5\n", "c.yaml:1: [network]: a section must be a mapping"),
        ("network:\n  a:\n", "c.yaml:2: [network] a: missing value (YAML null)"),
        ("network:\n  a: {b: 1}\n", "c.yaml:2: [network] a: mappings are not allowed as values"),
        (
            "network:\n  a: 1\n  a: 2\n",
            "c.yaml:3: [network] a: duplicate key (first set on line 2)",
        ),
        ("network: {}\nnetwork: {}\n", "c.yaml:2: [network]: duplicate section"),
        ("network:\n  a: !!python/object:os.system x\n", None),
    ],
)
def test_yaml_errors(text: str, fragment: str | None) -> None:
    if fragment is None:
        # compose() never constructs tagged objects: the tag is ignored, the text is a string.
        doc = parse_document(text, source="c.yaml", fmt="yaml")
        assert doc.sections["network"].entries["a"].value == "x"
        return
    assert fragment in str(error_of(text, "yaml", "c.yaml"))


def test_unknown_format() -> None:
    assert "unknown configuration format 'toml'" in str(error_of("", "toml"))


def test_huge_numbers_stay_text_instead_of_crashing() -> None:
    assert parse_value("9" * 5000) == "9" * 5000  # beyond int()'s digit limit
    assert parse_value("1e400") == "1e400"  # would overflow to inf
    assert "invalid JSON" in str(error_of('{"s": {"a": ' + "9" * 5000 + "}}", "json"))
    yaml_doc = parse_document("s:\n  a: 1e400\n", source="c.yaml", fmt="yaml")
    assert yaml_doc.sections["s"].entries["a"].value == "1e400"
