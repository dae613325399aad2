"""The key reference of docs/configuration.md, generated from the schema so it cannot drift.

``tests/unit/config/test_config_docs.py`` checks that the document contains exactly
:func:`render_key_reference`'s output between the markers below, and rewrites it when run with
``SIMPLE_NTPD_UPDATE_DOCS=1``. Pure: returns text, writes nothing.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo

from simple_ntpd.config import schema
from simple_ntpd.config.parse import Value, format_value

BEGIN_MARKER = "<!-- BEGIN GENERATED KEY REFERENCE (simple_ntpd.config.reference) -->"
END_MARKER = "<!-- END GENERATED KEY REFERENCE -->"

_VALIDATOR_NAMES: dict[Callable[..., Any], str] = {
    schema.parse_size: "size",
    schema._ip_address: "IP address",
    schema._network: "CIDR",
    schema._refid: "refid",
    schema._server_name: "server",
    schema._country: "country code",
    schema._interface: "interface name",
}


def _validator_name(metadata: list[Any]) -> str | None:
    for item in metadata:
        func = getattr(item, "func", None)
        if func in _VALIDATOR_NAMES:
            return _VALIDATOR_NAMES[func]
    return None


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    named = _validator_name(metadata)
    if named is not None:
        return named
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f'"{v}"' for v in typing.get_args(annotation))
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        item_meta: list[Any] = []
        if typing.get_origin(item) is typing.Annotated:
            item, *item_meta = typing.get_args(item)
            flat: list[Any] = []
            for m in item_meta:
                flat.extend(m.metadata if isinstance(m, FieldInfo) else [m])
            item_meta = flat
        return f"list of {_type_name(item, item_meta)}"
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if annotation is str:
        return "string"
    return str(annotation)  # pragma: no cover - every schema type is handled above


def _range(metadata: list[Any]) -> str:
    low = high = ""
    for item in metadata:
        if isinstance(item, Ge):
            low = f"{item.ge}"
        elif isinstance(item, Gt):
            low = f">{item.gt}"
        elif isinstance(item, Le):
            high = f"{item.le}"
        elif isinstance(item, Lt):
            high = f"<{item.lt}"
    if low and high:
        return f"{low} .. {high}"
    if low:
        return f"≥ {low.lstrip('>')}" if not low.startswith(">") else f"> {low[1:]}"
    if high:
        return f"≤ {high}"
    return ""


def _default(info: FieldInfo) -> str:
    value: Any = info.get_default(call_default_factory=True)
    if isinstance(value, tuple):
        value = list(value)
    rendered: Value = value
    return f"`{format_value(rendered)}`"


def render_key_reference() -> str:
    """Markdown tables, one per section, of every key: type, default, range, status, meaning."""
    out: list[str] = [BEGIN_MARKER, ""]
    for section, model in schema.SECTIONS.items():
        doc = " ".join(inspect.cleandoc(model.__doc__ or "").split())
        doc = doc.split(": ", 1)[1] if doc.startswith("``[") else doc  # the heading says it
        doc = doc[:1].upper() + doc[1:]
        out += [f"### [{section}]", "", doc, ""]
        out += ["| key | type | default | range | active | meaning |", "|---|---|---|---|---|---|"]
        for key, info in model.model_fields.items():
            active = "yes" if f"{section}.{key}" in schema.ACTIVE_KEYS else "not yet"
            meaning = (info.description or "").replace("|", "\\|")
            out.append(
                f"| `{key}` | {_type_name(info.annotation, info.metadata)} | {_default(info)} "
                f"| {_range(info.metadata)} | {active} | {meaning} |"
            )
        out.append("")
    out.append(END_MARKER)
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render_key_reference(), end="")
