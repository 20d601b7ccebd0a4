"""Test helpers: a real OpenAI-compatible HTTP server on loopback, and a pytest fixture.

python -m langchain_irl.testing --pool answers.jsonl     # serve it until Ctrl-C
"""

from langchain_irl.testing.server import OpenAICompatibleServer

__all__ = ["OpenAICompatibleServer"]
