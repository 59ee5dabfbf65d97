"""`llmops predict`: one answer from a saved or registered model, as a user reads it (JSON or code)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from llmops.errors import ConfigError


def predict(
    model: str,
    document: str | None = None,
    schema: str | None = None,
    prompt: str | None = None,
    max_new_tokens: int | None = None,
    constrained: bool = True,
) -> str:
    """One prediction from a saved or registered model: JSON for a document (IDP; decoded under the schema unless
    `constrained` is false, so it always validates), code for a prompt (CodeGen)."""
    from llmops.environment import quiet_libraries
    from llmops.evaluation.eval_set import decoding
    from llmops.evaluation.generate import generate
    from llmops.models.loader import load_for_inference
    from llmops.tasks.codegen import CodeGenTask, full_code
    from llmops.tasks.documents import read_document
    from llmops.tasks.idp import IDPTask, load_schema
    from llmops.tracking import resolve_model

    if bool(document) == bool(prompt):
        raise ConfigError("predict: pass either --document (IDP) or --prompt (CodeGen)")
    task = IDPTask(load_schema(schema) if schema else None) if document else CodeGenTask()
    source = read_document(document) if document else read_document(str(prompt))
    text = task.build_prompt(source)
    quiet_libraries()
    mdl, tok = load_for_inference(resolve_model(model))
    settings = SimpleNamespace(max_new_tokens=max_new_tokens, constrained=constrained)
    grammar, limit = decoding(mdl, tok, task, settings, tighten=max_new_tokens is not None)
    out = generate(mdl, tok, [[{"role": "user", "content": text}]], 1, limit, desc="predict", grammar=grammar)[0]
    if prompt:
        return full_code(source, out)
    parsed = task.parse(out)
    return json.dumps(parsed, indent=2, ensure_ascii=False) if parsed is not None else out
