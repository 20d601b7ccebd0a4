"""The cross-encoder reward: (input, output) read as one sequence, trained, exported and served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from langchain_irl import RewardExampleSelector, RewardModel
from langchain_irl.cli.main import main
from langchain_irl.data.converters import caption_contest
from langchain_irl.data.formats import Example
from langchain_irl.data.jsonl import write_jsonl
from langchain_irl.reward_model.encoder import TextReader
from langchain_irl.train.config import FineTuneConfig, TrainConfig
from langchain_irl.train.encoder import default_encoder_dir
from langchain_irl.train.finetune import resolve_device
from langchain_irl.train.pipeline import train
from tests.conftest import CAPTIONS

CONTESTS = {526, 528, 530, 531, 533, 534}


@pytest.fixture(scope="module")
def data() -> tuple[list[Example], list[Example]]:
    return caption_contest(CAPTIONS, top=8, sample_chunks=["middle"], contests=CONTESTS)


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader.from_file(default_encoder_dir() / "tokenizer.json", max_tokens=24)


@pytest.fixture(scope="module")
def cross_model(
    data: tuple[list[Example], list[Example]], tmp_path_factory: pytest.TempPathFactory
) -> RewardModel:
    out = tmp_path_factory.mktemp("cross") / "model"
    config = TrainConfig(
        architecture="cross-encoder",
        max_tokens=64,
        quantize=False,
        validation_share=0.34,
        fine_tune=FineTuneConfig(steps=3, batch=4, samples_per_demo=2, layers=1),
        off_topic=1,
    )
    train(*data, out, config)  # raises if the exported graphs disagree with training
    return RewardModel.load(out)


def test_a_pair_shares_its_room_and_each_side_keeps_its_end(reader: TextReader) -> None:
    long_prompt = " ".join(f"w{i}" for i in range(60))
    (pair, read), (short_pair, short_read) = reader.pairs(
        long_prompt, ["the answer says this first and that last " * 5, "yes"], keep="end"
    )
    assert len(pair.ids) == 24 and len(short_pair.ids) == 24  # [CLS] prompt [SEP] answer [SEP]
    assert 0 < read < 21 and short_read == 1
    # type ids: 0 for [CLS] prompt [SEP], 1 for answer [SEP]
    answer = [t for t, kind in zip(pair.tokens, pair.type_ids, strict=True) if kind == 1]
    prompt = [t for t, kind in zip(pair.tokens, pair.type_ids, strict=True) if kind == 0]
    assert len(answer) == read + 1  # the candidate's tokens are those counted
    assert prompt[-2:] == ["##59", "[SEP]"]  # the prompt kept its end, the turn the reply answers
    assert answer[:3] == ["the", "answer", "says"]  # the candidate kept its start
    # A short answer leaves its room to the prompt: 21 tokens of room, 1 for the answer.
    assert short_pair.type_ids.count(0) == 2 + 20


def test_a_cross_encoder_trains_exports_and_reads_the_input(cross_model: RewardModel) -> None:
    card = cross_model.card
    assert card.head.kind == "cross-encoder" and cross_model.is_cross_encoder
    assert card.training_data["fine_tune"]["device"] == "cpu"
    assert "pairwise_accuracy" in card.metrics
    cartoon, other = "A cat chairs a board meeting.", "Two fish in a bowl argue about rent."
    candidates = ["Any other business?", "Meow.", "The rent is too damn high."]
    scores = cross_model.score(cartoon, candidates)
    # A score depends on (prompt, candidate, model) alone: alone, in another order, again.
    assert cross_model.score(cartoon, candidates[1:2])[0] == scores[1]
    np.testing.assert_array_equal(cross_model.score(cartoon, candidates[::-1]), scores[::-1])
    assert not np.array_equal(cross_model.score(other, candidates), scores)  # reads the input
    assert cross_model.interaction_weights is None
    with pytest.raises(TypeError, match="cross-encoder"):
        cross_model.score_embedded(np.zeros((1, 384)), np.zeros((1, 384)), np.zeros(1), [""])


def test_a_cross_encoder_explains_and_selects_examples(cross_model: RewardModel) -> None:
    explanation = cross_model.explain("A cat chairs a board meeting.", "Any other business?")
    assert len(explanation.neighbours) == 3
    neighbour = explanation.neighbours[0]
    assert neighbour.reward == pytest.approx(
        float(cross_model.score("A cat chairs a board meeting.", [neighbour.output])[0]), abs=1e-6
    )
    examples = [
        {"input": "A cat chairs a board meeting.", "output": "Any other business? Meow."},
        {"input": "A dog in a suit at a bank.", "output": "I'd like a loan for a bone."},
        {"input": "Two fish in a bowl.", "output": "The rent is too damn high."},
    ]
    selector = RewardExampleSelector.from_examples(examples, cross_model, k=2)
    picked = selector.select_examples({"input": "A cat at a meeting."})
    assert len(picked) == 2 and all(p in examples for p in picked)


def test_a_frozen_cross_encoder_trains_from_the_cli(
    data: tuple[list[Example], list[Example]], tmp_path: Path
) -> None:
    demos, samples = data
    write_jsonl(tmp_path / "demos.jsonl", [d.to_json() for d in demos])
    write_jsonl(tmp_path / "samples.jsonl", [s.to_json() for s in samples])
    files = ["--demos", str(tmp_path / "demos.jsonl"), "--samples", str(tmp_path / "samples.jsonl")]
    out = tmp_path / "frozen-cross"
    common = [*files, "--max-tokens", "48", "--validation-share", "0.34", "--no-quantize"]
    assert main(["train", *common, "--out", str(out), "--architecture", "cross"]) == 0
    model = RewardModel.load(out)
    assert model.card.head.kind == "cross-encoder" and "fine_tune" not in model.card.training_data
    refused = ["--out", str(tmp_path / "x"), "--architecture", "cross", "--off-topic", "2"]
    assert main(["train", *common, *refused]) == 2  # a frozen cross-encoder reads no off-topic


def test_cross_encoder_options_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="one window"):
        TrainConfig(architecture="cross-encoder", candidate_chunks=4)
    with pytest.raises(ValueError, match="off-topic"):
        TrainConfig(architecture="cross-encoder", off_topic=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="no CUDA device"):
        resolve_device("cuda")
