"""What a user sees of an error: one line for what a command can meet (a wrong or empty file, a
missing field, an unreachable or refusing model endpoint, a missing extra), nothing for the rest (a
bug, shown with its traceback).

A connection error names the URL that could not be reached, whichever client raised it: the
`openai` SDK (`APIConnectionError`, and langchain-openai's subclass of it), httpx, or another
provider's `langchain_core.exceptions.ModelConnectionError`.
"""

from __future__ import annotations

import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

from langchain_core.exceptions import LangChainException

from langchain_irl.data.jsonl import DataFileError
from langchain_irl.extras import MissingExtraError
from langchain_irl.reward_model.card import ModelFolderError

# Errors whose text is already the one line to show (DataFileError names the file and line).
PLAIN = (DataFileError, ModelFolderError, MissingExtraError, ValueError, RuntimeError)


class EndpointError(ConnectionError):
    """A model endpoint cannot be reached at all; the message names its URL."""


def one_line(exc: BaseException) -> str | None:
    """The error as one line for the user, or None if it is not one a command expects."""
    text = _message(exc)
    return None if text is None else " ".join(text.split())


def _message(exc: BaseException) -> str | None:
    if isinstance(exc, EndpointError):
        return str(exc)
    if _is_connection_error(exc):
        url = _request_url(exc)
        return f"cannot reach {url or 'the model endpoint'}: {_root_cause(exc)}"
    if _is_client_error(exc):  # refused (401, 404, ...) or misconfigured (no API key)
        url = _request_url(exc)
        return f"{url}: {exc}" if url else str(exc)
    if isinstance(exc, OSError):  # a path that cannot be read or written: name it
        path = exc.filename2 if exc.filename2 is not None else exc.filename
        return f"{path}: {exc.strerror}" if path is not None and exc.strerror else str(exc)
    if isinstance(exc, PLAIN):
        return str(exc)
    return None


def check_reachable(url: str, source: str) -> None:
    """Raise `EndpointError` naming `url` (and `source`, where it was set) when nothing answers
    there, before a command does any work; any HTTP answer, even an error status, will do."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise EndpointError(f"{url} ({source}) is not a URL: give http://... or https://...")
    try:
        with urllib.request.urlopen(url, timeout=10):
            pass
    except urllib.error.HTTPError:
        return  # something answered
    except urllib.error.URLError as exc:  # no connection: refused, unknown host, timed out
        if isinstance(exc.reason, ssl.SSLError):
            return  # reached; the client's own certificates decide
        raise EndpointError(f"cannot reach {url} ({source}): {exc.reason}") from exc
    except OSError:
        return  # connected, then slow or reset: the command's own requests decide


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_connection_error(exc: BaseException) -> bool:
    kinds: list[type] = [ConnectionError]
    kinds += _classes("langchain_core.exceptions", "ModelConnectionError", "ModelTimeoutError")
    kinds += _classes("openai", "APIConnectionError")
    kinds += _classes("httpx", "TransportError")
    return isinstance(exc, tuple(kinds))


def _is_client_error(exc: BaseException) -> bool:
    return isinstance(exc, (LangChainException, *_classes("openai", "OpenAIError")))


def _classes(module: str, *names: str) -> list[type]:
    """Exception classes of a module that is already imported (an error cannot come from one that
    is not), so that no optional dependency is imported here."""
    loaded = sys.modules.get(module)
    return [getattr(loaded, name) for name in names if hasattr(loaded, name)]


def _request_url(exc: BaseException) -> str | None:
    for error in _chain(exc):
        try:
            url = error.request.url  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):  # httpx raises RuntimeError when there is none
            continue
        return str(url)
    return None


def _root_cause(exc: BaseException) -> str:
    """The innermost explanation ("[Errno 111] Connection refused"), not the wrappers' "Connection
    error."."""
    texts = [str(error) for error in _chain(exc) if str(error)]
    return texts[-1] if texts else type(exc).__name__
