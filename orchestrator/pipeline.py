"""Turning configured pipelines into the ordered, checked stage list a run executes."""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from orchestrator import stage_graph
from orchestrator.config.model import Settings, StageConfig
from orchestrator.contracts import IdSanitizer
from orchestrator.errors import ConfigError, UnknownPipelineError
from orchestrator.identifiers import check_id

Where = Callable[[str], str]


@dataclass(frozen=True)
class ResolvedStage:
    index: int
    id: str
    title: str
    kind: Literal["command", "subpipeline"]
    command: str | list[str] | None
    pipeline: str | None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout_seconds: float | None = None
    allow_failure: bool = False
    summary_hint: str | None = None
    requires_approval: bool = False
    retry_attempts: int | None = None
    retry_on_exit_codes: list[int] | None = None
    artifacts: tuple[str, ...] = ()
    resources: dict[str, float] = field(default_factory=dict)
    needs: tuple[str, ...] = ()

    def effective_timeout(self, default: float) -> float:
        """The stage's own timeout, else ``default`` (``[command_runner] timeout_seconds``)."""
        return self.timeout_seconds if self.timeout_seconds is not None else default

    def working_dir(self, root: Path) -> Path:
        return (root / self.cwd).resolve() if self.cwd else root


@dataclass(frozen=True)
class ResolvedPipeline:
    id: str
    title: str
    stages: tuple[ResolvedStage, ...]
    max_parallel: int | None = None
    """The pipeline's own cap on stages at once (a graph); None: the command's, else CPUs."""
    fail_fast: bool = False
    declares_needs: bool = False
    """Some stage has a ``needs`` key, even ``needs = []`` (a stage that needs nothing)."""

    @property
    def is_graph(self) -> bool:
        """Any ``needs`` key makes a graph; without, stages run one after another."""
        return self.declares_needs or any(stage.needs for stage in self.stages)

    @property
    def needs(self) -> dict[str, tuple[str, ...]]:
        return {stage.id: stage.needs for stage in self.stages}

    @property
    def fingerprint(self) -> str:
        """SHA-256 of what the stages do, to tell on resume whether the pipeline changed.

        ``needs`` and ``resources`` count only where given, so a pipeline without any keeps its
        fingerprint."""
        payload: list[object] = ["graph"] if self.is_graph else []
        payload.extend(_fingerprinted(stage) for stage in self.stages)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fingerprinted(stage: ResolvedStage) -> dict[str, object]:
    """What a stage's fingerprint covers: everything but its title, and ``needs``,
    ``resources`` and ``artifacts`` only when given (so fingerprints from before those keys
    existed still match)."""
    payload = asdict(stage) | {"title": None}
    for key in ("needs", "resources", "artifacts"):
        if not payload[key]:
            del payload[key]
    return payload


def command_text(command: str | list[str] | None) -> str:
    if command is None:
        return ""
    return command if isinstance(command, str) else shlex.join(command)


def known_pipelines(settings: Settings) -> str:
    return ", ".join(sorted(settings.pipelines)) or "none defined"


def pipeline_exists(settings: Settings, pipeline_id: str) -> None:
    if pipeline_id not in settings.pipelines:
        raise UnknownPipelineError(
            f"unknown pipeline {pipeline_id!r}; known pipelines: {known_pipelines(settings)} "
            "(define it under [pipelines] in codex.orchestrator.toml)"
        )


def _expand(
    settings: Settings, entries: list[StageConfig], where: str, trail: tuple[str, ...]
) -> list[StageConfig]:
    stages: list[StageConfig] = []
    for entry in entries:
        if entry.stage_set is None:
            stages.append(entry)
            continue
        name = entry.stage_set
        if name not in settings.stage_sets:
            known = ", ".join(sorted(settings.stage_sets)) or "none defined"
            raise ConfigError(f"{where}: unknown stage_set {name!r}; known stage sets: {known}")
        if name in trail:
            raise ConfigError(f"{where}: stage_set {name!r} includes itself ({' -> '.join(trail)})")
        stages.extend(_expand(settings, settings.stage_sets[name], where, (*trail, name)))
    return stages


def _inside(root: Path, cwd: str) -> bool:
    target = (root / cwd).resolve()
    return target == root or root in target.parents


MAX_SUBPIPELINE_DEPTH = 32
"""Child runs nest at most this deep (a 2,000-deep chain once exhausted the stack)."""


