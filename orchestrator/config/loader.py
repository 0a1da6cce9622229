"""Resolving the project root and folders, reading every layer, and validating the result."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.config.layers import (
    LOCAL_FILE,
    PROJECT_FILE,
    Layer,
    cli_layer,
    describe_loc,
    env_layer,
    merge_layers,
    origin_of,
    read_toml_layer,
    user_config_path,
)
from orchestrator.config.model import Settings, build_settings
from orchestrator.errors import ConfigError

DEFAULTS_LAYER = Layer(name="defaults", origin="built-in defaults", base_dir=Path("."), data={})


@dataclass(frozen=True)
class LoadedConfig:
    root: Path
    runs_dir: Path
    out_dir: Path
    settings: Settings
    layers: tuple[Layer, ...]
    provenance: dict[str, Layer]

    def origin(self, dotted_key: str) -> str:
        """Where the key, or the nearest table holding it, was set (for error messages)."""
        layer = origin_of(dotted_key.split("."), self.provenance)
        return layer.origin if layer else DEFAULTS_LAYER.origin

    def value_origin(self, dotted_key: str) -> str:
        """The layer that set exactly this value (built-in defaults when none did)."""
        layer = self.provenance.get(dotted_key)
        return layer.origin if layer else DEFAULTS_LAYER.origin

    def validate_options(self, table: str, model: type[BaseModel]) -> BaseModel:
        """Validate a slot's options table (``"heartbeat"``) or an observer's
        (``"observers.<name>"``) with the implementation's model."""
        data = self._resolve_paths(table, model, dict(self.table(table)))
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            prefix = tuple(table.split("."))
            raise config_error(exc, self.provenance, prefix=prefix, model=model) from None

    def table(self, dotted: str) -> dict[str, Any]:
        """The raw table at a dotted path of the settings (empty when it is not set)."""
        value: Any = self.settings
        for part in dotted.split("."):
            value = getattr(value, part) if isinstance(value, BaseModel) else value.get(part, {})
        return value if isinstance(value, dict) else {}

    def _resolve_paths(
        self, table: str, model: type[BaseModel], data: dict[str, Any]
    ) -> dict[str, Any]:
        """Relative values of ``Path`` options resolve against the folder of the file that set
        them (the project root for the environment and ``--set``)."""
        for name, field in model.model_fields.items():
            value = data.get(name)
            if not isinstance(value, str) or not _is_path_field(field.annotation):
                continue
            path = Path(value).expanduser()
            if path.is_absolute():
                continue
            layer = self.provenance.get(f"{table}.{name}")
            base = self.root if layer is None or layer.name in ("env", "cli") else layer.base_dir
            data[name] = str((base / path).resolve())
        return data


def _is_path_field(annotation: Any) -> bool:
    if annotation is Path:
        return True
    return any(arg is Path for arg in getattr(annotation, "__args__", ()))


def resolve_dir(environ: Mapping[str, str], name: str, root: Path, default: str) -> Path:
    value = environ.get(name) or default
    path = Path(value).expanduser()
    return (path if path.is_absolute() else root / path).resolve()


def config_error(
    exc: ValidationError,
    provenance: Mapping[str, Layer],
    prefix: tuple[str, ...] = (),
    model: type[BaseModel] = Settings,
) -> ConfigError:
    """One line: where, which key, what was wrong, what was expected."""
    first = exc.errors(include_url=False)[0]
    loc = prefix + tuple(first["loc"])
    layer = origin_of(loc, provenance)
    where = layer.origin if layer else "built-in defaults"
    key = describe_loc(loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        owner = _model_at(model, tuple(first["loc"])[:-1])
        hint = f"; known keys: {', '.join(sorted(owner.model_fields))}" if owner else ""
        message = f"{where}: unknown key '{key}'{hint}"
    else:
        got = first.get("input")
        if isinstance(got, str) and "://" in got:  # a URL may carry a password or a token
            from orchestrator.http_targets import redacted

            got = redacted(got)
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        message = f"{where}: {key}: {first['msg']}{shown}"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(message)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the keys at ``loc`` (for listing the known keys)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            if isinstance(part, int):
                continue
            current = _inner_model(current)
            if current is None:
                return None
        field = current.model_fields.get(str(part))
        if field is None:
            current = _inner_model(current)
            continue
        current = _inner_model(field.annotation)
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def load_config(
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    assignments: Sequence[str] = (),
    root: Path | None = None,
    run_aliases: bool = True,
) -> LoadedConfig:
    if root is None:
        from orchestrator.config.project import resolve_project

        context = resolve_project(environ)
        root, environ = context.root, context.environ
    environ = os.environ if environ is None else environ
    root = root.resolve()
    layers: list[Layer] = [DEFAULTS_LAYER]
    user = read_toml_layer("user", user_config_path(environ), required=False)
    if user:
        layers.append(user)
    if config_file is not None:
        path = config_file if config_file.is_absolute() else Path.cwd() / config_file
        project = read_toml_layer("project", path, required=True)
    else:
        project = read_toml_layer("project", root / PROJECT_FILE, required=False)
    if project:
        layers.append(project)
    local = read_toml_layer("local", root / LOCAL_FILE, required=False)
    if local:
        layers.append(local)
    for extra in (env_layer(environ, root, aliases=run_aliases), cli_layer(assignments, root)):
        if extra:
            layers.append(extra)
    merged, provenance = merge_layers(layers)  # the one merge: provenance and settings alike
    try:
        settings = build_settings(merged)
    except ValidationError as exc:
        raise config_error(exc, provenance) from None
    return LoadedConfig(
        root=root,
        runs_dir=resolve_dir(environ, "CODEX_ORCHESTRATOR_RUNS_DIR", root, ".runs"),
        out_dir=resolve_dir(environ, "CODEX_ORCHESTRATOR_OUT_DIR", root, "out"),
        settings=settings,
        layers=tuple(layers),
        provenance=provenance,
    )
