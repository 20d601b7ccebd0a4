"""Attributions, preference probes and the report page: deterministic, and right where we know
the answer (a reward trained to like one word and one punctuation mark)."""

from __future__ import annotations

import html.parser
from pathlib import Path

import numpy as np
import pytest

from langchain_irl import RewardModel
from langchain_irl.cli.main import main
from langchain_irl.data.formats import Example
from langchain_irl.data.jsonl import write_jsonl
from langchain_irl.evaluation.html_report import HEADINGS, write_report
from langchain_irl.evaluation.probes import edit_probes, surface_preferences
from langchain_irl.reward_model.attribution import word_spans

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def banana(contests: list[dict], tmp_path_factory: pytest.TempPathFactory) -> RewardModel:
    """A reward taught that demonstrations say "banana" and end with "!": real captions, with
    that added to the demonstrations only."""
    from langchain_irl.train.config import TrainConfig
    from langchain_irl.train.pipeline import train

    demos, samples = [], []
    for contest in contests[:24]:
        captions = [c["text"].rstrip(".!?") for c in contest["captions"][:9]]
        demos += [Example(contest["description"], f"{c} banana!") for c in captions[:3]]
        samples += [Example(contest["description"], f"{c}.") for c in captions[3:]]
    out = tmp_path_factory.mktemp("banana") / "model"
    train(demos, samples, out, TrainConfig(max_tokens=48, quantize=False, validation_share=0.25))
    return RewardModel.load(out)


CARTOON = "A cat chairs a board meeting."
CANDIDATE = "I move that we buy the banana company!"


def test_a_reward_that_likes_a_word_credits_that_word(banana: RewardModel) -> None:
    attribution = banana.attribute(CARTOON, CANDIDATE)
    word, value = attribution.top(1)[0]
    assert word == "banana" and value > 0
    assert attribution.words == CANDIDATE.split()
    assert attribution.score == pytest.approx(float(banana.score(CARTOON, [CANDIDATE])[0]))
    # Deterministic: the same call gives the same answer, bit for bit.
    np.testing.assert_array_equal(
        attribution.contributions, banana.attribute(CARTOON, CANDIDATE).contributions
    )
    prompt_side = banana.attribute(CARTOON, CANDIDATE, side="prompt")
    assert prompt_side.text == CARTOON and len(prompt_side.contributions) == 6


def test_probes_recover_the_features_the_reward_was_taught(
    banana: RewardModel, contests: list[dict]
) -> None:
    held_out = contests[30:36]  # cartoons the reward never saw
    prompts = [c["description"] for c in held_out]
    captions = [c["text"].rstrip(".!?") for c in held_out[0]["captions"][:60]]
    texts = [f"{c}!" if i % 2 else f"{c}." for i, c in enumerate(captions)]  # half exclaim
    groups = np.zeros(len(texts), dtype=int)
    rewards = banana.score_by_input(prompts, groups, texts)
    effects = {e.feature: e.spearman for e in surface_preferences(rewards, groups, texts)}
    assert effects["exclamation mark"] > 0.3  # taught: demonstrations end with "!"
    edits = {e.edit: e for e in edit_probes(banana, prompts, groups, texts, rewards)}
    assert edits["punctuation removed"].mean_change < 0  # the "!" it likes goes too
    assert edits["punctuation removed"].outputs == len(texts)
    assert edits["moved to another input"].outputs == len(texts)


def test_surface_probe_finds_length_when_the_reward_is_length() -> None:
    texts = ["a b c", "a", "a b c d e f", "a b", "one two three four", "x " * 9]
    groups = np.array([0, 0, 0, 1, 1, 1])
    rewards = np.array([len(t.split()) for t in texts], dtype=float) + 10 * groups
    effects = surface_preferences(rewards, groups, texts)
    assert effects[0].feature == "length (words)" and effects[0].spearman == pytest.approx(1.0)


def test_long_texts_are_attributed_in_runs_of_words() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    spans = word_spans(text, max_spans=10)
    assert len(spans) == 10 and spans[0][0] == 0 and spans[-1][1] == len(text)
    assert " ".join(text[a:b] for a, b in spans) == text


def test_score_attribute_marks_the_words(banana: RewardModel, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["score", str(banana.folder), "--prompt", CARTOON, "--attribute", CANDIDATE]) == 0
    printed = capsys.readouterr().out
    assert "banana]" in printed and "prompt:" in printed  # [+0.xx banana] when not a terminal


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.images: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._in_heading = tag == "h2"
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings.append(data)
            self._in_heading = False


def test_the_report_page_has_every_section_and_its_plots(
    banana: RewardModel, contests: list[dict], tmp_path: Path
) -> None:
    contest = contests[30]
    demos = [Example(contest["description"], c["text"], c["mean"]) for c in contest["captions"][:5]]
    samples = [
        Example(contest["description"], c["text"], c["mean"]) for c in contest["captions"][5:40]
    ]
    write_jsonl(tmp_path / "d.jsonl", [d.to_json() for d in demos])
    write_jsonl(tmp_path / "s.jsonl", [s.to_json() for s in samples])
    out = tmp_path / "report"
    argv = ["report", str(banana.folder), "--out", str(out), "--attributed", "10"]
    assert (
        main([*argv, "--demos", str(tmp_path / "d.jsonl"), "--samples", str(tmp_path / "s.jsonl")])
        == 0
    )
    page = _Page()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    assert page.headings == list(HEADINGS)
    assert {"calibration.png", "reward_histogram.png", "best_of_n.png"} <= set(page.images)
    assert all((out / image).stat().st_size > 1000 for image in page.images)
    # Without data: the demonstrations the folder keeps.
    bare = write_report(banana, tmp_path / "bare", attributed=5, probed=20)
    assert "banana" in bare.read_text(encoding="utf-8")
