"""Collect the base policy's own samples for every demonstration input (the IRL contrast set).

Samples are appended to a JSONL cache as each request returns (flushed and fsync'ed), so a run that
is killed loses at most the requests in flight; run it again and it asks only for what is missing.
A torn last line (a kill mid-write) is cut off on resume. One collector per cache file: the file is
locked while a run writes to it.

Samplers: any LangChain chat model (its own `n` when it has one, else concurrent calls), or any
OpenAI-compatible endpoint through the `openai` client with `n`.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages
from tqdm.auto import tqdm

from langchain_irl.data import InputValue, input_messages, parse_input

logger = logging.getLogger(__name__)

Sampler = Callable[[InputValue, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class CollectReport:
    inputs: int
    already_cached: int
    collected: int
    failed_inputs: list[str]


def chat_model_sampler(model: BaseChatModel) -> Sampler:
    """k outputs of a LangChain chat model: one request with its `n` field if it has one."""
    native = "n" in type(model).model_fields

    async def sample(value: InputValue, k: int) -> list[str]:
        messages = _as_messages(value)
        if native:
            result = await model.model_copy(update={"n": k}).agenerate([messages])
            return [generation.text for generation in result.generations[0]]
        replies = await asyncio.gather(*(model.ainvoke(messages) for _ in range(k)))
        return [reply.text for reply in replies]

    return sample


def openai_sampler(
    model: str, *, base_url: str | None = None, api_key: str | None = None, **params: Any
) -> Sampler:
    """k outputs from an OpenAI-compatible endpoint with `n=k` (base URL and key default to the
    OPENAI_BASE_URL and OPENAI_API_KEY environment variables)."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)

    async def sample(value: InputValue, k: int) -> list[str]:
        messages = input_messages(value)
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        response = await client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            n=k,
            **params,
        )
        return [choice.message.content or "" for choice in response.choices]

    return sample


async def collect(
    inputs: Sequence[InputValue],
    k: int,
    cache: Path,
    sampler: Sampler,
    *,
    concurrency: int = 8,
    retries: int = 4,
    backoff: float = 1.0,
) -> CollectReport:
    """Make sure `cache` holds k samples for every input; request only what is missing."""
    unique = list(dict.fromkeys(inputs))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RuntimeError(f"{cache}: another collect run is writing to it") from exc
        have = _read_counts(handle, cache)
        missing = {value: k - have[_key(value)] for value in unique if have[_key(value)] < k}
        already = sum(min(have[_key(value)], k) for value in unique)
        semaphore = asyncio.Semaphore(concurrency)
        failed: list[str] = []
        progress = tqdm(total=len(unique) * k, initial=already, desc="collecting", unit="sample")

        async def fill(value: InputValue, needed: int) -> int:
            async with semaphore:
                for attempt in range(retries + 1):
                    try:
                        outputs = (await sampler(value, needed))[:needed]
                        break
                    except Exception as error:  # provider errors have no common base class
                        if attempt == retries:
                            logger.warning(
                                "giving up on an input after %d tries: %s", attempt + 1, error
                            )
                            failed.append(_key(value))
                            return 0
                        await asyncio.sleep(backoff * 2**attempt * (0.5 + random.random()))
            _append(handle, [{"input": input_messages(value), "output": text} for text in outputs])
            progress.update(len(outputs))
            return len(outputs)

        collected = sum(await asyncio.gather(*(fill(v, n) for v, n in missing.items())))
        progress.close()
    return CollectReport(len(unique), already, collected, failed)


def _read_counts(handle: IO[bytes], cache: Path) -> Counter[str]:
    """Samples per input already in the cache; a torn last line is cut off."""
    handle.seek(0)
    data = handle.read()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        logger.warning("%s: dropping a torn last line (%d bytes)", cache, len(data) - len(complete))
        handle.truncate(len(complete))
    counts: Counter[str] = Counter()
    for number, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            counts[_key(parse_input(record["input"]))] += 1
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{cache}:{number}: not a sample record ({exc})") from exc
    return counts


def _append(handle: IO[bytes], records: list[dict[str, Any]]) -> None:
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    handle.seek(0, os.SEEK_END)
    handle.write(payload)  # one write per request: its samples land together
    handle.flush()
    os.fsync(handle.fileno())


def _key(value: InputValue) -> str:
    return json.dumps(input_messages(value), sort_keys=True, ensure_ascii=False)


def _as_messages(value: InputValue) -> list[BaseMessage]:
    messages = input_messages(value)
    if isinstance(messages, str):
        return [HumanMessage(messages)]
    return convert_to_messages(messages)
