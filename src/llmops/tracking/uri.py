"""Where runs are recorded: the tracking URI, how it is shown, and the check that the store can be used.

The URI is tracking.tracking_uri, else $MLFLOW_TRACKING_URI, else a caller's default, else MLflow's own default
(an SQLite file in the working directory). mlflow is imported only for its default; the check takes a client.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from llmops.config import redact
from llmops.errors import TrackingError

SQLITE = "sqlite:///"
# A reachability probe must not sit through MLflow's default 7 retries with exponential backoff (minutes).
FAST_PROBE_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
_URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")


def env_tracking_uri() -> str | None:
    """The tracking URI users set in the environment ($MLFLOW_TRACKING_URI), or None."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def sqlite_uri(path: str | Path) -> str:
    """The URI of an SQLite store at `path`, made absolute."""
    return SQLITE + str(Path(path).resolve())


def resolve_tracking_uri(configured: str | None = None, default: str | None = None) -> str:
    """`configured`, else $MLFLOW_TRACKING_URI, else `default`, else MLflow's default; SQLite paths made absolute."""
    uri = configured or env_tracking_uri() or default
    if not uri:
        from mlflow.store.tracking import DEFAULT_TRACKING_URI

        uri = DEFAULT_TRACKING_URI
    path = uri[len(SQLITE) :]
    if uri.startswith(SQLITE) and not path.startswith("/") and path not in ("", ":memory:"):
        # Absolute, so the location printed at the end of a run works from any folder.
        uri = sqlite_uri(path)
    return uri


def display_uri(uri: str) -> str:
    """The URI with any credentials masked, for messages."""
    return redact({"uri": uri})["uri"]


def error_summary(err: BaseException) -> str:
    """An error's first line with credentials in URLs masked, cut to a readable length."""
    lines = str(err).strip().splitlines()
    return _URL_CREDENTIALS.sub(r"\1***@", lines[0] if lines else type(err).__name__)[:240]


def fast_requests() -> AbstractContextManager[None]:
    """MLflow HTTP calls in the block: one attempt, no internal retries, a 5 s timeout."""
    return _env(FAST_PROBE_ENV)


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_reachable(client: Any, uri: str) -> None:
    """Probe `client`'s store (an MlflowClient for `uri`) once, quickly; a TrackingError naming it if unusable."""
    with fast_requests():
        try:
            client.search_experiments(max_results=1)
        except Exception as e:
            raise TrackingError(
                f"MLflow tracking at {display_uri(uri)} cannot be used: {error_summary(e)}. Start the server "
                "(e.g. `mlflow server --host 127.0.0.1 --port 5000`), or fix tracking.tracking_uri / "
                "MLFLOW_TRACKING_URI, or turn tracking off with --set tracking.enabled=false"
            ) from e
