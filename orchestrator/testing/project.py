"""A temporary project driven through the real ``codex-orchestrator`` CLI in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "orchestrator"]
_INHERITED_PREFIXES = ("CODEX_ORCHESTRATOR_", "MCP_RUNNER_")


def clean_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any orchestrator variable, with a private HOME/XDG."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
    env.pop("NO_COLOR", None)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


class Project:
    """A project root with its own config; ``run`` invokes the CLI there.

    >>> project = Project(tmp_path)
    >>> project.write_config('[pipelines.p]\\nstages = [{ id = "a", command = "true" }]')
    >>> result = project.run("start", "p", "--format", "json")
    """

    def __init__(self, base: Path, env: Mapping[str, str] | None = None) -> None:
        self.root = (base / "project").resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.home = (base / "home").resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = clean_environment(self.home, {"CODEX_ORCHESTRATOR_ROOT": str(self.root)})
        if env:
            self.env.update(env)

    @property
    def runs_dir(self) -> Path:
        return self.root / ".runs"

    @property
    def out_dir(self) -> Path:
        return self.root / "out"

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def write_config(self, text: str, name: str = "codex.orchestrator.toml") -> Path:
        return self.write(name, text)

    def command(self, *args: str) -> list[str]:
        return [*CLI, *args]

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        input: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        merged = {**self.env, **(env or {})}
        return subprocess.run(
            self.command(*args),
            cwd=cwd or self.root,
            env=merged,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def popen(
        self, *args: str, env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[str]:
        merged = {**self.env, **(env or {})}
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.command(*args), cwd=self.root, env=merged, text=True, **kwargs)

    def start_json(self, *args: str, expect: int | None = 0, **kwargs: Any) -> dict[str, Any]:
        """``start ARGS --format json``: the one JSON document it printed."""
        result = self.run("start", *args, "--format", "json", **kwargs)
        if expect is not None:
            assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def manifest(self, summary_or_path: Mapping[str, Any] | str | Path) -> dict[str, Any]:
        if isinstance(summary_or_path, Mapping):
            summary_or_path = str(summary_or_path["manifest"])
        path = Path(summary_or_path)
        path = path if path.is_absolute() else self.root / path
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    def run_dirs(self, task: str = "0101") -> list[Path]:
        folder = self.runs_dir / task / "cli"
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def state(self, task: str = "0101") -> dict[str, Any]:
        return json.loads((self.out_dir / task / "state.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    def metrics(self, task: str = "0101") -> list[dict[str, Any]]:
        path = self.runs_dir / task / "metrics.json"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())


def one_stage_config(
    command: str | Sequence[str], *, stage_id: str = "only", extra: str = ""
) -> str:
    rendered = json.dumps(command)
    return f'[pipelines.p]\nstages = [{{ id = "{stage_id}", command = {rendered}{extra} }}]\n'