def resolve_pipeline(
    settings: Settings,
    pipeline_id: str,
    root: Path,
    sanitizer: IdSanitizer,
    where: Where,
    _trail: tuple[str, ...] = (),
) -> ResolvedPipeline:
    """Expand stage sets in place, check ids, cwd and subpipelines; raise one clear error."""
    pipeline_exists(settings, pipeline_id)
    origin = where(f"pipelines.{pipeline_id}")
    config = settings.pipelines[pipeline_id]
    trail = (*_trail, pipeline_id)
    seen: set[str] = set()
    raw_ids: dict[str, str] = {}  # id as configured -> id as sanitized
    stages: list[ResolvedStage] = []
    expanded = _expand(settings, config.stages, origin, ())
    for position, entry in enumerate(expanded, start=1):
        assert entry.id is not None
        label = f'stage ID in pipeline "{pipeline_id}"'
        try:
            stage_id = check_id(sanitizer, entry.id, "stage", label)
        except Exception as exc:
            raise ConfigError(f"{origin}: {exc}") from None
        if stage_id in seen:
            raise ConfigError(
                f"{origin}: stage id {stage_id!r} appears twice in pipeline {pipeline_id!r} "
                "(after stage sets are expanded); give each stage its own id"
            )
        seen.add(stage_id)
        if entry.cwd is not None and not _inside(root, entry.cwd):
            raise ConfigError(
                f"{origin}: stage {stage_id!r}: cwd {entry.cwd!r} leaves the project root {root}; "
                "use a folder inside it"
            )
        if entry.pipeline is not None:
            if len(trail) >= MAX_SUBPIPELINE_DEPTH:
                raise ConfigError(
                    f"{origin}: subpipelines nest more than {MAX_SUBPIPELINE_DEPTH} deep "
                    f"({trail[0]} -> {trail[1]} -> ... -> {entry.pipeline}); flatten the chain"
                )
            if entry.pipeline in trail:
                cycle = " -> ".join((*trail, entry.pipeline))
                raise ConfigError(f"{origin}: subpipelines form a cycle: {cycle}")
            pipeline_exists(settings, entry.pipeline)
            resolve_pipeline(settings, entry.pipeline, root, sanitizer, where, trail)
        kind: Literal["command", "subpipeline"] = "command" if entry.command else "subpipeline"
        title = entry.title or (
            command_text(entry.command) if entry.command else f"pipeline {entry.pipeline}"
        )
        stages.append(
            ResolvedStage(
                index=position,
                id=stage_id,
                title=title,
                kind=kind,
                command=entry.command,
                pipeline=entry.pipeline,
                env={key: _env_text(value) for key, value in entry.env.items()},
                cwd=entry.cwd,
                timeout_seconds=entry.timeout_seconds,
                allow_failure=entry.allow_failure,
                summary_hint=entry.summary_hint,
                requires_approval=entry.requires_approval,
                retry_attempts=entry.retry_attempts,
                retry_on_exit_codes=entry.retry_on_exit_codes,
                artifacts=tuple(entry.artifacts or ()),
                resources=dict(entry.resources),
                needs=tuple(entry.needs or ()),
            )
        )
        raw_ids[entry.id] = stage_id
    stages = _check_needs(stages, raw_ids, origin, pipeline_id)
    return ResolvedPipeline(
        pipeline_id,
        config.title or pipeline_id,
        tuple(stages),
        max_parallel=config.max_parallel,
        fail_fast=config.fail_fast,
        declares_needs=any(entry.needs is not None for entry in expanded),
    )


def _check_needs(
    stages: list[ResolvedStage], raw_ids: dict[str, str], origin: str, pipeline_id: str
) -> list[ResolvedStage]:
    """``needs`` name stages by the ids the config gave them; an unknown id or a cycle is a
    config error naming the stages involved."""
    stages = [
        replace(stage, needs=tuple(raw_ids.get(need, need) for need in stage.needs))
        for stage in stages
    ]
    needs = {stage.id: stage.needs for stage in stages}
    unknown = stage_graph.unknown_needs(needs)
    if unknown:
        known = ", ".join(needs)
        problems = "; ".join(
            f"stage {stage!r} needs itself"
            if stage == need
            else f"stage {stage!r} needs {need!r}, which is no stage of it"
            for stage, need in unknown
        )
        raise ConfigError(
            f"{origin}: pipeline {pipeline_id!r}: {problems} (its stages: {known}); "
            "'needs' names other stages of the same pipeline"
        )
    cycle = stage_graph.find_cycle(needs)
    if cycle:
        raise ConfigError(
            f"{origin}: pipeline {pipeline_id!r}: 'needs' form a cycle: {' -> '.join(cycle)}; "
            "remove one of these needs"
        )
    return stages


def _env_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def single_command_pipeline(
    command: list[str],
    *,
    stage_id: str = "exec",
    timeout_seconds: float | None = None,
    cwd: str | None = None,
) -> ResolvedPipeline:
    """The one-stage pipeline ``exec`` runs (``cwd`` "." is the root, like no ``cwd``)."""
    cwd = None if cwd in (None, ".") else cwd
    stage = ResolvedStage(
        index=1,
        id=stage_id,
        title=command_text(command),
        kind="command",
        command=command,
        pipeline=None,
        cwd=cwd,
        timeout_seconds=timeout_seconds,
    )
    return ResolvedPipeline("exec", "exec", (stage,))


def with_defaults(pipeline: ResolvedPipeline, parent: ResolvedStage) -> ResolvedPipeline:
    """A subpipeline's stages with the ``env`` and ``cwd`` of the stage that runs it as
    defaults (each stage's own keys win); nested subpipelines pass them on."""
    if not parent.env and parent.cwd is None:
        return pipeline
    stages = tuple(
        replace(stage, env={**parent.env, **stage.env}, cwd=stage.cwd or parent.cwd)
        for stage in pipeline.stages
    )
    return replace(pipeline, stages=stages)
