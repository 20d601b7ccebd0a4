"""`RewardExampleSelector`: the few-shot demonstrations most worth showing for a new input.

LangChain's own selectors rank demonstrations by similarity, length or n-gram overlap; none knows
which demonstrations are *good*. This one ranks by relevance *and* by the learned reward of each
demonstration's output for the new input (see `index.py`), with LangChain's vocabulary:
`input_keys`, `example_keys`, `k`, `fetch_k`, `lambda_mult`, `from_examples`.

Demonstration embeddings are computed once (and for each `add_example`), not per query. The
examples list is copy-on-write: `add_example` gives this selector a new list (the caller's list is
never changed), so a `model_copy` never sees examples that its index does not hold.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.example_selectors import BaseExampleSelector
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from langchain_irl.data.formats import read_examples
from langchain_irl.example_selectors.index import DemoIndex, RankedDemo, rank
from langchain_irl.reward_model.model import RewardModel


class RewardExampleSelector(BaseExampleSelector, BaseModel):
    """Select the k demonstrations most worth showing for an input: relevant *and* good.

    Each demonstration is ranked by `relevance_weight` x its similarity to the input plus
    `reward_weight` x its reward under the learned reward model (normalised), with optional
    maximal marginal relevance for variety. A LangChain example selector: it plugs into
    `FewShotPromptTemplate` and `FewShotChatMessagePromptTemplate`.

    **Setup**

    ```bash
    pip install langchain-irl
    ```

    **Instantiate**

    ```python
    from langchain_irl import RewardExampleSelector, RewardModel

    selector = RewardExampleSelector.from_examples(
        [{"input": "A cat chairs a board meeting.", "output": "Any other business? Meow."},
         {"input": "A dog in a suit at a bank.", "output": "I'd like a loan for a bone."}],
        RewardModel.load("caption-humor"),
        k=1,
    )
    # or RewardExampleSelector.from_jsonl("demos.jsonl", reward_model, k=4)
    ```

    **Select**

    ```python
    selector.select_examples({"input": "A chef and a smoking pot."})
    await selector.aselect_examples({"input": "A chef and a smoking pot."})
    selector.pick("A chef and a smoking pot.", k=2)  # with each one's reward and relevance
    ```

    **In a prompt**

    ```python
    from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate

    prompt = FewShotPromptTemplate(
        example_selector=selector,
        example_prompt=PromptTemplate.from_template("Input: {input}\nOutput: {output}"),
        suffix="Input: {input}\nOutput:",
        input_variables=["input"],
    )
    ```

    `add_example` (and `aadd_example`) may run while other threads select: a query always sees
    one consistent list of examples and its index.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, use_attribute_docstrings=True)

    examples: list[dict[str, Any]] = Field(min_length=1)
    """Demonstrations as dicts: `input_keys` name their input, `output_key` their output."""
    reward_model: RewardModel = Field(exclude=True)
    """The learned reward that scores each demonstration's output for its own input: a
    `RewardModel`, or a bundled model's name or a folder to load one from."""
    k: int = Field(default=4, ge=1)
    """How many demonstrations to select."""
    input_keys: list[str] = Field(default_factory=lambda: ["input"], min_length=1)
    """The keys that hold the input, in the examples and in the input variables of a query
    (several are joined with spaces, as LangChain's selectors do). A value may be chat messages:
    it is rendered by the reward model's card rule, for examples and queries alike."""
    output_key: str = "output"
    """The key of each example's output: the text the reward scores."""
    example_keys: list[str] | None = None
    """If set, selected examples are returned with only these keys."""
    relevance_weight: float = 1.0
    """Weight of a demonstration input's similarity to the new input (standardised over the
    candidates)."""
    reward_weight: float = 1.0
    """Weight of a demonstration's reward (standardised over the candidates)."""
    fetch_k: int = Field(default=20, ge=1)
    """How many of the best-scoring demonstrations maximal marginal relevance chooses among."""
    lambda_mult: float = Field(default=1.0, ge=0.0, le=1.0)
    """1: rank by score alone; towards 0: prefer demonstrations unlike those already picked."""

    _indexed: tuple[list[dict[str, Any]], DemoIndex] | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _adding: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("reward_model", mode="before")
    @classmethod
    def _load_reward_model(cls, value: Any) -> Any:
        return RewardModel.of(value) if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _embed_examples(self) -> RewardExampleSelector:
        _ = self._index  # embed now: bad examples fail here, not at the first query
        return self

    @classmethod
    def from_examples(
        cls,
        examples: list[dict[str, Any]],
        reward_model: RewardModel,
        k: int = 4,
        input_keys: list[str] | None = None,
        *,
        example_keys: list[str] | None = None,
        **kwargs: Any,
    ) -> RewardExampleSelector:
        """LangChain's constructor shape (`SemanticSimilarityExampleSelector.from_examples`)."""
        if input_keys is not None:
            kwargs["input_keys"] = input_keys
        return cls(
            examples=examples,
            reward_model=reward_model,
            k=k,
            example_keys=example_keys,
            **kwargs,
        )

    @classmethod
    def from_jsonl(
        cls, path: str | Path, reward_model: RewardModel | str | Path, **kwargs: Any
    ) -> Any:
        """Demonstrations from a JSONL file in the training format (`{"input", "output"}`)."""
        reward_model = RewardModel.of(reward_model)
        examples = [
            {"input": example.prompt(reward_model.card.prompt_format), "output": example.output}
            for example in read_examples(path)
        ]
        return cls(examples=examples, reward_model=reward_model, **kwargs)

    def _snapshot(self) -> tuple[list[dict[str, Any]], DemoIndex]:
        """The examples and their index, taken together: a query never sees an example list and
        an index of another (an `add_example` in another thread), nor a half-added example."""
        with self._lock:
            examples, indexed = self.examples, self._indexed
        if indexed is not None and indexed[0] is examples:
            return indexed
        index = DemoIndex.build(self.reward_model, *self._texts(examples))  # the list was replaced
        with self._lock:
            if self.examples is examples:
                self._indexed = (examples, index)
        return examples, index

    @property
    def _index(self) -> DemoIndex:
        return self._snapshot()[1]

    def add_example(self, example: dict[str, Any]) -> None:
        added = DemoIndex.build(self.reward_model, *self._texts([example]))
        with self._adding:  # adds one at a time, so that none is lost
            examples, index = self._snapshot()
            extended = [*examples, example]
            with self._lock:
                self.examples = extended
                self._indexed = (extended, index.extended(added))

    async def aadd_example(self, example: dict[str, Any]) -> None:
        await asyncio.to_thread(self.add_example, example)

    def select_examples(self, input_variables: dict[str, Any]) -> list[dict]:
        """The k best demonstrations for the input in `input_variables` (its `input_keys`)."""
        if not isinstance(input_variables, dict):
            raise TypeError(
                f"select_examples takes the prompt's input variables as a dict (keys "
                f"{self.input_keys}), got {type(input_variables).__name__}"
            )
        missing = [key for key in self.input_keys if key not in input_variables]
        if missing:
            raise KeyError(
                f"input variables {sorted(input_variables)} lack {missing}; set input_keys to the "
                "variables that hold the new input"
            )
        query = self._render({key: input_variables[key] for key in self.input_keys}, "query")
        picked = [example for example, _ in self.pick(query)]
        if self.example_keys is None:
            return picked
        return [{key: example[key] for key in self.example_keys} for example in picked]

    async def aselect_examples(self, input_variables: dict[str, Any]) -> list[dict]:
        return await asyncio.to_thread(self.select_examples, input_variables)

    def pick(self, query: str, k: int | None = None) -> list[tuple[dict[str, Any], RankedDemo]]:
        """The top k demonstrations for a rendered `query`, best first (fewer if fewer): each
        example with its ranking (scores, index), from one consistent snapshot."""
        k = self.k if k is None else k
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        examples, index = self._snapshot()
        ranked = rank(
            index,
            self.reward_model,
            query,
            k,
            relevance_weight=self.relevance_weight,
            reward_weight=self.reward_weight,
            fetch_k=self.fetch_k,
            lambda_mult=self.lambda_mult,
        )
        return [(examples[demo.index], demo) for demo in ranked]

    def rank(self, query: str, k: int | None = None) -> list[RankedDemo]:
        """The rankings of `pick`, without the examples."""
        return [demo for _, demo in self.pick(query, k)]

    def input_text(self, example: dict[str, Any]) -> str:
        """An example's input as the reward model reads it."""
        return self._render(example, "example")

    def _render(self, values: dict[str, Any], what: str) -> str:
        parts = []
        for key in self.input_keys:
            value = values[key]
            if not isinstance(value, str | list | tuple):
                raise TypeError(
                    f"{what} {key!r} must be a string or chat messages, got {type(value).__name__}"
                )
            parts.append(self.reward_model.render(value))  # messages: by the card's rule
        return " ".join(parts)

    def _texts(self, examples: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
        inputs, outputs = [], []
        for position, example in enumerate(examples):
            for key in (*self.input_keys, self.output_key):
                if key not in example:
                    raise KeyError(
                        f"example {position} has no {key!r} key (keys: {sorted(example)}); "
                        "set input_keys/output_key to the names your examples use"
                    )
            inputs.append(self.input_text(example))
            outputs.append(str(example[self.output_key]))
        return inputs, outputs
