"""Model loading, adaptation, export and tiny offline models."""
