"""``python -m orchestrator`` does what the ``codex-orchestrator`` console script does."""

from orchestrator.cli.main import run

if __name__ == "__main__":
    run()
