"""A local Hugging Face causal LM as a LangChain chat model.

It is the policy `distill` samples from, and the way its student goes back into LangChain: load
the student's folder with `TransformersChat.from_pretrained(folder)` and use it wherever a chat
model goes (a chain, `BestOfN`, an agent without tools). The class has an `n` field, so best-of-n
asks for n answers in one `generate` call (one prompt encoding) instead of n calls.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_openai_messages
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_irl.extras import require

Device = Literal["auto", "cpu", "cuda"]

# Per-call options a `.bind(...)` or `invoke(..., **kwargs)` may set; anything else is refused.
_CALL_OPTIONS = ("n", "temperature", "top_p", "max_tokens", "seed")


def torch_device(device: Device) -> str:
    """The torch device `device` names: `auto` is CUDA when there is one, else the CPU."""
    torch = require("torch", "a local policy model", "train")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda: torch sees no CUDA device here (use auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def load_causal_lm(base: str | Path, device: Device = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) of a local causal LM: a Hugging Face folder, or a `.gguf` file
    (dequantized to float32 by transformers, which needs the `gguf` package). Nothing is
    downloaded. The tokenizer must carry a chat template; a missing pad token is the EOS token."""
    transformers = require("transformers", "a local policy model", "train")
    torch = require("torch", "a local policy model", "train")
    path = Path(base)
    where: dict[str, Any] = {"local_files_only": True}
    if path.suffix == ".gguf":
        require("gguf", f"reading {path.name}", "policy")
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        source, where["gguf_file"] = path.parent, path.name
    elif (path / "config.json").is_file():
        source = path
    else:
        raise ValueError(f"{path}: neither a .gguf file nor a Hugging Face model folder")
    tokenizer = transformers.AutoTokenizer.from_pretrained(source, **where)
    if not tokenizer.chat_template:
        raise ValueError(f"{path}: its tokenizer has no chat template; a chat policy needs one")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if "gguf_file" in where:  # unpacked to plain float weights, which training needs: kept in
        # GGUF blocks, transformers would mark the model quantized and the Trainer refuse it
        where["quantization_config"] = transformers.GgufConfig(dequantize=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **where)
    return model.to(torch_device(device)).eval(), tokenizer


