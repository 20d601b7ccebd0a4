"""Token usage of best-of-n: what all candidates really cost."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_usage

from langchain_irl.reward_model.rendering import render_output

logger = logging.getLogger(__name__)


class TokenCounter(Protocol):
    """The inner model's own tokenizer (every LangChain language model has these two)."""

    def get_num_tokens(self, text: str) -> int: ...

    def get_num_tokens_from_messages(self, messages: list[BaseMessage]) -> int: ...


def own_token_counter(model: object) -> TokenCounter | None:
    """The model itself, if it counts tokens its own way. LangChain's fallback (a GPT-2 tokenizer
    fetched from a model hub at first use) would be another model's count, and hangs offline."""
    if not isinstance(model, BaseLanguageModel):
        return None
    kind = type(model)
    if (
        model.custom_get_token_ids is not None
        or kind.get_token_ids is not BaseLanguageModel.get_token_ids
        or kind.get_num_tokens_from_messages is not BaseLanguageModel.get_num_tokens_from_messages
    ):
        return model
    return None


def total_usage(per_request: Sequence[UsageMetadata]) -> UsageMetadata | None:
    """Sum of the usage of each request (a native-n request is counted once, not per choice)."""
    total: UsageMetadata | None = None
    for usage in per_request:
        total = usage if total is None else add_usage(total, usage)
    return total


def counted_usage(
    conversation: list[BaseMessage],
    outputs: Sequence[BaseMessage],
    requests: int,
    counter: TokenCounter,
) -> UsageMetadata | None:
    """Usage counted with the inner model's tokenizer when a response reported none: the prompt
    once per request, every output once. None when the model cannot count (its tokenizer needs a
    download, say): an honest unknown rather than another model's count."""
    try:
        input_tokens = counter.get_num_tokens_from_messages(conversation) * requests
        output_tokens = sum(counter.get_num_tokens(render_output(m)) for m in outputs)
    except Exception as exc:  # tokenizers fail in their own ways (offline vocabularies, ...)
        logger.info("the inner model cannot count tokens (%s): usage unknown", exc)
        return None
    return UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
