"""collect against a real loopback OpenAI-compatible server: resumable, append-only, no loss."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI

from langchain_irl.data.collect import chat_model_sampler, collect, openai_sampler
from langchain_irl.data.formats import read_examples
from langchain_irl.data.jsonl import write_jsonl
from langchain_irl.testing.server import OpenAICompatibleServer
from tests.conftest import ROOT

INPUTS = [f"Cartoon number {i}: a cat at a desk." for i in range(12)]


def _counts(path: Path) -> Counter[str]:
    return Counter(str(example.input) for example in read_examples(path))


async def test_openai_sampler_fills_the_cache(tmp_path: Path, caption_answers: list[str]) -> None:
    cache = tmp_path / "samples.jsonl"
    with OpenAICompatibleServer(answers=caption_answers) as server:
        sampler = openai_sampler("loopback", base_url=server.base_url, api_key="unused")
        report = await collect(INPUTS, 4, cache, sampler)
        assert report.collected == 48 and not report.failed_inputs
        assert all(request["n"] == 4 for request in server.requests)  # one request per input
        again = await collect(INPUTS, 6, cache, sampler)  # asks only for what is missing
        assert again.already_cached == 48 and again.collected == 24
        assert all(request["n"] == 2 for request in server.requests[len(INPUTS) :])
    assert set(_counts(cache).values()) == {6}


async def test_chat_model_sampler_and_chat_inputs(tmp_path: Path) -> None:
    inputs = [(("system", "Be witty."), ("user", "A dog in a suit.")), "A cat."]
    with OpenAICompatibleServer(answers=["one", "two"]) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="unused", model="loopback")
        report = await collect(inputs, 3, tmp_path / "s.jsonl", chat_model_sampler(llm))
    assert report.collected == 6
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").open()]
    chat = [
        {"role": "system", "content": "Be witty."},
        {"role": "user", "content": "A dog in a suit."},
    ]
    assert sorted(json.dumps(r["input"]) for r in records) == sorted(
        [json.dumps(chat)] * 3 + [json.dumps("A cat.")] * 3
    )
    # each request carried its input's messages, in order
    sent = [[(m["role"], m["content"]) for m in r["messages"]] for r in server.requests]
    assert [("system", "Be witty."), ("user", "A dog in a suit.")] in sent


async def test_requests_in_flight_are_bounded_over_all_inputs(
    tmp_path: Path, caption_answers: list[str]
) -> None:
    """Without native n, 12 inputs x 6 samples are 72 requests: `concurrency` bounds them all,
    not the inputs."""
    with OpenAICompatibleServer(answers=caption_answers, latency=0.05) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="unused", model="loopback").with_retry()
        sampler = chat_model_sampler(llm, concurrency=3)
        report = await collect(INPUTS, 6, tmp_path / "s.jsonl", sampler, concurrency=8)
        assert report.collected == 72 and server.request_count == 72
        assert 2 <= server.max_in_flight <= 3


async def test_failures_are_retried_and_resumed_and_recorded_once(
    tmp_path: Path, caption_answers: list[str]
) -> None:
    cache = tmp_path / "samples.jsonl"
    with OpenAICompatibleServer(
        answers=caption_answers, failure_rate=0.3, faults=["500", "429", "malformed"], seed=2
    ) as server:
        sampler = openai_sampler("loopback", base_url=server.base_url, api_key="unused", retries=2)
        first = await collect(INPUTS, 5, cache, sampler)
        # the client retried 500 and 429 (Retry-After: 0); a malformed body is not retried
        # by the client: that input is reported, and a second run asks only for it
        assert server.faults_injected > 0 and first.failed_inputs
        second = await collect(INPUTS, 5, cache, sampler)
        assert second.already_cached == first.collected == 5 * (12 - len(first.failed_inputs))
        for _ in range(5):  # each run fails an input with probability ~0.3 (malformed)
            if not (await collect(INPUTS, 5, cache, sampler)).failed_inputs:
                break
    assert set(_counts(cache).values()) == {5}  # every sample exactly once


async def test_client_errors_are_not_retried(tmp_path: Path) -> None:
    with OpenAICompatibleServer() as server:
        sampler = openai_sampler("", base_url=server.base_url, api_key="x")  # no model: a 400
        report = await collect(INPUTS[:2], 2, tmp_path / "s.jsonl", sampler)
        assert len(report.failed_inputs) == 2
        assert server.request_count == 2  # each asked once: a 400 is not worth retrying


def test_bad_arguments_fail_before_any_request(tmp_path: Path) -> None:
    import asyncio

    async def never(value: object, k: int) -> list[str]:
        raise AssertionError("must not sample")

    for k, inputs, message in (
        (0, INPUTS, "at least 1"),
        (-2, INPUTS, "at least 1"),
        (1, [], "no inputs"),
    ):
        with pytest.raises(ValueError, match=message):
            asyncio.run(collect(inputs, k, tmp_path / "s.jsonl", never))


def test_the_lock_keeps_a_second_process_out(tmp_path: Path) -> None:
    cache = tmp_path / "samples.jsonl"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from filelock import FileLock; "
            f"lock = FileLock({str(cache) + '.lock'!r}); lock.acquire(); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        import asyncio

        async def never(value: object, k: int) -> list[str]:
            raise AssertionError("must not sample")

        with pytest.raises(RuntimeError, match="another collect run is writing to it"):
            asyncio.run(collect(["a"], 1, cache, never))
    finally:
        holder.kill()
        holder.wait()
    assert not cache.exists() or cache.read_text() == ""


async def test_torn_last_line_is_dropped_and_refilled(tmp_path: Path) -> None:
    cache = tmp_path / "samples.jsonl"
    write_jsonl(cache, [{"input": INPUTS[0], "output": "kept"}])
    with cache.open("ab") as handle:
        handle.write(b'{"input": "Cartoon number 1: a cat at a desk.", "outp')  # killed mid-write
    with OpenAICompatibleServer(answers=["new"]) as server:
        sampler = openai_sampler("loopback", base_url=server.base_url, api_key="unused")
        await collect(INPUTS[:2], 1, cache, sampler)
    records = [json.loads(line) for line in cache.open()]
    assert records == [
        {"input": INPUTS[0], "output": "kept"},
        {"input": INPUTS[1], "output": "new"},
    ]


def test_malformed_cache_names_the_line(tmp_path: Path) -> None:
    import asyncio

    cache = tmp_path / "samples.jsonl"
    cache.write_text('{"input": "a", "output": "b"}\n{"output": "no input"}\n')

    async def never(value: object, k: int) -> list[str]:
        raise AssertionError("must not sample")

    with pytest.raises(ValueError, match=r"samples\.jsonl:2: not a sample record"):
        asyncio.run(collect(["a"], 1, cache, never))


def test_sigkill_and_resume_loses_nothing(tmp_path: Path, caption_answers: list[str]) -> None:
    """Kill the CLI with SIGKILL several times mid-run; resuming ends with k samples per input."""
    demos = tmp_path / "demos.jsonl"
    write_jsonl(demos, [{"input": text, "output": "demo"} for text in INPUTS * 2])
    cache = tmp_path / "samples.jsonl"
    with OpenAICompatibleServer(answers=caption_answers, latency=0.05, jitter=0.1) as server:
        command = [
            sys.executable,
            "-m",
            "langchain_irl.cli",
            "collect",
            "--demos",
            str(demos),
            "--out",
            str(cache),
            "--k",
            "6",
            "--openai-model",
            "loopback",
            "--base-url",
            server.base_url,
            "--api-key",
            "unused",
            "--concurrency",
            "2",
        ]
        for delay in (1.5, 2.0, 2.5):
            process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    counts = _counts(cache)
    assert set(counts) == set(INPUTS) and set(counts.values()) == {6}
