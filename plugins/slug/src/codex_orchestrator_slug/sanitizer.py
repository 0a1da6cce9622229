"""``slug``: an ID sanitizer that rewrites an unsafe identifier instead of rejecting it.

An identifier made only of ASCII letters, digits, ``_``, ``-`` and inner ``.``, that is not a
Windows device name and not longer than ``max_length``, is used as it is (so run ids the kernel
makes, and ids people usually type, never change). Anything else is rewritten deterministically:
accents are dropped, every other run of characters becomes ``-``, and the first 8 hex digits of
the SHA-256 of the original value are appended, so two different unsafe ids never share a folder.
The rewrite is announced on standard error. The result is always one safe folder name, and
sanitizing it again returns it unchanged. Only an empty or blank id is rejected.
"""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
from typing import ClassVar

from pydantic import Field

from orchestrator.plugin import IdentifierRejected, IdKind, IdSanitizerOptions, SlotContext

SUFFIX_LENGTH = 8
_SAFE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?")
_DEVICE_NAME = re.compile(r"(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?", re.IGNORECASE)
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_]+")
LABELS: dict[str, str] = {"task": "task ID", "run": "run ID", "stage": "stage ID"}


class SlugOptions(IdSanitizerOptions):
    """The ``[id_sanitizer]`` table when ``[plugins] id_sanitizer = "slug"``."""

    max_length: int = Field(
        128, ge=40, le=128, description="longest id kept as it is; longer ones are shortened"
    )
    quiet: bool = Field(False, description="do not announce rewrites on standard error")


def is_safe(value: str, max_length: int) -> bool:
    """Whether ``value`` is used unchanged."""
    return (
        len(value) <= max_length
        and _SAFE.fullmatch(value) is not None
        and _DEVICE_NAME.fullmatch(value) is None
    )


def slugify(value: str, max_length: int) -> str:
    """The safe identifier ``value`` maps to (``value`` itself when it is safe already)."""
    if is_safe(value, max_length):
        return value
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    base = _UNSAFE_RUN.sub("-", ascii_text).strip("-")
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:SUFFIX_LENGTH]
    base = base[: max_length - SUFFIX_LENGTH - 1].rstrip("-") or "id"
    return f"{base}-{digest}"


class SlugSanitizer:
    options_model: ClassVar[type[IdSanitizerOptions]] = SlugOptions

    def __init__(self, options: SlugOptions, context: SlotContext) -> None:
        self.options = options
        self._announced: set[tuple[str, str]] = set()

    def close(self) -> None:
        """Nothing to release: every call opens and closes what it uses."""

    def sanitize(self, value: str, kind: IdKind) -> str:
        if not value.strip():
            raise IdentifierRejected("must not be empty or blank (nothing to rewrite)")
        result = slugify(value, self.options.max_length)
        if result != value and not self.options.quiet and (kind, value) not in self._announced:
            self._announced.add((kind, value))
            shown = value.encode("unicode_escape").decode("ascii")
            print(
                f'note: {LABELS.get(kind, kind)} "{shown}" is not a safe folder name; '
                f'using "{result}" (slug ID sanitizer)',
                file=sys.stderr,
            )
        return result
