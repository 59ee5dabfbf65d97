"""MkDocs hook: a line `<!-- settings: kd -->` in a page becomes a table of that config section's fields.

The table is read from the pydantic models in `llmops.settings` (key, type, default, description), so the
documentation cannot drift from the code. An unknown section fails the build, naming the page and the sections.
"""

from __future__ import annotations

import html
import re
import types
import typing
from typing import Any

import yaml
from mkdocs.exceptions import PluginError
from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

from llmops.settings import (
    DPOSettings,
    EvalSettings,
    GRPOSettings,
    KDSettings,
    KfpSettings,
    ModelsSettings,
    PeftSettings,
    TrackingSettings,
    TrainingSettings,
)

SECTIONS: dict[str, type[BaseModel]] = {
    "peft": PeftSettings,
    "training": TrainingSettings,
    "kd": KDSettings,
    "dpo": DPOSettings,
    "grpo": GRPOSettings,
    "eval": EvalSettings,
    "tracking": TrackingSettings,
    "models": ModelsSettings,
    "kfp": KfpSettings,
}

# A marker stands alone on its line (so one quoted inside a sentence or code span is left as it is).
MARKER = re.compile(r"^[ \t]*<!--\s*settings:\s*([^\s>]*)\s*-->[ \t]*$", re.MULTILINE)


def type_name(annotation: Any) -> str:
    """A field's annotation as a reader writes it: `float | None`, `"lora" | "qlora"`, `list[str]`."""
    if annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' if isinstance(a, str) else repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: Any) -> str:
    """The default as it would be written in the YAML config (`null`, `true`, `[1, 10, 100]`); `required`."""
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    text = yaml.safe_dump(to_jsonable_python(value), default_flow_style=True, sort_keys=False, width=10_000)
    return text.strip().removesuffix("...").strip()  # a scalar's YAML ends with an end-of-document line


def cell(text: str, code: bool = False) -> str:
    """Text safe inside a Markdown table cell (as a code span with `code`; else `<k>` would be read as HTML)."""
    text = " ".join(text.split())
    text = f"`{text}`" if code else html.escape(text, quote=False)
    return text.replace("|", "\\|")


def settings_table(section: str) -> str:
    """The Markdown table of one config section's fields."""
    model = SECTIONS[section]
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        rows.append(
            f"| `{section}.{name}` | {cell(type_name(field.annotation))} | "
            f"{cell(default_text(field), code=True)} | {cell(field.description or '')} |"
        )
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace every settings marker of the page by its table; an unknown section is a build error."""

    def table(match: re.Match[str]) -> str:
        section = match.group(1)
        if section not in SECTIONS:
            raise PluginError(
                f"{page.file.src_path}: unknown settings section {section!r} in "
                f"'{match.group(0).strip()}'; use one of {', '.join(SECTIONS)}"
            )
        return settings_table(section)

    return MARKER.sub(table, markdown)
