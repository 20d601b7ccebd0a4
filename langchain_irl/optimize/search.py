"""`optimize_prompt`: choose the instruction and demonstrations once, with the learned reward.

Best-of-n spends the reward's noise on every call. A choice between prompts averages the reward
over many inputs, so the same reward decides it reliably, and the chosen prompt then costs one
call each time. The search:

1. **Candidates.** The baseline; few-shot variants (the best-rewarded demonstrations as a fixed
   set, or chosen per input by `RewardExampleSelector`); APE instructions, proposed from
   demonstrations; each instruction with per-input demonstrations; after the first round, OPRO
   rewrites shown the instructions tried, their scores, and the best and worst outputs so far.
2. **Racing on the same inputs.** Every candidate answers the same search inputs, so candidates
   are compared by paired differences. After each round (4, 8, 16, ... inputs) the clear losers
   (95% interval of the paired difference to the leader below zero) and the weaker half go.
3. **An honest result.** The winner and the baseline answer validation inputs the search never
   saw; the winner is returned only if its paired gain over the baseline has a 95% interval
   clear of zero, else the baseline is, and the report (`OptimizationReport`) says so.

The reward reads each input exactly as it does for the baseline prompt (the baseline's messages,
rendered by the card's rule): what a candidate adds never reaches what the reward scores. Every
call to `llm` and `proposer` counts against `max_calls`. With `log=`, every proposal and every
scored answer is appended (fsync'ed) to a JSONL file, and a run started again with the same
arguments and log resumes without asking for them again.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from tqdm.auto import tqdm

from langchain_irl.data.jsonl import append_records, complete_lines
from langchain_irl.evaluation.metrics import paired_interval
from langchain_irl.example_selectors.reward import RewardExampleSelector
from langchain_irl.optimize.candidates import (
    Candidate,
    Demonstration,
    TaskInputSelector,
    ape_request,
    build,
    clean_instruction,
    opro_request,
    task_input,
)
from langchain_irl.optimize.report import CandidateReport, OptimizationReport, ValidationReport
from langchain_irl.reward_model.model import RewardModel
from langchain_irl.reward_model.rendering import render_output

logger = logging.getLogger(__name__)
ChatRunnable = Runnable[Any, BaseMessage] | BaseChatModel
FIRST_ROUND = 4  # search inputs in the first round; each later round doubles them
Split = Literal["search", "validation"]


class BudgetExhausted(ValueError):
    """`max_calls` cannot pay for the final check: the baseline and the search's leader answering
    every validation input. `parameter` names the argument to raise, for front ends that call it
    otherwise (the command line's `--max-calls`)."""

    parameter: str = "max_calls"
    """The argument of `optimize_prompt` that sets the budget."""

    def __init__(self, message: str, *, max_calls: int, needed: int) -> None:
        super().__init__(message)
        self.max_calls = max_calls
        """The budget given."""
        self.needed = needed
        """Calls the final check needs."""


@dataclass
class OptimizationResult:
    """The prompt to use (the chosen one, or the baseline), and how it was chosen."""

    prompt: ChatPromptTemplate
    report: OptimizationReport
    candidate: Candidate

    def save(self, path: str | Path) -> Path:
        """The prompt as JSON, with the report (see `optimize.storage`)."""
        from langchain_irl.optimize.storage import save_prompt

        return save_prompt(self.prompt, path, report=self.report)


def optimize_prompt(
    llm: ChatRunnable,
    reward_model: RewardModel | str | Path,
    prompt: ChatPromptTemplate,
    inputs: Sequence[dict[str, Any]],
    demonstrations: Sequence[Demonstration] | None = None,
    proposer: ChatRunnable | None = None,
    max_calls: int = 300,
    validation: Sequence[dict[str, Any]] | None = None,
    seed: int = 0,
    *,
    proposals: int = 4,
    rewrites: int = 2,
    validation_share: float = 0.3,
    concurrency: int = 8,
    log: str | Path | None = None,
    progress: bool = True,
) -> OptimizationResult:
    """Search instructions and demonstrations for `prompt` with the learned reward (see the
    module's docstring). `inputs` are values of the prompt's variables; `validation` (default:
    a held-back `validation_share` of them) is used only for the final check.

    Raises:
        BudgetExhausted: `max_calls` cannot pay for the final check (a `ValueError`).
        ValueError: too few inputs, repeated inputs, or validation inputs among the inputs.
    """
    model = RewardModel.of(reward_model)
    rng = np.random.default_rng(seed)
    search, held_back = _split(list(inputs), validation, validation_share, rng)
    demos = list(demonstrations or [])
    for index, demo in enumerate(demos):
        if not isinstance(demo.get("input"), str) or not isinstance(demo.get("output"), str):
            raise ValueError(f"demonstrations[{index}] needs string 'input' and 'output'")
    run = _Run(
        llm=llm,
        proposer=proposer or llm,
        model=model,
        baseline=prompt,
        budget=_Budget(max_calls, progress),
        journal=_Journal(Path(log) if log else None),
        concurrency=concurrency,
    )
    run.prepare_demonstrations(demos)
    final_check = 2 * len(held_back)
    if final_check >= max_calls:
        raise BudgetExhausted(
            f"max_calls={max_calls} does not cover the final check alone (2 x "
            f"{len(held_back)} validation inputs): raise it or give fewer validation inputs",
            max_calls=max_calls,
            needed=final_check,
        )
    run.budget.reserve(final_check)
    try:
        leader = run.race(search, demos, rng, proposals, rewrites)
        return run.conclude(leader, held_back)
    finally:
        run.budget.close()


@dataclass
class _Budget:
    max_calls: int
    show: bool
    used: int = 0
    reserved: int = 0  # kept for the final check
    tokens: int = 0
    bar: Any = None

    def __post_init__(self) -> None:
        self.bar = tqdm(
            total=self.max_calls, desc="optimizing the prompt", unit="call", disable=not self.show
        )

    def reserve(self, calls: int) -> None:
        self.reserved = calls

    def left(self) -> int:
        return self.max_calls - self.used - self.reserved

    def spend(self, calls: int, tokens: int = 0) -> None:
        self.used += calls
        self.tokens += tokens
        self.bar.update(calls)

    def close(self) -> None:
        self.bar.close()


class _Answer(NamedTuple):
    output: str
    reward: float


class _Ledger:
    """Every scored answer: by (candidate, split), then by input key."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, Split], dict[str, _Answer]] = {}

    def of(self, name: str, split: Split) -> dict[str, _Answer]:
        return self.answers.setdefault((name, split), {})

    def rewards(self, name: str, split: Split) -> dict[str, float]:
        answers = self.answers.get((name, split), {})
        return {key: answer.reward for key, answer in answers.items()}

    def mean(self, name: str, split: Split, keys: Sequence[str] | None = None) -> float:
        """The mean reward on `keys` (default: every input answered); -inf if none was."""
        rewards = self.rewards(name, split)
        present = [rewards[k] for k in (rewards if keys is None else keys) if k in rewards]
        return float(np.mean(present)) if present else float("-inf")

    def paired(self, name: str, other: str, split: Split, keys: Sequence[str]) -> list[float]:
        mine, theirs = self.rewards(name, split), self.rewards(other, split)
        return [mine[k] - theirs[k] for k in keys if k in mine and k in theirs]

    def all_of(self, split: Split) -> list[_Answer]:
        """Every answer of `split`, in the order they were recorded, candidate by candidate."""
        return [
            a for (_, s), answers in self.answers.items() if s == split for a in answers.values()
        ]


class _Journal:
    """Proposals and scored answers appended to a JSONL file as they come; read back to resume.

    On disk a validation answer's candidate ends in "@validation" and its input key starts with
    "validation:" (the format of earlier versions, so that their logs resume)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.proposals: dict[str, str] = {}
        self.answers: dict[tuple[str, Split, str], _Answer] = {}
        if path is None or not path.exists():
            return
        with path.open("r+b") as handle:  # a torn last line (a kill mid-write) is cut off
            text = complete_lines(handle, path, repair=True).decode("utf-8")
        for line in text.splitlines():
            record = json.loads(line)
            if record["kind"] == "proposal":
                self.proposals[record["name"]] = record["instruction"]
            else:
                key = _from_disk(record["candidate"], record["input"])
                self.answers[key] = _Answer(record["output"], float(record["reward"]))

    def write_proposal(self, name: str, instruction: str) -> None:
        self._write([{"kind": "proposal", "name": name, "instruction": instruction}])

    def write_answers(self, name: str, split: Split, answers: dict[str, _Answer]) -> None:
        records = []
        for key, answer in answers.items():
            candidate, input_key = _on_disk(name, split, key)
            record = {"candidate": candidate, "input": input_key, **answer._asdict()}
            records.append({"kind": "sample", **record})
        self._write(records)

    def _write(self, records: list[dict[str, Any]]) -> None:
        if self.path is None or not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            append_records(handle, records)


def _on_disk(name: str, split: Split, key: str) -> tuple[str, str]:
    return (f"{name}@validation", f"validation:{key}") if split == "validation" else (name, key)


def _from_disk(candidate: str, key: str) -> tuple[str, Split, str]:
    if candidate.endswith("@validation"):
        return candidate.removesuffix("@validation"), "validation", key.removeprefix("validation:")
    return candidate, "search", key


@dataclass
class _Run:
    llm: ChatRunnable
    proposer: ChatRunnable
    model: RewardModel
    baseline: ChatPromptTemplate
    budget: _Budget
    journal: _Journal
    concurrency: int
    fixed: list[Demonstration] = field(default_factory=list)
    selector: TaskInputSelector | None = None
    candidates: dict[str, Candidate] = field(default_factory=dict)  # every one tried, by name
    ledger: _Ledger = field(default_factory=_Ledger)
    dropped: dict[str, int] = field(default_factory=dict)  # candidate -> round it was dropped

    # -- the search space ------------------------------------------------------------------------

    def prepare_demonstrations(self, demos: list[Demonstration]) -> None:
        """The fixed set: demonstrations by their own reward, best first; the per-input selector."""
        if not demos:
            return
        groups = np.arange(len(demos))
        prompts, outputs = [d["input"] for d in demos], [d["output"] for d in demos]
        own = self.model.score_by_input(prompts, groups, outputs)
        self.fixed = [demos[i] for i in np.argsort(-own, kind="stable")]
        selector = RewardExampleSelector(examples=list(demos), reward_model=self.model)
        self.selector = TaskInputSelector(selector, self.baseline, k=4)

    def initial_candidates(
        self, demos: list[Demonstration], rng: np.random.Generator, proposals: int
    ) -> list[Candidate]:
        found = [Candidate("baseline")]
        found += [Candidate(f"{k}-shot", shots=k) for k in (2, 4) if len(demos) >= k]
        if len(demos) >= 8:
            found.append(Candidate("4-shot-per-input", shots=4, per_input=True))
        for index in range(proposals if demos else 0):
            name = f"ape-{index + 1}"
            shown = [demos[i] for i in rng.permutation(len(demos))[:5]]
            if not self.can_propose(name):  # too small a budget for more proposals
                break
            instruction = self.propose(name, ape_request(shown))
            if instruction is None or any(c.instruction == instruction for c in found):
                continue  # nothing usable, or an instruction already tried
            found.append(Candidate(name, instruction=instruction))
            if len(demos) >= 8:
                found.append(Candidate(f"{name}+4-per-input", instruction, 4, per_input=True))
        return found

    def rewrite_candidates(self, rewrites: int, keys: list[str]) -> list[Candidate]:
        """OPRO: instructions shown the history of instructions, scores, best and worst outputs.
        None if the budget cannot pay for all `rewrites` proposals."""
        history = sorted(
            (
                (
                    c.instruction or self._baseline_instruction(),
                    self.ledger.mean(c.name, "search", keys),
                )
                for c in self.candidates.values()
                if not c.shots
            ),
            key=lambda item: item[1],
        )
        answers = sorted(self.ledger.all_of("search"), key=lambda answer: answer.reward)
        best = [answer.output for answer in answers[-3:]][::-1]
        worst = [answer.output for answer in answers[:3]]
        found: list[Candidate] = []
        for index in range(rewrites):
            name = f"opro-{index + 1}"
            if not self.can_propose(name):
                return []
            instruction = self.propose(name, opro_request(history, best, worst))
            tried = [c.instruction for c in (*self.candidates.values(), *found)]
            if instruction is not None and instruction not in tried:
                found.append(Candidate(name, instruction=instruction))
        return found

    def can_propose(self, name: str) -> bool:
        return name in self.journal.proposals or self.budget.left() >= 1

    def propose(self, name: str, request: str) -> str | None:
        if name in self.journal.proposals:
            self.budget.spend(1)  # paid for in the run that wrote the journal
            return self.journal.proposals[name]
        reply = self.proposer.invoke(request)
        self.budget.spend(1, _tokens(reply))
        text = render_output(reply)
        instruction = clean_instruction(text)
        if instruction is None:
            logger.warning("proposal %s gave no usable instruction: %r", name, text)
            return None
        self.journal.write_proposal(name, instruction)
        return instruction

    # -- racing ----------------------------------------------------------------------------------

    def race(
        self,
        search: list[dict[str, Any]],
        demos: list[Demonstration],
        rng: np.random.Generator,
        proposals: int,
        rewrites: int,
    ) -> Candidate:
        """The leader of rounds of 4, 8, 16, ... search inputs, racing ending when one candidate
        is left, every input was answered, or the budget cannot pay for the next answers."""
        keys = [_key(values) for values in search]
        alive = self.initial_candidates(demos, rng, proposals)
        self.candidates = {c.name: c for c in alive}
        seen = 0  # every candidate alive answered search[:seen]
        for round_number, upto in enumerate(_round_sizes(len(search)), start=1):
            if not all(self.evaluate(c, "search", search[:upto], keys[:upto]) for c in alive):
                break
            seen = upto
            if round_number == 1 and rewrites and self.budget.left() > len(alive):
                alive += self.race_rewrites(rewrites, search[:seen], keys[:seen])
            alive = self.survivors(alive, keys[:seen], round_number)
            if len(alive) == 1:
                break
        if not seen:  # nothing was compared: the baseline stands
            return self.candidates["baseline"]
        return max(alive, key=lambda c: self.ledger.mean(c.name, "search", keys[:seen]))

    def race_rewrites(
        self, rewrites: int, inputs: list[dict[str, Any]], keys: list[str]
    ) -> list[Candidate]:
        """OPRO rewrites, each answering the inputs the others answered, while the budget lasts."""
        raced = []
        for candidate in self.rewrite_candidates(rewrites, keys):
            self.candidates[candidate.name] = candidate
            if not self.evaluate(candidate, "search", inputs, keys):
                break
            raced.append(candidate)
        return raced

    def survivors(
        self, alive: list[Candidate], keys: list[str], round_number: int
    ) -> list[Candidate]:
        """Drop the clear losers to the leader (paired, 95%), then keep the better half."""
        means = {c.name: self.ledger.mean(c.name, "search", keys) for c in alive}
        leader = max(alive, key=lambda c: means[c.name])
        kept = []
        for candidate in alive:
            diffs = self.ledger.paired(candidate.name, leader.name, "search", keys)
            clear_loser = len(diffs) >= 3 and paired_interval(diffs)[2] < 0
            if candidate is leader or not clear_loser:
                kept.append(candidate)
        kept.sort(key=lambda c: -means[c.name])
        kept = kept[: max(2, math.ceil(len(kept) / 2))] if len(kept) > 2 else kept
        for candidate in alive:
            if candidate not in kept:
                self.dropped[candidate.name] = round_number
        return kept

    def evaluate(
        self, candidate: Candidate, split: Split, inputs: list[dict[str, Any]], keys: list[str]
    ) -> bool:
        """_Answer and score the inputs this candidate has not answered yet, those in the journal
        read back from it; False, asking nothing, if the budget cannot pay for the others."""
        answers = self.ledger.of(candidate.name, split)
        todo = [(v, k) for v, k in zip(inputs, keys, strict=True) if k not in answers]
        resumed = [k for _, k in todo if (candidate.name, split, k) in self.journal.answers]
        for key in resumed:
            answers[key] = self.journal.answers[(candidate.name, split, key)]
        self.budget.spend(len(resumed))
        todo = [(v, k) for v, k in todo if k not in answers]
        if not todo:
            return True
        if len(todo) > self.budget.left():
            return False
        self.ask(candidate, split, todo)
        return True

    def ask(
        self, candidate: Candidate, split: Split, todo: list[tuple[dict[str, Any], str]]
    ) -> None:
        """One call for each input; each answer scored, recorded and journaled."""
        template = build(candidate, self.baseline, self.fixed, self.selector)
        requests: list[LanguageModelInput] = [template.format_messages(**v) for v, _ in todo]
        replies = self.llm.batch(
            requests, {"max_concurrency": self.concurrency}, return_exceptions=True
        )
        self.budget.spend(len(todo), sum(_tokens(r) for r in replies))
        scored: dict[str, _Answer] = {}
        for (values, key), reply in zip(todo, replies, strict=True):
            if isinstance(reply, Exception):  # this input is left out of the comparisons
                logger.warning("%s (%s): a call failed: %s", candidate.name, split, reply)
                continue
            text = render_output(reply)
            scored[key] = _Answer(
                text, float(self.model.score(self._reward_prompt(values), [text])[0])
            )
        self.ledger.of(candidate.name, split).update(scored)
        self.journal.write_answers(candidate.name, split, scored)

    # -- the final check -------------------------------------------------------------------------

    def conclude(self, leader: Candidate, held_back: list[dict[str, Any]]) -> OptimizationResult:
        """The leader and the baseline on the validation inputs: the leader if it wins."""
        baseline = self.candidates["baseline"]
        keys = [_key(v) for v in held_back]
        self.budget.reserve(0)  # the calls kept for this check
        for candidate in [baseline] if leader is baseline else [baseline, leader]:
            if not self.evaluate(candidate, "validation", held_back, keys):
                raise BudgetExhausted(
                    f"max_calls={self.budget.max_calls} is spent before the final check (2 x "
                    f"{len(held_back)} validation inputs): raise it",
                    max_calls=self.budget.max_calls,
                    needed=2 * len(held_back),
                )
        gain = self.ledger.paired(leader.name, "baseline", "validation", keys)
        mean, low, high = paired_interval(gain)
        wins = leader is not baseline and len(gain) >= 2 and low > 0
        chosen = leader if wins else baseline
        check = ValidationReport(
            inputs=len(held_back),
            baseline_mean_reward=self.ledger.mean("baseline", "validation", keys),
            leader_mean_reward=self.ledger.mean(leader.name, "validation", keys),
            paired_gain=float(mean),
            gain_95_interval=(float(low), float(high)),
        )
        report = OptimizationReport(
            verdict=_verdict(leader, wins),
            returned=chosen.name,
            search_leader=leader.name,
            reward_model=self.model.name,
            validation=check,
            calls_used=self.budget.used,
            max_calls=self.budget.max_calls,
            tokens=self.budget.tokens,
            candidates=tuple(self.candidate_report(c) for c in self.candidates.values()),
        )
        prompt = build(chosen, self.baseline, self.fixed, self.selector)
        return OptimizationResult(prompt, report, chosen)

    def candidate_report(self, candidate: Candidate) -> CandidateReport:
        return CandidateReport(
            **candidate.describe(),
            search_inputs=len(self.ledger.rewards(candidate.name, "search")),
            mean_reward=self.ledger.mean(candidate.name, "search"),
            dropped_in_round=self.dropped.get(candidate.name),
        )

    # -- helpers ---------------------------------------------------------------------------------

    def _reward_prompt(self, values: dict[str, Any]) -> str:
        return task_input(self.baseline, values, self.model.card)

    def _baseline_instruction(self) -> str:
        messages = self.baseline.format_messages(**{v: "" for v in self.baseline.input_variables})
        system = next((m for m in messages if m.type == "system"), None)
        return str(system.text) if system else "(no instruction)"


def _round_sizes(total: int) -> Iterator[int]:
    """The search inputs each round answers: 4, 8, 16, ..., the last one `total`."""
    size = FIRST_ROUND
    while size < total:
        yield size
        size *= 2
    yield total


def _verdict(leader: Candidate, wins: bool) -> str:
    if leader.name == "baseline":
        return "the baseline scored best in the search: it is returned"
    if wins:
        return f"{leader.name} beats the baseline on unseen inputs (95% interval > 0)"
    return (
        f"{leader.name} led the search but its gain on unseen inputs has a 95% interval "
        "that includes zero: the baseline is returned"
    )


def _split(
    inputs: list[dict[str, Any]],
    validation: Sequence[dict[str, Any]] | None,
    share: float,
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    _refuse_repeats(inputs, "inputs")
    order = [inputs[i] for i in rng.permutation(len(inputs))]
    if validation is not None:
        _refuse_repeats(list(validation), "validation")
        search, held_back = order, list(validation)
    else:
        count = max(4, round(share * len(order)))
        search, held_back = order[:-count], order[-count:]
    if len(search) < 2 or len(held_back) < 2:
        raise ValueError(
            f"need at least 2 search and 2 validation inputs, got {len(search)} and "
            f"{len(held_back)}: give more inputs"
        )
    overlap = {_key(v) for v in search} & {_key(v) for v in held_back}
    if overlap:
        raise ValueError(f"{len(overlap)} validation inputs are also search inputs")
    return search, held_back


def _refuse_repeats(rows: list[dict[str, Any]], name: str) -> None:
    """A ValueError naming the rows that repeat an earlier row (by index), if any do."""
    first: dict[str, int] = {}
    repeats = []
    for index, values in enumerate(rows):
        earlier = first.setdefault(_key(values), index)
        if earlier != index:
            repeats.append(f"{name}[{index}] repeats {name}[{earlier}]")
    if repeats:
        more = f" and {len(repeats) - 5} more" if len(repeats) > 5 else ""
        raise ValueError(f"duplicate rows: {', '.join(repeats[:5])}{more}: give each input once")


def _key(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)


def _tokens(reply: Any) -> int:
    usage = getattr(reply, "usage_metadata", None)
    return int(usage["total_tokens"]) if usage else 0
