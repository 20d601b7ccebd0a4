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
   clear of zero, else the baseline is, and the report says so.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
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
from langchain_irl.reward_model.model import RewardModel
from langchain_irl.reward_model.rendering import render_output

logger = logging.getLogger(__name__)
ChatRunnable = Runnable[Any, BaseMessage] | BaseChatModel
FIRST_ROUND = 4  # search inputs in the first round; each later round doubles them


class BudgetExhausted(RuntimeError):
    """`max_calls` is spent."""


@dataclass
class OptimizationResult:
    """The prompt to use (the chosen one, or the baseline), and how it was chosen."""

    prompt: ChatPromptTemplate
    report: dict[str, Any]
    candidate: Candidate

    def save(self, path: str | Path) -> Path:
        """The prompt as JSON (see `optimize.storage`)."""
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
    a held-back `validation_share` of them) is used only for the final check."""
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
    if 2 * len(held_back) >= max_calls:
        raise ValueError(
            f"max_calls={max_calls} does not cover the final check alone (2 x "
            f"{len(held_back)} validation inputs): raise it or give fewer validation inputs"
        )
    run.budget.reserve(2 * len(held_back))
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
    reserved: int = 0
    tokens: int = 0
    bar: Any = None

    def __post_init__(self) -> None:
        self.bar = tqdm(
            total=self.max_calls, desc="optimizing the prompt", unit="call", disable=not self.show
        )

    def reserve(self, calls: int) -> None:
        self.reserved = calls

    def left(self, *, reserved: bool = False) -> int:
        return self.max_calls - self.used - (0 if reserved else self.reserved)

    def spend(self, calls: int, tokens: int = 0) -> None:
        self.used += calls
        self.tokens += tokens
        self.bar.update(calls)

    def close(self) -> None:
        self.bar.close()


class _Journal:
    """Proposals and scored answers appended to a JSONL file as they come; read back to resume."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.proposals: dict[str, str] = {}
        self.scores: dict[tuple[str, str], tuple[str, float]] = {}
        if path is None or not path.exists():
            return
        with path.open("r+b") as handle:  # a torn last line (a kill mid-write) is cut off
            text = complete_lines(handle, path, repair=True).decode("utf-8")
        for line in text.splitlines():
            record = json.loads(line)
            if record["kind"] == "proposal":
                self.proposals[record["name"]] = record["instruction"]
            else:
                key = (record["candidate"], record["input"])
                self.scores[key] = (record["output"], float(record["reward"]))

    def write(self, records: list[dict[str, Any]]) -> None:
        if self.path is None or not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            append_records(handle, records)


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
    candidates: dict[str, Candidate] = field(default_factory=dict)
    rewards: dict[str, dict[str, float]] = field(default_factory=dict)  # candidate -> input key
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # candidate -> round it was dropped
    asked: dict[str, set[str]] = field(default_factory=dict)  # candidate -> inputs it answered

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
            try:
                instruction = self.propose(name, ape_request(shown))
            except BudgetExhausted:  # too small a budget for more proposals
                break
            if instruction is None or any(c.instruction == instruction for c in found):
                continue  # nothing usable, or an instruction already tried
            found.append(Candidate(name, instruction=instruction))
            if len(demos) >= 8:
                found.append(Candidate(f"{name}+4-per-input", instruction, 4, per_input=True))
        return found

    def rewrite_candidates(self, rewrites: int, keys: list[str]) -> list[Candidate]:
        """OPRO: instructions shown the history of instructions, scores, best and worst outputs."""
        history = sorted(
            (
                (c.instruction or self._baseline_instruction(), self._mean(c.name, keys))
                for c in self.candidates.values()
                if not c.shots
            ),
            key=lambda item: item[1],
        )
        pairs = [
            (reward, self.outputs[name][key])
            for name, by_input in self.rewards.items()
            for key, reward in by_input.items()
        ]
        pairs.sort(key=lambda pair: pair[0])
        best = [text for _, text in pairs[-3:]][::-1]
        worst = [text for _, text in pairs[:3]]
        found = []
        for index in range(rewrites):
            name = f"opro-{index + 1}"
            instruction = self.propose(name, opro_request(history, best, worst))
            tried = [c.instruction for c in (*self.candidates.values(), *found)]
            if instruction is not None and instruction not in tried:
                found.append(Candidate(name, instruction=instruction))
        return found

    def propose(self, name: str, request: str) -> str | None:
        if name in self.journal.proposals:
            self.budget.spend(1)  # paid for in the run that wrote the journal
            return self.journal.proposals[name]
        self._need(1)
        reply = self.proposer.invoke(request)
        self.budget.spend(1, _tokens(reply))
        instruction = clean_instruction(render_output(reply))
        if instruction is None:
            logger.warning("proposal %s gave no usable instruction: %r", name, reply)
            return None
        self.journal.write([{"kind": "proposal", "name": name, "instruction": instruction}])
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
        keys = [_key(values) for values in search]
        alive = self.initial_candidates(demos, rng, proposals)
        self.candidates = {c.name: c for c in alive}
        seen = 0
        for round_number in range(1, 64):
            upto = min(len(search), FIRST_ROUND * 2 ** (round_number - 1))
            try:
                for candidate in alive:
                    self.evaluate(candidate, search[:upto], keys[:upto])
            except BudgetExhausted:  # the candidates that answered every input so far stay
                asked = self.asked
                alive = [c for c in alive if set(keys[:seen]) <= asked.get(c.name, set())]
                break
            seen = upto
            if round_number == 1 and rewrites and self.budget.left() > len(alive):
                try:
                    for candidate in self.rewrite_candidates(rewrites, keys[:seen]):
                        self.candidates[candidate.name] = candidate
                        self.evaluate(candidate, search[:seen], keys[:seen])
                        alive.append(candidate)
                except BudgetExhausted:
                    pass
            alive = self.survivors(alive, keys[:seen], round_number)
            if len(alive) == 1 or seen == len(search):
                break
        if not alive:  # nothing was compared: the baseline stands
            return self.candidates["baseline"]
        return max(alive, key=lambda c: self._mean(c.name, keys[:seen]))

    def survivors(
        self, alive: list[Candidate], keys: list[str], round_number: int
    ) -> list[Candidate]:
        """Drop the clear losers to the leader (paired, 95%), then keep the better half."""
        means = {c.name: self._mean(c.name, keys) for c in alive}
        leader = max(alive, key=lambda c: means[c.name])
        kept = []
        for candidate in alive:
            diffs = self._paired(candidate.name, leader.name, keys)
            clear_loser = len(diffs) >= 3 and paired_interval(diffs)[2] < 0
            if candidate is leader or not clear_loser:
                kept.append(candidate)
        kept.sort(key=lambda c: -means[c.name])
        kept = kept[: max(2, math.ceil(len(kept) / 2))] if len(kept) > 2 else kept
        for candidate in alive:
            if candidate not in kept:
                self.dropped[candidate.name] = round_number
        return kept

    def evaluate(self, candidate: Candidate, inputs: list[dict[str, Any]], keys: list[str]) -> None:
        """Answer and score the inputs this candidate has not answered yet."""
        scored = self.rewards.setdefault(candidate.name, {})
        texts = self.outputs.setdefault(candidate.name, {})
        todo = [
            (values, key) for values, key in zip(inputs, keys, strict=True) if key not in scored
        ]
        resumed = [(v, k) for v, k in todo if (candidate.name, k) in self.journal.scores]
        for _, key in resumed:
            texts[key], scored[key] = self.journal.scores[(candidate.name, key)]
        self.budget.spend(len(resumed))
        self.asked.setdefault(candidate.name, set()).update(k for k in keys if k in scored)
        todo = [(v, k) for v, k in todo if k not in scored]
        if not todo:
            return
        if self.budget.left() < len(todo):
            raise BudgetExhausted
        template = build(candidate, self.baseline, self.fixed, self.selector)
        requests = [template.format_messages(**values) for values, _ in todo]
        replies = self.llm.batch(
            requests, {"max_concurrency": self.concurrency}, return_exceptions=True
        )
        self.budget.spend(len(todo), sum(_tokens(r) for r in replies))
        self.asked.setdefault(candidate.name, set()).update(key for _, key in todo)
        records = []
        for (values, key), reply in zip(todo, replies, strict=True):
            if isinstance(reply, Exception):  # this input is left out of the comparisons
                logger.warning("%s: a call failed: %s", candidate.name, reply)
                continue
            text = render_output(reply)
            reward = float(self.model.score(self._reward_prompt(values), [text])[0])
            texts[key], scored[key] = text, reward
            record = {"candidate": candidate.name, "input": key, "output": text, "reward": reward}
            records.append({"kind": "sample", **record})
        self.journal.write(records)

    # -- the final check -------------------------------------------------------------------------

    def conclude(self, leader: Candidate, held_back: list[dict[str, Any]]) -> OptimizationResult:
        baseline = self.candidates["baseline"]
        validation_keys = [f"validation:{_key(v)}" for v in held_back]
        finalists = [baseline] if leader is baseline else [baseline, leader]
        self.budget.reserve(0)  # the calls kept for this check
        for candidate in finalists:
            name = f"{candidate.name}@validation"
            self.candidates.setdefault(name, candidate)
            self.evaluate(_renamed(candidate, name), held_back, validation_keys)
        gain = self._paired(f"{leader.name}@validation", "baseline@validation", validation_keys)
        mean, low, high = paired_interval(gain)
        wins = leader is not baseline and len(gain) >= 2 and low > 0
        chosen = leader if wins else baseline
        if leader is baseline:
            verdict = "the baseline scored best in the search: it is returned"
        elif wins:
            verdict = f"{leader.name} beats the baseline on unseen inputs (95% interval > 0)"
        else:
            verdict = (
                f"{leader.name} led the search but its gain on unseen inputs has a 95% interval "
                "that includes zero: the baseline is returned"
            )
        report = {
            "verdict": verdict,
            "returned": chosen.name,
            "search_leader": leader.name,
            "reward_model": self.model.name,
            "reward_reads": "the task input as the baseline prompt renders it",
            "validation": {
                "inputs": len(held_back),
                "baseline_mean_reward": self._mean("baseline@validation", validation_keys),
                "leader_mean_reward": self._mean(f"{leader.name}@validation", validation_keys),
                "paired_gain": float(mean),
                "gain_95_interval": [float(low), float(high)],
            },
            "calls": {"used": self.budget.used, "max_calls": self.budget.max_calls},
            "tokens": self.budget.tokens,
            "candidates": [
                {
                    **candidate.describe(),
                    "search_inputs": len(self.rewards.get(name, {})),
                    "mean_reward": self._mean(name, list(self.rewards.get(name, {}))),
                    "dropped_in_round": self.dropped.get(name),
                }
                for name, candidate in self.candidates.items()
                if not name.endswith("@validation")
            ],
        }
        prompt = build(chosen, self.baseline, self.fixed, self.selector)
        return OptimizationResult(prompt, report, chosen)

    # -- helpers ---------------------------------------------------------------------------------

    def _reward_prompt(self, values: dict[str, Any]) -> str:
        return task_input(self.baseline, values, self.model.card)

    def _baseline_instruction(self) -> str:
        messages = self.baseline.format_messages(**{v: "" for v in self.baseline.input_variables})
        system = next((m for m in messages if m.type == "system"), None)
        return str(system.text) if system else "(no instruction)"

    def _mean(self, name: str, keys: list[str]) -> float:
        values = [self.rewards.get(name, {}).get(k) for k in keys]
        present = [v for v in values if v is not None]
        return float(np.mean(present)) if present else float("-inf")

    def _paired(self, name: str, other: str, keys: list[str]) -> list[float]:
        mine, theirs = self.rewards.get(name, {}), self.rewards.get(other, {})
        return [mine[k] - theirs[k] for k in keys if k in mine and k in theirs]

    def _need(self, calls: int) -> None:
        if self.budget.left() < calls:
            raise BudgetExhausted


def _split(
    inputs: list[dict[str, Any]],
    validation: Sequence[dict[str, Any]] | None,
    share: float,
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    order = [inputs[i] for i in rng.permutation(len(inputs))]
    if validation is not None:
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


def _key(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)


def _renamed(candidate: Candidate, name: str) -> Candidate:
    return Candidate(name, candidate.instruction, candidate.shots, candidate.per_input)


def _tokens(reply: Any) -> int:
    usage = getattr(reply, "usage_metadata", None)
    return int(usage["total_tokens"]) if usage else 0
