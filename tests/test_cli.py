"""The command line, run as a user runs it."""

from __future__ import annotations

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
    plot = tmp_path / "curve.png"
    result = subprocess.run(
        [sys.executable, "-m", "langchain_irl.cli", "demo", "--plot", str(plot)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
    )
    assert result.returncode == 0, result.stderr
    for number in (641, 645, 648, 650, 654):
        assert f"contest {number}:" in result.stdout
    assert "the crowd of real contest entrants (not an LLM)" in result.stdout
    summary = re.search(r"best-of-16 picks average ([0-9.]+) vs ([0-9.]+)", result.stdout)
    assert summary is not None
    assert float(summary.group(1)) > float(summary.group(2))  # picks beat the average entry
    assert "few-shot: the 3 demonstrations" in result.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG"
