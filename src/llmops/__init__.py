"""llmops: fine-tune, evaluate, gate, register and serve LLMs."""

__version__ = "0.1.0"
