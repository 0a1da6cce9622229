"""Type hints are checked: mypy, strict, on the package and every plugin distribution."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["orchestrator", *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("plugins/*/src"))]


def test_mypy_strict_passes_on_the_package_and_the_plugins() -> None:
    pytest.importorskip("mypy", reason="mypy comes with the test extra")
    env = {**os.environ, "MYPY_CACHE_DIR": str(ROOT / ".mypy_cache")}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", *CHECKED],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_public_plugin_module_declares_every_export_for_type_checkers() -> None:
    """``orchestrator.plugin`` imports its names lazily; its TYPE_CHECKING block must name the
    same ones from the same modules, or editors and mypy see ``Any`` where authors see a class."""
    import orchestrator.plugin as plugin

    tree = ast.parse((ROOT / "orchestrator" / "plugin.py").read_text(encoding="utf-8"))
    declared: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module
                for alias in statement.names:
                    declared[alias.asname or alias.name] = statement.module
    assert declared == plugin._WHERE
    assert sorted(plugin.__all__) == sorted(plugin._WHERE)
