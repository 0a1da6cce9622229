"""A command runner for codex-orchestrator that runs each stage on a Dask distributed cluster.

Install the distribution (on the machine that starts runs, on the scheduler and on every
worker) and set ``[plugins] command_runner = "dask"``. This module imports nothing: workers and
the scheduler import only the parts they use (``on_worker``, ``watchdog``).
"""

from __future__ import annotations

__version__ = "0.1.0"
