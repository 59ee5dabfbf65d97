"""Depth pruning on a tiny 6-layer Llama: kept layers, outputs, the saved folder, `llmops prune`, a KD run's student."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.conftest import make_sft_examples
from typer.testing import CliRunner

from llmops.cli.app import app
from llmops.errors import ConfigError
from llmops.models.loader import load_for_inference
from llmops.models.prune import (
    PRUNE_FILE,
    choose_layers,
    cosine_importance,
    decoder_layers,
    keep_layers,
    prune,
    prune_to_folder,
    resolve_keep,
)
from llmops.models.tiny import build_tiny_model


@pytest.fixture(scope="module")
def six_layers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [e["prompt"][0]["content"] + e["completion"][0]["content"] for e in make_sft_examples(120, seed=3)]
    return build_tiny_model(
        tmp_path_factory.mktemp("prune") / "model",
        texts,
        hidden_size=32,
        num_layers=6,
        num_heads=2,
        vocab_size=300,
        seed=1,
    )


def _load(folder: Path):
    return load_for_inference(folder, torch.float32)


def _batch(tokenizer, texts=("Extract JSON. Invoice 123 line 4 total 9", "Invoice 77 total 3 line 1 line 2")):
    tokenizer.padding_side = "right"
    return tokenizer(list(texts), return_tensors="pt", padding=True)


def _texts() -> list[str]:
    return [e["prompt"][0]["content"] + e["completion"][0]["content"] for e in make_sft_examples(8, seed=4)]


def test_keeping_every_layer_gives_the_same_outputs(six_layers: Path) -> None:
    model, tokenizer = _load(six_layers)
    batch = _batch(tokenizer)
    with torch.no_grad():
        before = model(**batch).logits
    report = prune(model, tokenizer, _texts(), 6)
    assert report.kept == list(range(6)) and report.removed == [] and model.config.num_hidden_layers == 6
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, before)
    assert report.parameters_after == report.parameters_before


def test_pruned_model_equals_the_original_with_those_layers_skipped(six_layers: Path) -> None:
    model, tokenizer = _load(six_layers)
    batch = _batch(tokenizer)
    kept = [0, 2, 5]
    reference, _ = _load(six_layers)
    _, layers = decoder_layers(reference)

    def skip(module, args, kwargs, output):
        inp = args[0] if args else kwargs["hidden_states"]
        return (inp, *output[1:]) if isinstance(output, tuple) else inp

    handles = [layers[i].register_forward_hook(skip, with_kwargs=True) for i in range(6) if i not in kept]
    with torch.no_grad():
        expected = reference(**batch).logits
    for handle in handles:
        handle.remove()
    keep_layers(model, kept)
    assert model.config.num_hidden_layers == 3 and len(decoder_layers(model)[1]) == 3
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, expected)
    # The KV cache is indexed by the renumbered layers: cached greedy generation equals recomputing every step.
    prompt = batch["input_ids"][:1, :6]
    with torch.no_grad():
        cached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True, pad_token_id=0)
        uncached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(cached, uncached)


def test_importance_picks_the_layers_that_change_the_hidden_state_most(six_layers: Path) -> None:
    model, tokenizer = _load(six_layers)
    _, layers = decoder_layers(model)
    with torch.no_grad():  # layer 3 becomes an identity: its output equals its input
        layers[3].mlp.down_proj.weight.zero_()
        layers[3].self_attn.o_proj.weight.zero_()
    batches = [dict(_batch(tokenizer, _texts()[:4]))]
    scores = cosine_importance(model, batches)
    assert scores[3] == pytest.approx(0.0, abs=1e-6) and min(s for i, s in enumerate(scores) if i != 3) > 1e-4
    assert 3 not in choose_layers(scores, 5) and choose_layers(scores, 5) == sorted(choose_layers(scores, 5))
    assert choose_layers([0.1, 0.5, 0.5, 0.2], 2) == [1, 2]
    assert resolve_keep(0.5, 30) == 15 and resolve_keep(15, 30) == 15 and resolve_keep(1.0, 6) == 1
    with pytest.raises(ConfigError, match="has 6"):
        resolve_keep(7, 6)


def test_saved_folder_loads_and_records_what_was_kept(six_layers: Path, tmp_path: Path) -> None:
    report = prune_to_folder(str(six_layers), 3, tmp_path / "student", texts=_texts(), method="loss")
    saved = json.loads((tmp_path / "student" / PRUNE_FILE).read_text())
    assert saved["kept"] == report.kept and len(saved["kept"]) == 3 and saved["method"] == "loss"
    assert sorted(saved["kept"] + saved["removed"]) == list(range(6)) and len(saved["importance"]) == 6
    model, tokenizer = _load(tmp_path / "student")
    assert model.config.num_hidden_layers == 3 and tokenizer.chat_template
    assert not list(tmp_path.glob(".student.*"))  # written atomically: no temporary folder left


def test_llmops_prune_command(six_layers: Path, tmp_path: Path, tiny_idp: dict) -> None:
    out = tmp_path / "pruned"
    result = CliRunner().invoke(
        app,
        [
            "prune",
            str(six_layers),
            "--layers",
            "0.5",
            "--output",
            str(out),
            "--calibration",
            str(tiny_idp["train"]),
            "--schema",
            str(tiny_idp["schema"]),
            "--examples",
            "8",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "kept 3 of 6 decoder layers" in result.output
    assert json.loads((out / PRUNE_FILE).read_text())["calibration_texts"] == 8
    bad = CliRunner().invoke(app, ["prune", str(six_layers), "--layers", "9", "--output", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "cannot keep 9 decoder layers: the model has 6" in bad.output
    assert not (tmp_path / "x").exists()


def test_block_importance_removes_the_contiguous_block_that_changes_the_stream_least(six_layers: Path) -> None:
    from llmops.models.prune import block_distances, choose_block

    model, tokenizer = _load(six_layers)
    _, layers = decoder_layers(model)
    with torch.no_grad():  # layers 2 and 3 become identities: the stream entering 2 is the one leaving 3
        for i in (2, 3):
            layers[i].mlp.down_proj.weight.zero_()
            layers[i].self_attn.o_proj.weight.zero_()
    batches = [dict(_batch(tokenizer, _texts()[:4]))]
    distances, per_layer = block_distances(model, batches, 2)
    assert len(distances) == 5 and len(per_layer) == 6
    assert distances[2] == pytest.approx(0.0, abs=1e-3) and min(d for s, d in enumerate(distances) if s != 2) > 1e-3
    assert choose_block(distances, 2, 6) == [0, 1, 4, 5]
    assert choose_block([0.3, 0.1, 0.1], 4, 6) == [0, 5]  # ties: the earlier start
    report = prune(model, tokenizer, _texts(), 4, method="block")
    assert report.kept == [0, 1, 4, 5] and len(report.extra["block_distance"]) == 5
    assert prune(_load(six_layers)[0], tokenizer, _texts(), 6, method="block").kept == list(range(6))