class TransformersChat(BaseChatModel):
    """A transformers causal LM and its tokenizer (with a chat template) as a chat model.

    Setup:
        `pip install "langchain-irl[train]"` (torch, transformers); a `.gguf` file also needs
        `gguf`, which the `[policy]` extra brings.

    Instantiate:
        ```python
        chat = TransformersChat.from_pretrained("build/student", max_tokens=48)
        ```

    Invoke:
        ```python
        chat.invoke([("system", "Write a funny caption."), ("human", "A cat chairs a board.")])
        ```

    Answers are sampled (`temperature` > 0) or greedy (0). With a `seed`, the same messages and
    options give the same answers, whatever else ran before (each call seeds its own draw);
    without one, torch's global generator decides. Calls on one model run one at a time (a lock
    shared by copies): concurrent generation on one model only competes for the same cores.
    Tools and structured output are not supported.
    """

    model: Any = Field(exclude=True, description="The transformers causal LM (PreTrainedModel).")
    tokenizer: Any = Field(exclude=True, description="Its tokenizer, with a chat template.")
    model_name: str = Field(
        default="local", description="Names the model in metadata and cache keys."
    )
    n: int = Field(default=1, ge=1, description="Answers per call, from one `generate` call.")
    temperature: float = Field(
        default=1.0, ge=0.0, description="Sampling temperature; 0 is greedy."
    )
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(default=128, ge=1, description="New tokens per answer, at most.")
    seed: int | None = Field(
        default=None, description="Seeds each call from the messages and options (reproducible)."
    )

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: Device = "auto", **fields: Any
    ) -> TransformersChat:
        """The model of a local folder or `.gguf` file (`load_causal_lm`), with `fields`."""
        model, tokenizer = load_causal_lm(path, device)
        return cls(model=model, tokenizer=tokenizer, model_name=str(path), **fields)

    @property
    def _llm_type(self) -> str:
        return "transformers-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("model_name", *_CALL_OPTIONS)}

    def get_token_ids(self, text: str) -> list[int]:
        """The model's own tokens of `text` (usage is counted with them, never another's)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Any = None) -> int:
        return len(self._encode(_conversation(messages))["input_ids"][0])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        unknown = sorted(set(kwargs) - set(_CALL_OPTIONS))
        if unknown:
            raise ValueError(f"TransformersChat does not take {unknown} (tools are unsupported)")
        options = {name: kwargs.get(name, getattr(self, name)) for name in _CALL_OPTIONS}
        conversation = _conversation(messages)
        encoded = self._encode(conversation).to(self.model.device)
        prompt_tokens = int(encoded["input_ids"].shape[1])
        with self._lock, self._seeded(conversation, options):
            sequences = self._sample(encoded, options)
        generations, generated = [], 0
        for sequence in sequences:
            tokens, finished = self._answer_tokens(sequence[prompt_tokens:].tolist())
            generated += len(tokens)
            text = _cut(self.tokenizer.decode(tokens, skip_special_tokens=True), stop)
            metadata = {"model_name": self.model_name, "finish_reason": finished}
            generations.append(AIMessage(text, response_metadata=metadata))
        # Each answer carries the whole request's usage, as providers' native n does.
        usage = UsageMetadata(
            input_tokens=prompt_tokens,
            output_tokens=generated,
            total_tokens=prompt_tokens + generated,
        )
        for message in generations:
            message.usage_metadata = usage
        return ChatResult(generations=[ChatGeneration(message=m) for m in generations])

    def _encode(self, conversation: list[dict[str, Any]]) -> Any:
        return self.tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _sample(self, encoded: Any, options: dict[str, Any]) -> Any:
        torch = require("torch", "a local policy model", "train")
        sampled = options["temperature"] > 0
        settings: dict[str, Any] = {
            "max_new_tokens": options["max_tokens"],
            "do_sample": sampled,
            "num_return_sequences": options["n"],
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sampled:
            settings.update(temperature=options["temperature"], top_p=options["top_p"])
        else:  # greedy: the model's own sampling defaults would only warn
            settings.update(temperature=None, top_p=None, top_k=None)
        with torch.no_grad():
            return self.model.generate(**encoded, **settings)

    def _answer_tokens(self, tokens: list[int]) -> tuple[list[int], str]:
        """An answer's tokens up to its end of turn, and why it ended (`stop` or `length`)."""
        ends = _end_ids(self.model, self.tokenizer)
        for index, token in enumerate(tokens):
            if token in ends:
                return tokens[:index], "stop"
        return tokens, "length"

    @contextlib.contextmanager
    def _seeded(
        self, conversation: list[dict[str, Any]], options: dict[str, Any]
    ) -> Iterator[None]:
        """With a seed, a private random state drawn from the seed, messages and options."""
        if options["seed"] is None:
            yield
            return
        torch = require("torch", "a local policy model", "train")
        key = json.dumps([conversation, options], sort_keys=True, ensure_ascii=False)
        derived = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:15], 16)
        devices = [self.model.device] if self.model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derived)
            yield


def _conversation(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """The messages as the chat template reads them: role and text content."""
    converted = convert_to_openai_messages(messages)
    return [{"role": m["role"], "content": _text(m.get("content"))} for m in converted]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content or []
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict))


def _end_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end an answer: the generation config's EOS ids, the tokenizer's, and pad
    (what `generate` writes after a sequence has ended)."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    ids += [tokenizer.eos_token_id, tokenizer.pad_token_id]
    return {int(i) for i in ids if i is not None}


def _cut(text: str, stop: list[str] | None) -> str:
    """The text before the first of the `stop` strings."""
    for marker in stop or ():
        text = text.split(marker, 1)[0]
    return text
