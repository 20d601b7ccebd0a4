"""Shared fixtures: real data from ../shared/data (the bundled copy when absent), real models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from langchain_irl import RewardModel

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = ROOT / "models" / "caption-humor"


def data_file(*parts: str) -> Path:
    shared = ROOT.parent / "shared" / "data" / Path(*parts)
    return shared if shared.exists() else ROOT / "data" / Path(*parts)


# Hypothesis times each example (200 ms) and its data generation by default: wall-clock checks a
# busy machine fails. Every property test here runs without them.
LOAD_PROOF = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("load-proof", LOAD_PROOF)
settings.load_profile("load-proof")
# For property tests that take fixtures: `@settings(WITH_FIXTURES, max_examples=...)`.
WITH_FIXTURES = settings(
    LOAD_PROOF,
    suppress_health_check=[*LOAD_PROOF.suppress_health_check, HealthCheck.function_scoped_fixture],
)

# The one warning tests expect and let pass: best-of-n's notice that the loopback server's random
# draws repeated a candidate (scored once). Any other warning still shows.
DUPLICATE_CANDIDATES = r"best-of-n: \d+ of \d+ candidates were identical"

CAPTIONS = data_file("caption_contest", "dev.jsonl")
HH_PAIRS = data_file("hh_rlhf_harmless", "dev.jsonl.gz")
ALPACA = data_file("alpaca_eval", "dev.jsonl.gz")


@pytest.fixture(scope="session")
def contests() -> list[dict]:
    return [json.loads(line) for line in CAPTIONS.open(encoding="utf-8")]


@pytest.fixture(scope="session")
def captions(contests: list[dict]) -> list[str]:
    return [caption["text"] for contest in contests[:3] for caption in contest["captions"]]


@pytest.fixture(scope="session")
def model() -> RewardModel:
    return RewardModel.load(BUNDLED_MODEL)


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled model folder, to damage in refusal tests."""
    target = tmp_path / "model"
    shutil.copytree(BUNDLED_MODEL, target)
    return target


@pytest.fixture(scope="session")
def caption_answers(contests: list[dict]) -> list[str]:
    return [caption["text"] for caption in contests[0]["captions"]]


@pytest.fixture(scope="session")
def alpaca_answers() -> dict[str, list[str]]:
    """The bundled held-out AlpacaEval instructions, each with its 51 non-reference answers."""
    from langchain_irl.data.converters import ALPACA_REFERENCE, read_alpaca_eval

    records = read_alpaca_eval(ROOT / "data" / "alpaca_eval" / "heldout.jsonl.gz")
    return {
        r["instruction"]: [text for g, (text, _) in r["outputs"].items() if g != ALPACA_REFERENCE]
        for r in records
    }
