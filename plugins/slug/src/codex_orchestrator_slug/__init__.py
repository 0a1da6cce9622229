"""An ID sanitizer for codex-orchestrator that rewrites unsafe ids instead of rejecting them.

Install the distribution and set ``[plugins] id_sanitizer = "slug"``.
"""

from __future__ import annotations

from codex_orchestrator_slug.sanitizer import SlugOptions, SlugSanitizer, slugify

__all__ = ["SlugOptions", "SlugSanitizer", "slugify"]
__version__ = "0.1.0"
