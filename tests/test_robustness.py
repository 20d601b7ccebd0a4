"""A reward that resists being gamed: edit negatives, ensemble heads, conservative selection."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from langchain_core.language_models import FakeListChatModel
from langchain_openai import ChatOpenAI

from langchain_irl import BestOfN, RewardModel
from langchain_irl.data.converters import caption_contest
from langchain_irl.data.edits import EDITS, check_edits, edited_copies, first_words
from langchain_irl.engine.options import SpeculativeRejection
from langchain_irl.engine.selection import choose
from langchain_irl.reward_model.card import ModelCard
from langchain_irl.reward_model.features import TRAINED_FEATURES, candidate_features
from langchain_irl.testing.server import OpenAICompatibleServer
from langchain_irl.train.config import TrainConfig
from langchain_irl.train.head import build_head, head_features, head_forward
from langchain_irl.train.head_training import CandidateFeatures, train_head
from langchain_irl.train.losses import CandidateSets, objective_loss, pair_loss
from langchain_irl.train.pipeline import train
from tests.conftest import CAPTIONS, DUPLICATE_CANDIDATES

TEXT = "Well, I told you the cat would chair this meeting, didn't I?"


@pytest.mark.parametrize("name", list(EDITS))
def test_each_edit_changes_a_sentence_and_is_seeded(name: str) -> None:
    edit = EDITS[name]
    edited = edit(TEXT, np.random.default_rng(0))
    assert edited != TEXT
    assert edited == edit(TEXT, np.random.default_rng(0))


def test_edited_copies_skip_what_an_edit_leaves_unchanged() -> None:
    copies = edited_copies(["a b c d.", "word"], ["punctuation removed", "words shuffled"], seed=0)
    assert (0, "punctuation removed", "a b c d") in copies
    assert all(source == 0 for source, _, _ in copies)  # one word: nothing to strip or shuffle
    with pytest.raises(ValueError, match="unknown edit"):
        check_edits(["reversed"])


def test_candidate_sets_append_each_demos_own_copies() -> None:
    groups = np.array([0, 0, 0, 1, 1, 0, 0, 1])
    is_demo = np.array([True, False, False, True, False, False, False, False])
    source = np.array([-1, -1, -1, -1, -1, 0, 0, 3])  # 5, 6 copy demo 0; 7 copies demo 3
    sets = CandidateSets.from_groups(groups, is_demo, source)
    assert [list(s) for s in sets.samples] == [[1, 2], [4]]  # copies are not policy samples
    matrix = sets.draw(1, np.random.default_rng(0), edits=True)
    assert matrix.shape == (2, 4)
    assert list(matrix[0, 2:]) == [5, 6]
    assert list(matrix[1, 2:]) == [7, 3]  # padded with the demo itself: a tie, no gradient


def test_candidate_sets_pair_policy_samples_with_their_copies() -> None:
    groups = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    is_demo = np.array([True, False, False, True, False, False, False, False])
    source = np.array([-1, -1, -1, -1, -1, 1, 4, 0])  # 5 copies sample 1, 6 sample 4, 7 demo 0
    sets = CandidateSets.from_groups(groups, is_demo, source)
    assert [list(s) for s in sets.samples] == [[1, 2], [4]]
    assert sets.pairs.tolist() == [[1, 5], [4, 6]]
    assert list(sets.edits[:, 0]) == [7, 3]  # a demo's copy stays in its row
    assert len(sets.draw_pairs(1, np.random.default_rng(0))) == 1
    held_out = CandidateSets.from_groups(np.where(groups == 1, -1, groups), is_demo, source)
    assert held_out.pairs.tolist() == [[1, 5]]  # a left-out input's pairs are left out too


def test_the_edit_term_ranks_demonstrations_above_their_copies() -> None:
    rewards = torch.tensor([[1.0, 0.0, 2.0]])  # demo, sample, an edited copy scored higher
    plain = objective_loss("maxent", rewards[:, :2])
    assert objective_loss("maxent", rewards, edits=1) > plain
    assert objective_loss("maxent", rewards, edits=1, edit_weight=0.0) == plain
    assert objective_loss("maxent", torch.tensor([[1.0, 0.0, -3.0]]), edits=1) < plain + 0.05
    pairs = torch.tensor([[0.0, 2.0], [0.0, -3.0]])  # (sample, copy): one copy scored higher
    assert pair_loss(pairs[:1], 1.0) > pair_loss(pairs[1:], 1.0)
    assert pair_loss(pairs, 0.0) == 0


@pytest.mark.parametrize("copied", ["demonstrations", "policy samples"])
def test_edit_negatives_close_a_hack_the_demonstrations_teach(copied: str) -> None:
    """Demonstrations lean a little on a spurious direction (dimension 1) besides what makes them
    good (dimension 0): a reward trained on them alone pays for the spurious direction, so an
    edit that inflates it (the copy) raises the reward. Ranking each original above its
    copy teaches the reward not to pay for it, whether the copies are of demonstrations or of
    policy samples (`CandidateSets.pairs`)."""
    rng = np.random.default_rng(0)
    inputs, per_input, dim = 30, 8, 6
    groups = np.repeat(np.arange(inputs), per_input)
    is_demo = np.tile(np.arange(per_input) < 2, inputs)
    candidates = rng.normal(size=(len(groups), dim)).astype(np.float32)
    candidates[is_demo, 0] += 1.5
    candidates[is_demo, 1] += 0.8
    originals = np.flatnonzero(is_demo if copied == "demonstrations" else ~is_demo)
    copies = candidates[originals].copy()
    copies[:, 1] += 2.0  # the edit: more of the spurious direction, nothing of the good one
    all_candidates = np.concatenate([candidates, copies])
    all_groups = np.concatenate([groups, groups[originals]])
    source = np.concatenate([np.full(len(groups), -1), originals])
    is_demo_all = np.concatenate([is_demo, np.zeros(len(originals), bool)])
    prompts = np.zeros((inputs, dim), np.float32)
    features = np.zeros((len(all_groups), 0), np.float32)
    phi = head_features(prompts[all_groups], all_candidates, features)

    def raised(with_edits: bool) -> float:
        rows = len(all_groups) if with_edits else len(groups)  # without: the copies are unseen
        data = CandidateFeatures.of(
            prompts, all_groups[:rows], all_candidates[:rows], features[:rows]
        )
        layers = train_head(
            data,
            is_demo_all[:rows],
            "maxent",
            source=source[:rows] if with_edits else None,
            max_epochs=200,
        )
        rewards = head_forward(layers, phi)
        return float((rewards[len(groups) :] > rewards[originals]).mean())

    assert raised(with_edits=False) > 0.9
    assert raised(with_edits=True) < 0.1


def test_candidate_features_count_words_and_distinct_words() -> None:
    texts, tokens = ["A b c d, a b c d!", "one"], np.array([12, 1])  # tokens read, as counted
    features = candidate_features(texts, tokens, ["log_distinct_words", "log_tokens", "log_words"])
    expected = [[np.log1p(4), np.log1p(12), np.log1p(8)], [np.log1p(1), np.log1p(1), np.log1p(1)]]
    np.testing.assert_allclose(features, expected, rtol=1e-6)
    shuffled = EDITS["words shuffled"](TEXT, np.random.default_rng(0))
    counts = ["log_words", "log_distinct_words"]
    np.testing.assert_array_equal(  # no count can tell a shuffle
        candidate_features([TEXT], tokens[:1], counts),
        candidate_features([shuffled], tokens[:1], counts),
    )
    endings = ["Done.", "a list:", "it ends (here)", "“Quoted.”  ", "cut mid", "```", ""]
    assert candidate_features(endings, np.ones(7), ["ends_finished"]).ravel().tolist() == [
        1,
        0,
        1,
        1,
        0,
        1,
        0,
    ]
    cut = EDITS["truncated to its first half"](TEXT, np.random.default_rng(0))
    assert candidate_features([TEXT, cut], tokens, ["ends_finished"]).ravel().tolist() == [1, 0]
    assert candidate_features(texts, tokens, []).shape == (2, 0)
    with pytest.raises(ValueError, match=r"unknown head features \['length'\]"):
        candidate_features(texts, tokens, ["length"])
    with pytest.raises(ValueError, match="2 texts but 1 token counts"):
        candidate_features(texts, tokens[:1], ["log_tokens"])


def _layers(rng: np.random.Generator, n_in: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (rng.normal(size=(n_in, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)),
        (rng.normal(size=(4, 1)).astype(np.float32), rng.normal(size=1).astype(np.float32)),
    ]


def test_an_ensemble_head_gives_the_mean_and_each_member() -> None:
    rng = np.random.default_rng(0)
    dim, n_features = 4, 1
    members = [_layers(rng, 2 * dim + n_features) for _ in range(3)]
    session = ort.InferenceSession(build_head(members, dim, n_features).SerializeToString())
    prompt = rng.normal(size=(1, dim)).astype(np.float32)
    candidates = rng.normal(size=(5, dim)).astype(np.float32)
    features = rng.normal(size=(5, n_features)).astype(np.float32)
    reward, each = session.run(
        None,
        {
            "prompt_embedding": prompt,
            "candidate_embedding": candidates,
            "candidate_features": features,
        },
    )
    phi = head_features(prompt, candidates, features)
    expected = np.stack([head_forward(layers, phi) for layers in members], axis=1)
    np.testing.assert_allclose(each, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reward, expected.mean(axis=1), rtol=1e-5, atol=1e-5)


def test_conservative_selection_trusts_what_the_members_agree_on() -> None:
    rewards = np.array([1.0, 0.9, 0.2])
    spread = np.array([[3.0, -1.0], [1.0, 0.8], [0.2, 0.2]]).std(axis=1)  # means 1.0, 0.9, 0.2
    embeddings = np.eye(3)
    assert choose(rewards, embeddings, "argmax") == 0
    assert choose(rewards, embeddings, "conservative", spread=spread) == 1
    assert choose(rewards, embeddings, "conservative", spread=spread, risk_weight=0.0) == 0
    assert choose(rewards, embeddings, "conservative") == 0  # one head: no spread, argmax


# -- a trained folder: ensemble members, prefix head, edits in the card ------------------------

SMALL = {510, 514, 516, 519, 521, 523}


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> RewardModel:
    demos, samples = caption_contest(CAPTIONS, top=10, sample_chunks=["middle"], contests=SMALL)
    out = tmp_path_factory.mktemp("ensemble") / "model"
    config = TrainConfig(
        hidden=(8,),
        members=3,
        prefix_head="always",
        prefix_tokens=(4, 8),
        quantize=False,
        validation_share=0.34,
    )
    train(demos, samples, out, config)
    return RewardModel.load(out)


@pytest.fixture(scope="module")
def cartoon(contests: list[dict]) -> tuple[str, list[str]]:
    contest = next(c for c in contests if c["contest"] in SMALL)
    return contest["description"], [c["text"] for c in contest["captions"][:12]]


def test_counting_distinct_words_stops_paying_for_repetition(
    contests: list[dict], tmp_path: Path
) -> None:
    """A reward that reads an output as the mean of its windows reads it written twice much as
    itself, only longer (`helpful` raised 76% of repeated answers). Here captions are read in
    windows of 8 tokens. With words and distinct words counted (the default features), a caption
    written twice is almost never worth more than the caption; with the tokens read counted, it
    is more often."""
    demos, samples = caption_contest(CAPTIONS, top=10, sample_chunks=["middle"], contests=SMALL)
    unseen = [c for c in contests if c["contest"] not in SMALL][:3]

    def raised(features: tuple) -> float:
        config = TrainConfig(
            max_tokens=8,
            candidate_chunks=8,
            features=features,
            prefix_head="never",
            quantize=False,
            validation_share=0.34,
        )
        folder = tmp_path / "-".join(features)
        train(demos, samples, folder, config)
        model = RewardModel.load(folder)
        shares = []
        for contest in unseen:
            captions = [c["text"] for c in contest["captions"][:100]]
            scores = model.score(contest["description"], captions)
            doubled = model.score(contest["description"], [f"{c} {c}" for c in captions])
            shares.append(np.mean(doubled > scores))
        return float(np.mean(shares))

    counting_distinct_words = raised(TRAINED_FEATURES)
    assert counting_distinct_words < 0.05
    assert counting_distinct_words < raised(("log_tokens",))


def test_an_ensemble_folder_scores_the_members_mean(
    ensemble: RewardModel, cartoon: tuple[str, list[str]]
) -> None:
    prompt, captions = cartoon
    members = ensemble.score_members(prompt, captions)
    assert ensemble.card.head.members == 3 and members.shape == (12, 3)
    np.testing.assert_allclose(ensemble.score(prompt, captions), members.mean(axis=1), atol=1e-5)
    assert members.std(axis=1).max() > 0  # members fit on different inputs disagree somewhere


def test_conservative_best_of_n_picks_by_mean_minus_spread(
    ensemble: RewardModel, cartoon: tuple[str, list[str]]
) -> None:
    prompt, captions = cartoon
    members = ensemble.score_members(prompt, captions)
    mean, spread = members.mean(axis=1), members.std(axis=1)
    while spread[int(np.argmax(mean))] <= spread.min():  # no weight could change that pick
        keep = np.arange(len(captions)) != int(np.argmax(mean))
        captions, mean, spread = (
            [c for c, k in zip(captions, keep, strict=True) if k],
            mean[keep],
            spread[keep],
        )
    top = int(np.argmax(mean))
    # the least weight at which a steadier caption overtakes the top one, and a little more
    overtakes = [
        (mean[top] - mean[i]) / (spread[top] - spread[i])
        for i in range(len(captions))
        if spread[i] < spread[top]
    ]
    weight = 1.5 * min(overtakes)
    best = BestOfN(
        llm=FakeListChatModel(responses=captions),
        reward_model=ensemble,
        n=len(captions),
        selection="conservative",
        risk_weight=weight,
        max_concurrency=1,
        return_all=True,
    )
    message = best.invoke(prompt)
    meta = message.response_metadata["best_of_n"]
    members = ensemble.score_members(prompt, meta["candidates"])
    value = members.mean(axis=1) - weight * members.std(axis=1)
    assert message.content == meta["candidates"][int(np.argmax(value))]
    assert np.argmax(value) != np.argmax(members.mean(axis=1))  # here the rule changes the pick
    np.testing.assert_allclose(meta["spreads"], members.std(axis=1), atol=1e-5)


def test_the_prefix_head_is_carded_and_judges_beginnings(
    ensemble: RewardModel, cartoon: tuple[str, list[str]]
) -> None:
    prompt, captions = cartoon
    info = ensemble.card.prefix_head
    assert info is not None and info.tokens == (4, 8)
    assert {"4", "reward@4"} <= info.spearman.keys()
    beginnings = [first_words(c, 4) for c in captions]
    by_head = ensemble.score_prefixes(prompt, beginnings)
    assert not np.allclose(by_head, ensemble.score(prompt, beginnings))
    np.testing.assert_array_equal(by_head, ensemble.score_prefixes(prompt, beginnings))


def test_a_folder_without_a_prefix_head_judges_beginnings_by_the_reward(
    model_copy: Path, cartoon: tuple[str, list[str]]
) -> None:
    """The bundled folder, as a folder from before prefix heads (or `--prefix-head never`)."""
    card = json.loads((model_copy / "card.json").read_text(encoding="utf-8"))
    del card["prefix_head"], card["files"]["prefix_head.onnx"]
    (model_copy / "card.json").write_text(json.dumps(card), encoding="utf-8")
    (model_copy / "prefix_head.onnx").unlink()
    model = RewardModel.load(model_copy)
    prompt, captions = cartoon
    beginnings = [first_words(c, 4) for c in captions]
    assert model.card.prefix_head is None
    np.testing.assert_array_equal(
        model.score_prefixes(prompt, beginnings), model.score(prompt, beginnings)
    )


def test_speculative_rejection_judges_streams_by_the_prefix_head(ensemble: RewardModel) -> None:
    prompt = "Explain how to make a good cup of coffee at home."
    answers = [
        " ".join(f"step{i} word{j} of a careful answer" for j in range(12)) for i in range(4)
    ]
    with OpenAICompatibleServer(answers_by_prompt={prompt: answers}, token_rate=400) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="unused", model="loopback")
        best = BestOfN(
            llm=llm,
            reward_model=ensemble,
            n=4,
            speculative=SpeculativeRejection(checkpoints=(4,), keep=1.0),
        )
        with warnings.catch_warnings():  # the server's random draws may repeat an answer
            warnings.filterwarnings("ignore", DUPLICATE_CANDIDATES, UserWarning)
            meta = best.invoke(prompt).response_metadata["best_of_n"]["speculative"]
    for candidate in meta["candidates"]:
        ((tokens, score),) = candidate["prefix_scores"]
        # each stream's first 4 streamed tokens (words), as the prefix head scores them
        expected = ensemble.score_prefixes(prompt, [first_words(a, 4) for a in answers])
        assert tokens == 4 and np.isclose(expected, score, atol=1e-5).any()


def test_a_card_that_lists_a_prefix_head_needs_its_file(ensemble: RewardModel) -> None:
    card = ensemble.card.model_dump(mode="json")
    del card["files"]["prefix_head.onnx"]
    with pytest.raises(ValueError, match="prefix_head"):
        ModelCard.model_validate(card)
