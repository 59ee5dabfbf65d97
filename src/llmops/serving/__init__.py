"""`llmops serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) with dynamic batching and JSON-schema
constrained decoding. Import the pieces lazily: `from llmops.serving.launch import serve`."""
