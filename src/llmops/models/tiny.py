"""Tiny offline models: a byte-level BPE tokenizer trained on given texts and a random Llama causal LM."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from llmops.errors import ModelError

PAD, USER, ASSISTANT, END = "<|pad|>", "<|user|>", "<|assistant|>", "<|end|>"
SPECIAL_TOKENS = [PAD, USER, ASSISTANT, END]

# Prompt-only rendering (add_generation_prompt=True) is a prefix of the rendering with the answer, so TRL's
# completion mask starts exactly at the answer; the answer ends with <|end|> (EOS) so the model learns to stop.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>{{ '\\n' }}{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}{{ '\\n' }}"
    "{% elif message['role'] == 'user' %}"
    "<|user|>{{ '\\n' }}{{ message['content'] }}<|end|>{{ '\\n' }}"
    "{% else %}"
    "<|user|>{{ '\\n' }}[{{ message['role'] }}] {{ message['content'] }}<|end|>{{ '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{{ '\\n' }}{% endif %}"
)

# Each run of non-word characters (spaces, punctuation, JSON syntax such as `": "`) is its own pre-token, so words
# carry no leading-space markers and a name is tokenized the same way in the document and inside the JSON answer
# (what lets a tiny model learn to copy it), while JSON syntax still merges into few tokens.
_PRETOKEN_PATTERN = r"[^\w]+"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> object:
    """Train a byte-level BPE (digits one per token) and wrap it as a transformers fast tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKEN_PATTERN), behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            byte_level,
        ]
    )
    tok.decoder = decoders.ByteLevel()
    min_vocab = 256 + len(SPECIAL_TOKENS)
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size, min_vocab),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.get_vocab_size() <= min_vocab - 1:
        raise ModelError("build_tiny_model: the tokenizer learned no vocabulary; pass some training texts")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=END,
        bos_token=END,
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=1_000_000,
        clean_up_tokenization_spaces=False,
    )


def _model(
    tokenizer: object,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int | None,
    max_position_embeddings: int,
) -> object:
    """A randomly initialised Llama causal LM sized to the tokenizer."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if hidden_size % num_heads:
        raise ModelError(f"build_tiny_model: hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        do_sample=False,
    )
    return model


def build_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 512,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 2048,
    seed: int = 0,
) -> Path:
    """Train a tokenizer on `texts`, build a random Llama LM around it and save both into `out_dir`."""
    import torch

    out_dir = Path(out_dir)
    tokenizer = train_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    model = _model(tokenizer, hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
