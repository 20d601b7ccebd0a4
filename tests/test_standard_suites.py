"""langchain-tests' standard suites for BestOfN, the inner model a real ChatOpenAI on loopback."""

from __future__ import annotations

import atexit
from typing import Any

from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_irl import BestOfN, RewardModel
from langchain_irl.testing.server import OpenAICompatibleServer
from tests.conftest import BUNDLED_MODEL

ANSWERS = [
    "Hello! How can I help you today?",
    "Hi there! What can I do for you?",
    "Good day! I am happy to help with anything you need.",
]

# The suites read parameters from properties, not fixtures: one server for the module.
SERVER = OpenAICompatibleServer(answers=ANSWERS).__enter__()
atexit.register(SERVER.__exit__)
REWARD_MODEL = RewardModel.load(BUNDLED_MODEL)


def _params() -> dict[str, Any]:
    llm = ChatOpenAI(base_url=SERVER.base_url, api_key="unused", model="loopback", max_retries=0)
    return {"llm": llm, "reward_model": REWARD_MODEL, "n": 3}


class _BestOfNParams:
    """What both suites need to know about BestOfN."""

    @property
    def chat_model_class(self) -> type[BestOfN]:
        return BestOfN

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _params()

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True


class TestBestOfNUnit(_BestOfNParams, ChatModelUnitTests):
    pass


class TestBestOfNIntegration(_BestOfNParams, ChatModelIntegrationTests):
    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True
