"""Decoding under a JSON schema: an untrained model's answers parse and validate, nested objects and arrays
included, greedy and sampled, and evaluation reports which decoding it used."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from llmops.config import EvalSettings
from llmops.evaluation.constrained import JsonGrammar
from llmops.evaluation.eval_set import evaluate
from llmops.evaluation.generate import generate, sample
from llmops.tasks.idp import IDPTask

AMOUNT = {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$"}
PARTY = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "tax_id": {"type": ["string", "null"]}},
    "required": ["name", "tax_id"],
    "additionalProperties": False,
}
NESTED = {
    "type": "object",
    "properties": {
        "document_type": {"enum": ["invoice", "receipt"]},
        "issue_date": {"type": ["string", "null"], "format": "date"},
        "seller": PARTY,
        "buyer": {"anyOf": [PARTY, {"type": "null"}]},
        "line_items": {
            "type": "array",
            "maxItems": 6,
            "items": {
                "type": "object",
                "properties": {"description": {"type": "string"}, "quantity": {"type": "number"}, "amount": AMOUNT},
                "required": ["description", "quantity", "amount"],
                "additionalProperties": False,
            },
        },
        "total": AMOUNT,
    },
    "required": ["document_type", "issue_date", "seller", "buyer", "line_items", "total"],
    "additionalProperties": False,
}


def _prompts(task: IDPTask, n: int) -> list[list[dict[str, str]]]:
    docs = [f"Invoice {i}\nSeller: Acme {i} GmbH\n2 x Widget 3.50\nTotal: {7 + i}.00 EUR" for i in range(n)]
    return [[{"role": "user", "content": task.build_prompt(doc)}] for doc in docs]


def test_untrained_model_answers_validate_greedy_and_sampled(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    constraint = JsonGrammar.for_model(model, tokenizer).constraint(NESTED)
    assert constraint.max_tokens is not None and constraint.min_tokens < constraint.max_tokens
    prompts = _prompts(IDPTask(NESTED), 4)
    raw = generate(model, tokenizer, prompts, 2, 24)
    assert not any(_valid(text) for text in raw)  # without the grammar the tiny model writes no JSON
    for text in generate(model, tokenizer, prompts, 2, constraint.max_tokens, grammar=constraint.grammar):
        jsonschema.validate(json.loads(text), NESTED)
    sampled = sample(
        model,
        tokenizer,
        prompts[:2],
        3,
        6,
        constraint.max_tokens,
        temperature=1.0,
        top_p=0.9,
        grammar=constraint.grammar,
    )
    for answers in sampled:
        for text in answers:
            jsonschema.validate(json.loads(text), NESTED)


def _valid(text: str) -> bool:
    try:
        jsonschema.validate(json.loads(text), NESTED)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def test_evaluate_is_constrained_by_default_and_says_so(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    task = IDPTask(NESTED)
    examples = [
        {"id": str(i), "prompt": p, "reference": {"document_type": "invoice", "total": "7.00"}, "class": "x"}
        for i, p in enumerate(_prompts(task, 3))
    ]
    bound = JsonGrammar.for_model(model, tokenizer).constraint(NESTED).max_tokens
    # Up to the schema's bound every answer closes (unset, the limit comes from the short gold answers here, and
    # the untrained model's long answers would be cut).
    report = evaluate(model, tokenizer, task, examples, EvalSettings(batch_size=3, max_new_tokens=bound), None)
    assert report.metrics["schema_valid_rate"] == 1.0 and report.metrics["json_valid_rate"] == 1.0
    assert report.metrics["constrained_decoding"] == 1.0
    raw = evaluate(
        model, tokenizer, task, examples, EvalSettings(batch_size=3, max_new_tokens=24, constrained=False), None
    )
    assert raw.metrics["constrained_decoding"] == 0.0 and raw.metrics["schema_valid_rate"] == 0.0


def test_max_tokens_tightens_open_bounds_so_answers_still_close(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    grammar = JsonGrammar.for_model(model, tokenizer)
    loose = grammar.constraint(NESTED)
    assert loose.max_tokens is not None
    limit = loose.max_tokens // 2
    tight = grammar.constraint(NESTED, max_tokens=limit)
    assert tight.max_tokens is not None and tight.max_tokens <= limit + 1  # + the end-of-sequence token
    for text in generate(model, tokenizer, _prompts(IDPTask(NESTED), 2), 2, limit, grammar=tight.grammar):
        jsonschema.validate(json.loads(text), NESTED)


def test_field_report_groups_and_error_table(tiny: tuple[Any, Any], tmp_path: Any, monkeypatch: Any) -> None:
    """Per-path precision/recall inside objects and line items, metrics per language / scan group, and the
    error table of the worst fields written beside the predictions."""
    import llmops.evaluation.eval_set as runner

    task = IDPTask(None)
    gold = {"seller": {"name": "Acme"}, "line_items": [{"amount": "1.00"}, {"amount": "2.00"}], "total": "3.00"}
    answers = [
        '{"seller": {"name": "Acme"}, "line_items": [{"amount": "1.00"}], "total": "3.00"}',
        '{"seller": {"name": "Acne"}, "line_items": [{"amount": "1.00"}, {"amount": "2.00"}], "total": "3"}',
    ]
    examples = [
        {
            "id": f"d{i}",
            "prompt": [{"role": "user", "content": "x"}],
            "reference": gold,
            "class": "invoice",
            "groups": [f"lang-{lang}", scan],
        }
        for i, (lang, scan) in enumerate((("de", "digital"), ("en", "scanned")))
    ]
    monkeypatch.setattr(runner, "generate", lambda *args, **kwargs: answers)
    out = tmp_path / "predictions.jsonl"
    report = evaluate(*tiny, task, examples, EvalSettings(), out)
    m = report.metrics
    assert m["field/line_items.amount/precision"] == 1.0 and m["field/line_items.amount/recall"] == 0.75
    assert m["field/seller.name/f1"] == 0.5 and m["field/total/f1"] == 0.5
    assert m["lang-de/field_f1"] == 3 / (3 + 1 / 2) and m["scanned/exact_match"] == 0.0
    assert m["digital/field_f1"] == m["lang-de/field_f1"] and m["lang-en/field_f1"] == m["scanned/field_f1"]
    errors = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert {"document": "d1", "field": "seller.name", "expected": "Acme", "predicted": "Acne"} in errors
    assert {"document": "d0", "field": "line_items.amount", "expected": ["1.00", "2.00"], "predicted": "1.00"} in errors
    assert not any(e["field"] == "total" and e["document"] == "d0" for e in errors)


def test_max_new_tokens_unset_comes_from_the_gold_answers_else_the_schema_bound(tiny: tuple[Any, Any]) -> None:
    from types import SimpleNamespace

    from llmops.evaluation.eval_set import GOLD_MARGIN, decoding

    model, tokenizer = tiny
    task, unset = IDPTask(NESTED), SimpleNamespace(max_new_tokens=None, constrained=True)
    bound = JsonGrammar.for_model(model, tokenizer).constraint(NESTED).max_tokens
    assert decoding(model, tokenizer, task, unset, gold_tokens=40)[1] == int(GOLD_MARGIN * 40) + 16 < bound
    assert decoding(model, tokenizer, task, unset)[1] == bound  # no gold (predict): every answer closes
    given = SimpleNamespace(max_new_tokens=30, constrained=True)
    assert decoding(model, tokenizer, task, given, gold_tokens=40)[1] == 30
    raw = SimpleNamespace(max_new_tokens=None, constrained=False)
    assert decoding(model, tokenizer, task, raw, gold_tokens=40) == (None, int(GOLD_MARGIN * 40) + 16)


def test_strings_may_hold_any_unescaped_character_the_schema_allows(tiny: tuple[Any, Any], capfd: Any) -> None:
    """The bounded string pattern spans the whole of Unicode outside the surrogates: accents, a private-use
    character and one beyond the BMP are accepted, an unescaped quote is not; xgrammar reads the pattern without a
    warning (it printed one per string rule for a \\U escape it does not know)."""
    import xgrammar as xgr

    model, tokenizer = tiny
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 7}}, "required": ["name"]}
    grammar = JsonGrammar.for_model(model, tokenizer).constraint(schema).grammar
    assert "not recognized" not in capfd.readouterr().err
    assert xgr.GrammarMatcher(grammar).accept_string(json.dumps({"name": "Café \ue001😀"}, ensure_ascii=False))
    assert not xgr.GrammarMatcher(grammar).accept_string('{"name": "a"b"}')


def test_an_answer_the_limit_leaves_open_is_closed_by_the_grammar(tiny: tuple[Any, Any]) -> None:
    """Greedy decoding under a loose grammar (no tightening) with a limit far under the longest answer: the model's
    tokens are kept and the grammar completes the JSON, so every answer still validates."""
    from llmops.evaluation.constrained import close_answer

    model, tokenizer = tiny
    constraint = JsonGrammar.for_model(model, tokenizer).constraint(NESTED)
    prompts = _prompts(IDPTask(NESTED), 3)
    full = generate(model, tokenizer, prompts, 3, constraint.max_tokens, grammar=constraint.grammar)
    short = generate(model, tokenizer, prompts, 3, 12, grammar=constraint.grammar)
    for cut, whole in zip(short, full):
        jsonschema.validate(json.loads(cut), NESTED)
        assert cut[:12] == whole[:12]  # the model's own greedy start, then the closing
    assert close_answer(constraint.grammar, tokenizer(full[0], add_special_tokens=False)["input_ids"]) == []
