"""A temporary project driven through the real ``codex-orchestrator`` CLI in subprocesses."""

from __future__ import annotations

import base64
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


def as_text(data: bytes) -> str:
    """What ``subprocess.run(..., text=True)`` makes of a stream's bytes."""
    import locale

    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


_FORKABLE_STREAMS = (subprocess.PIPE, subprocess.DEVNULL)


def _forkable(kwargs: Mapping[str, Any]) -> bool:
    """Whether ``Popen`` options ask for nothing a warm launcher's child cannot give."""
    return (
        set(kwargs) <= {"stdin", "stdout", "stderr", "text", "start_new_session"}
        and kwargs["stdin"] in _FORKABLE_STREAMS
        and kwargs["stdout"] in _FORKABLE_STREAMS
        and kwargs["stderr"] in (*_FORKABLE_STREAMS, subprocess.STDOUT)
    )


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

    def cli_arguments(self, *args: str) -> list[str] | None:
        """What :meth:`command` gives the CLI (a subclass may add options), or None when it
        runs something else than ``python -m orchestrator`` of this interpreter."""
        command = self.command(*args)
        return command[len(CLI) :] if command[: len(CLI)] == CLI else None

    def environment(self, env: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """This project's environment for one call: ``env`` added to it, where a ``None``
        value removes the variable."""
        merged = {**self.env, **(env or {})}
        return {key: value for key, value in merged.items() if value is not None}

    warm = False
    """Run each ``run`` call in a process forked from a launcher that imported the CLI once
    (:mod:`orchestrator.testing.warm`) instead of a new interpreter: the same command in a
    process of its own, without the interpreter start and imports. This project's test suite
    turns it on; ``popen`` forks the calls it can (see :meth:`popen`)."""

    def run(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        timeout: float = 120,
        input: str | None = None,
        cwd: Path | None = None,
        text: bool = True,
    ) -> subprocess.CompletedProcess[Any]:
        """The CLI run to its end: exit code, output and error as text (as
        ``subprocess.run(..., text=True)`` decodes them), or as bytes with ``text=False``;
        ``env`` as :meth:`environment` takes it."""
        merged = self.environment(env)
        arguments = self.cli_arguments(*args) if self.warm else None
        if arguments is not None:
            from orchestrator.testing.warm import Launcher

            code, out, err = Launcher.call(
                clean_environment(self.home), arguments, cwd or self.root, merged, input, timeout
            )
            if text:
                return subprocess.CompletedProcess(
                    self.command(*args), code, as_text(out), as_text(err)
                )
            return subprocess.CompletedProcess(self.command(*args), code, out, err)
        return subprocess.run(
            self.command(*args),
            cwd=cwd or self.root,
            env=merged,
            capture_output=True,
            text=text,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def popen(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        fresh: bool = False,
        **kwargs: Any,
    ) -> Any:
        """The CLI as ``subprocess.Popen(...)`` with pipes to its output and error and
        ``/dev/null`` as its input unless ``kwargs`` say otherwise; ``text=False`` for bytes.

        With :attr:`warm`, a call whose streams are pipes or ``/dev/null`` (and ``stderr``
        perhaps ``subprocess.STDOUT``) and whose other options are at most ``text`` and
        ``start_new_session`` is forked from a launcher instead
        (:class:`orchestrator.testing.warm.WarmProcess`: the same process, pid, signals, exit
        code and ``/proc/<pid>/environ``, without an interpreter start); any other call (a
        terminal, a file, ``preexec_fn``...) starts a new interpreter, and so does any call
        with ``fresh=True`` (a check of what the interpreter's own start does)."""
        merged = self.environment(env)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("text", True)  # a caller may ask for bytes with text=False
        forked = self.warm and not fresh and _forkable(kwargs)
        arguments = self.cli_arguments(*args) if forked else None
        if arguments is not None:
            from orchestrator.testing.warm import Launcher

            try:
                return Launcher.popen(
                    clean_environment(self.home),
                    "orchestrator",
                    arguments,
                    self.root,
                    merged,
                    kwargs["stdin"],
                    stdout=kwargs["stdout"],
                    stderr=kwargs["stderr"],
                    text=bool(kwargs["text"]),
                    session=bool(kwargs.get("start_new_session", False)),
                )
            except (OSError, RuntimeError):
                pass  # no launcher here: a new interpreter, as without it
        return subprocess.Popen(self.command(*args), cwd=self.root, env=merged, **kwargs)

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

    def run_dir(self, summary: Mapping[str, Any]) -> Path:
        """The run folder of a ``start --format json`` summary."""
        return self.root / str(summary["artifact_root"])

    def runner_events(self, summary: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The run's ``runner.ndjson`` events, in order."""
        path = self.run_dir(summary) / "runner.ndjson"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def command_events(self, summary: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
        """The events of stage ``index`` (1-based) from ``commands/NN-<id>.ndjson``."""
        manifest = self.manifest(summary)
        log_path = manifest["commands"][index - 1]["log_path"]
        lines = (self.root / log_path).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def stage_output(self, summary: Mapping[str, Any], index: int) -> dict[str, bytes]:
        """The exact bytes stage ``index`` wrote to each stream, rebuilt from its command log."""
        output = {"stdout": bytearray(), "stderr": bytearray()}
        chunks = [e for e in self.command_events(summary, index) if e["type"] == "exec:chunk"]
        for event in sorted(chunks, key=lambda e: e["sequence"]):
            if "data" in event:
                output[event["stream"]] += event["data"].encode("utf-8")
            else:
                output[event["stream"]] += base64.b64decode(event["data_b64"])
        return {stream: bytes(data) for stream, data in output.items()}

    def temp_files(self) -> list[Path]:
        """Temporary files of interrupted atomic writes (``.<name>.*.tmp``) anywhere here."""
        return sorted(p for p in self.root.rglob(".*.tmp") if p.is_file())

    def manifest_paths(self) -> list[Path]:
        """Every ``manifest.json`` under the runs folder, of every task."""
        return sorted(self.runs_dir.glob("*/cli/*/manifest.json"))

    def validate_manifests(self) -> int:
        """Check every manifest written so far against the manifest JSON Schema.

        Raises ``AssertionError`` naming the file and the first problem; returns how many
        manifests were checked. Needs ``jsonschema`` (the ``test`` extra).
        """
        from jsonschema import Draft202012Validator

        from orchestrator.schema_gen import manifest_schema

        validator = Draft202012Validator(manifest_schema())
        paths = self.manifest_paths()
        for path in paths:
            document = json.loads(path.read_text(encoding="utf-8"))
            error = next(iter(validator.iter_errors(document)), None)
            assert error is None, f"{path}: {error.message} at {list(error.absolute_path)}"
        return len(paths)


def one_stage_config(
    command: str | Sequence[str], *, stage_id: str = "only", extra: str = ""
) -> str:
    rendered = json.dumps(command)
    return f'[pipelines.p]\nstages = [{{ id = "{stage_id}", command = {rendered}{extra} }}]\n'


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def group_running(pgid: int) -> list[int]:
    """The pids of live (not zombie) processes in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found
