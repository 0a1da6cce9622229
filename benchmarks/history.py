"""A task history of many runs, made in seconds by cloning one real run.

One real ``start`` makes the template. Each clone gets its own run id and times (one minute
apart, all before the template), its own folder with the template's files (manifest, runner log,
stage log, heartbeat, lock file, errors folder) with the run id replaced, an entry in
``state.json`` and a line in ``metrics.json``: the same files, in the same formats, that as many
real runs would have left. The first clone is validated against the manifest model.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ours import OurProject

from orchestrator.clock import iso, parse_iso
from orchestrator.fsutil import atomic_write_json
from orchestrator.manifest import Manifest

TIME_KEYS = ("started_at", "completed_at", "updated_at", "heartbeat_at")


def run_id_at(at: datetime, serial: int) -> str:
    stamp = iso(at).replace(":", "-").replace(".", "-")
    return f"{stamp}-{serial & 0xFFFFFFFF:08x}"


def _shift(document: dict[str, Any], keys: tuple[str, ...], delta: timedelta) -> None:
    for key in keys:
        value = document.get(key)
        if isinstance(value, str):
            document[key] = iso(parse_iso(value) + delta)


def _template_files(run_dir: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for folder, _dirs, names in os.walk(run_dir):
        for name in names:
            path = Path(folder, name)
            files[str(path.relative_to(run_dir))] = path.read_bytes()
    return files


def clone_history(project: OurProject, task: str, template_id: str, count: int) -> list[str]:
    """Add ``count`` finished runs to ``task``, cloned from run ``template_id``; their ids."""
    template_dir = project.run_dir(template_id, task)
    manifest_text = (template_dir / "manifest.json").read_text(encoding="utf-8")
    manifest = json.loads(manifest_text)
    files = _template_files(template_dir)
    files.pop("manifest.json")
    subfolders = sorted(
        {str(Path(name).parent) for name in files if Path(name).parent != Path(".")}
        | {p.name for p in template_dir.iterdir() if p.is_dir()}
    )
    origin = parse_iso(manifest["started_at"])
    metrics_path = project.task_dir(task) / "metrics.json"
    template_metrics = [
        json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines() if line
    ]
    metric_template = next(m for m in template_metrics if m.get("run_id") == template_id)
    state = project.state(task)
    entries: list[dict[str, Any]] = []
    metric_lines: list[str] = []
    ids: list[str] = []
    cli_dir = project.task_dir(task) / "cli"
    for serial in range(count):
        delta = -timedelta(minutes=count - serial)
        run_id = run_id_at(origin + delta, serial)
        ids.append(run_id)
        run_dir = cli_dir / run_id
        run_dir.mkdir()
        for sub in subfolders:
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (run_dir / name).write_bytes(data.replace(template_id.encode(), run_id.encode()))
        clone = json.loads(manifest_text.replace(template_id, run_id))
        _shift(clone, TIME_KEYS, delta)
        for command in clone.get("commands", []):
            _shift(command, ("started_at", "completed_at"), delta)
        if serial == 0:
            Manifest.model_validate(clone)
        (run_dir / "manifest.json").write_text(
            json.dumps(clone, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        entries.append(
            {
                "run_id": run_id,
                "pipeline_id": clone["pipeline_id"],
                "parent_run_id": clone.get("parent_run_id"),
                "status": clone["status"],
                "started_at": clone["started_at"],
                "completed_at": clone["completed_at"],
                "manifest": str((run_dir / "manifest.json").relative_to(project.root)),
            }
        )
        line = dict(metric_template, run_id=run_id)
        _shift(line, ("started_at", "completed_at"), delta)
        metric_lines.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
    runs = entries + list(state.get("runs", []))
    runs.sort(key=lambda r: (r.get("started_at") or "", r.get("run_id") or ""))
    atomic_write_json(
        project.state_path(task),
        {
            "task_id": task,
            "last_run_at": max(r["started_at"] for r in runs),
            "runs": runs,
        },
    )
    existing = metrics_path.read_text(encoding="utf-8")
    metrics_path.write_text("\n".join(metric_lines) + "\n" + existing, encoding="utf-8")
    return ids
