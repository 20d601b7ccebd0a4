"""Token usage of best-of-n: what all candidates really cost."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

from langchain_core.messages.ai import UsageMetadata, add_usage

logger = logging.getLogger(__name__)


@functools.cache
def tiktoken_counter() -> Callable[[str], int] | None:
    """tiktoken's cl100k_base counter, or None where its vocabulary cannot be had (offline, no
    cache): tiktoken downloads vocabularies on first use."""
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base")
    except Exception as exc:  # no network and no TIKTOKEN_CACHE_DIR: any error of the download
        logger.info("tiktoken vocabulary unavailable (%s); counting with the reward tokenizer", exc)
        return None
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def total_usage(per_request: Sequence[UsageMetadata]) -> UsageMetadata | None:
    """Sum of the usage of each request (a native-n request is counted once, not per choice)."""
    total: UsageMetadata | None = None
    for usage in per_request:
        total = usage if total is None else add_usage(total, usage)
    return total


def estimated_usage(
    prompt: str, outputs: Sequence[str], requests: int, fallback: Callable[[str], int]
) -> tuple[UsageMetadata, str]:
    """Usage counted locally when the inner model reports none: the prompt once per request,
    every output once. Returns the usage and the name of the counter used."""
    counter = tiktoken_counter()
    name = "tiktoken:cl100k_base"
    if counter is None:
        counter, name = fallback, "reward-model-tokenizer"
    input_tokens = counter(prompt) * requests
    output_tokens = sum(counter(text) for text in outputs)
    usage = UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
    return usage, name
