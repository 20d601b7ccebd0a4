"""Every objective, MLP heads, fine-tuning (resumable, deterministic), pairs, eval and explain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from langchain_irl import RewardModel
from langchain_irl.cli.main import main
from langchain_irl.data.converters import caption_contest, hh_rlhf
from langchain_irl.data.formats import Example
from langchain_irl.data.jsonl import write_jsonl
from langchain_irl.evaluation.metrics import spearman
from langchain_irl.evaluation.report import evaluate
from langchain_irl.reward_model.encoder import TextReader
from langchain_irl.reward_model.features import TRAINED_FEATURES
from langchain_irl.train.config import FineTuneConfig, TrainConfig
from langchain_irl.train.encoder import load_encoder
from langchain_irl.train.finetune import BatchReader, fine_tune
from langchain_irl.train.head import head_features, head_forward
from langchain_irl.train.head_training import CandidateFeatures, train_head
from langchain_irl.train.losses import TORCH_OBJECTIVES, CandidateSets, objective_loss
from langchain_irl.train.pipeline import train
from langchain_irl.train.supervised import rating_pairs, supervised_head
from tests.conftest import CAPTIONS, HH_PAIRS

CONTESTS = {526, 528, 530, 531}


@pytest.fixture(scope="module")
def data() -> tuple[list[Example], list[Example]]:
    return caption_contest(CAPTIONS, top=8, sample_chunks=["middle"], contests=CONTESTS)


def _synthetic(seed: int = 0) -> tuple[CandidateFeatures, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(20), 10)
    is_demo = np.tile(np.arange(10) < 2, 20)
    prompts = rng.normal(size=(20, 3)).astype(np.float32)
    candidates = rng.normal(size=(200, 3)).astype(np.float32)
    candidates[is_demo, 0] += 1.5  # demonstrations differ in one direction
    features = np.zeros((200, 0), np.float32)
    data = CandidateFeatures.of(prompts, groups, candidates, features)
    phi = head_features(prompts[groups], candidates, features)
    return data, phi, is_demo


@pytest.mark.parametrize("objective", TORCH_OBJECTIVES)
@pytest.mark.parametrize("hidden", [(), (8,)])
def test_torch_objectives_learn_the_demo_direction(objective: str, hidden: tuple[int, ...]) -> None:
    data, phi, is_demo = _synthetic()
    layers = train_head(data, is_demo, objective, hidden=hidden, max_epochs=200)
    rewards = head_forward(layers, phi)
    assert rewards[is_demo].mean() > rewards[~is_demo].mean() + 1.0
    assert rewards[~is_demo].mean() == pytest.approx(0, abs=1e-3)  # centred on samples
    assert rewards[~is_demo].std() == pytest.approx(1, abs=1e-2)


def test_losses_prefer_demos() -> None:
    good = torch.tensor([[3.0, 0.0, 0.0]])
    bad = torch.tensor([[0.0, 3.0, 0.0]])
    for objective in TORCH_OBJECTIVES:
        assert objective_loss(objective, good) < objective_loss(objective, bad)


def test_candidate_sets_pair_demos_with_their_own_samples() -> None:
    groups = np.array([0, 0, 0, 1, 1, 2])
    is_demo = np.array([True, False, False, True, False, True])  # input 2 has no samples
    sets = CandidateSets.from_groups(groups, is_demo)
    assert list(sets.demos) == [0, 3]
    matrix = sets.draw(3, np.random.default_rng(0))
    assert set(matrix[0, 1:]) <= {1, 2} and set(matrix[1, 1:]) == {4}
    off = sets.draw(1, np.random.default_rng(0), off_topic=5)
    assert off.shape == (2, 7)
    assert set(off[0, 2:]) == {3} and set(off[1, 2:]) == {0}  # the other input's demonstration


def test_off_topic_negatives_teach_the_reward_to_read_the_input() -> None:
    """Every output is on its input's topic; demonstrations add a style. The same-input contrast
    only shows the style; demonstrations of other inputs, scored under this one, show that the
    topic matters too."""
    rng = np.random.default_rng(0)
    inputs, per_input, dim = 30, 6, 8
    prompts = rng.normal(size=(inputs, dim)).astype(np.float32)
    groups = np.repeat(np.arange(inputs), per_input)
    is_demo = np.tile(np.arange(per_input) < 2, inputs)
    candidates = rng.normal(size=(len(groups), dim)).astype(np.float32) + prompts[groups]
    candidates[is_demo, 0] += 2.0  # the demonstrations' style, whatever the input
    features = np.zeros((len(groups), 0), np.float32)
    data = CandidateFeatures.of(prompts, groups, candidates, features)
    demos = np.flatnonzero(is_demo)

    def matching(off_topic: int) -> float:
        """Share of demonstrations scored higher under their own input than under another."""
        layers = train_head(data, is_demo, "maxent", off_topic=off_topic, max_epochs=150)

        def under(inputs_of_demos: np.ndarray) -> np.ndarray:
            phi = head_features(prompts[inputs_of_demos], candidates[demos], features[demos])
            return head_forward(layers, phi)

        return float((under(groups[demos]) > under((groups[demos] + 1) % inputs)).mean())

    assert matching(off_topic=0) < 0.6  # style alone: the input is ignored
    assert matching(off_topic=4) > 0.85


def test_maxent_mlp_pipeline(data: tuple[list, list], tmp_path: Path) -> None:
    config = TrainConfig(objective="maxent", hidden=(16,), quantize=False, validation_share=0.25)
    card = train(*data, tmp_path / "mlp", config)
    model = RewardModel.load(tmp_path / "mlp")
    assert card.head.hidden == (16,) and model.interaction_weights is None
    assert card.objective == "maxent"
    # the crowd's ratings give the supervised ceiling beside the IRL figures
    assert {"supervised_pairwise_accuracy", "supervised_spearman_gold"} <= card.metrics.keys()


def test_supervised_head_learns_the_gold_scores() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 20)
    phi = rng.normal(size=(600, 4)).astype(np.float32)
    gold = phi[:, 2] + 0.3 * rng.normal(size=600)
    gold[::7] = np.nan  # records without a score take no part in a pair
    pairs = rating_pairs(groups, gold, 500, rng)
    assert len(pairs) == 500
    assert (groups[pairs[:, 0]] == groups[pairs[:, 1]]).all()
    assert (gold[pairs[:, 0]] > gold[pairs[:, 1]]).all()
    layers = supervised_head(phi, groups, gold, pairs=2000)
    assert layers is not None
    known = ~np.isnan(gold)
    assert spearman(head_forward(layers, phi)[known], gold[known]) > 0.9
    assert supervised_head(phi, groups, np.full(600, np.nan)) is None  # no gold, no ceiling


def test_closed_form_rejects_hidden_layers(data: tuple[list, list], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="closed-form linear reward"):
        train(*data, tmp_path / "m", TrainConfig(objective="feature-matching", hidden=(4,)))


def test_fine_tune_is_deterministic_and_resumes(data: tuple[list, list], tmp_path: Path) -> None:
    demos, samples = data
    records = [*demos, *samples]
    prompts = sorted({r.input for r in records})
    groups = np.array([prompts.index(r.input) for r in records])
    is_demo = np.arange(len(records)) < len(demos)
    texts = [r.output for r in records]
    width = 2 * 384 + len(TRAINED_FEATURES)  # prompt and candidate embeddings, the features
    head = [(np.zeros((width, 1), np.float32), np.zeros(1, np.float32))]

    def run(steps: int, checkpoints: Path | None) -> list:
        encoder, folder = load_encoder()
        reader = TextReader.from_file(folder / "tokenizer.json", max_tokens=32)
        config = FineTuneConfig(
            steps=steps, batch=4, layers=1, checkpoint_every=1, checkpoint_dir=checkpoints
        )
        batches = BatchReader(reader, prompts, texts, groups)
        layers, report = fine_tune(encoder, batches, is_demo, head, "maxent", config, seed=3)
        return [layers, report, encoder]

    straight = run(3, None)
    run(2, tmp_path / "ckpt")  # "killed" after two steps
    resumed = run(3, tmp_path / "ckpt")
    assert resumed[1].steps == 3
    for (w1, b1), (w2, b2) in zip(straight[0], resumed[0], strict=True):
        np.testing.assert_array_equal(w1, w2)  # bit for bit: a resumed rebuild is the same
        np.testing.assert_array_equal(b1, b2)
    assert not np.allclose(straight[0][0][0], 0)  # the head moved
    assert straight[1].pairs_per_second > 0


def test_fine_tuned_pipeline_exports_what_it_trained(
    data: tuple[list, list], tmp_path: Path
) -> None:
    config = TrainConfig(
        objective="bt",
        name="ft",
        quantize=False,
        validation_share=0.25,
        fine_tune=FineTuneConfig(steps=2, batch=4, layers=2),
    )
    card = train(*data, tmp_path / "ft", config)  # raises if the export disagrees with training
    assert card.training_data["fine_tune"]["steps"] == 2
    assert RewardModel.load(tmp_path / "ft").card.objective == "bt"
    train(*data, tmp_path / "rebuilt", config)
    for file in sorted((tmp_path / "ft").iterdir()):  # the rebuild is byte-reproducible
        assert file.read_bytes() == (tmp_path / "rebuilt" / file.name).read_bytes(), file.name


def test_pairs_eval_and_explain(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    pairs = hh_rlhf(HH_PAIRS)[:60]
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, (pair.to_json() for pair in pairs))
    out = tmp_path / "hh"
    code = main(
        [
            "train",
            "--pairs",
            str(path),
            "--out",
            str(out),
            "--prompt-format",
            "transcript",
            "--max-tokens",
            "64",
            "--no-quantize",
            "--validation-share",
            "0.3",
        ]
    )
    assert code == 0
    model = RewardModel.load(out)
    assert model.card.objective == "bt" and model.card.prompt_format == "transcript"

    demos = [Example(p.input, p.chosen) for p in pairs]
    samples = [Example(p.input, p.rejected) for p in pairs]
    report = evaluate(model, demos, samples, plots_dir=tmp_path / "plots")
    assert {"auc", "pairwise_accuracy"} <= set(report.metrics)
    assert [p.name for p in report.plots] == ["reward_histogram.png"]  # no gold: no curve
    assert (tmp_path / "plots" / "reward_histogram.png").read_bytes()[:4] == b"\x89PNG"
    shares = [demo.beaten_by for demo in report.suspicious]
    assert shares == sorted(shares, reverse=True) and all(s > 0.5 for s in shares)

    explanation = model.explain(pairs[0].input, pairs[0].chosen, k=3)
    assert len(explanation.neighbours) == 3
    similarities = [n.similarity for n in explanation.neighbours]
    assert similarities == sorted(similarities, reverse=True)
    assert explanation.score == pytest.approx(model.score(pairs[0].input, [pairs[0].chosen])[0])
    assert 0 <= explanation.percentile <= 100

    assert main(["eval", str(out), "--pairs", str(path), "--out", str(tmp_path / "p2")]) == 0
    printed = capsys.readouterr().out
    assert "pairwise_accuracy" in printed and "below most of their own policy samples" in printed
    assert main(["score", str(out), "--prompt", pairs[0].input, "--explain", "Sure."]) == 0
    assert "nearest demonstrations" in capsys.readouterr().out


def test_eval_with_gold_draws_the_best_of_n_curve(
    data: tuple[list, list], model: RewardModel, tmp_path: Path
) -> None:
    report = evaluate(model, *data, plots_dir=tmp_path)
    assert report.curve is not None and report.curve["n"][0] == 1
    assert "best_of_16_gap_closed" in report.metrics and "spearman_gold" in report.metrics
    assert sorted(p.name for p in report.plots) == ["best_of_n.png", "reward_histogram.png"]
    curve = report.curve
    for oracle, picked, random_pick in zip(
        curve["oracle"], curve["reward"], curve["random"], strict=True
    ):
        assert oracle >= picked and oracle >= random_pick  # nothing beats the best candidate
    assert curve["oracle"] == sorted(curve["oracle"])  # more candidates: a better best
