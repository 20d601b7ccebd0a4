"""The prompts the search tries: an instruction, few-shot demonstrations, or both, on the baseline.

A candidate never changes the task input: the baseline's own messages stay as they are, and the
candidate only replaces the system instruction and inserts demonstrations before them. What the
reward reads is rendered from the baseline, so the search cannot game the reward through the
prompt (see `search.py`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.example_selectors import BaseExampleSelector
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import (
    ChatPromptTemplate,
    FewShotChatMessagePromptTemplate,
    SystemMessagePromptTemplate,
)

from langchain_irl.example_selectors.reward import RewardExampleSelector
from langchain_irl.reward_model.rendering import render_prompt

Demonstration = dict[str, str]  # {"input": ..., "output": ...}
EXAMPLE_PROMPT = ChatPromptTemplate.from_messages([("human", "{input}"), ("ai", "{output}")])


@dataclass(frozen=True)
class Candidate:
    """One prompt of the search space, described by what it changes on the baseline."""

    name: str
    instruction: str | None = None
    """The system instruction (None: the baseline's own)."""
    shots: int = 0
    """Demonstrations shown before the task."""
    per_input: bool = False
    """Demonstrations chosen for each input by the reward (`RewardExampleSelector`), else a
    fixed set: the best-rewarded demonstrations."""

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "instruction": self.instruction,
            "shots": self.shots,
            "per_input": self.per_input,
        }


def build(
    candidate: Candidate,
    baseline: ChatPromptTemplate,
    fixed_demonstrations: Sequence[Demonstration],
    selector: BaseExampleSelector | None,
) -> ChatPromptTemplate:
    """The candidate as a ChatPromptTemplate with the baseline's input variables."""
    messages: list[Any] = list(baseline.messages)
    system_at = next(
        (i for i, m in enumerate(messages) if isinstance(m, SystemMessagePromptTemplate)), None
    )
    if candidate.instruction is not None:  # a literal message: an instruction's braces are text
        instruction = SystemMessage(candidate.instruction)
        if system_at is None:
            messages.insert(0, instruction)
            system_at = 0
        else:
            messages[system_at] = instruction
    insert_at = 0 if system_at is None else system_at + 1
    if candidate.shots and candidate.per_input:
        assert selector is not None, "per-input demonstrations need a selector"
        examples = FewShotChatMessagePromptTemplate(
            example_selector=selector,
            example_prompt=EXAMPLE_PROMPT,
            input_variables=list(baseline.input_variables),
        )
        messages[insert_at:insert_at] = [examples]
    elif candidate.shots:
        shown = fixed_demonstrations[: candidate.shots]
        pairs = [[HumanMessage(d["input"]), AIMessage(d["output"])] for d in shown]
        messages[insert_at:insert_at] = [m for pair in pairs for m in pair]
    return ChatPromptTemplate.from_messages(messages)


class TaskInputSelector(BaseExampleSelector):
    """`RewardExampleSelector` keyed by the task input: the baseline prompt's messages for the
    input's variables, rendered as the reward model reads them."""

    def __init__(self, selector: RewardExampleSelector, baseline: ChatPromptTemplate, k: int):
        self.selector, self.baseline, self.k = selector, baseline, k

    def add_example(self, example: dict[str, str]) -> Any:
        return self.selector.add_example(example)

    def select_examples(self, input_variables: dict[str, Any]) -> list[dict]:
        query = task_input(self.baseline, input_variables, self.selector.reward_model.card)
        return [example for example, _ in self.selector.pick(query, self.k)]


def task_input(baseline: ChatPromptTemplate, variables: dict[str, Any], card: Any) -> str:
    """What the reward reads of an input: the baseline's messages by the card's rule."""
    return render_prompt(baseline.format_messages(**variables), card.prompt_format)


APE_TEMPLATE = """Here are inputs and the outputs a person wants for them.

{examples}

Write the instruction that would make an assistant produce outputs like these for new inputs.
Reply with the instruction only, in one or two sentences."""

OPRO_TEMPLATE = """An assistant was given an instruction and then one input. Here are instructions
tried so far with their scores (higher is better):

{history}

Outputs that scored best:
{best}

Outputs that scored worst:
{worst}

Write a new instruction that would score higher than all of these. Reply with the instruction
only, in one or two sentences."""


def ape_request(demonstrations: Sequence[Demonstration]) -> str:
    examples = "\n\n".join(f"Input: {d['input']}\nOutput: {d['output']}" for d in demonstrations)
    return APE_TEMPLATE.format(examples=examples)


def opro_request(
    history: Sequence[tuple[str, float]], best: Sequence[str], worst: Sequence[str]
) -> str:
    return OPRO_TEMPLATE.format(
        history="\n".join(f"{score:+.3f}  {text}" for text, score in history),
        best="\n".join(f"- {text}" for text in best),
        worst="\n".join(f"- {text}" for text in worst),
    )


def clean_instruction(text: str) -> str | None:
    """A proposer's reply as one instruction: its first non-empty line, without a label or
    quotes; None if nothing usable is left."""
    for line in text.strip().splitlines():
        line = re.sub(r"^(instruction|new instruction)\s*:\s*", "", line.strip(), flags=re.I)
        line = line.strip().strip("\"'`").strip()
        if len(line) >= 8:
            return line[:500]
    return None
