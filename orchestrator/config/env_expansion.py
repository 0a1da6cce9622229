"""``${NAME}``, ``${NAME:-default}`` and ``$$`` in a stage's ``env`` values.

``${NAME}`` is the inherited value of ``NAME`` (empty when unset); ``${NAME:-default}`` is
``default`` when ``NAME`` is unset or empty; ``$$`` is one ``$``. Nothing else is expanded: no
command substitution, no ``$NAME`` without braces, no nesting inside a default. Any other ``$``
is an error (found when the config is validated, before anything runs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}$]*))?\})")


def problem(value: str) -> str | None:
    """Why ``value`` is not a valid env value, or None."""
    position = 0
    for match in _TOKEN.finditer(value):
        stray = value.find("$", position, match.start())
        if stray != -1:
            break
        position = match.end()
    else:
        stray = value.find("$", position)
        if stray == -1:
            return None
    return (
        f"unexpected '$' at position {stray} in {value!r}: use ${{NAME}}, ${{NAME:-default}} "
        "or $$ for a literal $"
    )


def expand(value: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name is None:
            return "$"
        found = environ.get(name, "")
        if default is not None and not found:
            return default
        return found

    return _TOKEN.sub(replace, value)


def expand_all(env: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """Each value of a stage's ``env`` expanded against the environment it inherits."""
    return {name: expand(value, environ) for name, value in env.items()}
