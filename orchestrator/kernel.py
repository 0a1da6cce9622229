"""The kernel: configuration, the four slots and the observers, loaded once per command.

Slots are built on first use, so a command that needs only the ID sanitizer (``plan``) does not
import a persistence implementation. The kernel is frozen: what one command tells a running run
(cancel, hurry, ``--approve``) travels in :class:`orchestrator.run_plan.RunControls` instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestrator.config import LoadedConfig, load_config
from orchestrator.contracts import (
    SLOT_NAMES,
    CommandRunner,
    Heartbeat,
    HeartbeatOptions,
    IdSanitizer,
    Persistence,
    SlotContext,
)
from orchestrator.observers import Observers, load_observers
from orchestrator.slots import ImplementationInfo, LoadedSlot, instantiate, load_class

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kernel:
    config: LoadedConfig
    environ: Mapping[str, str]
    enclosing_run_id: str | None = None
    """The run whose stage started this command, when it works on the same project."""
    config_found: bool = True
    """Whether a project (or ``--config``) file was read: a pipeline can come from nowhere else
    in the usual case, so commands that need one say how to make it."""
    searched_from: Path | None = None
    _slots: dict[str, LoadedSlot] = field(default_factory=dict)  # filled once per slot, on use
    _checked: dict[str, tuple[type[Any], ImplementationInfo, BaseModel]] = field(
        default_factory=dict
    )
    """Each slot's implementation class and validated options, found once per command (checking
    the options and then building the slot looked the class up twice)."""

    @classmethod
    def load(
        cls,
        *,
        config_file: Path | None = None,
        assignments: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
        root: Path | None = None,
        run_aliases: bool = True,
    ) -> Kernel:
        from orchestrator.config.project import resolve_project

        project = resolve_project(os.environ if environ is None else environ, root)
        config = load_config(
            environ=project.environ,
            config_file=config_file,
            assignments=assignments,
            root=project.root,
            run_aliases=run_aliases,
        )
        return cls(
            config=config,
            environ=project.environ,
            enclosing_run_id=project.enclosing_run_id,
            config_found=project.config_found or config_file is not None,
            searched_from=project.searched_from,
        )

    @property
    def root(self) -> Path:
        return self.config.root

    @property
    def context(self) -> SlotContext:
        return SlotContext(self.config.root, self.config.runs_dir, self.config.out_dir)

    def where(self, dotted_key: str) -> str:
        return self.config.origin(dotted_key)

    def slot(self, slot: str) -> LoadedSlot:
        loaded = self._slots.get(slot)
        if loaded is None:
            implementation_cls, info, options = self._check_slot(slot)
            implementation = instantiate(slot, info.name, implementation_cls, options, self.context)
            loaded = LoadedSlot(slot, info.name, implementation, options, info)
            self._slots[slot] = loaded
        return loaded

    def _check_slot(self, slot: str) -> tuple[type[Any], ImplementationInfo, BaseModel]:
        """The active implementation class of ``slot`` and its options, validated by its model."""
        checked = self._checked.get(slot)
        if checked is None:
            name = getattr(self.config.settings.plugins, slot)
            implementation_cls, info = load_class(slot, name)
            options = self.config.validate_options(slot, implementation_cls.options_model)
            checked = self._checked[slot] = (implementation_cls, info, options)
        return checked

    def load_slots(self) -> None:
        """Build all four slots now, so a bad plugin or option fails before anything runs."""
        for slot in SLOT_NAMES:
            self.slot(slot)

    def check_options(self, *, skip_unloadable: bool = False) -> None:
        """Validate each slot's options table with its active implementation's model, exactly as
        a run would, without building anything: every command that loads the config rejects what
        ``start`` rejects. ``skip_unloadable``: an implementation that cannot load is left to the
        caller to report (``plugins``)."""
        from orchestrator.errors import PluginLoadError

        for slot in SLOT_NAMES:
            try:
                self._check_slot(slot)
            except PluginLoadError:
                if skip_unloadable:
                    continue
                raise
        self._check_observer_options()

    def _check_observer_options(self) -> None:
        """Validate every ``[observers.<name>]`` table whose observer declares an options model,
        so a bad value stops any command before it starts (exit 2), as for a slot. Observers
        with no table are not even imported here."""
        tables = self.config.settings.observers
        if not tables:
            return
        from orchestrator import entry_point_cache
        from orchestrator.contracts import OBSERVER_GROUP
        from orchestrator.observers import options_model_of

        for entry_point in entry_point_cache.select(OBSERVER_GROUP):
            if entry_point.name not in tables:
                continue
            try:
                model = options_model_of(entry_point.load(), entry_point.name)
            except (Exception, SystemExit):
                continue  # reported when observers load, like any observer that cannot load
            if model is not None:
                self.config.validate_options(f"observers.{entry_point.name}", model)

    @property
    def persistence(self) -> Persistence:
        return self.slot("persistence").implementation  # type: ignore[no-any-return]

    @property
    def heartbeat(self) -> Heartbeat:
        return self.slot("heartbeat").implementation  # type: ignore[no-any-return]

    @property
    def heartbeat_options(self) -> HeartbeatOptions:
        return self.slot("heartbeat").options  # type: ignore[return-value]

    @property
    def command_runner(self) -> CommandRunner:
        return self.slot("command_runner").implementation  # type: ignore[no-any-return]

    @property
    def sanitizer(self) -> IdSanitizer:
        return self.slot("id_sanitizer").implementation  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close every slot implementation this kernel built (each once; a failure is logged,
        never raised: the command's outcome is already decided). Implementations written for
        plugin API 1 may have no ``close``."""
        while self._slots:
            slot, loaded = self._slots.popitem()
            close = getattr(loaded.implementation, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception as exc:  # a plugin's bug at the very end
                log.warning("closing the %s implementation %r failed: %s", slot, loaded.name, exc)

    @cached_property
    def observers(self) -> Observers:
        return load_observers(
            self.config.settings.plugins.disabled,
            environ=dict(self.environ),
            validate_options=self.config.validate_options,
        )

    def effective_config(self) -> dict[str, Any]:
        return self.config.settings.model_dump(mode="json")
