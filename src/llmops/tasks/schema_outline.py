"""A short outline of what a JSON Schema asks for, for prompts: field names, nesting, enum choices and formats."""

from __future__ import annotations

import json
from typing import Any


def _resolve_ref(node: Any, root: dict[str, Any]) -> Any:
    """`node` with a local `$ref` ("#/$defs/x") followed, once."""
    ref = node.get("$ref") if isinstance(node, dict) else None
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return target
    return node


def _outline(node: Any, root: dict[str, Any], depth: int) -> str:
    """The outline of one schema node: `{a, b [..]}` for objects, `[...]` for arrays, choices for enums."""
    node = _resolve_ref(node, root)
    if not isinstance(node, dict) or depth > 6:
        return ""
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            parts = [p for p in (_outline(b, root, depth) for b in node[key]) if p]
            return parts[0] if parts else ""
    if isinstance(node.get("enum"), list) and 0 < len(node["enum"]) <= 8:
        return "(" + "|".join(str(v) for v in node["enum"] if v is not None) + ")"
    if isinstance(node.get("properties"), dict):
        fields = [f"{name} {_outline(child, root, depth + 1)}".rstrip() for name, child in node["properties"].items()]
        return "{" + ", ".join(fields) + "}"
    if "items" in node:
        return "[" + (_outline(node["items"], root, depth + 1) or "...") + "]"
    return f"({node['format']})" if isinstance(node.get("format"), str) else ""


def schema_outline(schema: dict[str, Any]) -> str:
    """A short outline of what a schema asks for: field names, nesting, enum choices and formats, e.g.
    `document_type (invoice|receipt), issue_date (date), seller {name, address}, line_items [{description}]`."""
    text = _outline(schema, schema, 0)
    if text.startswith("{") and text.endswith("}"):
        return text[1:-1]
    return text or json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
