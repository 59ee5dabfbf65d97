"""The embedded offline default: synthetic data, tiny models and the quickstart runner."""
