"""Process-wide settings of a command: default environment variables and quiet libraries."""

from __future__ import annotations

import os


def default_env() -> None:
    """No telemetry, no tokenizer fork warnings, no advisory chatter; what the user set wins."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def quiet_libraries() -> None:
    """Keep library chatter (weight-loading bars, INFO logs) out of the run's output."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("mlflow", "bitsandbytes", "transformers", "datasets", "accelerate", "peft", "trl", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from huggingface_hub.utils import disable_progress_bars
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        disable_progress_bars()
    except ImportError:
        pass
