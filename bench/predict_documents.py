"""`llmops predict` wall time on the documents users send: a two-page born-digital PDF, the same two pages scanned
(image-only PDF, read by OCR) and a one-page PNG photo; each answer checked against the schema.

The whole command is timed, as a user waits for it: start-up, model load, reading (OCR), constrained generation.
The target is under 60 s for a two-page document on 2 cores.

    .venv/bin/python bench/predict_documents.py [--model DIR|models:/NAME@ALIAS ...] [--seed 7]

Default model: the untrained SmolLM2-135M-Instruct (its answers under the grammar run long: the slowest case).
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


def two_page_invoice(seed: int) -> tuple[bytes, str]:
    """A generated invoice whose PDF has two pages (long line-item table), and its language."""
    from llmops.quickstart.doc_render import render_pdf
    from llmops.quickstart.doc_values import DocValues
    from llmops.quickstart.idp_documents import build_document

    for attempt in range(200):
        rng = random.Random(f"{seed}-{attempt}")
        language = ("en", "de", "fr")[attempt % 3]
        doc = build_document(DocValues(rng, True), "invoice", language, long=True)
        data, text = render_pdf(doc, 12 + attempt % 4, language)
        if text.count("\f") == 1:
            return data, language
    raise SystemExit("no two-page invoice in 200 draws")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[], help="model folder or models:/NAME@ALIAS")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    import jsonschema

    from llmops.quickstart.doc_render import scan
    from llmops.quickstart.idp_documents import document_schema

    work = Path(tempfile.mkdtemp(prefix="llmops-predict-"))
    pdf, _ = two_page_invoice(args.seed)
    docs = {
        "two-page PDF": work / "invoice.pdf",
        "two-page scan (PDF)": work / "scan.pdf",
        "one-page photo (PNG)": work / "photo.png",
    }
    docs["two-page PDF"].write_bytes(pdf)
    docs["two-page scan (PDF)"].write_bytes(scan(pdf, random.Random(args.seed), "pdf"))
    from llmops.quickstart.doc_render import render_pdf
    from llmops.quickstart.doc_values import DocValues
    from llmops.quickstart.idp_documents import build_document

    one = build_document(DocValues(random.Random(args.seed), True), "receipt", "de")
    docs["one-page photo (PNG)"].write_bytes(scan(render_pdf(one, 14, "de")[0], random.Random(args.seed), "png"))
    schema = document_schema()
    (work / "schema.json").write_text(json.dumps(schema))
    llmops = Path(sys.executable).with_name("llmops")
    # A fresh cache: the OCR of the scans is part of the time, as for a user's first request.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LLMOPS_CACHE": str(work / "cache")}
    builtin = Path(os.environ.get("LLMOPS_CACHE", Path.home() / ".cache" / "llmops")) / "models"
    if builtin.is_dir():  # the converted embedded model is reused, not converted again
        (work / "cache").mkdir()
        (work / "cache" / "models").symlink_to(builtin)
    for model in args.model or ["smollm2-135m-instruct"]:
        print(f"\n{model}")
        for label, path in docs.items():
            start = time.perf_counter()
            proc = subprocess.run(
                [
                    str(llmops),
                    "predict",
                    "--model",
                    model,
                    "--schema",
                    str(work / "schema.json"),
                    "--document",
                    str(path),
                ],
                capture_output=True,
                text=True,
                env=env,
            )
            seconds = time.perf_counter() - start
            if proc.returncode:
                raise SystemExit(f"predict failed on {path}:\n{proc.stderr[-2000:]}")
            answer = json.loads(proc.stdout)
            jsonschema.validate(answer, schema)
            print(
                f"  {label:22s} {seconds:5.1f} s  schema-valid, {len(answer['line_items'])} line items, "
                f"total {answer['total']}"
            )


if __name__ == "__main__":
    main()
