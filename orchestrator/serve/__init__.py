"""``codex-orchestrator serve``: the local, read-only status page (docs/serve.md).

Everything shown comes through the persistence and heartbeat slots and the same functions that
build ``status --format json`` (``orchestrator.lifecycle.status``), so the page works with any
store. The web stack (Starlette, uvicorn, Jinja2) is the optional extra ``serve``; only
``command`` may be imported without it.
"""
