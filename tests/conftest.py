"""Shared fixtures: real data from ../shared/data (the bundled copy when absent), real models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from langchain_irl import RewardModel

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = ROOT / "models" / "caption-humor"


def data_file(*parts: str) -> Path:
    shared = ROOT.parent / "shared" / "data" / Path(*parts)
    return shared if shared.exists() else ROOT / "data" / Path(*parts)


CAPTIONS = data_file("caption_contest", "dev.jsonl")
HH_PAIRS = data_file("hh_rlhf_harmless", "dev.jsonl.gz")


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
def fp32_model(tmp_path_factory: pytest.TempPathFactory) -> RewardModel:
    """A small fp32 reward model trained here on six contests: its scores do not depend on which
    other texts share a batch (int8 dynamic quantisation's do, slightly), so tests can compare
    rewards exactly."""
    from langchain_irl.data.converters import caption_contest
    from langchain_irl.train.config import TrainConfig
    from langchain_irl.train.pipeline import train

    demos, samples = caption_contest(
        CAPTIONS, top=10, sample_chunks=["middle"], contests={510, 514, 516, 519, 521, 523}
    )
    out = tmp_path_factory.mktemp("fp32") / "captions-fp32"
    config = TrainConfig(
        objective="feature-matching-whitened", quantize=False, validation_share=0.34, seed=1
    )
    train(demos, samples, out, config)
    return RewardModel.load(out)


@pytest.fixture(scope="session")
def caption_answers(contests: list[dict]) -> list[str]:
    return [caption["text"] for caption in contests[0]["captions"]]
