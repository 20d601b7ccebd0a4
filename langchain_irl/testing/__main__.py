"""Serve the OpenAI-compatible loopback server until interrupted, to try BestOfN with no API key.

python -m langchain_irl.testing --pool samples.jsonl
# then: ChatOpenAI(base_url="http://127.0.0.1:PORT/v1", api_key="unused", model="loopback")
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from pathlib import Path

from langchain_irl.testing.pool import read_pool
from langchain_irl.testing.server import FAULTS, OpenAICompatibleServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m langchain_irl.testing",
        description="A real OpenAI-compatible chat-completions server on 127.0.0.1 that answers "
        "from a pool of texts (not a language model).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--pool",
        type=Path,
        help="JSONL of {'input', 'output'} records: a request whose last user message is an input "
        "is answered with that input's outputs, any other with all of them",
    )
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument(
        "--token-rate", type=float, help="streamed tokens per second per stream (default: no wait)"
    )
    parser.add_argument("--failure-rate", type=float, default=0.0, help="share of faulty replies")
    parser.add_argument("--faults", nargs="+", default=["500"], choices=FAULTS)
    args = parser.parse_args(argv)
    answers, by_prompt = read_pool(args.pool) if args.pool else (["Hello!"], {})
    server = OpenAICompatibleServer(
        answers,
        answers_by_prompt=by_prompt,
        latency=args.latency,
        failure_rate=args.failure_rate,
        faults=args.faults,
        port=args.port,
        keep_requests=False,
        token_rate=args.token_rate,
    )
    with server:
        print(f"serving {len(answers)} answers at {server.base_url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
