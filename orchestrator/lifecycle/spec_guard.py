"""Checking task checklists against run evidence (docs/workflow.md).

A checked item (``- [x] ...``) must cite the manifest of a run that succeeded, e.g.
``Evidence: .runs/0101/cli/<run-id>/manifest.json``. The item's text includes its continuation
lines (indented or lazy lines, and nested bullets that are not checklist items themselves) up to
a blank line. Lines inside fenced code blocks are not checklist items.

Cited paths are relative to the project root (as ``start`` prints them), or to the checklist's
own folder (as a Markdown link from that file would be); they are resolved by the persistence
slot, so a database-backed implementation answers for its own records.
"""

from __future__ import annotations

import glob
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.contracts import RunLocation
from orchestrator.errors import CorruptRecordError, LinkOutsideError, RunNotFoundError
from orchestrator.kernel import Kernel
from orchestrator.lifecycle.records import load_manifest
from orchestrator.suggestions import cli_command

CHECKED_ITEM = re.compile(r"^(?P<indent>\s*)[-*+]\s+\[[xX]\]\s+(?P<text>.*)$")
ANY_ITEM = re.compile(r"^(?P<indent>\s*)(?:[-*+]|\d+[.)])\s+(?P<rest>.*)$")
CHECKBOX = re.compile(r"^\[[ xX]\]\s")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^\s{0,3}#")
CITATION = re.compile(r"[^\s`'\"()\[\]]*manifest\.json")
ITEM_TEXT_LIMIT = 120


@dataclass(frozen=True)
class ChecklistItem:
    file: str
    line: int
    text: str
    citations: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    item: str
    problem: str
    message: str
    manifest: str | None = None
    run_id: str | None = None
    status: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GuardReport:
    patterns: list[str]
    files: list[str]
    items: int
    findings: list[Finding]


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip())


def checked_items(relative_name: str, text: str) -> list[ChecklistItem]:
    """The checked items of one Markdown file, each with the manifests it cites."""
    items: list[ChecklistItem] = []
    lines = text.splitlines()
    in_fence = False
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else CHECKED_ITEM.match(line)
        if match is None:
            continue
        start = index  # 1-based number of the item's line
        indent = _indent(line)
        parts = [match["text"]]
        while index < len(lines):
            following = lines[index]
            if not following.strip() or FENCE.match(following) or HEADING.match(following):
                break
            item = ANY_ITEM.match(following)
            if item and (_indent(following) <= indent or CHECKBOX.match(item["rest"])):
                break
            parts.append(following.strip())
            index += 1
        body = " ".join(parts)
        citations = tuple(dict.fromkeys(CITATION.findall(body)))
        summary = " ".join(match["text"].split())
        if len(summary) > ITEM_TEXT_LIMIT:
            summary = summary[: ITEM_TEXT_LIMIT - 1] + "…"
        items.append(ChecklistItem(relative_name, start, summary, citations))
    return items


def checklist_files(root: Path, patterns: list[str]) -> list[Path]:
    found: dict[Path, None] = {}
    for pattern in patterns:
        for name in sorted(glob.glob(pattern, root_dir=root, recursive=True)):
            path = (root / name).resolve()
            if path.is_file():
                found[path] = None
    return list(found)


def _resolve(kernel: Kernel, citation: str, checklist: Path) -> RunLocation | None:
    persistence = kernel.persistence
    cited = Path(citation)
    run = persistence.resolve_manifest_ref(cited)
    if run is None and not cited.is_absolute():
        run = persistence.resolve_manifest_ref((checklist.parent / cited).resolve())
    return run


def _check_citation(
    kernel: Kernel, item: ChecklistItem, citation: str, checklist: Path
) -> Finding | None:
    def finding(problem: str, message: str, **extra: Any) -> Finding:
        return Finding(item.file, item.line, item.text, problem, message, citation, **extra)

    run = _resolve(kernel, citation, checklist)
    if run is None:
        return finding("unknown_manifest", f"cites {citation}, which names no stored run")
    try:
        manifest = load_manifest(kernel, run)
    except LinkOutsideError as exc:
        return finding("linked_outside", f"cites {citation}, which is refused: {exc}")
    except RunNotFoundError:
        return finding("unknown_manifest", f"cites {citation}, which names no stored run")
    except CorruptRecordError as exc:
        return finding("corrupt_manifest", f"cites a manifest that cannot be read: {exc}")
    if manifest.status == "succeeded":
        return _check_evidence(kernel, run, finding)
    state = {
        "in_progress": "is still in progress",
        "queued": "is still queued",
    }.get(manifest.status, manifest.status)
    detail = f" ({manifest.status_detail})" if manifest.status_detail else ""
    return finding(
        "run_not_succeeded",
        f"cites run {manifest.run_id}, which {state}{detail}",
        run_id=manifest.run_id,
        status=manifest.status,
    )


def _check_evidence(kernel: Kernel, run: RunLocation, finding: Any) -> Finding | None:
    """A cited succeeded run must also verify: its manifest unchanged since the run, its logs,
    error files and artifacts as recorded (``verify``)."""
    from orchestrator.lifecycle.verify import verify_run

    try:
        report = verify_run(kernel, run)
    except CorruptRecordError as exc:
        return finding("corrupt_manifest", f"cites a manifest that cannot be read: {exc}")
    if report.intact:
        return None
    first = report.mismatches[0]
    more = len(report.mismatches) - 1
    extra = f" (+{more} more)" if more else ""
    return finding(
        "tampered_evidence",
        f"cites run {run.run_id}, whose evidence does not verify: {first.check}: "
        f"{first.message}{extra}; see `{cli_command('verify', run.run_id)}`",
        run_id=run.run_id,
        status=report.status,
    )


def guard(kernel: Kernel) -> GuardReport:
    """Scan the configured checklists and report every checked item without good evidence."""
    root = kernel.root
    patterns = list(kernel.config.settings.spec_guard.paths)
    files = checklist_files(root, patterns)
    findings: list[Finding] = []
    names: list[str] = []
    total = 0
    for path in files:
        try:
            name = str(path.relative_to(root))
        except ValueError:
            name = str(path)
        names.append(name)
        text = path.read_text(encoding="utf-8", errors="replace")
        for item in checked_items(name, text):
            total += 1
            if not item.citations:
                findings.append(
                    Finding(
                        item.file,
                        item.line,
                        item.text,
                        "no_citation",
                        "checked item cites no manifest "
                        "(add `Evidence: .runs/<task>/cli/<run-id>/manifest.json`)",
                    )
                )
                continue
            for citation in item.citations:
                result = _check_citation(kernel, item, citation, path)
                if result is not None:
                    findings.append(result)
    return GuardReport(patterns, names, total, findings)


def render_report(report: GuardReport, dry_run: bool) -> list[str]:
    lines = [f'{f.file}:{f.line}: {f.message}: "{f.item}"' for f in report.findings]
    if not report.files:
        lines.append(
            f"spec-guard: no checklists found (looked for {', '.join(report.patterns)}; "
            "set [spec_guard] paths to change where)"
        )
        return lines
    count = len(report.findings)
    if count:
        verdict = f"{count} finding{'s' if count != 1 else ''}"
    else:
        verdict = "all cite succeeded runs" if report.items else "nothing to check"
    tail = " (dry run: not failing)" if dry_run and count else ""
    lines.append(
        f"spec-guard: {report.items} checked item(s) in {len(report.files)} file(s); "
        f"{verdict}{tail}"
    )
    return lines
