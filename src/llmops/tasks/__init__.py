"""Task families: what a prompt looks like, how an answer is parsed and scored."""

from llmops.tasks.base import DEFAULT_CLASS, Task
from llmops.tasks.documents import read_document
from llmops.tasks.idp import IDPTask, load_schema

__all__ = ["DEFAULT_CLASS", "IDPTask", "Task", "load_schema", "read_document"]
