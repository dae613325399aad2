"""docs/configuration.md documents every key, generated from the schema so it cannot drift."""

from __future__ import annotations

import os
import re
from pathlib import Path

from simple_ntpd.config.embedded import DEFAULT_CONFIG_TEXT
from simple_ntpd.config.parse import parse_document
from simple_ntpd.config.reference import BEGIN_MARKER, END_MARKER, render_key_reference
from simple_ntpd.config.schema import ACTIVE_KEYS, ALL_KEYS, section_keys

DOC = Path(__file__).parents[3] / "docs" / "configuration.md"


def generated_block(text: str) -> str:
    start = text.index(BEGIN_MARKER)
    end = text.index(END_MARKER) + len(END_MARKER) + 1
    return text[start:end]


def test_key_reference_is_current() -> None:
    text = DOC.read_text()
    expected = render_key_reference()
    if os.environ.get("SIMPLE_NTPD_UPDATE_DOCS") == "1":
        text = text.replace(generated_block(text), expected)
        DOC.write_text(text)
    assert generated_block(text) == expected, (
        "docs/configuration.md is out of date with the schema: run "
        "SIMPLE_NTPD_UPDATE_DOCS=1 pytest tests/unit/config/test_config_docs.py"
    )


def test_reference_lists_every_key_once_with_its_status() -> None:
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|.*\| (yes|not yet) \|", render_key_reference(), re.M)
    sections = re.findall(r"^### \[([a-z_]+)\]", render_key_reference(), re.M)
    assert len(rows) == len(ALL_KEYS)
    keys_by_section: list[str] = []
    it = iter(rows)
    for section in sections:
        for key in section_keys(section):
            name, status = next(it)
            assert name == key
            assert status == ("yes" if f"{section}.{key}" in ACTIVE_KEYS else "not yet")
            keys_by_section.append(f"{section}.{key}")
    assert set(keys_by_section) == ALL_KEYS


def test_doc_shows_the_embedded_default_values() -> None:
    # The doc's copy of the default is abridged (fewer comments) but must agree in values.
    text = DOC.read_text()
    block = text.split("## The embedded default", 1)[1].split("```ini\n", 1)[1].split("```", 1)[0]
    shown = parse_document(block, source="doc")
    real = parse_document(DEFAULT_CONFIG_TEXT, source="default")
    as_dict = {s: {k: e.value for k, e in sec.entries.items()} for s, sec in shown.sections.items()}
    assert as_dict == {
        s: {k: e.value for k, e in sec.entries.items()} for s, sec in real.sections.items()
    }
