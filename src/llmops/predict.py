"""`llmops predict`: one answer from a saved or registered model, as a user reads it (JSON or code)."""

from __future__ import annotations

import json

from llmops.errors import ConfigError


def predict(model: str, document: str | None = None, schema: str | None = None, prompt: str | None = None,
            max_new_tokens: int = 256) -> str:
    """One prediction from a saved or registered model: JSON for a document (IDP), code for a prompt (CodeGen)."""
    from llmops.evaluation.generate import generate
    from llmops.environment import quiet_libraries
    from llmops.models.loader import load_for_inference
    from llmops.tasks.codegen import CodeGenTask, full_code
    from llmops.tasks.documents import read_document
    from llmops.tasks.idp import IDPTask, load_schema
    from llmops.tracking import resolve_model

    if bool(document) == bool(prompt):
        raise ConfigError("predict: pass either --document (IDP) or --prompt (CodeGen)")
    idp = IDPTask(load_schema(schema) if schema else None)
    source = read_document(document) if document else read_document(str(prompt))
    text = idp.build_prompt(source) if document else CodeGenTask().build_prompt(source)
    quiet_libraries()
    mdl, tok = load_for_inference(resolve_model(model))
    out = generate(mdl, tok, [[{"role": "user", "content": text}]], 1, max_new_tokens, desc="predict")[0]
    if prompt:
        return full_code(source, out)
    parsed = idp.parse(out)
    return json.dumps(parsed, indent=2, ensure_ascii=False) if parsed is not None else out
