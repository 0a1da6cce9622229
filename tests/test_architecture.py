"""The kernel reaches slot implementations only through entry points."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import orchestrator

PACKAGE = Path(orchestrator.__file__).parent
NOT_KERNEL = {"builtin", "testing"}


def kernel_modules() -> list[Path]:
    return [
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in NOT_KERNEL
    ]


def test_no_kernel_module_imports_a_builtin_implementation() -> None:
    offenders = []
    for path in kernel_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.startswith("orchestrator.builtin")
            ]
    assert kernel_modules(), "no kernel modules found"
    assert offenders == []


def test_builtin_implementations_load_through_their_entry_points(tmp_path: Path) -> None:
    """Running a pipeline imports each built-in only via the slot's entry-point group."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json, sys\n"
        "from orchestrator.kernel import Kernel\n"
        "kernel = Kernel.load(assignments=[], environ={'HOME': sys.argv[1]})\n"
        "before = sorted(m for m in sys.modules if m.startswith('orchestrator.builtin'))\n"
        "kernel.load_slots()\n"
        "after = {s: type(kernel.slot(s).implementation).__module__ for s in "
        "('persistence','heartbeat','command_runner','id_sanitizer')}\n"
        "print(json.dumps({'before': before, 'after': after}))\n"
    )
    result = subprocess.run(
        [sys.executable, str(probe), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["before"] == []
    assert seen["after"] == {
        "persistence": "orchestrator.builtin.filesystem",
        "heartbeat": "orchestrator.builtin.file_heartbeat",
        "command_runner": "orchestrator.builtin.subprocess_runner",
        "id_sanitizer": "orchestrator.builtin.strict_sanitizer",
    }
