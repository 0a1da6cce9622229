"""A command runner for codex-orchestrator that runs each stage under a pseudo-terminal.

Install the distribution and set ``[plugins] command_runner = "pty"``.
"""

from __future__ import annotations

from codex_orchestrator_pty.runner import PtyOptions, PtyRunner

__all__ = ["PtyOptions", "PtyRunner"]
__version__ = "0.1.0"
