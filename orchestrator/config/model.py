"""The configuration model. Slot option tables stay plain tables here: the active implementation
of each slot validates its own table (``orchestrator.slots``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from orchestrator.contracts import SLOTS

EnvValue = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


SUBPIPELINE_REJECTS = frozenset(
    {"timeout_seconds", "retry_attempts", "retry_on_exit_codes", "summary_hint"}
)
"""Stage keys that make no sense for a subpipeline stage: a config error there, never ignored
(``env``, ``cwd`` and ``requires_approval`` apply to the child run as a whole)."""


class StageConfig(_Strict):
    """One entry of a pipeline's ``stages``: a command, a stage set, or a subpipeline."""

    id: str | None = Field(None, description="unique within the expanded pipeline")
    title: str | None = Field(None, description="defaults to the command")
    command: str | list[str] | None = Field(
        None, description="a string runs through /bin/sh -c; a list runs as argv with no shell"
    )
    env: dict[str, EnvValue] = Field(
        default_factory=dict,
        description="overrides the environment; values may use ${NAME}, ${NAME:-default} and $$",
    )
    cwd: str | None = Field(None, description="relative to the project root; must stay inside it")
    timeout_seconds: float | None = Field(
        None, ge=0, description="0 = none; default from [command_runner]"
    )
    allow_failure: StrictBool = Field(False, description="the run goes on and can still succeed")
    summary_hint: str | None = Field(
        None,
        description="regular expression: the last output line matching it is the summary "
        "(lines as a terminal shows them: colour codes and redrawn progress left out); "
        "without it, see Stage summaries",
    )
    stage_set: str | None = Field(None, description="expand the named [stage_sets] list here")
    pipeline: str | None = Field(None, description="run the named pipeline as a child run")
    requires_approval: StrictBool = Field(
        False, description="ask once per task and project before running"
    )
    retry_attempts: int | None = Field(None, ge=0, le=20, description="extra attempts on failure")
    retry_on_exit_codes: list[int] | None = Field(None, description="exit codes worth a retry")
    artifacts: list[str] | None = Field(
        None,
        description="globs relative to the stage's cwd; the files they match are copied into "
        "<run>/artifacts/<stage-id>/ when the stage ends",
    )

    @field_validator("artifacts")
    @classmethod
    def _artifact_globs(cls, value: list[str] | None) -> list[str] | None:
        from orchestrator.artifacts import glob_problem

        for pattern in value or []:
            problem = glob_problem(pattern)
            if problem:
                raise ValueError(problem)
        return value

    needs: list[str] | None = Field(
        None,
        description="ids of stages of the same pipeline that must end well before this one "
        "starts; any needs make the pipeline a graph",
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="e.g. { GPU = 1 }: reserved by a runner that schedules on a cluster "
        "(the dask runner); runners that run stages on this machine ignore it",
    )

    @field_validator("resources")
    @classmethod
    def _resources_named_and_positive(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if not name.strip():
                raise ValueError("a resource needs a name, e.g. resources = { GPU = 1 }")
            if not amount > 0:
                raise ValueError(f"resource {name!r} must be a positive amount (got {amount})")
        return value

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None and (not value or (isinstance(value, str) and not value.strip())):
            raise ValueError("command must not be empty")
        return value

    @field_validator("env")
    @classmethod
    def _env_references(cls, value: dict[str, EnvValue]) -> dict[str, EnvValue]:
        from orchestrator.config.env_expansion import problem

        for name, item in value.items():
            found = problem(item) if isinstance(item, str) else None
            if found:
                raise ValueError(f"env {name}: {found}")
        return value

    @field_validator("summary_hint")
    @classmethod
    def _hint_is_a_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            import re

            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"summary_hint is not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> StageConfig:
        kinds = [k for k in ("command", "stage_set", "pipeline") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "a stage needs exactly one of 'command', 'stage_set' or 'pipeline'"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        if self.stage_set is not None:
            others = self.model_fields_set - {"stage_set"}
            if others:
                raise ValueError(
                    f"a stage_set entry takes no other keys (got {', '.join(sorted(others))})"
                )
        elif self.id is None:
            raise ValueError("a stage needs an 'id'")
        if self.pipeline is not None:
            pointless = sorted(SUBPIPELINE_REJECTS & self.model_fields_set)
            if pointless:
                raise ValueError(
                    f"{', '.join(pointless)} cannot apply to a subpipeline stage (a child run is "
                    "no single command); set them on the stages of pipeline "
                    f"{self.pipeline!r} instead"
                )
        return self


class PipelineConfig(_Strict):
    title: str | None = Field(None, description="shown in progress and reviews (default: its name)")
    stages: list[StageConfig] = Field(min_length=1, description="the stages, in order")
    max_parallel: int | None = Field(
        None, ge=1, le=1024, description="stages of a graph run at once (default: CPUs)"
    )
    fail_fast: StrictBool = Field(
        False, description="in a graph, a failure cancels the running stages and skips the rest"
    )


if TYPE_CHECKING:  # what the model below builds, spelled out for the type checker

    class PluginsConfig(_Strict):
        persistence: str = "filesystem"
        heartbeat: str = "file"
        command_runner: str = "subprocess"
        id_sanitizer: str = "strict"
        disabled: list[str] = Field(default_factory=list)

else:  # one field per slot of the registry (orchestrator.contracts.SLOTS): the entry-point name
    PluginsConfig = create_model(
        "PluginsConfig",
        __base__=_Strict,
        **{
            spec.name: (str, Field(spec.default, description=f"entry-point name of {spec.role}"))
            for spec in SLOTS
        },
        disabled=(
            list[str],
            Field(default_factory=list, description="observer plugins not to load"),
        ),
    )


class NotificationsConfig(_Strict):
    targets: list[str] = Field(
        default_factory=list, description="http(s) URLs sent the run summary"
    )
    timeout_seconds: float = Field(5, ge=0.1, le=300, description="one delivery attempt's limit")
    retry_attempts: int = Field(3, ge=1, le=10, description="attempts per target, with backoff")

    @field_validator("targets")
    @classmethod
    def _http_targets(cls, value: list[str]) -> list[str]:
        from orchestrator.http_targets import check_http_url
        from orchestrator.redaction import redact_url

        for target in value:
            problem = check_http_url(target)
            if problem:
                raise ValueError(f"target {redact_url(target)!r}: {problem}")
        return value


class TelemetryConfig(_Strict):
    otel_endpoint: str | None = Field(None, description="OTLP/HTTP traces endpoint")
    export_timeout_seconds: float = Field(
        5, ge=0.1, le=120, description="how long the end of a run waits for the export"
    )

    @field_validator("otel_endpoint")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        from orchestrator.http_targets import check_http_url
        from orchestrator.redaction import redact_url

        problem = check_http_url(value) if value else None
        if problem:
            raise ValueError(f"{redact_url(value or '')!r}: {problem}")
        return value or None


class SyncConfig(_Strict):
    url: str | None = Field(
        None, description="http(s) URL each finished run is POSTed to (docs/evidence.md)"
    )
    token_env: str | None = Field(
        None, description="name of the environment variable holding the bearer token"
    )
    timeout_seconds: float = Field(10, gt=0, le=300, description="per attempt")
    attempts: int = Field(3, ge=1, le=10, description="attempts on 429/5xx, waits from 250 ms")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        from orchestrator.http_targets import check_http_url, redacted

        problem = check_http_url(value) if value else None
        if problem:
            raise ValueError(f"{redacted(value or '')}: {problem}")
        return value or None

    @field_validator("token_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        import re

        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(
                "token_env is the NAME of an environment variable (e.g. SYNC_TOKEN), not the token"
            )
        return value


class SigningConfig(_Strict):
    private_key: str | None = Field(
        None,
        description="ed25519 PEM key that signs each finished run's manifest_sha256 "
        "(outside the runs and out folders)",
    )
    public_key: str | None = Field(
        None, description="ed25519 PEM public key verify checks with (else private_key's)"
    )


class RetentionConfig(_Strict):
    keep_runs: int | None = Field(
        None, ge=1, description="prune keeps the newest N runs of a task (--keep)"
    )
    keep_days: float | None = Field(
        None, gt=0, description="prune keeps runs younger than this many days (--older-than)"
    )
    auto: bool = Field(False, description="prune the task after each run")

    @model_validator(mode="after")
    def _auto_needs_a_rule(self) -> RetentionConfig:
        if self.auto and self.keep_runs is None and self.keep_days is None:
            raise ValueError("auto = true needs keep_runs or keep_days to say what to keep")
        return self


class SpecGuardConfig(_Strict):
    paths: list[str] = Field(
        default_factory=lambda: ["tasks/*.md", "docs/TASKS.md", ".agent/task/*.md"],
        description="glob patterns, relative to the project root (they cannot leave it)",
    )

    @field_validator("paths")
    @classmethod
    def _inside_the_project(cls, value: list[str]) -> list[str]:
        from pathlib import PurePosixPath

        for pattern in value:
            parts = PurePosixPath(pattern).parts
            if pattern.startswith(("/", "~")) or ".." in parts:
                raise ValueError(
                    f"{pattern!r} leaves the project: use a pattern relative to the project "
                    "root, without '..'"
                )
        return value


class InstructionsConfig(_Strict):
    sources: list[str] = Field(
        default_factory=lambda: ["AGENTS.md", "docs/AGENTS.md", ".agent/AGENTS.md"],
        description="instruction files combined in this order (those that exist)",
    )


class Settings(BaseSettings):
    """The effective configuration. Built only by :func:`orchestrator.config.load_config`."""

    model_config = SettingsConfigDict(extra="forbid", nested_model_default_partial_update=True)

    default_pipeline: str | None = Field(None, description="used by `start` with no pipeline")
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    persistence: dict[str, Any] = Field(default_factory=dict)
    heartbeat: dict[str, Any] = Field(default_factory=dict)
    command_runner: dict[str, Any] = Field(default_factory=dict)
    id_sanitizer: dict[str, Any] = Field(default_factory=dict)
    stage_sets: dict[str, list[StageConfig]] = Field(
        default_factory=dict, description="named lists of stages a pipeline can include"
    )
    pipelines: dict[str, PipelineConfig] = Field(
        default_factory=dict, description="the pipelines, by name"
    )
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    spec_guard: SpecGuardConfig = Field(default_factory=SpecGuardConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    signing: SigningConfig = Field(default_factory=SigningConfig)
    instructions: InstructionsConfig = Field(default_factory=InstructionsConfig)
    observers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="option tables of third-party observers, by name"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The layers (files, CODEX_ORCHESTRATOR_* variables, --set) are read and merged once, with
        # provenance, by orchestrator.config.layers; the merged document is the only source.
        return (init_settings,)


def build_settings(document: dict[str, Any]) -> Settings:
    """Validate the merged layers (``orchestrator.config.layers.merge_layers``) into
    :class:`Settings`."""
    return Settings(**document)
