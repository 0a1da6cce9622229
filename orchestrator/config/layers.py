"""Reading each configuration layer into a plain dict, and merging them with provenance.

Provenance maps every dotted key to the layer that set it last, so ``config`` can show where each
value came from and an error can name the file that holds the bad key.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError

ENV_PREFIX = "CODEX_ORCHESTRATOR_"
PROJECT_FILE = "codex.orchestrator.toml"
LOCAL_FILE = "codex.orchestrator.local.toml"
ENV_TOP_LEVEL_KEYS = frozenset({"default_pipeline"})
ENV_LIST_ALIASES: dict[str, tuple[str, ...]] = {
    "CODEX_ORCHESTRATOR_NOTIFY": ("notifications", "targets"),  # comma-separated (docs/exec.md)
}


@dataclass(frozen=True)
class Layer:
    """One source of settings. ``origin`` is what users are shown (a path or a name)."""

    name: str
    origin: str
    base_dir: Path
    data: dict[str, Any] = field(default_factory=dict)


def user_config_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "codex-orchestrator" / "config.toml"


MAX_CONFIG_BYTES = 1 << 20
"""A config file is a regular file of at most 1 MiB (``/dev/zero`` would be read until memory
runs out, a fifo nobody writes would hang)."""
MAX_NESTING = 32
"""Tables and arrays nest at most this deep (a 5,000-deep array exhausts the parser's stack)."""


def _read_config_bytes(path: Path) -> bytes:
    """The file's bytes, refusing anything but a regular file of at most MAX_CONFIG_BYTES.

    Opened non-blocking, so opening a fifo does not wait for a writer; checked on the open
    descriptor, so what is read is what was checked."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"config file {path} is not a regular file; point --config at a TOML file"
            )
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"config file {path} is {info.st_size:,} bytes, over the 1 MiB limit; "
                "a config file this big is not a config file"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} grew over the 1 MiB limit while it was read")
    return data


def _nesting_depth(value: Any) -> int:
    """How deep tables and arrays nest in ``value`` (iteratively: no recursion limit)."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_NESTING:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _loads(text: str, where: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except RecursionError:
        data = None
    if data is None or _nesting_depth(data) > MAX_NESTING:
        raise ConfigError(
            f"{where}: tables or arrays nest deeper than {MAX_NESTING} levels; flatten them"
        )
    return data


def read_toml_layer(name: str, path: Path, *, required: bool) -> Layer | None:
    """Parse one TOML file; a missing optional file is no layer, a missing required one an error."""
    try:
        raw = _read_config_bytes(path)
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"config file {path} does not exist; check the path given to --config"
            ) from None
        return None
    except IsADirectoryError:
        raise ConfigError(
            f"config file {path} is not a regular file; point --config at a TOML file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        data = _loads(raw.decode("utf-8"), str(path))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}; fix the syntax there") from None
    return Layer(name=name, origin=str(path), base_dir=path.parent.resolve(), data=data)


def parse_scalar(text: str) -> Any:
    """A value typed on a command line or in the environment: a TOML value, else the string."""
    try:
        return _loads(f"v = {text}", "a value given on the command line or in the environment")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _nest(target: dict[str, Any], keys: list[str], value: Any, where: str) -> None:
    node = target
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: '{key}' is set both as a value and as a table")
        node = child
    node[keys[-1]] = value


def env_layer(environ: Mapping[str, str], root: Path, *, aliases: bool = True) -> Layer | None:
    """``CODEX_ORCHESTRATOR_<TABLE>__<KEY>=VALUE`` (and ``CODEX_ORCHESTRATOR_DEFAULT_PIPELINE``).

    ``aliases``: also the shorthand variables of :data:`ENV_LIST_ALIASES` (e.g.
    ``CODEX_ORCHESTRATOR_NOTIFY``), which only commands that run stages read: a bad value there
    must not stop a read-only command such as ``status``."""
    data: dict[str, Any] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if "__" in rest:
            keys = [part.lower() for part in rest.split("__")]
            if any(not part for part in keys):
                raise ConfigError(
                    f"environment variable {name}: empty key part; use {ENV_PREFIX}<TABLE>__<KEY>"
                )
        elif rest.lower() in ENV_TOP_LEVEL_KEYS:
            keys = [rest.lower()]
        elif name in ENV_LIST_ALIASES:
            if not aliases:
                continue
            items = [item.strip() for item in environ[name].split(",") if item.strip()]
            _nest(data, list(ENV_LIST_ALIASES[name]), items, f"environment variable {name}")
            continue
        else:
            continue  # e.g. CODEX_ORCHESTRATOR_ROOT: not a config key
        _nest(data, keys, parse_scalar(environ[name]), f"environment variable {name}")
    if not data:
        return None
    return Layer(name="env", origin="environment", base_dir=root, data=data)


def cli_layer(assignments: Iterable[str], root: Path) -> Layer | None:
    data: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        keys = [part.strip() for part in key.split(".")]
        if not sep or not all(keys):
            raise ConfigError(
                f"--set {item!r}: expected TABLE.KEY=VALUE, "
                "e.g. --set command_runner.timeout_seconds=60"
            )
        _nest(data, keys, parse_scalar(value.strip()), f"--set {item!r}")
    if not data:
        return None
    return Layer(name="cli", origin="--set", base_dir=root, data=data)


def merge_layers(layers: Iterable[Layer]) -> tuple[dict[str, Any], dict[str, Layer]]:
    """Deep-merge tables (later layers win single keys); lists and values replace whole."""
    merged: dict[str, Any] = {}
    provenance: dict[str, Layer] = {}

    def walk(target: dict[str, Any], source: Mapping[str, Any], prefix: str, layer: Layer) -> None:
        for key, value in source.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, Mapping) and isinstance(target.get(key), dict):
                walk(target[key], value, dotted + ".", layer)
            elif isinstance(value, Mapping):
                target[key] = {}
                for stale in [k for k in provenance if k.startswith(dotted + ".")]:
                    del provenance[stale]
                walk(target[key], value, dotted + ".", layer)
                provenance.setdefault(dotted, layer)
            else:
                target[key] = value
                provenance[dotted] = layer

    for layer in layers:
        walk(merged, layer.data, "", layer)
    return merged, provenance


def origin_of(loc: Iterable[Any], provenance: Mapping[str, Layer]) -> Layer | None:
    """The layer that set the deepest known prefix of a validation error's location."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    while parts:
        layer = provenance.get(".".join(parts))
        if layer is not None:
            return layer
        parts.pop()
    return None


def describe_loc(loc: Iterable[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
