"""codex-orchestrator: the kernel.

The kernel holds contracts, loading, configuration, the pipeline engine and the CLI. It never
imports an implementation of a strategy slot directly: every implementation, the built-in ones
included, is found through entry points (see ``orchestrator.slots``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
