"""`serve(...)`: build the engine and the app for MODEL and run uvicorn (what `llmops serve` calls)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError
from llmops.models.policy import check_folder, safe_name


def api_key_from_env(api_key_env: str | None) -> str | None:
    """The API key held by env var `api_key_env` (None when not named); ConfigError when named but empty."""
    if not api_key_env:
        return None
    key = os.environ.get(api_key_env, "").strip()
    if not key:
        raise ConfigError(
            f"serve: --api-key-env names {api_key_env}, but that environment variable is empty or "
            "unset; export it or leave the option out to serve without a key"
        )
    return key


def _parse_adapters(adapters: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in adapters or ():
        name, sep, path = str(item).partition("=")
        if not sep:
            name, path = Path(item).name, str(item)
        if not Path(path).expanduser().is_dir():
            raise ConfigError(f"serve: adapter folder '{path}' does not exist")
        safe_name(name, "serve: --adapter name")
        check_folder(Path(path).expanduser())  # safetensors only, nothing linked from outside the folder
        out[name] = path
    return out


def build(
    model: str,
    *,
    api_key_env: str | None = None,
    adapters: Any = (),
    max_batch_size: int = 8,
    batch_wait_ms: float = 10.0,
    max_queue: int = 64,
    max_body_bytes: int = 1 << 20,
    max_tokens_limit: int = 2048,
    served_name: str | None = None,
    json_string_max: int | None = 128,
    schema: str | None = None,
) -> Any:
    """The FastAPI app serving MODEL (a folder or models:/NAME@ALIAS); ConfigError on bad settings.

    `schema` (a JSON Schema file), else the schema an IDP model was trained with (`llmops_schema.json` in its
    folder), constrains every request that names no `response_format`.
    """
    from llmops.serving.app import create_app
    from llmops.serving.engine import Engine

    key = api_key_from_env(api_key_env)
    if not model.startswith("models:/") and not Path(model).expanduser().is_dir():
        raise ConfigError(
            f"serve: model folder '{model}' does not exist; pass a saved model folder or models:/NAME@ALIAS"
        )
    adapter_map = _parse_adapters(adapters)
    if max_tokens_limit < 1 or max_body_bytes < 1:
        raise ConfigError("serve: max_tokens_limit and max_body_bytes must be positive")
    engine = Engine.load(
        model,
        max_batch_size=max_batch_size,
        batch_wait_s=batch_wait_ms / 1000,
        max_queue=max_queue,
        json_string_max=json_string_max,
        adapters=adapter_map,
    )
    return create_app(
        engine,
        api_key=key,
        max_body_bytes=max_body_bytes,
        max_tokens_limit=max_tokens_limit,
        served_name=served_name or model,
        default_schema=_default_schema(schema, engine.folder),
    )


def _default_schema(schema: str | None, folder: str | None) -> dict | None:
    import json

    from llmops.models.files import SCHEMA_FILE

    path = Path(schema) if schema else (Path(folder) / SCHEMA_FILE if folder else None)
    if path is None or not path.is_file():
        if schema:
            raise ConfigError(f"serve: --schema {schema}: no such file")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"serve: {path}: not a JSON Schema ({e})") from None


def serve(
    model: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key_env: str | None = None,
    adapters: Any = (),
    max_batch_size: int = 8,
    log_level: str = "info",
    drain_timeout_s: float = 25.0,
    **options: Any,
) -> None:
    """Load MODEL and serve it until interrupted (SIGTERM: drain, then exit 0). `options` go to `build`
    (batch_wait_ms, max_queue, ...)."""
    import uvicorn

    from llmops.environment import quiet_libraries

    quiet_libraries()
    app = build(model, api_key_env=api_key_env, adapters=adapters, max_batch_size=max_batch_size, **options)
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key_env:
        print(f"warning: serving on {host} without an API key (--api-key-env)", file=sys.stderr)
    server = draining_server_class()(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5),
        app.state.server,
        drain_timeout_s,
    )
    try:
        server.run()
    finally:
        app.state.engine.close()


def draining_server_class() -> Any:
    import threading
    import time

    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn, with Kubernetes' SIGTERM contract: stop taking requests (503 + Retry-After, /health not ready),
        finish the ones in flight and the open streams (at most `drain_s`), then exit 0. SIGINT, or a second
        SIGTERM, is uvicorn's own shutdown."""

        def __init__(self, config: Any, app_server: Any, drain_s: float) -> None:
            super().__init__(config)
            self.app_server, self.drain_s = app_server, drain_s

        def handle_exit(self, sig: int, frame: Any) -> None:
            if sig == signal.SIGTERM and not self.app_server.draining:
                self.app_server.draining = True
                threading.Thread(target=self._drain, name="drain", daemon=True).start()
                return
            super().handle_exit(sig, frame)

        def _drain(self) -> None:
            start = time.monotonic()
            print(
                f"llmops serve: SIGTERM: draining {self.app_server.inflight} request(s) in flight "
                f"(at most {self.drain_s:g} s)",
                file=sys.stderr,
                flush=True,
            )
            while self.app_server.inflight > 0 and time.monotonic() - start < self.drain_s:
                time.sleep(0.05)
            if self.app_server.inflight:
                print(
                    f"llmops serve: drain timeout: {self.app_server.inflight} request(s) cut",
                    file=sys.stderr,
                    flush=True,
                )
            self.should_exit = True

    return DrainingServer
