"""RewardModel on real captions: scores, truncation, percentiles, async, threads, fuzzing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage, SystemMessage

from langchain_irl import RewardModel
from langchain_irl.reward_model.encoder import CHARS_PER_TOKEN_BOUND
from tests.conftest import BUNDLED_MODEL, ROOT, WITH_FIXTURES

PROMPT_FOR_DETERMINISM = "A well-dressed man complaining about his fuming soup to a server"
CANDIDATE_POOL = [
    "I'm going to need a bigger spoon.",
    "Could Mother Nature have her own bowl?",
    "",
    "Waiter, there's a volcano in my soup. " * 12,  # long: truncated
    "Soup of the day: lava.",
    "🍲🔥",
    "It's not the heat, it's the humidity.",
]


def test_score_one_float_per_candidate(model: RewardModel, contests: list[dict]) -> None:
    contest = contests[0]
    candidates = [c["text"] for c in contest["captions"][:20]]
    scores = model.score(contest["description"], candidates)
    assert scores.shape == (20,) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert len(np.unique(scores)) > 15  # a real reward, not a constant


def test_score_is_per_prompt(model: RewardModel, contests: list[dict]) -> None:
    candidates = [c["text"] for c in contests[0]["captions"][:10]]
    first = model.score(contests[0]["description"], candidates)
    second = model.score(contests[1]["description"], candidates)
    assert not np.allclose(first, second)


def test_bundled_model_prefers_top_captions_of_unseen_contests(
    model: RewardModel, contests: list[dict]
) -> None:
    """Held-out contests (not in the model's training data): top 30 beat the middle block."""
    wins = []
    for contest in contests:
        if contest["contest"] not in (641, 645, 648, 650, 654):
            continue
        captions = contest["captions"]
        top = [c["text"] for c in captions if c["rank"] <= 30]
        middle = [c["text"] for c in captions if c["chunk"] == "middle"]
        scores = model.score(contest["description"], top + middle)
        wins.append((scores[: len(top), None] > scores[None, len(top) :]).mean())
    assert len(wins) == 5
    assert np.mean(wins) > 0.55


def test_chat_messages_render_by_the_card_rule(model: RewardModel, contests: list[dict]) -> None:
    description = contests[0]["description"]
    candidates = ["I told you it was a bad idea.", "Meow."]
    messages = [SystemMessage("Write a funny caption."), HumanMessage(description)]
    assert model.render(messages) == description
    np.testing.assert_allclose(
        model.score(messages, candidates), model.score(description, candidates)
    )


def test_empty_inputs(model: RewardModel) -> None:
    assert model.score("prompt", []).shape == (0,)
    scores = model.score("", ["", "a caption"])
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_long_text_is_truncated_not_an_error(
    model: RewardModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = "the cat sat on the mat " * 200_000  # ~4.6 MB
    tokenizer = model.encoder.reader._tokenizer
    seen: list[int] = []
    real_encode_batch = tokenizer.encode_batch

    def recording(texts):  # type: ignore[no-untyped-def]
        seen.extend(len(text) for text in texts)
        return real_encode_batch(texts)

    monkeypatch.setattr(model.encoder.reader, "_tokenizer", _Proxy(tokenizer, recording))
    long_score = model.score(words, [words])
    # the tokenizer never sees more than 64 characters per allowed token: bounded work
    assert max(seen) <= model.card.max_tokens * CHARS_PER_TOKEN_BOUND < len(words)
    monkeypatch.undo()
    assert np.isfinite(long_score).all()
    # the encoder reads the start; a head's word counts (if its card names them) read it all
    cut = " ".join(words.split()[: model.card.max_tokens])
    (long_embedding, long_tokens), (cut_embedding, cut_tokens) = (
        model.embed_candidates([text]) for text in (words, cut)
    )
    np.testing.assert_allclose(long_embedding, cut_embedding, atol=1e-6)
    assert long_tokens[0] == cut_tokens[0] < model.card.max_tokens  # less [CLS] and [SEP]


class _Proxy:
    def __init__(self, target: object, encode_batch: object) -> None:
        self._target, self.encode_batch = target, encode_batch

    def __getattr__(self, name: str) -> object:
        return getattr(self._target, name)


def test_candidates_must_be_strings(model: RewardModel) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        model.score("prompt", "one string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        model.score("prompt", ["ok", 3])  # type: ignore[list-item]


def test_embed_is_normalised(model: RewardModel, captions: list[str]) -> None:
    embeddings = model.embed(captions[:50])
    assert embeddings.shape == (50, model.card.encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-3)


def test_percentile_against_demonstrations(model: RewardModel) -> None:
    demos = np.sort(model.card.calibration.demo_scores)
    assert model.percentile(demos[-1] + 1.0) == 100.0
    assert model.percentile(demos[0] - 1.0) == 0.0
    assert model.percentile(float(np.median(demos))) == pytest.approx(50, abs=2)
    values = model.percentile(np.array([-5.0, 0.0, 5.0]))
    assert list(values) == sorted(values)


def test_calibration_separates_demos_from_samples(model: RewardModel) -> None:
    calibration = model.card.calibration
    assert np.mean(calibration.demo_scores) > np.mean(calibration.sample_scores)


async def test_ascore_matches_and_leaves_the_event_loop_free(
    model: RewardModel, captions: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While `ascore` scores, another coroutine runs: scoring waits until that coroutine has set an
    event, which it could never do if scoring held the event loop."""
    loop_ran = threading.Event()
    score = model.score

    def score_once_the_loop_has_run(prompt: str, candidates: list[str]) -> np.ndarray:
        # The timeout only keeps a broken ascore from hanging the suite.
        assert loop_ran.wait(timeout=60), "the event loop did not run while the model scored"
        return score(prompt, candidates)

    async def on_the_loop() -> None:
        loop_ran.set()

    monkeypatch.setattr(model, "score", score_once_the_loop_has_run)
    scores, _ = await asyncio.gather(
        model.ascore("A dog in a suit.", captions[:256]), on_the_loop()
    )
    monkeypatch.undo()
    np.testing.assert_array_equal(scores, model.score("A dog in a suit.", captions[:256]))


def test_threads_give_the_same_scores_as_one_thread(captions: list[str]) -> None:
    model = RewardModel.load(BUNDLED_MODEL, num_threads=1)
    jobs = [(captions[i], captions[i + 1 : i + 17]) for i in range(0, 640, 20)]
    serial = [model.score(prompt, candidates) for prompt, candidates in jobs]
    with ThreadPoolExecutor(16) as pool:
        parallel = list(pool.map(lambda job: model.score(*job), jobs))
    for expected, actual in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(expected, actual)


@settings(WITH_FIXTURES, max_examples=60)
@given(
    prompt=st.text(max_size=300),
    candidates=st.lists(st.text(max_size=300), min_size=1, max_size=5),
)
def test_fuzz_any_unicode(model: RewardModel, prompt: str, candidates: list[str]) -> None:
    scores = model.score(prompt, candidates)
    assert scores.shape == (len(candidates),) and np.isfinite(scores).all()


def test_runtime_needs_no_torch() -> None:
    """Load and score in a process where importing torch fails."""
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from langchain_irl import RewardModel\n"
        f"m = RewardModel.load({str(BUNDLED_MODEL)!r})\n"
        "print(m.score('A man in a cage.', ['Free at last.', 'Hmm.']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "[" in result.stdout


@settings(WITH_FIXTURES, max_examples=30)
@given(data=st.data())
def test_a_score_does_not_depend_on_its_batch(model: RewardModel, data: st.DataObject) -> None:
    """The same (prompt, candidate, model) gives the same score, within 1e-6, whatever else is in
    the call, in whatever order, one candidate or 64 (int8 encoder included)."""
    pool = CANDIDATE_POOL
    target = data.draw(st.sampled_from(pool))
    others = data.draw(st.lists(st.sampled_from(pool), max_size=63))
    position = data.draw(st.integers(min_value=0, max_value=len(others)))
    batch = [*others[:position], target, *others[position:]]
    alone = model.score(PROMPT_FOR_DETERMINISM, [target])[0]
    together = model.score(PROMPT_FOR_DETERMINISM, batch)[position]
    assert abs(float(alone) - float(together)) <= 1e-6


def test_a_model_can_read_the_end_of_long_prompts(model_copy: Path) -> None:
    """`prompt_keeps: end` (the default for dialogue transcripts): the turn the reply answers is
    read, however long the dialogue before it."""
    card = json.loads((model_copy / "card.json").read_text())
    (model_copy / "card.json").write_text(json.dumps({**card, "prompt_keeps": "end"}))
    tail_reader = RewardModel.load(model_copy)
    ending = "\n\nHuman: I locked myself out." * 40 + "\n\nHuman: How do I pick a lock?"
    long_a = "\n\nHuman: hello\n\nAssistant: hi" * 200 + ending  # differs before the window
    long_b = "\n\nHuman: tell me about cats\n\nAssistant: they purr" * 150 + ending
    reply = ["I can't help with breaking into places."]
    assert tail_reader.score(long_a, reply)[0] == tail_reader.score(long_b, reply)[0]
    start_reader = RewardModel.load(BUNDLED_MODEL)  # reads the start: the two prompts differ
    assert start_reader.score(long_a, reply)[0] != start_reader.score(long_b, reply)[0]
