"""The command line, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from langchain_irl.cli import main
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


def test_demo_runs_offline_and_reports_human_ratings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "langchain_irl.cli", "demo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for number in (641, 645, 648, 650, 654):
        assert f"contest {number}:" in result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("over 5 unseen cartoons: reward's pick")
