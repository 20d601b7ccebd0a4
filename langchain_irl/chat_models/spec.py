"""A chat model from a one-string spec, as `--model` takes it on the command line."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def chat_model(spec: str, **params: Any) -> Any:
    """A chat model from `module:attribute` or from `provider:model`.

    `module:attribute` names a chat model instance, or a factory called with no arguments, in an
    importable module (`params` are not used then). Anything else, `openai:gpt-4o-mini` say, goes
    to LangChain's `init_chat_model` with the `params` that are not None (the `cli` extra).

    A module that is not there at all (`openai` when only the provider is meant) falls through to
    `init_chat_model`; an ImportError raised while importing a module that is there (it imports a
    package that is missing) propagates, since that module is the one meant.
    """
    module_name, separator, attribute = spec.partition(":")
    if separator and attribute:
        module = _import_if_present(module_name)
        if module is not None and hasattr(module, attribute):
            value = getattr(module, attribute)
            return value() if callable(value) and not hasattr(value, "invoke") else value
    from langchain_irl.extras import require

    chat_models = require("langchain.chat_models", f"--model {spec}", "cli")
    return chat_models.init_chat_model(spec, **{k: v for k, v in params.items() if v is not None})


def _import_if_present(name: str) -> ModuleType | None:
    """The module `name`, or None when neither it nor a parent package of it can be found."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name
        if missing and (name == missing or name.startswith(missing + ".")):
            return None
        raise
