"""``strict``: the default ID sanitizer. It rejects unsafe identifiers and never rewrites them."""

from __future__ import annotations

import re
import unicodedata
from typing import ClassVar

from orchestrator.plugin import IdentifierRejected, IdKind, IdSanitizerOptions, SlotContext

MAX_LENGTH = 128
MAX_BYTES = 200
"""A file name holds at most 255 bytes; ids end up inside names like ``NN-<id>.ndjson``."""
FORBIDDEN_CHARACTERS = '<>:"/\\|?*'
_DEVICE_NAME = re.compile(r"^(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (U+0085 splits lines)
_INVISIBLE_CATEGORIES = frozenset({"Zl", "Zp", "Cf"})
"""Line and paragraph separators and format characters (bidi controls, zero-width characters):
an id holding one reads differently from what it is, or cannot be typed back."""


def _invisible(value: str) -> str | None:
    for ch in value:
        if unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
            return ch
    return None


def rejection_reason(value: str) -> str | None:
    """Why ``value`` is not a safe identifier (docs/resilience.md), or None when it is."""
    if not value or not value.strip():
        return "must not be empty or blank"
    if _CONTROL.search(value):
        return "must not contain control characters"
    bad = sorted({ch for ch in value if ch in FORBIDDEN_CHARACTERS})
    if bad:
        return f"must not contain {' '.join(bad)}"
    if value.startswith("."):
        return "must not start with '.'"
    if value.startswith("-"):  # it would read as an option on a command line
        return "must not start with '-'"
    hidden = _invisible(value)
    if hidden is not None:
        return f"must not contain invisible or direction-changing characters (U+{ord(hidden):04X})"
    if value.endswith((".", " ")):
        return "must not end with '.' or a space"
    if _DEVICE_NAME.match(value):
        return "must not be a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9)"
    if len(value) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters (got {len(value)})"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "must be valid UTF-8 text"
    if size > MAX_BYTES:
        return f"must be at most {MAX_BYTES} bytes in UTF-8 (got {size})"
    return None


class StrictSanitizer:
    options_model: ClassVar[type[IdSanitizerOptions]] = IdSanitizerOptions

    def __init__(self, options: IdSanitizerOptions, context: SlotContext) -> None:
        self.options = options

    def close(self) -> None:
        """Nothing to release: every call opens and closes what it uses."""

    def sanitize(self, value: str, kind: IdKind) -> str:
        reason = rejection_reason(value)
        if reason is not None:
            raise IdentifierRejected(reason)
        return value
