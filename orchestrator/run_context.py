"""What observers are given about a run (the ``run`` parameter of every hook)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunView:
    run_id: str
    task_id: str
    pipeline_id: str
    parent_run_id: str | None
    root: Path
    run_dir: Path
    manifest_path: Path
    config: dict[str, Any]
    resumed: bool = False
    out_dir: Path | None = None
    """The task's folder under the project's out folder (``<out>/<task>``): where an observer
    writes files of its own (in a sub-folder named after itself). Created by the observer."""
    parent_stage_id: str | None = None
    """For a child run: the stage of the parent run that runs it (a subpipeline stage)."""
    _annotate: Callable[[str, Any], None] | None = field(default=None, repr=False)
    _options: Callable[[str], Any] | None = field(default=None, repr=False)
    _manifest: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)

    def observer_options(self, name: str) -> Any:
        """The validated options of observer ``name`` (an instance of its ``options_model``,
        from ``[observers.<name>]``); None when it declares no model."""
        return self._options(name) if self._options is not None else None

    def manifest(self) -> dict[str, Any] | None:
        """The run's manifest as it is now (a copy), or None where it is not available."""
        return self._manifest() if self._manifest is not None else None

    def annotate(self, name: str, value: Any) -> None:
        """Record a small JSON value under ``observers.<name>`` in the manifest."""
        json.dumps(value)  # fail here, in the observer, when it is not JSON
        if self._annotate is not None:
            self._annotate(name, value)
