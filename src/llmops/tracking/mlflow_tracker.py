"""The MLflow tracker: one MLflow run per pipeline run, its params, metrics, artifacts, plots and registry gate.

Only imported once a run starts (it imports mlflow, ~1-2 s).
"""

from __future__ import annotations

import logging
import posixpath
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from llmops.config import RunConfig, flatten, redact
from llmops.errors import Interrupted, TrackingError
from llmops.tracking import outage, registry
from llmops.tracking.gate import GateResult, gate_tags
from llmops.tracking.plots import write_field_plot, write_loss_curve
from llmops.tracking.uri import check_reachable, display_uri, error_summary, resolve_tracking_uri

log = logging.getLogger(__name__)

MAX_PARAM_VALUE = 6000
MAX_KEY = 250
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def clean_key(key: str) -> str:
    """A metric/param name MLflow accepts: disallowed characters become '_', no empty path parts."""
    key = _BAD_KEY_CHARS.sub("_", str(key)).strip("/")
    key = posixpath.normpath(key) if key else "_"
    return key.lstrip("./")[:MAX_KEY] or "_"


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_VALUE else text[: MAX_PARAM_VALUE - 3] + "..."


def _lookup(metrics: dict[str, float], metric: str, prefix: str) -> float | None:
    value = metrics.get(metric, metrics.get(f"{prefix}/{metric}"))
    return None if value is None else float(value)


