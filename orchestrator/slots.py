"""Finding and building the active implementation of each strategy slot (stevedore).

This module is the only place that turns a configured name into an implementation. It imports
no implementation itself: the built-in ones are entry points of this distribution like any
third party's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from orchestrator import entry_point_cache
from orchestrator.contracts import BASE_OPTIONS, PLUGIN_API_VERSION, SLOT_GROUPS, SlotContext
from orchestrator.errors import PluginLoadError

if TYPE_CHECKING:
    from importlib import metadata


@dataclass(frozen=True)
class ImplementationInfo:
    """One installed implementation of a slot, as ``plugins`` lists it."""

    slot: str
    name: str
    target: str
    distribution: str | None
    version: str | None
    error: str | None = None


@dataclass(frozen=True)
class LoadedSlot:
    slot: str
    name: str
    implementation: Any
    options: BaseModel
    info: ImplementationInfo


def _distribution_of(entry_point: Any) -> tuple[str | None, str | None]:
    # the driver's entry points come from the cached scan (entry_point_cache.py), which names
    # each one's distribution without opening every installed distribution
    for cached in entry_point_cache.select(entry_point.group):
        same = (cached.name, cached.value) == (entry_point.name, entry_point.value)
        if same and cached.distribution is not None:
            return cached.distribution, cached.version
    from importlib import metadata

    module = entry_point.value.split(":", 1)[0].split(".", 1)[0]
    for name in metadata.packages_distributions().get(module, []):
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def installed_names(group: str) -> list[str]:
    return sorted({ep.name for ep in entry_point_cache.select(group)})


@functools.cache
def _driver_class() -> type[Any]:
    """stevedore's ``DriverManager``, finding entry points in this tool's one scan
    (``entry_point_cache``) instead of a scan of its own.

    stevedore keeps its scan in ``~/.cache/python-entrypoints``, keyed by every ``sys.path``
    entry and its mtime. Under ``python -m`` (the SDK, nested runs) the first entry is the
    working folder: each new folder (and one changed minutes later; stevedore keeps an mtime to
    about two minutes) meant a full scan of every installed distribution and one more 20 KB file
    that nothing removes. Its per-process copy (``ENTRY_POINT_CACHE``) also missed an install
    made while the process lived. Loading, failure callbacks and the name lookup stay
    stevedore's. Built at the first use: importing stevedore is left to the commands that load
    a slot."""
    from stevedore import DriverManager

    class CachedScanDriver(DriverManager[Any]):
        def list_entry_points(self) -> list[metadata.EntryPoint]:
            return [entry.entry_point() for entry in entry_point_cache.select(self.namespace)]

    return CachedScanDriver


def load_class(slot: str, name: str) -> tuple[type[Any], ImplementationInfo]:
    """Import the implementation class ``name`` of ``slot``, or raise one clear PluginLoadError."""
    from stevedore.exception import NoMatches

    group = SLOT_GROUPS[slot]
    failures: list[BaseException] = []

    def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
        failures.append(exc)

    manager: Any = None
    try:
        manager = _driver_class()(
            namespace=group,
            name=name,
            invoke_on_load=False,
            on_load_failure_callback=on_failure,
        )
    except NoMatches:
        pass
    except SystemExit as exc:  # a plugin that exits while imported failed to load, no more
        failures.append(exc)
    if manager is None:
        if failures:
            cause = failures[0]
            raise PluginLoadError(
                f"plugin {name!r} in group {group} failed to load: "
                f"{type(cause).__name__}: {cause}; "
                f"reinstall it or choose another in [plugins] {slot}"
            ) from None
        known = ", ".join(installed_names(group)) or "none installed"
        raise PluginLoadError(
            f"no {slot} implementation named {name!r} (entry-point group {group}); "
            f"installed: {known}; set [plugins] {slot} to one of them"
        ) from None
    extension = manager.extensions[0]
    cls = checked_class(slot, name, extension.plugin, extension.entry_point_target)
    distribution, version = _distribution_of(extension.entry_point)
    info = ImplementationInfo(slot, name, extension.entry_point_target, distribution, version)
    return cls, info


def checked_class(slot: str, name: str, plugin: object, target: str) -> type[Any]:
    """``plugin``, imported from entry point ``name`` (``target``) of ``slot``, if it is what a
    slot implementation must be; else one clear PluginLoadError. The one check of a loaded
    implementation, for the commands that use it and for the ``plugins`` listing alike."""
    group = SLOT_GROUPS[slot]
    if not isinstance(plugin, type):
        raise PluginLoadError(
            f"plugin {name!r} in group {group} is not a class ({target}); "
            "a slot implementation must be a class taking (options, context)"
        )
    check_required_api(plugin, f"plugin {name!r} in group {group}")
    base = BASE_OPTIONS[slot]
    if not hasattr(plugin, "options_model"):  # every reader of the class relies on it
        raise PluginLoadError(
            f"plugin {name!r} in group {group} failed to load: it declares no options_model; "
            f"set options_model = orchestrator.plugin.{base.__name__} (or a subclass of it) "
            "on the class"
        )
    model = plugin.options_model
    if not (isinstance(model, type) and issubclass(model, base)):
        raise PluginLoadError(
            f"plugin {name!r} in group {group}: options_model must subclass "
            f"orchestrator.plugin.{base.__name__}"
        )
    return plugin


def check_required_api(plugin: object, what: str) -> None:
    """Refuse a plugin that declares ``requires_plugin_api`` newer than this kernel's."""
    required = getattr(plugin, "requires_plugin_api", None)
    if required is None:
        return
    if not isinstance(required, int) or isinstance(required, bool):
        raise PluginLoadError(f"{what}: requires_plugin_api must be an int (got {required!r})")
    if required > PLUGIN_API_VERSION:
        raise PluginLoadError(
            f"{what} needs plugin API {required}, but this codex-orchestrator has plugin API "
            f"{PLUGIN_API_VERSION}; upgrade codex-orchestrator or install an older plugin"
        )


def build(slot: str, name: str, options: BaseModel, context: SlotContext) -> Any:
    cls, _ = load_class(slot, name)
    return instantiate(slot, name, cls, options, context)


def instantiate(slot: str, name: str, cls: type, options: BaseModel, context: SlotContext) -> Any:
    try:
        return cls(options, context)
    except (Exception, SystemExit) as exc:  # a third party's constructor: report, never crash
        raise PluginLoadError(
            f"plugin {name!r} in group {SLOT_GROUPS[slot]} failed to start: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def list_installed(slot: str) -> list[ImplementationInfo]:
    """Every implementation installed for ``slot``; one that cannot load carries its error."""
    group = SLOT_GROUPS[slot]
    found: dict[str, ImplementationInfo] = {}
    for entry_point in entry_point_cache.select(group):
        distribution, version = entry_point.distribution, entry_point.version
        error = None
        try:
            checked_class(slot, entry_point.name, entry_point.load(), entry_point.value)
        except PluginLoadError as exc:
            error = str(exc)
        except (Exception, SystemExit) as exc:
            error = f"{type(exc).__name__}: {exc}"
        found[entry_point.name] = ImplementationInfo(
            slot, entry_point.name, entry_point.value, distribution, version, error
        )
    return [found[name] for name in sorted(found)]
