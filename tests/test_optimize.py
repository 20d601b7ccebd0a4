"""Prompt optimization against the loopback server, which answers by what the prompt says: a prompt
that says WITTY gets the answers the reward likes, any other the ones it dislikes."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from langchain_irl import RewardExampleSelector, RewardModel
from langchain_irl.optimize import (
    BudgetExhausted,
    OptimizationResult,
    load_prompt,
    load_report,
    optimize_prompt,
    save_prompt,
)
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


@dataclass
class Search:
    """One search where only the WITTY instruction makes good answers, with its log."""

    result: OptimizationResult
    requests: int
    log: Path


@pytest.fixture(scope="module")
def witty_search(
    pools: tuple[list[str], list[str]],
    cartoons: list[dict[str, str]],
    demonstrations: list[dict[str, str]],
    model: RewardModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Search:
    good, bad = pools
    log = tmp_path_factory.mktemp("search") / "search.jsonl"
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
        return Search(result, server.request_count, log)


def test_finds_the_prompt_that_makes_better_answers(witty_search: Search) -> None:
    result, report = witty_search.result, witty_search.result.report
    assert "WITTY" in (result.candidate.instruction or ""), report.verdict
    assert report.returned == result.candidate.name == report.search_leader
    assert report.validation.gain_95_interval[0] > 0
    assert witty_search.requests <= report.calls_used <= 250  # the proposer's calls count too
    assert result.prompt.input_variables == ["cartoon"]
    shown = result.prompt.format_messages(cartoon="A cat at a desk.")
    assert "WITTY" in shown[0].text and shown[-1].text == "A cat at a desk."


def test_the_search_races_every_kind_of_candidate(witty_search: Search) -> None:
    candidates = witty_search.result.report.candidates
    tried = {c.name for c in candidates}
    assert {"baseline", "2-shot", "4-shot", "ape-1", "opro-1", "opro-2"} <= tried
    assert "ape-4" not in tried  # the same instruction as ape-3
    assert any(c.dropped_in_round for c in candidates)  # racing dropped losers
    assert all(c.search_inputs >= 4 for c in candidates)  # every one answered the first round


def test_the_reward_reads_the_task_input_whatever_the_candidate_adds(
    witty_search: Search,
) -> None:
    """The same answer to the same input scored the same under every candidate."""
    samples = [json.loads(line) for line in witty_search.log.read_text().splitlines()]
    by_answer: dict[tuple[str, str], set[float]] = {}
    for s in samples:
        if s["kind"] == "sample":
            key = (s["input"].removeprefix("validation:"), s["output"])
            by_answer.setdefault(key, set()).add(s["reward"])
    assert by_answer and all(len(rewards) == 1 for rewards in by_answer.values())


def test_a_killed_run_resumes_from_its_log(
    witty_search: Search,
    cartoons: list[dict[str, str]],
    demonstrations: list[dict[str, str]],
    model: RewardModel,
) -> None:
    """Nothing is asked again: the server now fails everything, and nothing reaches it."""
    with OpenAICompatibleServer(failure_rate=1.0, faults=["400"]) as broken:
        again = optimize_prompt(
            _llm(broken),
            model,
            BASELINE,
            cartoons,
            demonstrations=demonstrations,
            proposer=FakeListChatModel(responses=["(unused)"]),
            max_calls=250,
            log=witty_search.log,
            progress=False,
        )
        assert broken.request_count == 0
    assert again.candidate == witty_search.result.candidate
    assert again.report.validation == witty_search.result.report.validation


def test_the_chosen_prompt_saves_and_loads_with_its_report(
    witty_search: Search, tmp_path: Path
) -> None:
    """langchain-core's serialization, loaded back as a ChatPromptTemplate; the report beside it."""
    result = witty_search.result
    path = result.save(tmp_path / "optimized.json")
    loaded = load_prompt(path)
    assert isinstance(loaded, ChatPromptTemplate)
    assert loaded.format_messages(cartoon="A dog.") == result.prompt.format_messages(
        cartoon="A dog."
    )
    assert json.loads(path.read_text())["report"]["returned"] == result.candidate.name
    assert load_report(path) == result.report


def test_the_report_reads_as_text(witty_search: Search) -> None:
    report = witty_search.result.report
    text = str(report)
    assert text.startswith(report.summary()) and report.verdict in text
    assert all(c.name in text for c in report.candidates)
    assert f"{report.calls_used} of 250 calls" in report.summary()
    assert report["verdict"] == report.verdict  # code written for the dict report still reads


