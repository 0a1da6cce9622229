"""Observer plugins (pluggy): loading them one by one and calling them in isolation.

A broken observer never breaks a run: one that fails to import is reported and skipped, and a
hook implementation that raises is reported and the remaining observers still hear the event.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel

from orchestrator import hookspecs
from orchestrator.contracts import OBSERVER_GROUP, ObserverOptions
from orchestrator.slots import check_required_api

AUTOLOAD_SWITCH = "CODEX_ORCHESTRATOR_DISABLE_PLUGIN_AUTOLOAD"
"""Set to 1 to load no third-party observer (the built-in ones still load)."""

BUILTIN_DISTRIBUTION = "codex-orchestrator"

if TYPE_CHECKING:
    from datetime import datetime

    from orchestrator.manifest import CommandRecord
    from orchestrator.run_context import RunView

ErrorReporter = Callable[[str, str, BaseException], None]
OptionsValidator = Callable[[str, type[BaseModel]], BaseModel]
"""``validate(table, model)``: the config's validation of ``[observers.<name>]``."""


@dataclass(frozen=True)
class ObserverInfo:
    name: str
    distribution: str | None
    version: str | None
    status: str  # "active" | "disabled" | "not loaded (autoload off)" | "error"
    error: str | None = None


def _report_to_stderr(observer: str, hook: str, exc: BaseException) -> None:
    print(
        f"warning: observer {observer!r} failed in {hook}: {type(exc).__name__}: {exc} "
        f"(the run goes on; further failures of this hook are counted, not shown; "
        f"disable it with [plugins] disabled = [{observer!r}])",
        file=sys.stderr,
    )


@dataclass
class Observers:
    """A typed facade over the plugin manager: one method per hook."""

    manager: pluggy.PluginManager
    infos: list[ObserverInfo] = field(default_factory=list)
    on_error: ErrorReporter = _report_to_stderr
    _impls: dict[str, list[Any]] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    """How often each (observer, hook) raised; only the first time is reported."""
    options: dict[str, BaseModel] = field(default_factory=dict)
    """The validated options of each observer that declares an ``options_model``."""

    _order: list[str] = field(default_factory=list)
    """Observer names in the order they were registered (the order they are called in)."""

    def register(self, plugin: object, name: str) -> None:
        refuse_wrappers(plugin, name)
        self.manager.register(plugin, name=name)
        self._order.append(name)
        self._impls.clear()

    def _hook_impls(self, hook: str) -> list[Any]:
        impls = self._impls.get(hook)
        if impls is None:
            # Load order, as documented. (pluggy's own call loop goes last-registered-first;
            # the kernel calls each implementation itself, to isolate its failures.)
            # ``tryfirst``/``trylast`` still move an observer to the front/back.
            rank = {name: index for index, name in enumerate(self._order)}

            def key(impl: Any) -> tuple[int, int]:
                group = 0 if impl.tryfirst else 2 if impl.trylast else 1
                return group, rank.get(impl.plugin_name, len(rank))

            impls = sorted(getattr(self.manager.hook, hook).get_hookimpls(), key=key)
            self._impls[hook] = impls
        return impls

    def forget(self, name: str) -> None:
        if name in self._order:
            self._order.remove(name)
        self._impls.clear()

    def _call(self, hook: str, **kwargs: Any) -> None:
        for impl in self._hook_impls(hook):
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except (Exception, SystemExit) as exc:  # an observer never ends the run
                key = (impl.plugin_name, hook)
                self.failures[key] = self.failures.get(key, 0) + 1
                if self.failures[key] == 1:  # once per observer and hook, not once per chunk
                    self.on_error(impl.plugin_name, hook, exc)

    def has(self, hook: str) -> bool:
        """Whether any observer implements ``hook`` (lets hot paths skip building arguments)."""
        return bool(self._hook_impls(hook))

    def run_started(self, run: RunView) -> None:
        self._call("orchestrator_run_started", run=run)

    def stage_started(self, run: RunView, stage: CommandRecord) -> None:
        self._call("orchestrator_stage_started", run=run, stage=stage)

    def output_chunk(
        self, run: RunView, stage: CommandRecord, stream: str, sequence: int, data: bytes
    ) -> None:
        self._call(
            "orchestrator_output_chunk",
            run=run,
            stage=stage,
            stream=stream,
            sequence=sequence,
            data=data,
        )

    def command_retry(
        self, run: RunView, stage: CommandRecord, attempt: int, delay_seconds: float
    ) -> None:
        self._call(
            "orchestrator_command_retry",
            run=run,
            stage=stage,
            attempt=attempt,
            delay_seconds=delay_seconds,
        )

    def stage_finished(self, run: RunView, stage: CommandRecord) -> None:
        self._call("orchestrator_stage_finished", run=run, stage=stage)

    def heartbeat(self, run: RunView, at: datetime) -> None:
        self._call("orchestrator_heartbeat", run=run, at=at)

    def run_completed(self, run: RunView, summary: dict[str, Any]) -> None:
        self._call("orchestrator_run_completed", run=run, summary=summary)


