"""The command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from langchain_irl.cli.main import main
from tests.conftest import BUNDLED_MODEL, CAPTIONS, HH_PAIRS, ROOT


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "langchain_irl.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("data", "train", "score", "demo"):
        assert command in result.stdout


def test_data_commands(tmp_path: Path) -> None:
    assert main(["data", "caption-contest", str(CAPTIONS), "--out-dir", str(tmp_path)]) == 0
    assert sum(1 for _ in (tmp_path / "demos.jsonl").open()) == 50 * 30
    two = ["--contests", "641", "645", "--sample-chunks", "middle", "--out-dir", str(tmp_path)]
    assert main(["data", "caption-contest", str(CAPTIONS), *two]) == 0
    assert sum(1 for _ in (tmp_path / "demos.jsonl").open()) == 2 * 30
    assert main(["data", "hh-rlhf", str(HH_PAIRS), "--out", str(tmp_path / "hh.jsonl")]) == 0
    assert sum(1 for _ in (tmp_path / "hh.jsonl").open()) == 1384


def test_score_prints_ranked_candidates(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["score", str(BUNDLED_MODEL), "--prompt", "A cat at a desk.", "Meow.", "Hi."]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and " p" in lines[0]
    scores = [float(line.split()[0]) for line in lines]
    assert scores == sorted(scores, reverse=True)


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "demos.jsonl").write_text('{"input": "a"}\n')
    code = main(["train", "--demos", str(tmp_path / "demos.jsonl"), "--samples", "x", "--out", "y"])
    assert code == 2
    assert "demos.jsonl:1: missing key 'output'" in capsys.readouterr().err
    assert main(["score", str(tmp_path), "--prompt", "p", "c"]) == 2
    assert "card.json: missing" in capsys.readouterr().err


def test_demo_runs_offline_and_reports_human_ratings(tmp_path: Path) -> None:
    """Run from any folder, it writes nothing there (its plot goes to the user's cache), and the
    pairwise accuracy it prints is the README's, labelled with the contests it was measured on."""
    cache = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, "-m", "langchain_irl.cli", "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        | {"XDG_CACHE_HOME": str(cache)},
    )
    assert result.returncode == 0, result.stderr
    for number in (641, 645, 648, 650, 654):
        assert f"contest {number}:" in result.stdout
    assert "the crowd of real contest entrants (not an LLM)" in result.stdout
    summary = re.search(r"best-of-16 picks average ([0-9.]+) vs ([0-9.]+)", result.stdout)
    assert summary is not None
    assert float(summary.group(1)) > float(summary.group(2))  # picks beat the average entry
    assert "few-shot: the 3 demonstrations" in result.stdout
    plot = cache / "langchain-irl" / "demo" / "best_of_n_demo.png"
    assert plot.read_bytes()[:4] == b"\x89PNG" and str(plot) in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing in the folder
    pairwise = re.search(r"pairwise accuracy ([0-9.]+) on 5 demo contests 641 645", result.stdout)
    assert pairwise is not None, result.stdout
    readme = (ROOT / "README.md").read_text()
    assert f"pairwise accuracy {pairwise.group(1)} on these five contests" in readme


def test_optimize_takes_a_plain_text_instruction(
    tmp_path: Path, caption_answers: list[str]
) -> None:
    """--system: the baseline's system message, braces and all; each input's 'input' follows."""
    from langchain_irl.optimize import load_prompt
    from langchain_irl.testing import OpenAICompatibleServer

    rows = [json.dumps({"input": f"A cat, number {i}."}) + "\n" for i in range(8)]
    (tmp_path / "inputs.jsonl").write_text("".join(rows))
    instruction = "Write a funny caption (no {braces} are variables here)."
    args = ["--reward-model", "caption-humor", "--system", instruction, "--model", "loopback"]
    args += ["--inputs", "inputs.jsonl", "--max-calls", "30", "--out", "optimized.json"]
    with OpenAICompatibleServer(answers=caption_answers[:20]) as server:
        url = server.base_url
        result = subprocess.run(
            [sys.executable, "-m", "langchain_irl.cli", "optimize", *args, "--base-url", url],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        asked = [request["messages"] for request in server.requests]
    system = {"role": "system", "content": instruction}
    assert [system, {"role": "user", "content": "A cat, number 0."}] in asked
    assert load_prompt(tmp_path / "optimized.json").input_variables == ["input"]
