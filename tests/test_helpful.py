"""The AlpacaEval converter, long-answer reading, the embedding cache and the judge metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from langchain_irl.cli.main import main
from langchain_irl.data.converters import (
    ALPACA_ADVERSARIAL,
    ALPACA_BASE_MODELS,
    ALPACA_REFERENCE,
    alpaca_eval,
    held_out,
    read_alpaca_eval,
)
from langchain_irl.data.formats import DataFileError, read_examples
from langchain_irl.evaluation.metrics import above_median_rate, partial_spearman, reward_metrics
from langchain_irl.reward_model.card import ENCODER_FILE, TOKENIZER_FILE
from langchain_irl.reward_model.encoder import OnnxEncoder
from tests.conftest import ALPACA, BUNDLED_MODEL, ROOT


def test_converter_roles_and_scores() -> None:
    records = read_alpaca_eval(ALPACA)
    first = records[0]["instruction"]
    split = alpaca_eval(ALPACA, instructions={first})
    reference_text, _ = records[0]["outputs"][ALPACA_REFERENCE]
    assert [d.output for d in split.demos] == [reference_text]
    assert len(split.samples) == len(ALPACA_BASE_MODELS)
    assert all(s.score is not None and 0 <= s.score <= 1 for s in split.samples)
    # judged: every non-reference answer with a judge score (NullModel has none)
    assert len(split.judged) == len(records[0]["outputs"]) - 2
    assert reference_text not in {j.output for j in split.judged}
    assert set(split.adversarial) == set(ALPACA_ADVERSARIAL)
    assert split.adversarial["NullModel"][0].score is None


def test_converter_refuses_confused_roles() -> None:
    with pytest.raises(ValueError, match="both demonstrators and base models"):
        alpaca_eval(ALPACA, demo_models=["alpaca-7b"], base_models=["alpaca-7b"])
    with pytest.raises(ValueError, match="adversarial"):
        alpaca_eval(ALPACA, base_models=["NullModel"])
    with pytest.raises(DataFileError, match="no answers of"):
        alpaca_eval(ALPACA, base_models=["no-such-model"])


def test_converter_bad_record_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "x", "outputs": [{"generator": "a"}]}\n')
    with pytest.raises(DataFileError, match=r"bad.jsonl:1: not an AlpacaEval record"):
        read_alpaca_eval(path)


def test_cli_holds_out_instructions(tmp_path: Path) -> None:
    assert main(["data", "alpaca-eval", str(ALPACA), "--out-dir", str(tmp_path)]) == 0
    train_inputs = {d.input for d in read_examples(tmp_path / "demos.jsonl")}
    heldout_inputs = {d.input for d in read_examples(tmp_path / "heldout" / "demos.jsonl")}
    assert heldout_inputs and train_inputs and not train_inputs & heldout_inputs
    assert len(heldout_inputs) == round(0.2 * len(train_inputs | heldout_inputs))
    judged = read_examples(tmp_path / "heldout" / "judged.jsonl")
    assert {j.input for j in judged} == heldout_inputs
    nulls = read_examples(tmp_path / "heldout" / "adversarial-NullModel.jsonl")
    assert len(nulls) == len(heldout_inputs)


def test_held_out_is_seeded_and_disjoint() -> None:
    inputs = [f"q{i}" for i in range(50)]
    assert held_out(inputs, 0.2, seed=1) == held_out(list(reversed(inputs)), 0.2, seed=1)
    assert len(held_out(inputs, 0.2, seed=1)) == 10
    assert held_out(inputs, 0.0, seed=1) == set()


def test_held_out_blocks_are_the_folds_of_a_cross_fit() -> None:
    inputs = [f"q{i}" for i in range(50)]
    blocks = [held_out(inputs, 0.2, seed=1, block=k) for k in range(5)]
    assert blocks[0] == held_out(inputs, 0.2, seed=1)
    assert set().union(*blocks) == set(inputs) and sum(map(len, blocks)) == len(inputs)
    with pytest.raises(ValueError, match="block 5"):
        held_out(inputs, 0.2, seed=1, block=5)


@pytest.fixture(scope="module")
def encoder() -> OnnxEncoder:
    return OnnxEncoder.from_files(
        BUNDLED_MODEL / ENCODER_FILE, BUNDLED_MODEL / TOKENIZER_FILE, max_tokens=16
    )


def test_chunks_read_past_the_first_window(encoder: OnnxEncoder) -> None:
    short = "A short answer."
    long = " ".join(f"word{i}" for i in range(200))
    one, counts_one = encoder.encode([short, long])
    four, counts_four = encoder.encode([short, long], chunks=4)
    np.testing.assert_array_equal(one[0], four[0])  # one window: unchanged
    assert counts_one[1] == 14 and counts_four[1] == 4 * 14
    assert not np.allclose(one[1], four[1])
    np.testing.assert_allclose(np.linalg.norm(four, axis=1), 1.0, rtol=1e-5)
    # the pooled embedding is the normalised mean of the windows' embeddings
    windows = encoder.reader._tokenizer.encode(long)
    parts = [encoder._embed_one(w) for w in [windows, *windows.overflowing][:4]]
    mean = np.mean(parts, axis=0)
    np.testing.assert_allclose(four[1], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="chunks"):
        encoder.encode([short], chunks=0)


def test_embedding_cache_matches_and_survives_a_torn_write(
    encoder: OnnxEncoder, tmp_path: Path
) -> None:
    from langchain_irl.train.embedding_cache import CachedEncoder

    files = [BUNDLED_MODEL / ENCODER_FILE, BUNDLED_MODEL / TOKENIZER_FILE]
    texts = ["first answer", "second answer", "first answer", "a third, longer answer " * 9]
    expected = encoder.encode(texts, chunks=2)
    cache = CachedEncoder(encoder, tmp_path, files)
    for result in (cache.encode(texts, chunks=2), cache.encode(texts, chunks=2)):
        np.testing.assert_array_equal(result[0], expected[0])
        np.testing.assert_array_equal(result[1], expected[1])
    assert len(cache) == 3
    # a different reading is a different entry, never a stale hit
    np.testing.assert_array_equal(cache.encode(texts[:1])[0], encoder.encode(texts[:1])[0])
    assert len(cache) == 4
    (vectors,) = tmp_path.glob("*.f32")
    with vectors.open("ab") as handle:
        handle.write(b"\x00" * 10)  # a crash mid-append
    reopened = CachedEncoder(encoder, tmp_path, files)
    assert len(reopened) == 4
    np.testing.assert_array_equal(reopened.encode(texts, chunks=2)[0], expected[0])
    assert len(reopened) == 4  # everything was a hit
    other = CachedEncoder(OnnxEncoder.from_files(*files, max_tokens=8), tmp_path, files)
    assert len(other) == 0  # another reading of the encoder: its own entries


def test_length_controls_and_adversarial_rate() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 20)
    lengths = rng.integers(10, 2000, size=len(groups))
    quality = rng.normal(size=len(groups))
    gold = np.log(lengths) + quality
    is_demo = np.zeros(len(groups), bool)
    is_demo[::20] = True
    knows_quality = reward_metrics(
        np.log(lengths) + quality, groups, is_demo, gold, lengths=lengths
    )
    only_length = reward_metrics(np.log(lengths), groups, is_demo, gold, lengths=lengths)
    assert knows_quality["partial_spearman_gold_given_length_ci_low"] > 0.5
    assert abs(only_length["partial_spearman_gold_given_length"]) < 0.05
    assert (
        only_length["best_of_16_gap_closed"] == only_length["best_of_16_gap_closed_longest"]
    )  # same draws, same picks
    assert knows_quality["best_of_16_gap_closed"] > knows_quality["best_of_16_gap_closed_longest"]
    assert partial_spearman(lengths, gold, lengths) == 0.0
    rewards = np.arange(6, dtype=float)
    assert above_median_rate(rewards, np.zeros(6, int), np.array([10.0, -1.0]), np.zeros(2)) == 0.5


def test_eval_reports_the_judge_metrics_and_records_them(tmp_path: Path) -> None:
    import gzip
    import shutil

    from langchain_irl import RewardModel
    from langchain_irl.reward_model.card import read_card

    small = tmp_path / "small.jsonl"
    with gzip.open(ROOT / "data" / "alpaca_eval" / "heldout.jsonl.gz", "rt") as source:
        small.write_text("".join(source.readlines()[:5]))
    data = tmp_path / "data"
    assert (
        main(["data", "alpaca-eval", str(small), "--out-dir", str(data), "--holdout-share", "0"])
        == 0
    )
    model = tmp_path / "helpful"
    shutil.copytree(ROOT / "models" / "helpful", model)
    args = ["eval", str(model), "--demos", str(data / "demos.jsonl")]
    args += ["--samples", str(data / "judged.jsonl"), "--out", str(tmp_path / "plots")]
    args += ["--adversarial", *map(str, sorted(data.glob("adversarial-*.jsonl")))]
    assert main([*args, "--record", "alpaca-5"]) == 0
    metrics = read_card(model).evaluations["alpaca-5"]
    assert {
        "spearman_gold",
        "best_of_16_gap_closed",
        "best_of_16_gap_closed_longest",
        "partial_spearman_gold_given_length_ci_low",
        "adversarial_NullModel",
        "adversarial_gpt4_gamed",
    } <= set(metrics)
    assert 0 <= metrics["adversarial_NullModel"] <= 1
    assert RewardModel.load(model).card.evaluations["alpaca-5"] == metrics  # still verifies
