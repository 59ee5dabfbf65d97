"""`llmops serve`: a real uvicorn server on a free port, driven by the official openai client and raw HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("xgrammar")
openai = pytest.importorskip("openai")

KEY = "test-secret-key"
MAX_BODY = 8192
TOKEN_LIMIT = 512


class _Server:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def loaded(tiny_idp: dict[str, Path]) -> tuple[Any, Any]:
    from llmops.models.loader import load_for_inference

    return load_for_inference(tiny_idp["model"])


@pytest.fixture(scope="module")
def server(loaded: tuple[Any, Any]) -> Any:
    from llmops.serving.app import create_app
    from llmops.serving.engine import Engine

    engine = Engine(*loaded, max_batch_size=8, max_queue=32, json_string_max=24, name="tiny")
    srv = _Server(
        create_app(engine, api_key=KEY, max_body_bytes=MAX_BODY, max_tokens_limit=TOKEN_LIMIT, served_name="tiny-idp")
    )
    srv.engine = engine
    yield srv
    srv.stop()
    engine.close()


@pytest.fixture(scope="module")
def client(server: Any) -> Any:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _chat_body(**extra: Any) -> bytes:
    return json.dumps(
        {
            "model": "tiny-idp",
            "messages": [{"role": "user", "content": "Extract: Invoice 12"}],
            "max_tokens": 8,
            "temperature": 0,
            **extra,
        }
    ).encode()


AUTH = {"Authorization": f"Bearer {KEY}"}


def _assert_openai_error(status: int, body: dict, expected: int) -> None:
    assert status == expected, body
    assert set(body["error"]) >= {"message", "type", "code"}
    assert body["error"]["message"]


@pytest.mark.integration
def test_models_and_chat(client: Any) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids == ["tiny-idp"]
    out = client.chat.completions.create(
        model="tiny-idp", messages=[{"role": "user", "content": "Invoice 7"}], max_tokens=12, temperature=0
    )
    choice = out.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert out.usage.prompt_tokens > 0
    assert 0 < out.usage.completion_tokens <= 12
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


@pytest.mark.integration
def test_stream_matches_greedy(client: Any) -> None:
    messages = [{"role": "user", "content": "Receipt from Tachuchox total 12.50"}]
    full = client.chat.completions.create(model="tiny-idp", messages=messages, max_tokens=24, temperature=0)
    text = full.choices[0].message.content
    chunks = list(
        client.chat.completions.create(model="tiny-idp", messages=messages, max_tokens=24, temperature=0, stream=True)
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2
    assert "".join(pieces) == text
    assert chunks[-1].choices[0].finish_reason == full.choices[0].finish_reason


@pytest.mark.integration
def test_completions_endpoint_and_stop(client: Any) -> None:
    out = client.completions.create(model="tiny-idp", prompt="Invoice INV-01661 total", max_tokens=10, temperature=0)
    assert out.choices[0].finish_reason in ("stop", "length")
    text = out.choices[0].text
    if len(text) > 2:  # a stop string taken from the greedy answer cuts it there
        cut = client.completions.create(
            model="tiny-idp", prompt="Invoice INV-01661 total", max_tokens=10, temperature=0, stop=[text[2:4]]
        )
        assert cut.choices[0].finish_reason == "stop"
        assert text.startswith(cut.choices[0].text) and len(cut.choices[0].text) <= 2 + text[2:].find(text[2:4])


@pytest.mark.integration
def test_json_schema_always_valid(client: Any, tiny_idp: dict[str, Path]) -> None:
    from tests.serving.concurrent import assert_all_valid

    schema = json.loads(Path(tiny_idp["schema"]).read_text())
    assert_all_valid(
        client, "tiny-idp", schema, lambda i: f"Extract the fields of document {i}", TOKEN_LIMIT, workers=8
    )
    # json_object: when it finishes, it is a JSON object.
    out = client.chat.completions.create(
        model="tiny-idp",
        messages=[{"role": "user", "content": "json"}],
        max_tokens=200,
        temperature=0,
        response_format={"type": "json_object"},
    )
    if out.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(out.choices[0].message.content), dict)


@pytest.mark.integration
def test_concurrent_requests_are_batched(client: Any, server: Any) -> None:
    engine = server.engine
    before = engine.generate_calls
    engine.pause()
    try:
        pool = ThreadPoolExecutor(8)
        futures = [
            pool.submit(
                client.chat.completions.create,
                model="tiny-idp",
                max_tokens=6 + i,
                temperature=0,
                messages=[{"role": "user", "content": f"Invoice number {i} " * (1 + i % 3)}],
            )
            for i in range(8)
        ]
        deadline = time.monotonic() + 30
        while engine.queue_depth() + engine.held < 8:
            assert time.monotonic() < deadline, "requests did not reach the queue"
            time.sleep(0.01)
    finally:
        engine.resume()
    outs = [f.result(timeout=60) for f in futures]
    pool.shutdown()
    calls = engine.generate_calls - before
    assert calls < 8 and calls <= 2, engine.batch_sizes
    for i, out in enumerate(outs):
        assert out.usage.completion_tokens <= 6 + i  # per-request max_tokens inside one batch


@pytest.mark.integration
def test_auth(server: Any) -> None:
    url = server.url + "/v1/chat/completions"
    _assert_openai_error(*_post(url, _chat_body()), 401)
    _assert_openai_error(*_post(url, _chat_body(), {"Authorization": "Bearer wrong"}), 401)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).models.list()
    with urllib.request.urlopen(server.url + "/health", timeout=10) as resp:
        assert resp.status == 200 and json.loads(resp.read())["status"] == "ok"


@pytest.mark.integration
def test_bad_requests(server: Any) -> None:
    url = server.url + "/v1/chat/completions"
    _assert_openai_error(*_post(url, b"x" * (MAX_BODY + 1), AUTH), 413)
    big = _chat_body(messages=[{"role": "user", "content": "y" * MAX_BODY}])
    _assert_openai_error(*_post(url, big, AUTH), 413)
    _assert_openai_error(*_post(url, _chat_body(max_tokens=TOKEN_LIMIT + 1), AUTH), 400)
    _assert_openai_error(*_post(url, b'{"model": "tiny-idp", "messages": [', AUTH), 400)
    _assert_openai_error(*_post(url, b"[1, 2]", AUTH), 400)
    _assert_openai_error(*_post(url, _chat_body(max_tokens="5"), AUTH), 400)
    _assert_openai_error(*_post(url, _chat_body(messages="hello"), AUTH), 400)
    _assert_openai_error(*_post(url, _chat_body(messages=[]), AUTH), 400)
    _assert_openai_error(*_post(url, _chat_body(temperature=-1), AUTH), 400)
    _assert_openai_error(*_post(url, _chat_body(response_format={"type": "json_schema"}), AUTH), 400)
    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}
    _assert_openai_error(*_post(url, _chat_body(response_format=bad_schema), AUTH), 400)
    _assert_openai_error(*_post(url, _chat_body(model="other"), AUTH), 404)
    _assert_openai_error(*_post(server.url + "/v1/completions", b'{"prompt": 3}', AUTH), 400)


@pytest.mark.integration
def test_queue_full_answers_429(loaded: tuple[Any, Any]) -> None:
    from llmops.serving.app import create_app
    from llmops.serving.engine import Engine

    engine = Engine(*loaded, max_batch_size=1, max_queue=1, name="small")
    srv = _Server(create_app(engine, served_name="small"))
    url = srv.url + "/v1/completions"
    body = json.dumps({"prompt": "Invoice", "max_tokens": 4, "temperature": 0}).encode()
    pool = ThreadPoolExecutor(2)
    try:
        engine.pause()
        first = pool.submit(_post, url, body)
        deadline = time.monotonic() + 20
        while engine.held < 1:  # the paused worker holds the first request
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = pool.submit(_post, url, body)
        while engine.queue_depth() < 1:  # the second fills the queue
            assert time.monotonic() < deadline
            time.sleep(0.01)
        status, err = _post(url, body)
        _assert_openai_error(status, err, 429)
        engine.resume()
        assert first.result(timeout=30)[0] == 200
        assert second.result(timeout=30)[0] == 200
    finally:
        engine.resume()
        pool.shutdown()
        srv.stop()
        engine.close()


@pytest.mark.integration
def test_metrics(server: Any, client: Any) -> None:
    client.chat.completions.create(
        model="tiny-idp", messages=[{"role": "user", "content": "x"}], max_tokens=3, temperature=0
    )
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'llmops_requests_total{endpoint="/v1/chat/completions",status="200"}' in text
    assert "llmops_request_latency_seconds_bucket" in text
    tokens = [line for line in text.splitlines() if line.startswith("llmops_generated_tokens_total ")]
    assert tokens and float(tokens[0].split()[1]) > 0


def test_serve_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmops.errors import ConfigError
    from llmops.serving.launch import api_key_from_env, build

    monkeypatch.setenv("LLMOPS_TEST_KEY", "")
    with pytest.raises(ConfigError, match="LLMOPS_TEST_KEY"):
        api_key_from_env("LLMOPS_TEST_KEY")
    monkeypatch.setenv("LLMOPS_TEST_KEY", "abc")
    assert api_key_from_env("LLMOPS_TEST_KEY") == "abc"
    assert api_key_from_env(None) is None
    with pytest.raises(ConfigError, match="does not exist"):
        build(str(tmp_path / "missing"))


def test_narrow_schema_is_a_subschema() -> None:
    import jsonschema

    from llmops.serving.engine import narrow_schema

    schema = {"type": "object", "properties": {"a": {}, "b": {"type": "string", "maxLength": 5}}}
    narrowed = narrow_schema(schema, 8)
    assert narrowed["properties"]["a"]["type"] == ["string", "integer", "boolean", "null"]
    assert narrowed["properties"]["b"]["pattern"].endswith("{0,5}$")
    for value in ({"a": "x" * 8, "b": "12345"}, {"a": 3, "b": ""}):
        jsonschema.validate(value, narrowed)
        jsonschema.validate(value, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"a": "x" * 9}, narrowed)
