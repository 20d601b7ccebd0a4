"""Optimized prompts as JSON: langchain-core's own serialization, loaded back as a
ChatPromptTemplate.

Instructions and a fixed set of demonstrations are literal messages of the template, so
`langchain_core.load` reads the file back as it is. Demonstrations chosen per input by the reward
are an example selector, which langchain-core does not serialize: the file then also holds the
demonstrations and the reward model's name, and `load_prompt` rebuilds the selector (give it the
reward model if the name is not a bundled model or a folder it can find). The optimization report
is kept beside the prompt in its JSON form (`OptimizationReport.to_dict`); `load_report` reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.load import dumpd, load
from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate

from langchain_irl.example_selectors.reward import RewardExampleSelector
from langchain_irl.optimize.candidates import EXAMPLE_PROMPT, TaskInputSelector
from langchain_irl.optimize.report import OptimizationReport
from langchain_irl.reward_model.model import RewardModel

FORMAT = "langchain-irl/optimized-prompt@1"


def save_prompt(
    prompt: ChatPromptTemplate,
    path: str | Path,
    *,
    report: OptimizationReport | dict[str, Any] | None = None,
) -> Path:
    """Write `prompt` (and the optimization `report`, if given) as JSON; returns the path."""
    messages: list[Any] = []
    selection = None
    for position, message in enumerate(prompt.messages):
        if isinstance(message, FewShotChatMessagePromptTemplate):
            if not isinstance(message.example_selector, TaskInputSelector):
                raise TypeError("only demonstrations chosen by optimize_prompt can be saved")
            selector = message.example_selector
            selection = {
                "position": position,
                "k": selector.k,
                "reward_model": selector.selector.reward_model.name,
                "examples": selector.selector.examples,
            }
        else:
            messages.append(message)
    document = {
        "format": FORMAT,
        "prompt": dumpd(ChatPromptTemplate.from_messages(messages)),
        "baseline": dumpd(_baseline_of(prompt)) if selection else None,
        "per_input_demonstrations": selection,
        "report": report.to_dict() if isinstance(report, OptimizationReport) else report,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return target


def load_prompt(
    path: str | Path, *, reward_model: RewardModel | str | Path | None = None
) -> ChatPromptTemplate:
    """A prompt saved by `save_prompt` (or any ChatPromptTemplate that `dumpd` wrote)."""
    source = Path(path)
    document = _read(source)
    serialized = document.get("prompt", document) if isinstance(document, dict) else document
    prompt = _load_template(serialized, source)
    selection = document.get("per_input_demonstrations") if "format" in document else None
    if not selection:
        return prompt
    model = RewardModel.of(reward_model or selection["reward_model"])
    baseline = _load_template(document["baseline"], source)
    selector = RewardExampleSelector(examples=selection["examples"], reward_model=model)
    examples = FewShotChatMessagePromptTemplate(
        example_selector=TaskInputSelector(selector, baseline, k=selection["k"]),
        example_prompt=EXAMPLE_PROMPT,
        input_variables=list(prompt.input_variables),
    )
    messages = list(prompt.messages)
    messages.insert(selection["position"], examples)
    return ChatPromptTemplate.from_messages(messages)


def load_report(path: str | Path) -> OptimizationReport | None:
    """The optimization report saved with a prompt (None: the file holds none)."""
    document = _read(Path(path))
    report = document.get("report") if isinstance(document, dict) else None
    return OptimizationReport.from_dict(report) if report else None


def _read(source: Path) -> Any:
    try:
        return json.loads(source.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{source}: not a saved prompt ({exc})") from exc


def _load_template(serialized: Any, source: Path) -> ChatPromptTemplate:
    loaded = load(serialized, allowed_objects="core")
    if not isinstance(loaded, ChatPromptTemplate):
        raise ValueError(f"{source}: holds a {type(loaded).__name__}, not a ChatPromptTemplate")
    return loaded


def _baseline_of(prompt: ChatPromptTemplate) -> ChatPromptTemplate:
    """The baseline the per-input selector reads the task input from: kept in the selector."""
    for message in prompt.messages:
        if isinstance(message, FewShotChatMessagePromptTemplate):
            selector = message.example_selector
            if isinstance(selector, TaskInputSelector):
                return selector.baseline
    return prompt
