"""`llmops serve`: the OpenAI-compatible server of a saved or registered model."""

from __future__ import annotations

import typer

from llmops.cli.common import guard


def serve(
    model: str = typer.Argument(..., help="a saved model folder or models:/NAME@ALIAS"),
    host: str = typer.Option(
        "127.0.0.1", "--bind", "--host", help="address to listen on (127.0.0.1: this machine only; --host is the same)"
    ),
    port: int = typer.Option(8000, "--port"),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="env var holding the API key (Bearer)"),
    adapter: list[str] | None = typer.Option(None, "--adapter", help="NAME=PATH of an extra LoRA adapter"),
    max_batch_size: int = typer.Option(8, "--max-batch-size", help="requests batched into one forward pass"),
    batch_wait_ms: float = typer.Option(10.0, "--batch-wait-ms", help="how long a batch waits to fill"),
    max_queue: int = typer.Option(64, "--max-queue", help="waiting requests beyond this get 429"),
    max_tokens_limit: int = typer.Option(2048, "--max-tokens-limit", help="largest max_tokens a request may ask"),
    max_body_bytes: int = typer.Option(
        16 << 20, "--max-body-bytes", help="larger request bodies get 413 (documents come inline, base64)"
    ),
    served_name: str | None = typer.Option(None, "--served-name", help="the model name clients use"),
    schema: str | None = typer.Option(
        None,
        "--schema",
        help="JSON Schema that requests without response_format are "
        "constrained to (default: the IDP model's own, if it has one)",
    ),
    drain_timeout: float = typer.Option(
        25.0,
        "--drain-timeout",
        help="on SIGTERM: seconds to finish requests in flight before exiting "
        "(Kubernetes kills after its 30 s grace period)",
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="run modelling code shipped in the model folder (trusted models only)"
    ),
    allow_pickle: bool = typer.Option(
        False, "--allow-pickle", help="load pickle weights (.bin/.pt), which can run code; default: safetensors only"
    ),
) -> None:
    """OpenAI-compatible server: /v1/models, /v1/chat/completions (streaming), /v1/completions, /metrics."""

    def body() -> None:
        from llmops.config import ModelsSettings
        from llmops.models.policy import set_policy
        from llmops.serving.launch import serve as run_server

        set_policy(ModelsSettings(trust_remote_code=trust_remote_code, allow_pickle=allow_pickle))
        run_server(
            model,
            host=host,
            port=port,
            api_key_env=api_key_env,
            adapters=adapter or (),
            max_batch_size=max_batch_size,
            batch_wait_ms=batch_wait_ms,
            max_queue=max_queue,
            max_tokens_limit=max_tokens_limit,
            max_body_bytes=max_body_bytes,
            served_name=served_name,
            schema=schema,
            drain_timeout_s=drain_timeout,
        )

    guard(body)


def register(app: typer.Typer) -> None:
    app.command()(serve)
