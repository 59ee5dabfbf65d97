"""Errors a user can cause. The CLI prints them as one line, without a traceback."""

from __future__ import annotations


class LlmopsError(Exception):
    """Base class: a message that names the file, line or key and says what to do."""

    exit_code = 1


class ConfigError(LlmopsError):
    """A bad configuration key or value."""

    exit_code = 2


class DataError(LlmopsError):
    """Unreadable or invalid data; `problems` holds every `FILE:LINE: what` line found."""

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class ModelError(LlmopsError):
    """A model or tokenizer that cannot be loaded or used as asked."""


class TrackingError(LlmopsError):
    """The tracking server or registry cannot be reached or used."""


class Interrupted(LlmopsError):
    """Training stopped on SIGTERM/SIGINT after writing a checkpoint (`llmops.methods.preempt`); resume goes on
    from it. Exit 143 (128 + SIGTERM), what Kubernetes and shells expect of a process ended by SIGTERM."""

    exit_code = 143

    def __init__(
        self, message: str, signal_name: str = "SIGTERM", step: int = 0, checkpoint: str | None = None
    ) -> None:
        super().__init__(message)
        self.signal_name = signal_name
        self.step = step
        self.checkpoint = checkpoint


class DiskFullError(LlmopsError):
    """A checkpoint or model save ran out of space (ENOSPC); the previous checkpoint is intact."""
