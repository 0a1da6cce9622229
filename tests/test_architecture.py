"""The kernel reaches slot implementations only through entry points."""

from __future__ import annotations

import ast
import json
import re
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


def imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def plugin_sources() -> list[Path]:
    """The built-in implementations and every plugin distribution's source (not its tests)."""
    builtin = sorted((PACKAGE / "builtin").rglob("*.py"))
    plugins = sorted(
        path
        for path in (PACKAGE.parent / "plugins").glob("*/src/**/*.py")
        if "build" not in path.relative_to(PACKAGE.parent / "plugins").parts
    )
    return builtin + plugins


def test_implementations_import_only_the_public_plugin_api() -> None:
    """Built-ins are implementations like a third party's: from the kernel they import only
    ``orchestrator.plugin`` (the built-ins may also import each other)."""
    allowed = {"orchestrator.plugin"}
    offenders = []
    for path in plugin_sources():
        for name in imported_modules(path):
            if name.split(".")[0] != "orchestrator" or name in allowed:
                continue
            if name.startswith("orchestrator.builtin") and PACKAGE / "builtin" in path.parents:
                continue
            offenders.append(f"{path.relative_to(PACKAGE.parent)}: {name}")
    assert len(plugin_sources()) > 10, "no implementations found"
    assert offenders == [], "import these through orchestrator.plugin instead"


def test_every_public_plugin_name_resolves_and_importing_the_module_is_free() -> None:
    import orchestrator.plugin as plugin

    for name in plugin.__all__:
        assert getattr(plugin, name) is not None, name
    heavy = "('orchestrator.', 'pydantic', 'pluggy')"
    probe = (
        "import sys; import orchestrator.plugin; "
        f"print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "['orchestrator.plugin']"


ARCHITECTURE_PAGE = PACKAGE.parent / "docs" / "architecture.md"


def test_every_module_and_name_the_architecture_page_cites_exists() -> None:
    """docs/architecture.md names modules (`run_session.py`, `cli/signals.py`) and their
    functions (`engine.execute`, `RunSession.beat`); when one is renamed or gone, the page lies."""
    import importlib
    import re

    text = ARCHITECTURE_PAGE.read_text(encoding="utf-8")
    cited_files = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", text))
    repo = PACKAGE.parent

    def exists(name: str) -> bool:  # `config/layers.py`, `orchestrator/errors.py`, `layers.py`
        return (PACKAGE / name).exists() or (repo / name).exists() or any(PACKAGE.rglob(name))

    missing = [name for name in sorted(cited_files) if not exists(name)]
    kernel_names = {p.stem for p in PACKAGE.glob("*.py")}
    class_owners = {"RunSession": "run_session", "RunPlan": "run_plan", "RunControls": "run_plan"}
    cited_names = set(re.findall(r"`([A-Za-z_]+)\.([A-Za-z_]+)`", text))
    checked = 0
    for owner, attribute in sorted(cited_names):
        if attribute == "py":
            continue  # a file name, checked above
        if owner in kernel_names:
            target: object = importlib.import_module(f"orchestrator.{owner}")
        elif owner in class_owners:
            module = importlib.import_module(f"orchestrator.{class_owners[owner]}")
            target = getattr(module, owner)
        else:
            continue
        checked += 1
        if not hasattr(target, attribute):
            missing.append(f"{owner}.{attribute}")
    assert len(cited_files) > 20 and checked > 10, "the page should name the modules it maps"
    assert missing == []


def test_only_the_run_session_and_the_record_builders_change_a_manifest() -> None:
    """One owner of a run's records: no other kernel module assigns to a manifest's fields."""
    owners = {"run_session.py", "run_records.py", "manifest_writer.py"}
    offenders = []
    for path in kernel_modules():
        if path.name in owners:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and "manifest" in ast.unparse(target.value):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_the_heartbeat_thread_knows_nothing_of_the_engine() -> None:
    tree = ast.parse((PACKAGE / "heartbeat_thread.py").read_text(encoding="utf-8"))
    imported = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("orch")
    ]
    assert imported == []


def test_every_hook_is_typed_and_documents_each_parameter() -> None:
    """Hook parameters carry concrete types (not ``Any`` for ``run``/``stage``) and a
    ``:param:`` line each, so an author's editor shows what a hook receives."""
    import inspect
    import typing

    from orchestrator import hookspecs

    hooks = [getattr(hookspecs, n) for n in dir(hookspecs) if n.startswith("orchestrator_")]
    assert len(hooks) >= 7
    for hook in hooks:
        signature = inspect.signature(hook)
        hints = typing.get_type_hints(hook, vars(hookspecs) | _hook_types())
        for name in signature.parameters:
            assert f":param {name}:" in (hook.__doc__ or ""), (
                f"{hook.__name__}: {name} undocumented"
            )
            assert hints[name] is not typing.Any or name == "summary", f"{hook.__name__}: {name}"


def _hook_types() -> dict[str, object]:
    from datetime import datetime

    from orchestrator.manifest import CommandRecord
    from orchestrator.run_context import RunView

    return {"datetime": datetime, "CommandRecord": CommandRecord, "RunView": RunView}


def test_the_slot_registry_is_the_one_list_of_slots() -> None:
    """Every place that needs the slots derives them from orchestrator.contracts.SLOTS; the
    config model keeps one options table per slot, checked here."""
    from orchestrator.config.model import PluginsConfig, Settings
    from orchestrator.contracts import SLOT_GROUPS, SLOTS

    names = [spec.name for spec in SLOTS]
    assert list(SLOT_GROUPS) == names
    assert [n for n in PluginsConfig.model_fields if n != "disabled"] == names
    assert all(name in Settings.model_fields for name in names)
    literal = re.compile(r"\(\s*\"(persistence|heartbeat|command_runner|id_sanitizer)\"\s*,")
    written = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "contracts.py" and literal.search(path.read_text(encoding="utf-8"))
    ]
    assert written == [], "a tuple of slot names written out again; use SLOT_NAMES"
