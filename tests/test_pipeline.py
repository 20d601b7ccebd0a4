"""Training end to end on real captions: the folder loads, its card holds runtime metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from langchain_irl import RewardModel
from langchain_irl.data.converters import caption_contest
from langchain_irl.train import pipeline
from langchain_irl.train.config import TrainConfig
from langchain_irl.train.objectives import OBJECTIVES
from langchain_irl.train.pipeline import train, validation_mask
from tests.conftest import CAPTIONS

SMALL = {510, 514, 516, 519, 521, 523}


@pytest.fixture(scope="module")
def small_data() -> tuple[list, list]:
    return caption_contest(CAPTIONS, top=10, sample_chunks=["middle"], contests=SMALL)


@pytest.fixture(scope="module")
def trained(small_data: tuple[list, list], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "model"
    config = TrainConfig(
        objective="feature-matching-whitened", validation_share=0.34, name="small", seed=1
    )
    train(*small_data, out, config)
    return out


def test_trained_folder_loads_with_metrics_and_calibration(trained: Path) -> None:
    model = RewardModel.load(trained)
    card = model.card
    assert card.name == "small" and card.objective == "feature-matching-whitened"
    assert {"auc", "pairwise_accuracy", "spearman_gold", "best_of_16_gap_closed"} <= set(
        card.metrics
    )
    assert card.training_data["inputs"] == 6 and card.training_data["validation_inputs"] == 2
    assert len(card.calibration.demo_scores) == 2 * 10
    assert len(card.calibration.sample_scores) == 2 * 150
    assert sorted(p.name for p in trained.iterdir()) == [
        "card.json",
        "demonstrations.json",
        "demonstrations.npy",
        "encoder.onnx",
        "head.onnx",
        *(["prefix_head.onnx"] if card.prefix_head else []),
        "tokenizer.json",
    ]
    prefix = (
        card.prefix_head.spearman
        if card.prefix_head
        else card.training_data["prefix_head_not_shipped"]
    )  # built by default; shipped if it beats the reward on held-out beginnings
    assert {"8", "reward@8"} <= prefix.keys()
    edits = card.training_data["edits"]  # on by default, named in the card
    assert edits["names"] == list(TrainConfig().edits) and edits["copies"] > 0
    assert edits["copies_of_samples"] > 0  # policy samples are edited too, by default


def test_card_calibration_is_what_the_runtime_scores(
    trained: Path, small_data: tuple[list, list]
) -> None:
    """The card's held-out demo scores are reproduced by scoring them with the loaded folder."""
    model = RewardModel.load(trained)
    demos, _ = small_data
    by_prompt: dict[str, list[str]] = {}
    for demo in demos:
        by_prompt.setdefault(demo.input, []).append(demo.output)
    scores = np.concatenate([model.score(p, outs) for p, outs in by_prompt.items()])
    for value in model.card.calibration.demo_scores:
        assert np.abs(scores - value).min() < 1e-3


@pytest.mark.parametrize(
    ("min_spearman", "shipped"),
    [(-1.0, "int8-dynamic-per-channel"), (1.01, "none")],
    ids=["any-ranking-kept", "no-ranking-kept"],
)
def test_quantization_is_shipped_only_when_it_keeps_the_ranking(
    min_spearman: float, shipped: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every agreement meets a bar of -1 and none reaches 1.01: whatever this data's agreement
    is, the first ships the int8 encoder and the second the fp32 one, and the file shipped is
    the one the card names."""
    data = caption_contest(CAPTIONS, top=5, sample_chunks=["middle"], contests={510, 514, 516})
    monkeypatch.setattr(pipeline, "QUANTIZATION_MIN_SPEARMAN", min_spearman)
    card = train(*data, tmp_path / "m", TrainConfig(max_tokens=32, validation_share=0.34))
    assert card.encoder.quantization == shipped
    encoder = onnx.load(tmp_path / "m" / "encoder.onnx")
    int8_weights = [w for w in encoder.graph.initializer if w.data_type == onnx.TensorProto.INT8]
    assert bool(int8_weights) == (shipped != "none")
    assert -1 <= card.metrics["int8_reward_spearman"] <= 1  # measured either way


def test_retraining_replaces_the_folder_atomically(
    trained: Path, small_data: tuple[list, list], tmp_path: Path
) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    train(*small_data, out, TrainConfig(quantize=False, validation_share=0.34, seed=1))
    assert not (out / "stale.txt").exists()
    assert RewardModel.load(out).card.encoder.quantization == "none"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_unknown_objective_and_empty_data(small_data: tuple[list, list], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Input should be 'maxent'"):
        train(*small_data, tmp_path / "m", TrainConfig(objective="magic"))
    with pytest.raises(ValueError, match="at least one demonstration"):
        train([], small_data[1], tmp_path / "m", TrainConfig())
    assert not (tmp_path / "m").exists()


def test_objectives_rank_demos_above_samples() -> None:
    rng = np.random.default_rng(0)
    direction = rng.normal(size=20)
    samples = rng.normal(size=(500, 20))
    demos = rng.normal(size=(100, 20)) + 0.5 * direction / np.linalg.norm(direction)
    for name, fit in OBJECTIVES.items():
        ((weight, bias),) = fit(demos, samples)
        sample_rewards = samples @ weight[:, 0] + bias[0]
        assert sample_rewards.mean() == pytest.approx(0, abs=1e-4), name
        assert sample_rewards.std() == pytest.approx(1, abs=1e-3), name
        assert (demos @ weight[:, 0] + bias[0]).mean() > 0.3, name


def test_validation_split_is_by_input() -> None:
    groups = np.repeat(np.arange(20), 7)
    mask = validation_mask(groups, 0.25, seed=3)
    held_out = set(groups[mask])
    assert len(held_out) == 5 and held_out.isdisjoint(groups[~mask])
    np.testing.assert_array_equal(mask, validation_mask(groups, 0.25, seed=3))
