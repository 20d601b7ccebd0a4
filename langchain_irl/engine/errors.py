"""Which failures are worth asking again.

A retry is a paid request. It can succeed only when the failure was the moment's, not the
request's: a timeout, a dropped connection, a garbled body, or an HTTP status that says "later"
(408, 409, 429, 5xx). A 400, a 401, a 404 or a `TypeError` fails the same way every time, so the
engine raises it at once, with the provider's own error, instead of paying for retry waves.
"""

from __future__ import annotations

import asyncio
import json

RETRYABLE_STATUS = frozenset({408, 409, 429})

# Transport failures of the common HTTP clients and provider SDKs, by class name so that none of
# them has to be installed: openai/anthropic (APIConnectionError, APITimeoutError), httpx
# (TransportError, TimeoutException), aiohttp (ClientConnectionError, ClientPayloadError),
# requests (ConnectionError, Timeout), google-api-core (ServiceUnavailable, DeadlineExceeded).
_TRANSIENT_CLASSES = frozenset(
    {
        "APIConnectionError",
        "APITimeoutError",
        "TransportError",
        "TimeoutException",
        "ClientConnectionError",
        "ClientPayloadError",
        "ServerTimeoutError",
        "ConnectionError",
        "Timeout",
        "ServiceUnavailable",
        "DeadlineExceeded",
        "InternalServerError",
        "RateLimitError",
        "OverloadedError",
        "ResourceExhausted",
        "TooManyRequests",
        "ThrottlingException",
    }
)
# Transport errors that are the request's fault: a bad URL or scheme fails the same way again.
_FINAL_CLASSES = frozenset({"UnsupportedProtocol", "LocalProtocolError", "InvalidURL"})


def status_code(error: BaseException) -> int | None:
    """The HTTP error status a provider's error carries, if any (not a 200 whose body failed to
    parse: langchain-openai attaches the response to those too). Looked for where the SDKs keep
    it: `status_code`/`status` (openai, anthropic, httpx), `code` (google-api-core), and
    botocore's `response["ResponseMetadata"]["HTTPStatusCode"]`."""
    response = getattr(error, "response", None)
    candidates = [getattr(error, name, None) for name in ("status_code", "status", "code")]
    candidates += [getattr(response, name, None) for name in ("status_code", "status")]
    if isinstance(response, dict):
        candidates.append(response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value < 600:
            return value
    return None


def is_retryable(error: BaseException) -> bool:
    """Whether asking again can succeed (see the module's docstring)."""
    status = status_code(error)
    if status is not None:
        return status in RETRYABLE_STATUS or status >= 500
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & _FINAL_CLASSES:
        return False
    if isinstance(error, (TimeoutError, asyncio.TimeoutError, ConnectionError)):
        return True
    if isinstance(error, json.JSONDecodeError):
        return True  # here a garbled response body, not the caller's input
    return bool(names & _TRANSIENT_CLASSES)
