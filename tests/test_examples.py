"""Every script in examples/ runs, with small sizes; the OpenAI ones against the loopback server
(the llama.cpp one in test_llama_cpp.py, where llama-cpp-python is installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from langchain_irl.testing.server import OpenAICompatibleServer
from tests.conftest import ROOT


def run(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, f"examples/{script}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_quickstart() -> None:
    assert "-> " in run("quickstart.py") and "reward" in run("quickstart.py")


def test_few_shot() -> None:
    output = run("few_shot.py", "--k", "2")
    assert output.count("    ai: ") == 2 and output.rstrip().endswith(
        "A cat chairs a board meeting."
    )


def test_openai_endpoint(caption_answers: list[str]) -> None:
    with OpenAICompatibleServer(answers=caption_answers) as server:
        output = run(
            "openai_endpoint.py",
            "--model",
            "loopback",
            "--n",
            "4",
            env={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "unused"},
        )
        assert len(server.requests) == 1 and server.requests[0]["n"] == 4
    assert "best of 4 in 1 request(s)" in output


def test_train_your_own(tmp_path: Path) -> None:
    output = run("train_your_own.py", "--out", str(tmp_path / "model"), "--contests", "4")
    assert "pairwise_accuracy" in output and "nearest demonstrations" in output


def test_hh_harmless(tmp_path: Path) -> None:
    output = run(
        "hh_harmless.py", "--out", str(tmp_path / "hh"), "--pairs", "160", "--held-out", "20"
    )
    assert "picked the crowdworkers' choice in" in output


def test_helpful_best_of_n(alpaca_answers: dict[str, list[str]]) -> None:
    """The helpful chain against the loopback server serving real AlpacaEval answers per prompt."""
    with OpenAICompatibleServer(answers=["unrelated"], answers_by_prompt=alpaca_answers) as server:
        output = run(
            "helpful_best_of_n.py",
            "--n",
            "8",
            "--instructions",
            "3",
            env={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "unused"},
        )
        asked = {request["messages"][-1]["content"] for request in server.requests}
        assert asked <= set(alpaca_answers) and len(asked) == 3
        assert all(request["n"] == 8 for request in server.requests)
    assert "mean over 3 instructions" in output
