"""A real HTTP server on loopback that speaks the OpenAI chat-completions API, for tests and demos.

It is not a language model: each choice is drawn from a pool of answers (the pool of a marker
that a message of the request contains, or of the request's last user message, if it has one),
or built from the request's JSON schema for tool calls and structured output. But everything on
the wire is what an OpenAI-compatible endpoint sends: `n` choices, SSE streaming with a usage
chunk, tool calls, `response_format`, stop sequences, usage. It can add latency with jitter (the
time to the first byte, or first token) and inject faults (HTTP 500, 429 with Retry-After, 400,
401, hangs that end with no answer, malformed JSON, truncated streams) into a share of requests,
and it counts requests, the most that were ever in flight at once, the tokens it wrote and the
streams that clients closed early. A stream of n choices interleaves them by index, token by
token, as OpenAI's does.

    with OpenAICompatibleServer(answers=["Hi!", "Hello."]) as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="unused", model="loopback")
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("500", "429", "400", "401", "timeout", "malformed", "truncated")
# Client errors that no retry mends: the same request fails the same way every time.
_CLIENT_ERRORS = {
    "400": {"message": "injected invalid request", "type": "invalid_request_error"},
    "401": {"message": "injected invalid API key", "type": "invalid_request_error"},
}


class OpenAICompatibleServer:
    """Serve `/v1/chat/completions` on 127.0.0.1 (a free port) in a background thread."""

    def __init__(
        self,
        answers: Sequence[str] = ("Hello! How can I help you today?",),
        *,
        answers_by_prompt: Mapping[str, Sequence[str]] | None = None,
        answers_by_marker: Mapping[str, Sequence[str]] | None = None,
        latency: float = 0.0,
        jitter: float = 0.0,
        failure_rate: float = 0.0,
        faults: Sequence[str] = ("500",),
        hang_seconds: float = 5.0,
        seed: int = 0,
        keep_requests: bool = True,
        port: int = 0,
        token_rate: float | None = None,
        in_turn: bool = False,
    ) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        self.answers = list(answers)
        # A request whose last user message is a key is answered from that key's answers.
        self.answers_by_prompt = {k: list(v) for k, v in (answers_by_prompt or {}).items()}
        # A request any of whose messages (the system instruction, examples) contains a marker is
        # answered from that marker's answers: a prompt that says "witty" gets witty answers.
        self.answers_by_marker = {k: list(v) for k, v in (answers_by_marker or {}).items()}
        self.latency, self.jitter = latency, jitter
        self.failure_rate, self.faults, self.hang_seconds = failure_rate, list(faults), hang_seconds
        # Streamed tokens (whitespace-separated words) per second and per stream; None: at once.
        self.token_rate = token_rate
        # In turn: each pool is shuffled once (by the seed) and answered in that order, so that
        # benchmarks comparing configurations that make the same number of requests per prompt
        # see the same candidates (paired), not fresh random draws.
        self.in_turn = in_turn
        self._turns: Counter[str] = Counter()
        self._orders: dict[str, list[str]] = {}
        self.seed = seed
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.keep_requests = keep_requests  # off for soak runs: the history itself grows
        self.requests: list[dict[str, Any]] = []
        self.request_count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults_injected = 0
        self.faults_by_kind: Counter[str] = Counter()
        # What generation really cost: completion tokens written to clients (whole responses and
        # streamed chunks), and streams the client closed before the end (generation stops
        # there, as a provider's does).
        self.tokens_sent = 0
        self.streams_closed_early = 0
        self._server = _QuietServer(("127.0.0.1", port), self)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    def __enter__(self) -> OpenAICompatibleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.request_count = 0
            self.max_in_flight = self.in_flight
            self.faults_injected = 0
            self.faults_by_kind.clear()
            self.tokens_sent = 0
            self.streams_closed_early = 0
            self._turns.clear()

    # -- what to answer -------------------------------------------------------------------------

    def _pool(self, request: dict[str, Any], prompt: str) -> list[str]:
        """The answers for a request: a marker's, else its prompt's, else the default ones."""
        text = json.dumps(request.get("messages") or [])
        marked = next((m for m in self.answers_by_marker if m in text), None)
        if marked is not None:
            return self.answers_by_marker[marked]
        return self.answers_by_prompt.get(prompt, self.answers)

    def answers_in_turn(self, prompt: str, count: int, start: int = 0) -> list[str]:
        """With `in_turn`, the answers that requests number start, start + 1, ... for `prompt`
        get (its pool shuffled once by the seed)."""
        pool = self.answers_by_prompt.get(prompt, self.answers)
        if prompt not in self._orders:
            self._orders[prompt] = random.Random(f"{self.seed}:{prompt}").sample(pool, len(pool))
        order = self._orders[prompt]
        return [order[(start + i) % len(order)] for i in range(count)]

    def _draw(self, request: dict[str, Any]) -> tuple[float, str | None, list[str]]:
        """Delay, fault (or None) and n answer texts for one request, drawn under the lock."""
        n = int(request.get("n") or 1)
        with self._lock:
            delay = self.latency + self._random.uniform(0, self.jitter)
            fault = None
            if self._random.random() < self.failure_rate:
                fault = self._random.choice(self.faults)
                self.faults_injected += 1
                self.faults_by_kind[fault] += 1
            key = _last_user_text(request)
            pool = self._pool(request, key)
            if self.in_turn:
                texts = self.answers_in_turn(key, n, start=self._turns[key])
                self._turns[key] += n
            elif request.get("temperature") == 0:
                texts = [pool[0]] * n
            elif n > 1 and len(pool) >= n:  # n samples of one request: distinct, as they'd be
                texts = self._random.sample(pool, n)
            else:
                texts = [self._random.choice(pool) for _ in range(n)]
        return delay, fault, texts

    def _choices(self, request: dict[str, Any], texts: list[str]) -> list[dict[str, Any]]:
        tool = _tool_to_call(request)
        format_schema = _response_schema(request)
        stops = request.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        choices = []
        for index, text in enumerate(texts):
            message: dict[str, Any] = {"role": "assistant", "content": None}
            finish = "stop"
            if tool is not None:
                example = _example_value(tool.get("parameters") or {}, _last_user_text(request))
                arguments = json.dumps(example, ensure_ascii=False)
                message["tool_calls"] = [
                    {
                        "id": f"call_{index}_{self.request_count}",
                        "type": "function",
                        "function": {"name": tool["name"], "arguments": arguments},
                    }
                ]
                finish = "tool_calls"
            elif format_schema is not None:
                example = _example_value(format_schema, _last_user_text(request))
                message["content"] = json.dumps(example, ensure_ascii=False)
            else:
                for stop in stops:
                    text = text.split(stop)[0]
                message["content"] = text
            choices.append({"index": index, "message": message, "finish_reason": finish})
        return choices


class _Handler(BaseHTTPRequestHandler):
    """One connection to an `OpenAICompatibleServer`: its state lives on the owner, which the
    HTTP server (`_QuietServer`) holds."""

    protocol_version = "HTTP/1.1"
    server: _QuietServer

    @property
    def owner(self) -> OpenAICompatibleServer:
        return self.server.owner

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            request = json.loads(body)
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "request body is not JSON"}})
            return
        with self.owner._lock:
            self.owner.request_count += 1
            if self.owner.keep_requests:
                self.owner.requests.append(request)
        if not request.get("model"):
            self._json(400, {"error": {"message": "you must provide a model parameter"}})
            return
        with self.owner._lock:
            self.owner.in_flight += 1
            self.owner.max_in_flight = max(self.owner.max_in_flight, self.owner.in_flight)
        try:
            self._answer(request)
        finally:
            with self.owner._lock:
                self.owner.in_flight -= 1

    def _answer(self, request: dict[str, Any]) -> None:
        delay, fault, texts = self.owner._draw(request)
        time.sleep(delay)
        if self._refused(fault):
            return
        choices = self.owner._choices(request, texts)
        prompt_tokens = sum(_count(m.get("content")) for m in request.get("messages", []))
        completion_tokens = sum(
            _count(c["message"]["content"] or c["message"].get("tool_calls")) for c in choices
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        model = request.get("model", "loopback")
        if request.get("stream"):
            self._stream(request, choices, usage, model, truncated=fault == "truncated")
            return
        response = {
            "id": f"chatcmpl-{self.owner.request_count}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": usage,
        }
        if fault == "malformed":
            self._raw(200, b'{"id": "chatcmpl-broken", "choices": [', "application/json")
            return
        if self.owner.token_rate:  # the n choices are written in parallel: the longest counts
            longest = max(_count(c["message"]["content"] or "") for c in choices)
            time.sleep(longest / self.owner.token_rate)
        with self.owner._lock:
            self.owner.tokens_sent += completion_tokens
        self._json(200, response)

    def _refused(self, fault: str | None) -> bool:
        """Send a fault that comes instead of an answer; False when the request gets one (the
        malformed and truncated faults spoil the answer itself)."""
        if fault == "500":
            self._json(500, {"error": {"message": "injected server error"}})
        elif fault == "429":
            self._json(429, {"error": {"message": "injected rate limit"}}, {"Retry-After": "0"})
        elif fault in _CLIENT_ERRORS:
            self._json(int(fault), {"error": {**_CLIENT_ERRORS[fault], "code": fault}})
        elif fault == "timeout":
            # Hang, then hang up without an answer: a client that waited longer than its
            # timeout (a busy machine) still sees a failure, never a late success.
            time.sleep(self.owner.hang_seconds)
            self.close_connection = True
        else:
            return False
        return True

    def _stream(
        self,
        request: dict[str, Any],
        choices: list[dict[str, Any]],
        usage: dict[str, int],
        model: str,
        truncated: bool,
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {
            "id": "chatcmpl-stream",
            "object": "chat.completion.chunk",
            "model": model,
            "created": int(time.time()),
        }
        try:
            # One event per choice per step, interleaved by index (as OpenAI streams n
            # choices); a step that writes content takes 1/token_rate seconds. None
            # stands for the choice's finish event.
            streams = [[*_deltas(c["message"]), None] for c in choices]
            for step in range(max(map(len, streams))):
                written = [s[step] for s in streams if step < len(s)]
                if self.owner.token_rate and any(d and d.get("content") for d in written):
                    time.sleep(1.0 / self.owner.token_rate)
                for choice, deltas in zip(choices, streams, strict=True):
                    if step >= len(deltas):
                        continue
                    delta = deltas[step]
                    finish = None if delta is not None else choice["finish_reason"]
                    self._event(
                        {
                            **base,
                            "choices": [
                                {
                                    "index": choice["index"],
                                    "delta": delta or {},
                                    "finish_reason": finish,
                                }
                            ],
                        }
                    )
                    if delta and delta.get("content"):
                        with self.owner._lock:
                            self.owner.tokens_sent += 1
                    if truncated and delta is not None:
                        self.close_connection = True
                        return
            if (request.get("stream_options") or {}).get("include_usage"):
                self._event({**base, "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            with self.owner._lock:  # the client closed the stream: stop generating
                self.owner.streams_closed_early += 1
        self.close_connection = True

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _raw(
        self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 1024  # load tests open hundreds of connections at once

    def __init__(self, address: tuple[str, int], owner: OpenAICompatibleServer) -> None:
        self.owner = owner  # what every connection's handler answers from and counts into
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up early (timeouts, truncated streams under test) are expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _tool_to_call(request: dict[str, Any]) -> dict[str, Any] | None:
    """The function to call: the one tool_choice names, else the first tool, unless the last message
    is a tool result (the model then answers in text) or tool_choice is "none"."""
    tools = [t["function"] for t in request.get("tools") or [] if t.get("type") == "function"]
    choice = request.get("tool_choice")
    messages = request.get("messages") or []
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name")
        return next((t for t in tools if t["name"] == name), tools[0])
    if choice in (None, "auto") and messages and messages[-1].get("role") == "tool":
        return None
    return tools[0]


def _response_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return response_format.get("json_schema", {}).get("schema", {})
    if response_format.get("type") == "json_object":
        return {
            "type": "object",
            "properties": {"setup": {"type": "string"}, "punchline": {"type": "string"}},
        }
    return None


def _last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content or "example text"
    return "example text"


def _example_value(
    schema: dict[str, Any], text: str = "example text", defs: dict[str, Any] | None = None
) -> Any:
    """A value that satisfies a JSON schema (enough of it for tool arguments and responses);
    strings echo `text` (the last user message), numbers are 3."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return _example_value(defs.get(schema["$ref"].split("/")[-1], {}), text, defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _example_value(options[0], text, defs)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    if kind == "object":
        properties = schema.get("properties", {})
        return {key: _example_value(value, text, defs) for key, value in properties.items()}
    if kind == "array":
        return [_example_value(schema.get("items", {}), text, defs)]
    return {"integer": 3, "number": 3.0, "boolean": True, "null": None}.get(kind, text)


def _deltas(message: dict[str, Any]) -> list[dict[str, Any]]:
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        return [{"role": "assistant", "tool_calls": [{"index": 0, **call}]}]
    words = (message.get("content") or "").split(" ")
    return [{"role": "assistant", "content": ""}] + [
        {"content": word if i == 0 else " " + word} for i, word in enumerate(words)
    ]


def _count(content: Any) -> int:
    """Whitespace tokens: a stand-in tokenizer, so that usage numbers are real counts."""
    return (
        len(json.dumps(content).split()) if not isinstance(content, str) else len(content.split())
    )
