"""Collect the base policy's own samples for every demonstration input (the IRL contrast set).

Samples are appended to a JSONL cache as each request returns (flushed and fsync'ed), so a run that
is killed loses at most the requests in flight; run it again and it asks only for what is missing.
A torn last line (a kill mid-write) is cut off on resume. One collector per cache file: the file is
locked (a `.lock` file beside it) while a run writes to it.

Samplers: any LangChain chat model (its own `n` when it has one, else concurrent calls), or any
OpenAI-compatible endpoint through the `openai` client with `n`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout
from langchain_core.messages import (
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
    convert_to_openai_messages,
)
from tqdm.auto import tqdm

from langchain_irl.data.formats import InputValue, input_messages, parse_input
from langchain_irl.data.jsonl import DataFileError, append_records, complete_lines
from langchain_irl.engine.limit import ConcurrencyLimit
from langchain_irl.engine.sampling import (
    ChatModelSampler,
    ChatRunnable,
    chat_model_of,
    has_native_n,
    with_params,
)
from langchain_irl.extras import MissingExtraError

logger = logging.getLogger(__name__)

Sampler = Callable[[InputValue, int], Awaitable[list[str]]]
"""k outputs for an input. A sampler that holds a client has an `aclose` coroutine function."""


async def close_sampler(sampler: Sampler) -> None:
    """Close the client a sampler holds (an `openai_sampler`'s `AsyncOpenAI`), if it has one."""
    aclose = getattr(sampler, "aclose", None)
    if aclose is not None:
        await aclose()


@dataclass(frozen=True)
class CollectReport:
    inputs: int
    already_cached: int
    collected: int
    failed_inputs: list[str]


def chat_model_sampler(
    model: ChatRunnable,
    *,
    system: str | None = None,
    retries: int | None = None,
    concurrency: int = 8,
) -> Sampler:
    """k outputs of a LangChain chat model through the engine's sampler (one request with the
    provider's `n` where it has one, else k calls), each input preceded by the `system`
    instruction if given. At most `concurrency` requests are in flight, over all inputs.
    `retries` sets the model's own `max_retries` (its SDK retries only what is worth retrying:
    timeouts, 408, 409, 429 and 5xx, after the provider's Retry-After)."""
    if retries is not None:
        found = chat_model_of(model)
        if found is not None and "max_retries" in type(found[0]).model_fields:
            model = with_params(model, {"max_retries": retries})
    native = has_native_n(model)
    limit = ConcurrencyLimit()

    async def request(sampler: ChatModelSampler, count: int) -> list[str]:
        async with limit.aheld(concurrency):
            generations, _ = await sampler.asample(count)
        return [generation.text for generation in generations]

    async def sample(value: InputValue, k: int) -> list[str]:
        sampler = ChatModelSampler(model, _as_messages(value, system), native_n=native)
        if native:
            return await request(sampler, k)
        singles = await asyncio.gather(*(request(sampler, 1) for _ in range(k)))
        return [text for texts in singles for text in texts]

    return sample


def openai_sampler(
    model: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    system: str | None = None,
    retries: int = 4,
    **params: Any,
) -> Sampler:
    """k outputs from an OpenAI-compatible endpoint with `n=k` (base URL and key default to the
    OPENAI_BASE_URL and OPENAI_API_KEY environment variables). The client retries what is worth
    retrying (timeouts, 408, 409, 429, 5xx), honouring Retry-After, up to `retries` times."""
    try:
        import openai
    except ImportError as exc:
        raise MissingExtraError("collecting from an OpenAI-compatible endpoint", "cli") from exc

    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=retries)

    async def sample(value: InputValue, k: int) -> list[str]:
        response = await client.chat.completions.create(
            model=model,
            messages=convert_to_openai_messages(_as_messages(value, system)),  # type: ignore[arg-type]
            n=k,
            **params,
        )
        return [choice.message.content or "" for choice in response.choices]

    sample.aclose = client.close  # type: ignore[attr-defined]  # see `close_sampler`
    return sample


async def collect(
    inputs: Sequence[InputValue],
    k: int,
    cache: Path,
    sampler: Sampler,
    *,
    concurrency: int = 8,
) -> CollectReport:
    """Make sure `cache` holds k samples for every input; request only what is missing.

    An input whose request fails (after the sampler's own retries) is reported in
    `failed_inputs`; run again to ask for what is still missing.
    """
    if k < 1:
        raise ValueError(f"k (samples per input) must be at least 1, got {k}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    unique = list(dict.fromkeys(inputs))
    if not unique:
        raise ValueError("no inputs to collect samples for")
    cache.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{cache}.lock", blocking=False)
    try:
        lock.acquire()
    except Timeout as exc:
        raise RuntimeError(f"{cache}: another collect run is writing to it") from exc
    try:
        return await _fill(unique, k, cache, sampler, concurrency)
    finally:
        lock.release()


async def _fill(
    unique: list[InputValue], k: int, cache: Path, sampler: Sampler, concurrency: int
) -> CollectReport:
    with cache.open("a+b") as handle:
        have = _read_counts(handle, cache)
        missing = {
            value: k - have[sample_key(value)] for value in unique if have[sample_key(value)] < k
        }
        already = sum(min(have[sample_key(value)], k) for value in unique)
        semaphore = asyncio.Semaphore(concurrency)
        failed: list[str] = []
        progress = tqdm(total=len(unique) * k, initial=already, desc="collecting", unit="sample")

        async def fill(value: InputValue, needed: int) -> int:
            async with semaphore:
                try:
                    outputs = (await sampler(value, needed))[:needed]
                except Exception as error:  # provider errors have no common base class
                    logger.warning("an input failed (run again to resume): %s", error)
                    failed.append(sample_key(value))
                    return 0
            append_records(
                handle, [{"input": input_messages(value), "output": text} for text in outputs]
            )
            progress.update(len(outputs))
            return len(outputs)

        collected = sum(await asyncio.gather(*(fill(v, n) for v, n in missing.items())))
        progress.close()
    return CollectReport(len(unique), already, collected, failed)


def _read_counts(handle: IO[bytes], cache: Path) -> Counter[str]:
    """Samples per input already in the cache; a torn last line is cut off."""
    counts: Counter[str] = Counter()
    lines = complete_lines(handle, cache, repair=True).decode("utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            counts[sample_key(parse_input(record["input"]))] += 1
        except (ValueError, KeyError, TypeError) as exc:
            raise DataFileError(f"{cache}:{number}: not a sample record ({exc})") from exc
    return counts


def sample_key(value: InputValue) -> str:
    """An input as a canonical string: the same input always gives the same key."""
    return json.dumps(input_messages(value), sort_keys=True, ensure_ascii=False)


def _as_messages(value: InputValue, system: str | None = None) -> list[BaseMessage]:
    """An input as chat messages, after the `system` instruction (unless it has its own)."""
    messages = input_messages(value)
    converted: list[BaseMessage] = (
        [HumanMessage(messages)] if isinstance(messages, str) else convert_to_messages(messages)
    )
    if system and not any(m.type == "system" for m in converted):
        converted.insert(0, SystemMessage(system))
    return converted
