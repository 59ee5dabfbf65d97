"""`llmops deploy ...`: deploy a registered model to a serving platform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from llmops.cli.common import guard

deploy_app = typer.Typer(
    help="Deploy a registered model (models:/NAME@ALIAS) to a serving platform.",
    no_args_is_help=True,
    add_completion=False,
)


@deploy_app.callback()
def _deploy() -> None:
    """Deploy a registered model (models:/NAME@ALIAS) to a serving platform."""


def _parse_lora(items: Any) -> dict[str, str]:
    from llmops.errors import ConfigError

    out: dict[str, str] = {}
    for item in items or ():
        name, sep, path = str(item).partition("=")
        if not sep or not name or not path:
            raise ConfigError(
                f"deploy kserve: --lora '{item}' should be NAME=PATH (a storage URI, a path in the "
                "image, or a Hugging Face repo id)"
            )
        out[name] = path
    return out


@deploy_app.command("kserve")
def kserve(
    model_uri: str = typer.Argument(..., help="models:/NAME@ALIAS or models:/NAME/VERSION"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the YAML here instead of printing it"),
    apply_: bool = typer.Option(False, "--apply", help="create or replace the InferenceService in the cluster"),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="Kubernetes namespace"),
    gpus: int = typer.Option(1, "--gpus", min=0, help="GPUs of the predictor (0: CPU, no vLLM)"),
    name: str | None = typer.Option(None, "--name", help="InferenceService name (default: from the model name)"),
    lora: list[str] | None = typer.Option(None, "--lora", help="extra LoRA module NAME=PATH (repeatable)"),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI"),
    base_storage_uri: str | None = typer.Option(
        None, "--base-storage-uri", help="base model of an adapter (s3://... or hf://ORG/NAME)"
    ),
    max_model_len: int | None = typer.Option(None, "--max-model-len", help="vLLM --max-model-len"),
) -> None:
    """Write a KServe InferenceService (Hugging Face runtime, vLLM) for a registered model; --apply deploys it."""

    def body() -> None:
        from llmops.serving.kserve import deploy_kserve

        opts: dict[str, Any] = {"gpus": gpus}
        for key, value in (("name", name), ("base_storage_uri", base_storage_uri), ("max_model_len", max_model_len)):
            if value is not None:
                opts[key] = value
        extra = _parse_lora(lora)
        if extra:
            opts["lora_modules"] = extra
        result = deploy_kserve(
            model_uri, output_path=output, apply_now=apply_, namespace=namespace, tracking_uri=tracking_uri, **opts
        )
        if result["output"]:
            typer.echo(f"wrote {result['output']}", err=True)
        else:
            typer.echo(result["yaml"], nl=False)
        if result["applied"]:
            typer.echo(f"{result['applied']} InferenceService {result['namespace']}/{result['name']}", err=True)

    guard(body)