# A report as the dict-report versions saved it.
EARLIER_REPORT = {
    "verdict": "ape-1 beats the baseline on unseen inputs (95% interval > 0)",
    "returned": "ape-1",
    "search_leader": "ape-1",
    "reward_model": "caption-humor",
    "reward_reads": "the task input as the baseline prompt renders it",
    "validation": {
        "inputs": 7,
        "baseline_mean_reward": -1.0,
        "leader_mean_reward": 0.1,
        "paired_gain": 1.1,
        "gain_95_interval": [0.5, 1.7],
    },
    "calls": {"used": 90, "max_calls": 250},
    "tokens": 0,
    "candidates": [
        {
            "name": "baseline",
            "instruction": None,
            "shots": 0,
            "per_input": False,
            "search_inputs": 8,
            "mean_reward": -1.2,
            "dropped_in_round": None,
        },
        {
            "name": "2-shot",
            "instruction": None,
            "shots": 2,
            "per_input": False,
            "search_inputs": 8,
            "mean_reward": -1.5,
            "dropped_in_round": 2,
        },
        {
            "name": "ape-1",
            "instruction": "Write a WITTY caption.",
            "shots": 0,
            "per_input": False,
            "search_inputs": 16,
            "mean_reward": 0.2,
            "dropped_in_round": None,
        },
    ],
}


def test_a_report_saved_by_an_earlier_version_loads(tmp_path: Path) -> None:
    """Files saved when the report was a dict: the same keys, read back typed."""
    path = save_prompt(BASELINE, tmp_path / "old.json", report=EARLIER_REPORT)
    assert load_prompt(path).format_messages(cartoon="x") == BASELINE.format_messages(cartoon="x")
    report = load_report(path)
    assert report is not None and report.to_dict() == EARLIER_REPORT
    assert report.validation.gain_95_interval == (0.5, 1.7)
    assert report.candidates[1].dropped_in_round == 2 and report.calls_used == 90
    assert load_report(save_prompt(BASELINE, tmp_path / "bare.json")) is None


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
    assert result.candidate.name == "baseline" and "baseline" in result.report.verdict
    assert result.prompt.format_messages(cartoon="x") == BASELINE.format_messages(cartoon="x")
    assert result.report.calls_used <= 150


def test_per_input_demonstrations_save_and_load(
    demonstrations: list[dict[str, str]], model: RewardModel, tmp_path: Path
) -> None:
    from langchain_irl.optimize.candidates import Candidate, TaskInputSelector, build

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
    with pytest.raises(BudgetExhausted, match="max_calls=10 does not cover the final check") as e:
        optimize_prompt(FakeListChatModel(responses=["a"]), model, BASELINE, cartoons, max_calls=10)
    assert isinstance(e.value, ValueError) and e.value.parameter == "max_calls"
    assert (e.value.max_calls, e.value.needed) == (10, 14)  # 2 x 7 validation inputs


def test_a_resumed_run_that_spent_the_budget_refuses_the_final_check(
    witty_search: Search,
    cartoons: list[dict[str, str]],
    demonstrations: list[dict[str, str]],
    model: RewardModel,
    tmp_path: Path,
) -> None:
    """A log of a run with a larger budget, without its final check: the budget is spent."""
    log = tmp_path / "search.jsonl"
    lines = witty_search.log.read_text().splitlines(keepends=True)
    log.write_text("".join(line for line in lines if "@validation" not in line))
    with pytest.raises(BudgetExhausted, match="max_calls=60 is spent before the final check"):
        optimize_prompt(
            FakeListChatModel(responses=["unused"]),
            model,
            BASELINE,
            cartoons,
            demonstrations=demonstrations,
            proposer=FakeListChatModel(responses=["(unused)"]),
            max_calls=60,
            log=log,
            progress=False,
        )


def test_repeated_inputs_are_refused_as_duplicates(
    cartoons: list[dict[str, str]], model: RewardModel
) -> None:
    llm = FakeListChatModel(responses=["a"])
    repeated = [*cartoons[:10], cartoons[0], cartoons[3]]
    with pytest.raises(ValueError, match=r"inputs\[10\] repeats inputs\[0\], inputs\[11\] "):
        optimize_prompt(llm, model, BASELINE, repeated, progress=False)
    with pytest.raises(ValueError, match=r"validation\[2\] repeats validation\[0\]"):
        validation = [cartoons[20], cartoons[21], cartoons[20]]
        optimize_prompt(llm, model, BASELINE, cartoons[:10], validation=validation)
    with pytest.raises(ValueError, match="2 validation inputs are also search inputs"):
        optimize_prompt(llm, model, BASELINE, cartoons[:10], validation=cartoons[:2])


def test_a_rejected_proposal_is_logged_as_its_text(
    cartoons: list[dict[str, str]],
    demonstrations: list[dict[str, str]],
    model: RewardModel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="langchain_irl.optimize"):
        optimize_prompt(
            FakeListChatModel(responses=["A caption."]),
            model,
            BASELINE,
            cartoons,
            demonstrations=demonstrations,
            proposer=FakeListChatModel(responses=["ok"]),
            max_calls=30,
            proposals=1,
            rewrites=0,
            progress=False,
        )
    assert "proposal ape-1 gave no usable instruction: 'ok'" in caplog.messages


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