class MlflowTracker:
    """Records one pipeline run in MLflow and gates registered versions; see `llmops.tracking.Tracker`."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self._uri = resolve_tracking_uri(cfg.tracking.tracking_uri)
        self._client = MlflowClient(self._uri, registry_uri=self._uri)
        self._run_id: str | None = None
        self._pending: list[tuple[GateResult, float | None]] = []
        self._open = False
        self._spool = outage.Spool()
        self._retry_s = cfg.tracking.retry_s
        self._warned_outage = False

    @property
    def tracking_uri(self) -> str:
        """The resolved tracking (and registry) URI."""
        return self._uri

    @property
    def run_id(self) -> str | None:
        """The current (or last) run's id."""
        return self._run_id

    @property
    def client(self) -> MlflowClient:
        """The MlflowClient bound to this tracker's URI."""
        return self._client

    def _where(self) -> str:
        return display_uri(self._uri)

    def check(self) -> None:
        """Probe the tracking store once, quickly; raise TrackingError naming the URI if it cannot be used."""
        check_reachable(self._client, self._uri)

    def _experiment_id(self) -> str:
        name = self.cfg.tracking.experiment_name
        exp = self._client.get_experiment_by_name(name)
        if exp is None:
            try:
                return self._client.create_experiment(name)
            except MlflowException as e:  # another process created it between our lookup and our create
                if not registry.already_exists(e):
                    raise
                exp = self._client.get_experiment_by_name(name)
        if exp.lifecycle_stage == "deleted":
            raise TrackingError(
                f"tracking.experiment_name: experiment '{name}' is deleted at {self._where()}; restore it "
                "(`mlflow experiments restore`) or choose another name"
            )
        return exp.experiment_id

    def _open_run(self, run_name: str, tags: dict[str, str] | None, run_id: str | None) -> str:
        mlflow.set_tracking_uri(self._uri)
        mlflow.set_registry_uri(self._uri)
        system = self.cfg.tracking.system_metrics
        try:
            if run_id:
                active = mlflow.start_run(run_id=run_id, log_system_metrics=system)
            else:
                active = mlflow.start_run(
                    experiment_id=self._experiment_id(), run_name=run_name, tags=tags, log_system_metrics=system
                )
        except MlflowException as e:
            what = f"run {run_id} cannot be resumed" if run_id else "a run cannot be started"
            raise TrackingError(f"MLflow at {self._where()}: {what}: {error_summary(e)}") from e
        return active.info.run_id

    @contextmanager
    def start(
        self, run_name: str, tags: dict[str, str] | None = None, run_id: str | None = None
    ) -> Iterator[MlflowTracker]:
        """One MLflow run for the block; FAILED (KILLED on Ctrl-C or a preemption signal) if it raises, and champion
        moves only on success."""
        self._run_id = self._retry(lambda: self._open_run(run_name, tags, run_id), "opening the run")
        self._pending = []
        self._open = True
        try:
            yield self
            self.flush()  # metrics kept during an outage go before the run ends
        except BaseException as exc:
            self._open = False
            self._abandon_pending()
            self._end("KILLED" if isinstance(exc, (KeyboardInterrupt, Interrupted)) else "FAILED")
            raise
        self._open = False
        try:
            self._commit_pending()
        except Exception:
            self._end("FAILED")
            raise
        self._retry(lambda: mlflow.end_run("FINISHED"), "ending the run")

    def _end(self, status: str) -> None:
        try:
            outage.call_fast(lambda: mlflow.end_run(status))
        except Exception as e:  # never hide the error that ended the run
            log.warning("could not mark MLflow run %s %s: %s", self._run_id, status, error_summary(e))

    def _commit_pending(self) -> None:
        try:
            for result, baseline in self._pending:
                self._retry(lambda r=result, b=baseline: registry.promote(self._client, r, b), "moving the champion")
        except MlflowException as e:
            where = self._where()
            raise TrackingError(f"MLflow at {where}: moving the champion alias failed: {error_summary(e)}") from e
        finally:
            self._pending = []

    def _abandon_pending(self) -> None:
        for result, _ in self._pending:
            try:
                registry.mark_failed(self._client, result)
            except Exception as e:  # the store may be what failed; the run's FAILED status still says enough
                log.warning("could not tag %s v%s as failed: %s", result.name, result.version, error_summary(e))
        self._pending = []

    def _require_run(self) -> str:
        if self._run_id is None or not self._open:
            raise RuntimeError("MlflowTracker: call this inside `with tracker.start(...)`")
        return self._run_id

    # ---------------------------------------------------------------- outages (llmops.tracking.outage)

    def keep_unsent_in(self, run_dir: str | Path) -> None:
        """Metrics the server does not take now are kept in the run folder (and those a previous process kept
        there are sent first)."""
        self._spool.attach(Path(run_dir) / outage.SPOOL_FILE)
        self._resend()

    def _retry(self, fn: Any, what: str) -> Any:
        return outage.retrying(
            fn,
            what,
            self._uri,
            self._retry_s,
            hint=(
                "; the trained model stays in the run folder and nothing more is registered. When the server is back, "
                "`llmops run --resume RUN_DIR` sends the metrics kept in the run folder and finishes the run"
            ),
        )

    def _send_batch(self, batch: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        rows = [Metric(k, v, ts, step) for k, v, ts, step in batch["metrics"]]
        for i in range(0, len(rows), 1000):  # MLflow's log_batch limit
            self._client.log_batch(batch["run_id"], metrics=rows[i : i + 1000], synchronous=True)

    def _resend(self) -> None:
        """Try the kept metrics once (at most every few seconds during an outage)."""
        if not self._spool or not self._spool.due():
            return
        try:
            sent = self._spool.send(self._send_batch)
        except Exception as e:
            if not outage.unreachable(e):
                raise
            return
        if sent and not self._spool:
            log.warning(
                "MLflow at %s answers again: the %d metric batches kept meanwhile are sent", self._where(), sent
            )
            self._warned_outage = False

    def flush(self) -> None:
        """Send every kept metric, retrying for tracking.retry_s (TrackingError after that)."""
        if self._spool:
            self._retry(lambda: self._spool.send(self._send_batch), "sending the metrics kept during an outage")

    # ---------------------------------------------------------------- logging

    def log_params(self, params: dict[str, Any]) -> None:
        """Flattened, secrets redacted, keys made valid, values cut to MLflow's 6000-character limit."""
        run_id = self._require_run()
        clean = {clean_key(k): _param_value(v) for k, v in redact(flatten(params)).items()}
        self._retry(lambda: mlflow.log_params(clean, synchronous=True, run_id=run_id), "logging params")

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Numeric metrics at `step` (default 0); keys like `eval/invoice/field_f1` are kept, bad characters '_'.

        Never waits on the server: a batch it does not take now is kept in the run folder and sent later, in
        order, each metric with the timestamp it was logged with (so a resend never duplicates it)."""
        run_id = self._require_run()
        stamp = int(time.time() * 1000)
        rows = [(clean_key(k), float(v), stamp, int(step or 0)) for k, v in metrics.items()]
        if not rows:
            return
        if self._spool:  # queue behind the batches already kept: MLflow's "latest value" follows log order
            self._spool.add(run_id, rows)
            self._resend()
            return
        batch = {"run_id": run_id, "metrics": rows}
        try:
            outage.call_fast(lambda: self._send_batch(batch))
        except Exception as e:
            if not outage.unreachable(e):
                raise
            self._spool.add(run_id, rows)
            self._spool.last_try = time.monotonic()
            if not self._warned_outage:
                log.warning(
                    "MLflow at %s does not answer (%s); training goes on and metrics are kept in %s until it does",
                    self._where(),
                    error_summary(e),
                    self._spool.path or "memory",
                )
                self._warned_outage = True

    def set_tags(self, tags: dict[str, str]) -> None:
        """Tag the current run."""
        run_id = self._require_run()
        for key, value in tags.items():
            self._retry(lambda k=key, v=value: self._client.set_tag(run_id, k, v), "tagging the run")

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload one file under `artifact_path` (default: the run's root)."""
        run_id = self._require_run()
        self._retry(lambda: self._client.log_artifact(run_id, str(path), artifact_path), f"uploading {path}")

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Upload a folder's contents under `artifact_path`."""
        run_id = self._require_run()
        self._retry(lambda: self._client.log_artifacts(run_id, str(local_dir), artifact_path), f"uploading {local_dir}")

    def log_loss_curve(self, history: Sequence[tuple[int, float]], path: str | Path) -> Path | None:
        """Write the loss-curve PNG and upload it under `plots/`; None (nothing written) without history."""
        written = write_loss_curve(history, path)
        if written is not None:
            self.log_artifact(written, "plots")
        return written

    def log_field_plot(self, per_field: dict[str, float], path: str | Path) -> Path | None:
        """Write the per-field F1 PNG and upload it under `plots/`; None (nothing written) without fields."""
        written = write_field_plot(per_field, path)
        if written is not None:
            self.log_artifact(written, "plots")
        return written

    def _gate(
        self, cfg: RunConfig, metrics: dict[str, float], baseline: dict[str, float] | None, run_id: str | None
    ) -> tuple[GateResult, float | None]:
        metric, name = cfg.gate_metric(), cfg.registered_model_name()
        new_value = _lookup(metrics, metric, "eval")
        base = _lookup(baseline or {}, metric, "baseline")
        if base is None and run_id:
            base = self._client.get_run(run_id).data.metrics.get(f"baseline/{metric}")
        return registry.gate_new_version(self._client, name, metric, new_value, base), base

    def preview_gate(
        self, cfg: RunConfig, metrics: dict[str, float], baseline: dict[str, float] | None = None
    ) -> GateResult:
        """The gate's decision for these metrics against the current champion, registering nothing."""
        try:
            return self._gate(cfg, metrics, baseline, self._run_id)[0]
        except MlflowException as e:
            raise TrackingError(
                f"MLflow at {self._where()}: reading the champion of "
                f"'{cfg.registered_model_name()}' failed: {error_summary(e)}"
            ) from e

    def register(
        self, model_dir: str | Path, cfg: RunConfig, metrics: dict[str, float], baseline: dict[str, float] | None = None
    ) -> GateResult:
        """New registry version from the model folder (alias challenger) plus the gate decision.

        `metrics`/`baseline` may be bare (`field_f1`) or prefixed (`eval/field_f1`); a missing baseline is read from
        the run's `baseline/<metric>`. A promotion takes effect (alias champion) when the run block ends without
        an exception; a failed run never moves champion.
        """
        run_id = self._require_run()
        name = cfg.registered_model_name()
        self.flush()  # every metric is in MLflow before a version exists (else: TrackingError, nothing registered)
        try:
            result, base = self._retry(lambda: self._gate(cfg, metrics, baseline, run_id), "reading the champion")
            result.version = self._retry(
                lambda: registry.create_version(
                    self._client, run_id, Path(model_dir), name, cfg.tracking.log_model, gate_tags(result)
                ),
                "registering the model",
            )
            self._retry(
                lambda: self._client.set_tag(run_id, "llmops.registered_model", f"{name}/{result.version}"),
                "tagging the run",
            )
        except MlflowException as e:
            raise TrackingError(f"MLflow at {self._where()}: registering '{name}' failed: {error_summary(e)}") from e
        self._pending.append((result, base))
        return result
