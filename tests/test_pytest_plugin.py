"""The pytest plugin's fixtures, used as the README says: a project's conftest names the plugin,
its tests point ChatOpenAI at the loopback server."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]
pytest.importorskip("langchain_openai", reason="needs langchain-openai (the cli extra)")

CONFTEST = 'pytest_plugins = ["langchain_irl.testing.pytest_plugin"]\n'

USER_TESTS = """
import socket

import openai
import pytest
from langchain_openai import ChatOpenAI

STARTED = []


def chat(server, **kwargs):
    return ChatOpenAI(base_url=server.base_url, api_key="unused", model="loopback", **kwargs)


def test_a_chain_answers_from_the_loopback_server(openai_server):
    assert chat(openai_server).invoke("Hi").content == "Hello! How can I help you today?"
    assert openai_server.request_count == 1


def test_the_factory_passes_its_arguments(openai_server_factory):
    punster = openai_server_factory(answers=["A pun."])
    refusing = openai_server_factory(failure_rate=1.0, faults=["400"])
    STARTED.extend([punster, refusing])
    assert chat(punster).invoke("Hi").content == "A pun."
    with pytest.raises(openai.BadRequestError):
        chat(refusing, max_retries=0).invoke("Hi")
    assert refusing.faults_by_kind["400"] == 1


def test_the_servers_stop_after_their_test():
    assert len(STARTED) == 2
    for server in STARTED:
        port = int(server.base_url.split(":")[-1].split("/")[0])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
"""


def test_the_fixtures_serve_a_users_chain_and_stop_after_each_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user_chain=USER_TESTS)
    # In file order (the last test checks the servers the one before started); no asyncio: the
    # user's tests here are synchronous.
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:asyncio")
    result.assert_outcomes(passed=3)
