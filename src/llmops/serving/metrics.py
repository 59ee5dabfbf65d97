"""Prometheus metrics of the server, in their own registry (several apps in one process share them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("llmops_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "llmops_request_latency_seconds",
    "Time to the response (first byte for streams)",
    ["endpoint"],
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
GENERATED_TOKENS = Counter("llmops_generated_tokens", "Completion tokens generated", registry=REGISTRY)
PROMPT_TOKENS = Counter("llmops_prompt_tokens", "Prompt tokens processed", registry=REGISTRY)
BATCH_SIZE = Histogram(
    "llmops_batch_size", "Requests per batched generate call", registry=REGISTRY, buckets=(1, 2, 4, 8, 16, 32, 64)
)
QUEUE_DEPTH = Gauge("llmops_queue_depth", "Requests waiting in the queue", registry=REGISTRY)
