"""Field F1 on real invoices nobody here wrote: the quickstart champion against the untrained model.

Nine real PDFs from invoice2data's test folder (English, German, French, Dutch; see real_documents/README.md), with
gold values typed in by hand in the quickstart's nested schema (real_documents/labels.jsonl). The PDFs are not part
of this repository: they are downloaded once by URL (pinned commit) into the llmops cache, or read from --docs.

Each model is evaluated with `llmops evaluate` (constrained decoding, the defaults), as a user would:

    .venv/bin/python bench/real_documents.py --model models:/llmops-idp-sft@champion [--model DIR ...]
        [--docs FOLDER] [--untrained/--no-untrained]

Printed per model: field F1, schema-valid rate, exact match, seconds per document, and the five worst fields.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

HERE = Path(__file__).resolve().parent / "real_documents"
UNTRAINED = "smollm2-135m-instruct"


def raw_url(source: str) -> str:
    """github.com/<owner>/<repo>/blob/<commit>/<path> -> raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>."""
    return source.replace("https://github.com/", "https://raw.githubusercontent.com/").replace("/blob/", "/", 1)


def documents(records: list[dict], folder: str | None) -> Path:
    """The folder holding every record's file: --docs, else the cache (downloading what is missing)."""
    if folder:
        docs = Path(folder)
        missing = [r["file"] for r in records if not (docs / r["file"]).is_file()]
        if missing:
            raise SystemExit(f"--docs {docs}: missing {', '.join(missing)}")
        return docs
    from llmops.config import cache_dir

    docs = Path(cache_dir()) / "real_documents"
    docs.mkdir(parents=True, exist_ok=True)
    for r in records:
        dest = docs / r["file"]
        if dest.is_file():
            continue
        try:
            with urllib.request.urlopen(raw_url(r["source"]), timeout=60) as resp:
                data = resp.read()
        except OSError as err:
            raise SystemExit(
                f"cannot download {r['source']} ({err}); put the PDFs in a folder and pass --docs"
            ) from err
        tmp = dest.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    return docs


def evaluate(model: str, eval_file: Path, schema: Path, out: Path) -> tuple[dict[str, float], float]:
    llmops = Path(sys.executable).with_name("llmops")
    cmd = [
        str(llmops),
        "evaluate",
        "--model",
        model,
        "--eval_data",
        str(eval_file),
        "--schema",
        str(schema),
        "--output",
        str(out),
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"llmops evaluate --model {model} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[], help="a model folder or models:/NAME@ALIAS")
    ap.add_argument("--docs", help="folder with the PDFs (default: download them once into the llmops cache)")
    ap.add_argument(
        "--untrained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also evaluate the untrained {UNTRAINED}",
    )
    args = ap.parse_args()

    from llmops.quickstart.idp_documents import document_schema

    records = [json.loads(line) for line in (HERE / "labels.jsonl").read_text(encoding="utf-8").splitlines() if line]
    docs = documents(records, args.docs)
    work = Path(tempfile.mkdtemp(prefix="llmops-real-docs-"))
    eval_file = work / "eval.jsonl"
    eval_file.write_text(
        "".join(
            json.dumps({**r, "file": str((docs / r["file"]).resolve())}, ensure_ascii=False) + "\n" for r in records
        ),
        encoding="utf-8",
    )
    schema = work / "schema.json"
    schema.write_text(json.dumps(document_schema()))
    models = ([UNTRAINED] if args.untrained else []) + args.model
    if not models:
        raise SystemExit("nothing to evaluate: pass --model (or leave --untrained on)")
    print(f"{len(records)} real documents from {docs}")
    for i, model in enumerate(models):
        metrics, seconds = evaluate(model, eval_file, schema, work / f"predictions-{i}.jsonl")
        fields = {
            k[len("field/") : -len("/f1")]: v
            for k, v in metrics.items()
            if k.startswith("field/") and k.endswith("/f1")
        }
        worst = ", ".join(f"{name} {value:.2f}" for name, value in sorted(fields.items(), key=lambda kv: kv[1])[:5])
        shown = "  ".join(
            f"{key} {metrics.get(key, float('nan')):.3f}"
            for key in ("field_f1", "schema_valid_rate", "json_valid_rate", "exact_match")
        )
        print(
            f"\n{model}\n  {shown}"
            f"  {seconds / len(records):.1f} s/document\n  worst fields: {worst}\n  predictions: "
            f"{work / f'predictions-{i}.jsonl'}"
        )


if __name__ == "__main__":
    main()
