"""Warnings that point at the user's line, not at the library's.

A warning about a call (identical candidates at temperature 0, say) is only useful at the line
that made the call: `stacklevel` is counted up to the first frame outside the standard library,
the installed packages and this package.
"""

from __future__ import annotations

import sys
import sysconfig
import warnings
from pathlib import Path

# Frames under these folders are never "the user's line".
_LIBRARY_DIRS = (
    *{sysconfig.get_path(name) for name in ("stdlib", "purelib", "platlib")},
    str(Path(__file__).resolve().parents[1]),
    "<frozen",
)


def warn_at_user_line(message: str) -> None:
    """`warnings.warn(message, UserWarning)` at the innermost frame outside the libraries."""
    warnings.warn(message, UserWarning, stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """The `stacklevel` of the innermost frame outside the libraries, counted from the caller of
    `warn_at_user_line` (whose `warnings.warn` call is level 1)."""
    frame, level = sys._getframe(2), 2
    while frame is not None:
        if not frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
            return level
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return 2