def new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def refuse_wrappers(plugin: object, name: str) -> None:
    """Raise TypeError for a hook wrapper: observers only observe, and the kernel calls each
    implementation on its own (a wrapper would silently never run)."""
    for attribute in dir(plugin):
        if not attribute.startswith("orchestrator_"):
            continue
        marks = getattr(getattr(plugin, attribute, None), hookspecs.PROJECT_NAME + "_impl", None)
        if isinstance(marks, dict) and (marks.get("wrapper") or marks.get("hookwrapper")):
            raise TypeError(
                f"observer {name!r}: {attribute} is a hook wrapper (wrapper=True or "
                "hookwrapper=True), which observers cannot be; mark it with a plain @hookimpl"
            )


def options_model_of(plugin: object, name: str) -> type[BaseModel] | None:
    """The observer's declared ``options_model`` (None when it declares none)."""
    model = getattr(plugin, "options_model", None)
    if model is None:
        return None
    if not (isinstance(model, type) and issubclass(model, ObserverOptions)):
        raise TypeError(
            f"observer {name!r}: options_model must subclass orchestrator.plugin.ObserverOptions"
        )
    return model


def load_observers(
    disabled: Iterable[str] = (),
    environ: dict[str, str] | None = None,
    on_error: ErrorReporter = _report_to_stderr,
    validate_options: OptionsValidator | None = None,
) -> Observers:
    """Register every observer entry point that is not disabled, each in isolation."""
    from orchestrator import entry_point_cache

    environ = dict(os.environ) if environ is None else environ
    autoload = environ.get(AUTOLOAD_SWITCH, "").strip().lower() not in {"1", "true", "yes", "on"}
    blocked = set(disabled)
    observers = Observers(new_manager(), on_error=on_error)
    for entry_point in sorted(entry_point_cache.select(OBSERVER_GROUP), key=lambda e: e.name):
        dist_name, version = entry_point.distribution, entry_point.version
        if entry_point.name in blocked:
            observers.infos.append(ObserverInfo(entry_point.name, dist_name, version, "disabled"))
            continue
        if not autoload and dist_name != BUILTIN_DISTRIBUTION:
            observers.infos.append(
                ObserverInfo(
                    entry_point.name, dist_name, version, f"not loaded ({AUTOLOAD_SWITCH})"
                )
            )
            continue
        plugin: object = None
        try:
            plugin = entry_point.load()
            check_required_api(plugin, f"observer {entry_point.name!r}")
            model = options_model_of(plugin, entry_point.name)
            if model is not None:
                table = f"observers.{entry_point.name}"
                observers.options[entry_point.name] = (
                    validate_options(table, model) if validate_options else model()
                )
            observers.register(plugin, entry_point.name)
            observers.manager.check_pending()
        except (Exception, SystemExit) as exc:
            if plugin is not None and observers.manager.is_registered(plugin):
                observers.manager.unregister(plugin)
                observers.forget(entry_point.name)
            message = f"{type(exc).__name__}: {exc}"
            observers.infos.append(
                ObserverInfo(entry_point.name, dist_name, version, "error", message)
            )
            print(
                f"warning: observer plugin {entry_point.name!r} ({OBSERVER_GROUP}) not loaded: "
                f"{message}",
                file=sys.stderr,
            )
            continue
        observers.infos.append(ObserverInfo(entry_point.name, dist_name, version, "active"))
    return observers
