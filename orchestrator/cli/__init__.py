"""The ``codex-orchestrator`` command line (cyclopts). Commands live in modules of their own and
are imported only when run, so ``--help`` stays fast."""
