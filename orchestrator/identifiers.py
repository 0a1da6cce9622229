"""Checking identifiers with the active ID sanitizer, and the kernel's own last line of defence.

Whatever a sanitizer returns must be one safe path component; the kernel refuses anything that
could name a folder other than a child of the runs folder, whichever implementation is active.
"""

from __future__ import annotations

import os
import unicodedata

from orchestrator.contracts import IdentifierRejected, IdKind, IdSanitizer
from orchestrator.errors import IdentifierError

DEFAULT_TASK_ID = "0101"
TASK_ID_SOURCES = ("MCP_RUNNER_TASK_ID", "CODEX_ORCHESTRATOR_TASK_ID")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
"""Shown escaped: C0/C1 controls, format characters (bidi, zero-width), separators."""


def _shown(ch: str) -> str:
    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    if unicodedata.category(ch) not in _HIDDEN_CATEGORIES:
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(value: str) -> str:
    """Show control and invisible characters escaped (``\\n``, ``\\x00``, ``\\u202e``) so a
    message stays one line and reads as what it holds."""
    return "".join(_shown(ch) for ch in value)


def unsafe_component(value: str) -> str | None:
    """Why ``value`` is not a single, contained path component, or None when it is."""
    if not value or value in {".", ".."}:
        return "is not a usable folder name"
    if "/" in value or "\0" in value or (os.altsep and os.altsep in value):
        return "contains a path separator"
    if value.startswith("."):
        return "starts with '.'"
    if len(value.encode("utf-8", "surrogatepass")) > 200:
        return "is longer than 200 bytes"
    return None


def check_id(sanitizer: IdSanitizer, value: str, kind: IdKind, label: str) -> str:
    """Return the identifier to use, or raise IdentifierError ``Invalid <label> "<v>": <why>``."""
    try:
        result = sanitizer.sanitize(value, kind)
    except IdentifierRejected as exc:
        raise IdentifierError(f'Invalid {label} "{escape_controls(value)}": {exc.reason}') from None
    problem = unsafe_component(result) if isinstance(result, str) else "is not a string"
    if problem is not None:
        raise IdentifierError(
            f'Invalid {label} "{escape_controls(value)}": the ID sanitizer produced '
            f'"{escape_controls(str(result))}", which {problem}'
        )
    return result


def resolve_task_id(
    sanitizer: IdSanitizer, explicit: str | None, environ: dict[str, str] | os._Environ[str]
) -> str:
    """``--task``, else ``$MCP_RUNNER_TASK_ID``, else ``$CODEX_ORCHESTRATOR_TASK_ID``, else 0101."""
    if explicit is not None:
        return check_id(sanitizer, explicit, "task", "task ID")
    for name in TASK_ID_SOURCES:
        value = environ.get(name)
        if value is not None:
            return check_id(sanitizer, value, "task", name)
    return DEFAULT_TASK_ID
