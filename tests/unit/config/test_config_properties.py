"""Property tests: the value syntax round-trips, and no text makes the parser raise anything
but ConfigError."""

from __future__ import annotations

import contextlib
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from simple_ntpd.config.load import parse_config_text
from simple_ntpd.config.parse import (
    Value,
    classify_bare,
    format_value,
    parse_document,
    parse_value,
)
from simple_ntpd.errors import ConfigError

# Strings with the characters that matter: quotes, backslashes, '#', brackets, commas,
# controls, non-ASCII.
tricky_text = st.text(
    alphabet=st.sampled_from([*"ab #\"'\\[],=;\t\n\r\x00\x1f\x7féЖ😀 0", "1"]),
    max_size=20,
) | st.text(max_size=20)

scalars: st.SearchStrategy[Value] = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    tricky_text,
)
values: st.SearchStrategy[Value] = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5), max_leaves=20
)


@given(values)
def test_value_round_trips(value: Value) -> None:
    assert parse_value(format_value(value)) == value


@given(values)
def test_value_round_trips_inside_a_document(value: Value) -> None:
    text = f"# header\n[s]\nbefore = 1\nk = {format_value(value)}   # trailing comment\nafter = 2\n"
    doc = parse_document(text, source="p.conf")
    entries = doc.sections["s"].entries
    assert entries["k"].value == value
    assert entries["k"].line == 4
    assert entries["after"].value == 2


bare_tokens = st.text(
    alphabet=st.sampled_from(string.ascii_letters + string.digits + ".:_-+/%@"), min_size=1
)


@given(bare_tokens)
def test_bare_token_parses_as_its_classification(token: str) -> None:
    assert parse_value(token) == classify_bare(token)


@given(st.lists(values, max_size=6))
def test_multiline_list_layout_does_not_matter(items: list[Value]) -> None:
    one_line = f"[s]\nk = [{', '.join(format_value(v) for v in items)}]\n"
    spread = "[s]\nk = [\n" + "".join(f"  {format_value(v)},  # c\n\n" for v in items) + "]\n"
    a = parse_document(one_line, source="a").sections["s"].entries["k"].value
    b = parse_document(spread, source="b").sections["s"].entries["k"].value
    assert a == b == items


config_alphabet = st.sampled_from(
    list("[]=#;\"'\\,\n \t") + list("abcnetworklisten_port01.yesINFO") + ["\r", "\x00", "é"]
)


@settings(max_examples=300)
@given(st.text(alphabet=config_alphabet, max_size=80) | st.text(max_size=80))
def test_arbitrary_text_only_raises_config_error(text: str) -> None:
    for fmt in ("ini", "json", "yaml"):
        with contextlib.suppress(ConfigError):  # anything else escaping fails the test
            parse_config_text(text, source="fuzz", fmt=fmt, env={})


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(["network", "ntp_server", "security", "logging", "bogus"]),
        st.dictionaries(
            st.sampled_from(["listen_port", "stratum", "level", "allow_query_from", "x"]),
            values,
            max_size=3,
        ),
        max_size=3,
    )
)
def test_arbitrary_trees_only_raise_config_error(tree: dict[str, dict[str, Value]]) -> None:
    text = "".join(
        f"[{s}]\n" + "".join(f"{k} = {format_value(v)}\n" for k, v in body.items())
        for s, body in tree.items()
    )
    with contextlib.suppress(ConfigError):  # anything else escaping fails the test
        parse_config_text(text, source="fuzz", env={})
