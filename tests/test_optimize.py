"""Prompt optimization against the loopback server, which answers by what the prompt says: a prompt
that says WITTY gets the answers the reward likes, any other the ones it dislikes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from langchain_irl import RewardExampleSelector, RewardModel
from langchain_irl.optimize import load_prompt, optimize_prompt
from langchain_irl.testing.server import OpenAICompatibleServer

BASELINE = ChatPromptTemplate.from_messages(
    [("system", "Write a caption for the cartoon."), ("human", "{cartoon}")]
)
PROPOSALS = [  # what the proposer writes, in turn: four APE proposals, then two OPRO rewrites
    "Instruction: Write a WITTY caption for the cartoon.",
    "Describe the cartoon in plain words.",
    "Write a short caption.",
    "Write a short caption.",  # a repeat: tried once
    "Be WITTY: one sharp line.",
    "Write a caption that is a pun.",
]


@pytest.fixture(scope="module")
def pools(contests: list[dict], model: RewardModel) -> tuple[list[str], list[str]]:
    """The 20 captions the reward likes most and the 20 it likes least, of one contest."""
    contest = contests[0]
    captions = [c["text"] for c in contest["captions"]]
    order = np.argsort(-model.score(contest["description"], captions))
    return [captions[i] for i in order[:20]], [captions[i] for i in order[-20:]]


@pytest.fixture(scope="module")
def cartoons(contests: list[dict]) -> list[dict[str, str]]:
    return [{"cartoon": contest["description"]} for contest in contests[:24]]


@pytest.fixture(scope="module")
def demonstrations(contests: list[dict]) -> list[dict[str, str]]:
    return [
        {"input": contest["description"], "output": contest["captions"][0]["text"]}
        for contest in contests[30:40]
    ]


def _llm(server: OpenAICompatibleServer) -> ChatOpenAI:
    return ChatOpenAI(base_url=server.base_url, api_key="unused", model="loopback", max_retries=0)


def test_finds_the_prompt_that_makes_better_answers(
    pools: tuple[list[str], list[str]],
    cartoons: list[dict[str, str]],
    demonstrations: list[dict[str, str]],
    model: RewardModel,
    tmp_path: Path,
) -> None:
    good, bad = pools
    log = tmp_path / "search.jsonl"
    with OpenAICompatibleServer(answers=bad, answers_by_marker={"WITTY": good}) as server:
        result = optimize_prompt(
            _llm(server),
            model,
            BASELINE,
            cartoons,
            demonstrations=demonstrations,
            proposer=FakeListChatModel(responses=PROPOSALS),
            max_calls=250,
            log=log,
            progress=False,
        )
        requests = server.request_count
    report = result.report
    assert "WITTY" in (result.candidate.instruction or ""), report["verdict"]
    assert report["validation"]["gain_95_interval"][0] > 0
    assert requests <= report["calls"]["used"] <= 250  # the proposer's calls count too
    assert result.prompt.input_variables == ["cartoon"]
    shown = result.prompt.format_messages(cartoon="A cat at a desk.")
    assert "WITTY" in shown[0].text and shown[-1].text == "A cat at a desk."
    tried = {c["name"] for c in report["candidates"]}
    assert {"baseline", "2-shot", "4-shot", "ape-1", "opro-1", "opro-2"} <= tried
    assert "ape-4" not in tried  # the same instruction as ape-3
    assert any(c["dropped_in_round"] for c in report["candidates"])  # racing dropped losers

    # The reward read the task input, whatever the candidate added: the same answer to the same
    # input scored the same under every candidate.
    samples = [json.loads(line) for line in log.read_text().splitlines()]
    by_answer: dict[tuple[str, str], set[float]] = {}
    for s in samples:
        if s["kind"] == "sample":
            key = (s["input"].removeprefix("validation:"), s["output"])
            by_answer.setdefault(key, set()).add(s["reward"])
    assert by_answer and all(len(rewards) == 1 for rewards in by_answer.values())

    # A killed run resumes from its log: nothing is asked again (the server now fails everything).
    with OpenAICompatibleServer(failure_rate=1.0, faults=["400"]) as broken:
        again = optimize_prompt(
            _llm(broken),
            model,
            BASELINE,
            cartoons,
            demonstrations=demonstrations,
            proposer=FakeListChatModel(responses=["(unused)"]),
            max_calls=250,
            log=log,
            progress=False,
        )
        assert broken.request_count == 0
    assert (
        again.candidate == result.candidate and again.report["validation"] == report["validation"]
    )

    # Saved with langchain-core's serialization, loaded back as a ChatPromptTemplate.
    path = result.save(tmp_path / "optimized.json")
    loaded = load_prompt(path)
    assert isinstance(loaded, ChatPromptTemplate)
    assert loaded.format_messages(cartoon="A dog.") == result.prompt.format_messages(
        cartoon="A dog."
    )
    assert json.loads(path.read_text())["report"]["returned"] == result.candidate.name


def test_returns_the_baseline_when_no_candidate_is_better(
    pools: tuple[list[str], list[str]],
    cartoons: list[dict[str, str]],
    demonstrations: list[dict[str, str]],
    model: RewardModel,
) -> None:
    good, _ = pools
    with OpenAICompatibleServer(answers=good[:1]) as server:  # every prompt: the same answer
        result = optimize_prompt(
            _llm(server),
            model,
            BASELINE,
            cartoons,
            demonstrations=demonstrations,
            proposer=FakeListChatModel(responses=PROPOSALS),
            max_calls=150,
            progress=False,
        )
    assert result.candidate.name == "baseline" and "baseline" in result.report["verdict"]
    assert result.prompt.format_messages(cartoon="x") == BASELINE.format_messages(cartoon="x")
    assert result.report["calls"]["used"] <= 150


def test_per_input_demonstrations_save_and_load(
    demonstrations: list[dict[str, str]], model: RewardModel, tmp_path: Path
) -> None:
    from langchain_irl.optimize.candidates import Candidate, TaskInputSelector, build
    from langchain_irl.optimize.storage import save_prompt

    reward_selector = RewardExampleSelector(examples=demonstrations, reward_model=model)
    selector = TaskInputSelector(reward_selector, BASELINE, k=3)
    prompt = build(Candidate("x", "Be WITTY.", 3, per_input=True), BASELINE, [], selector)
    loaded = load_prompt(save_prompt(prompt, tmp_path / "p.json"))
    cartoon = demonstrations[0]["input"]
    assert loaded.format_messages(cartoon=cartoon) == prompt.format_messages(cartoon=cartoon)
    assert len(prompt.format_messages(cartoon=cartoon)) == 1 + 2 * 3 + 1


def test_a_budget_too_small_for_the_final_check_is_refused(
    cartoons: list[dict[str, str]], model: RewardModel
) -> None:
    with pytest.raises(ValueError, match="does not cover the final check"):
        optimize_prompt(FakeListChatModel(responses=["a"]), model, BASELINE, cartoons, max_calls=10)


def _proposer() -> FakeListChatModel:
    return FakeListChatModel(responses=PROPOSALS)


def test_the_optimize_command(
    pools: tuple[list[str], list[str]],
    cartoons: list[dict[str, str]],
    demonstrations: list[dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from langchain_irl.cli import main
    from langchain_irl.data.jsonl import write_jsonl
    from langchain_irl.optimize import save_prompt

    save_prompt(BASELINE, tmp_path / "prompt.json")
    write_jsonl(tmp_path / "inputs.jsonl", cartoons)
    write_jsonl(tmp_path / "demos.jsonl", demonstrations)
    good, bad = pools
    with OpenAICompatibleServer(answers=bad, answers_by_marker={"WITTY": good}) as server:
        code = main(
            [
                "optimize",
                "--reward-model",
                "caption-humor",
                "--prompt",
                str(tmp_path / "prompt.json"),
                "--inputs",
                str(tmp_path / "inputs.jsonl"),
                "--demos",
                str(tmp_path / "demos.jsonl"),
                "--model",
                "loopback",
                "--base-url",
                server.base_url,
                "--proposer",
                "tests.test_optimize:_proposer",
                "--max-calls",
                "200",
                "--out",
                str(tmp_path / "optimized.json"),
            ]
        )
    assert code == 0
    printed = capsys.readouterr().out
    assert "beats the baseline on unseen inputs" in printed
    optimized = load_prompt(tmp_path / "optimized.json")
    assert "WITTY" in optimized.format_messages(cartoon="x")[0].text
