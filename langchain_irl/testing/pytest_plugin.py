"""pytest fixtures for testing chains that use langchain-irl, with no API key.

In your `conftest.py`: `pytest_plugins = ["langchain_irl.testing.pytest_plugin"]`, then

    def test_chain(openai_server):
        llm = ChatOpenAI(base_url=openai_server.base_url, api_key="unused", model="loopback")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from langchain_irl.testing.server import OpenAICompatibleServer


@pytest.fixture
def openai_server_factory() -> Iterator[Callable[..., OpenAICompatibleServer]]:
    """Start servers with any `OpenAICompatibleServer` arguments; all stop after the test."""
    started: list[OpenAICompatibleServer] = []

    def start(*args: Any, **kwargs: Any) -> OpenAICompatibleServer:
        server = OpenAICompatibleServer(*args, **kwargs).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture
def openai_server(
    openai_server_factory: Callable[..., OpenAICompatibleServer],
) -> OpenAICompatibleServer:
    """A loopback OpenAI-compatible server with a default answer."""
    return openai_server_factory()
