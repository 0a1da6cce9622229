"""``python -m orchestrator`` does what the ``codex-orchestrator`` console script does."""

from orchestrator.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
