"""A user's own labelled PDFs through `llmops run` with nothing but the required flags: does the default recipe learn?

The data a user brings: a few dozen labelled one-page invoices in English, German and French, in two layouts, as
PDF files named by the records (`{"file": "docs/0001.pdf", "fields": {...}}`), and a nested schema (seller and
buyer objects, a line-item array, totals). Held out: a third layout nobody trained on, half of it born-digital and
half scanned (rasterised with noise, read through OCR). The run is the command a user types:

    llmops run --student smollm2-135m-instruct --data train.jsonl --eval_data eval.jsonl --schema schema.json

(plus a private save_dir and SQLite MLflow store), every other setting at its default. Printed: wall time, the
baseline and fine-tuned field F1, schema-valid rate, F1 on born-digital and scanned held-out documents.

    .venv/bin/python bench/idp_user_documents.py [--train 48] [--eval 16] [--seed 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

TRAIN_LAYOUTS = (1, 6)  # two of the generator's training layouts (different columns, tables and totals)
EVAL_LAYOUT = 13  # one it holds out from every training set
LANGUAGES = ("en", "de", "fr")


def write_documents(out: Path, split: str, n: int, layouts: tuple[int, ...], seed: int, scan_every: int) -> Path:
    """n one-page invoices under out/docs and their records in out/<split>.jsonl; every scan_every-th is scanned."""
    from llmops.quickstart.doc_render import render_pdf, scan
    from llmops.quickstart.doc_values import DocValues, gold_fields
    from llmops.quickstart.idp_documents import build_document

    (out / "docs").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        rng = random.Random(f"user-{seed}-{split}-{i}")
        language, layout = LANGUAGES[i % len(LANGUAGES)], layouts[(i // len(LANGUAGES)) % len(layouts)]
        while True:  # one page: redraw the values until it fits
            doc = build_document(DocValues(rng, split == "eval"), "invoice", language)
            data, text = render_pdf(doc, layout, language)
            if "\f" not in text:
                break
        scanned = scan_every > 0 and i % scan_every == scan_every - 1
        if scanned:
            data = scan(data, rng, "pdf")
        name = f"docs/{split}-{i:03d}.pdf"
        (out / name).write_bytes(data)
        lines.append(
            json.dumps(
                {"file": name, "fields": gold_fields(doc), "language": language, "scanned": scanned}, ensure_ascii=False
            )
        )
    path = out / f"{split}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=48)
    ap.add_argument("--eval", type=int, default=16)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--keep", help="write the data and the run here (default: a temporary folder)")
    ap.add_argument("--set", action="append", default=[], help="extra --set for the run (default: none)")
    args = ap.parse_args()

    from llmops.quickstart.idp_documents import document_schema

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="llmops-user-docs-"))
    work.mkdir(parents=True, exist_ok=True)
    train = write_documents(work, "train", args.train, TRAIN_LAYOUTS, args.seed, scan_every=0)
    evals = write_documents(work, "eval", args.eval, (EVAL_LAYOUT,), args.seed, scan_every=2)
    schema = work / "schema.json"
    schema.write_text(json.dumps(document_schema(), indent=2))
    llmops = Path(sys.executable).with_name("llmops")
    cmd = [
        str(llmops),
        "run",
        "--student",
        "smollm2-135m-instruct",
        "--data",
        str(train),
        "--eval_data",
        str(evals),
        "--schema",
        str(schema),
        "--save_dir",
        str(work / "runs"),
    ]
    for item in args.set:
        cmd += ["--set", item]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "HF_HUB_OFFLINE": "1"}
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"llmops run failed with exit code {proc.returncode}")
    run_dir = max((work / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    import mlflow

    state = json.loads((run_dir / "state.json").read_text())
    logged = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(state["run_id"]).data.metrics
    print(f"\nwall time {wall / 60:.1f} min ({args.train} training PDFs, {args.eval} held-out, layout {EVAL_LAYOUT})")
    for name in ("baseline", "eval"):
        keys = ("field_f1", "schema_valid_rate", "digital/field_f1", "scanned/field_f1")
        print(f"{name:9s} " + "  ".join(f"{k} {logged.get(f'{name}/{k}', float('nan')):.3f}" for k in keys))
    print(f"run folder: {run_dir}")


if __name__ == "__main__":
    main()
