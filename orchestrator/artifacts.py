"""A stage's artifacts: the files its ``artifacts`` globs match, copied into the run when it ends.

Globs are relative to the stage's ``cwd`` (``**`` crosses folders; a matched folder brings every
file beneath it). Each file is copied in chunks of ``digests.CHUNK_BYTES`` (never read into
memory whole), hashed while it is copied, written beside its target and renamed into place, and
listed in the stage's manifest entry with its path, size and SHA-256.

Where the copies go belongs to the persistence slot: an implementation may define
``artifact_dir(run, stage_id) -> Path``; without it they go to ``<run>/artifacts/<stage-id>/``.

A glob that matches nothing is a warning. A match that leads outside the project root (through
a symbolic link, or a glob that names ``..`` or an absolute path, which the config refuses
already) is refused with a warning and not copied: artifacts are evidence, and the tool never
copies what it was not pointed at inside the project.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.contracts import RunLocation
from orchestrator.digests import CHUNK_BYTES
from orchestrator.manifest import ArtifactRecord
from orchestrator.run_report import relative

ARTIFACTS_FOLDER = "artifacts"


def default_artifact_dir(run: RunLocation, stage_id: str) -> Path:
    return run.run_dir / ARTIFACTS_FOLDER / stage_id


def artifact_folder(persistence: Any, run: RunLocation, stage_id: str) -> Path:
    """Where the persistence slot keeps the artifacts of one stage of the run."""
    chooser = getattr(persistence, "artifact_dir", None)
    return (
        Path(chooser(run, stage_id)) if chooser is not None else default_artifact_dir(run, stage_id)
    )


def glob_problem(pattern: str) -> str | None:
    """Why a configured glob is refused (config validation), or None."""
    if not pattern.strip():
        return "an artifacts glob must not be empty"
    if pattern.startswith(("/", "~")) or os.path.isabs(pattern):
        return f"artifacts glob {pattern!r} is absolute; use a path relative to the stage's cwd"
    if ".." in PurePosixPath(pattern).parts:
        return (
            f"artifacts glob {pattern!r} leads out with '..'; artifacts come from the stage's cwd"
        )
    return None


def safe_relative(text: str) -> PurePosixPath | None:
    """``text`` as a relative path that stays inside its folder, or None."""
    path = PurePosixPath(text)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        return None
    return path


@dataclass
class Collected:
    records: list[ArtifactRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _files(cwd: Path, pattern: str) -> Iterator[str]:
    """Paths (relative to ``cwd``) of the files ``pattern`` matches; folders are walked."""
    for match in sorted(glob.glob(pattern, root_dir=cwd, recursive=True)):
        full = cwd / match
        if full.is_dir() and not full.is_symlink():
            for folder, dirs, names in os.walk(full):
                dirs.sort()
                for name in sorted(names):
                    yield os.path.relpath(os.path.join(folder, name), cwd)
        else:
            yield match


def copy_file(source: Path, target: Path) -> tuple[int, str]:
    """Copy in chunks, hashing as it goes; the target appears whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.copy.tmp")
    digest = hashlib.sha256()
    size = 0
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(source, flags), "rb") as reader, temporary.open("wb") as writer:
        while chunk := reader.read(CHUNK_BYTES):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    os.replace(temporary, target)
    return size, digest.hexdigest()


def collect(
    persistence: Any,
    run: RunLocation,
    stage_id: str,
    patterns: tuple[str, ...] | list[str],
    cwd: Path,
    root: Path,
    exclude: tuple[Path, ...] = (),
) -> Collected:
    """Copy what ``patterns`` match under ``cwd`` into the stage's artifact folder.

    Files under ``exclude`` (the runs and out folders: a ``**`` glob at the root would otherwise
    copy every earlier run into this one) are left out silently.
    """
    result = Collected()
    if not patterns:
        return result
    folder = artifact_folder(persistence, run, stage_id)
    shutil.rmtree(folder, ignore_errors=True)  # a resumed stage starts its artifacts afresh
    real_root = root.resolve()
    excluded = tuple(path.resolve() for path in exclude)
    seen: set[str] = set()
    for pattern in patterns:
        matched = False
        for name in _files(cwd, pattern):
            matched = True
            relative_path = safe_relative(Path(name).as_posix())
            if relative_path is None or str(relative_path) in seen:
                continue
            seen.add(str(relative_path))
            source = cwd / name
            if any(_inside(source.resolve(), folder) for folder in excluded):
                continue
            if not _inside(source.resolve(), real_root):
                result.warnings.append(
                    f"artifact {name} of stage {stage_id} refused: it leads outside the project "
                    f"root (to {source.resolve()})"
                )
                continue
            target = folder / relative_path
            try:
                size, sha256 = copy_file(source.resolve(), target)
            except OSError as exc:
                result.warnings.append(
                    f"artifact {name} of stage {stage_id} not copied: {type(exc).__name__}: {exc}"
                )
                continue
            result.records.append(
                ArtifactRecord(
                    path=str(relative_path),
                    stored=relative(target, root),
                    bytes=size,
                    sha256=sha256,
                )
            )
        if not matched:
            result.warnings.append(
                f"artifacts glob {pattern!r} of stage {stage_id} matched nothing"
            )
    return result


def collect_for_stage(session: Any, stage: Any) -> list[ArtifactRecord]:
    """The engine's hook: copy ``stage``'s artifacts into the run of ``session`` (a
    ``RunSession``) when the stage ends, also after a failure; each warning becomes a note of
    the run's summary."""
    if not stage.artifacts:
        return []
    kernel = session.kernel
    found = collect(
        kernel.persistence,
        session.location,
        stage.id,
        stage.artifacts,
        stage.working_dir(kernel.root),
        kernel.root,
        exclude=(kernel.config.runs_dir, kernel.config.out_dir),
    )
    for warning in found.warnings:
        session.note(warning)
    return found.records
