"""How a prompt and a candidate become the texts the reward model scores.

The rule is part of the model card (`prompt_format`), so training and inference render alike:

- `last_user` (default): the text of the last human message. Suits demonstrations whose input is
  one request (a cartoon description, a question); system instructions are not scored.
- `transcript`: the whole conversation as `\\n\\nHuman: …\\n\\nAssistant: …` (the HH-RLHF format),
  for rewards that depend on the dialogue so far.

A plain string prompt is used verbatim under either rule.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages

PromptFormat = Literal["last_user", "transcript"]
PromptInput = str | Sequence[BaseMessage | dict[str, Any]]

_SPEAKER = {"human": "Human", "ai": "Assistant", "system": "System", "tool": "Tool"}


def render_prompt(prompt: PromptInput, prompt_format: PromptFormat = "last_user") -> str:
    """Render a prompt (a string or chat messages) to the text the reward model conditions on."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, Sequence):
        raise TypeError(
            f"a prompt is a string or a list of chat messages, got {type(prompt).__name__}"
        )
    messages = convert_to_messages(list(prompt))
    if prompt_format == "last_user":
        return last_user_text(messages)
    if prompt_format == "transcript":
        turns = [
            f"\n\n{_SPEAKER.get(m.type, m.type.title())}: {render_output(m)}" for m in messages
        ]
        return "".join(turns)
    raise ValueError(f"unknown prompt_format {prompt_format!r}; use 'last_user' or 'transcript'")


def last_user_text(messages: Sequence[BaseMessage]) -> str:
    """The text of the last human message ("" if there is none)."""
    return next((str(m.text) for m in reversed(messages) if m.type == "human"), "")


def render_output(message: BaseMessage | str) -> str:
    """Render a candidate answer: its text, then its tool calls (if any) as JSON text."""
    if isinstance(message, str):
        return message
    text = str(message.text)
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]
        text = (text + "\n" if text else "") + json.dumps(calls, sort_keys=True, ensure_ascii=False)
    return text
