"""``plugins`` and observer loading, with real third-party packages installed by pip.

The packages are built in a temporary folder and installed with ``pip --target`` into a folder
that only the CLI processes of these tests see (``PYTHONPATH``), so the suite's own environment
never changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.observers import AUTOLOAD_SWITCH
from orchestrator.testing import Project
from orchestrator.testing.packages import pip_install, write_package

OBSERVER = """
    import os
    from orchestrator.hookspecs import hookimpl


    def _log(text):
        with open(os.environ["DEMO_OBSERVER_LOG"], "a") as handle:
            handle.write(text + "\\n")


    @hookimpl
    def orchestrator_run_started(run):
        _log(f"started {run.run_id}")


    @hookimpl
    def orchestrator_stage_finished(run, stage):
        _log(f"stage {stage.id} {stage.status}")


    @hookimpl
    def orchestrator_run_completed(run, summary):
        run.annotate("demo", {"stages": len(summary["commands"])})
        _log(f"completed {summary['status']}")
"""

RAISING_OBSERVER = """
    from orchestrator.hookspecs import hookimpl


    @hookimpl
    def orchestrator_run_completed(run):
        raise RuntimeError("observer bug")
"""

TYPO_OBSERVER = """
    from orchestrator.hookspecs import hookimpl


    @hookimpl
    def orchestrator_run_strated(run):
        pass
"""

BROKEN_IMPORT = """
    raise ImportError("libfoo.so.1: cannot open shared object file")
"""

EXITING_IMPORT = """
    raise SystemExit("refusing to run here")
"""

OPTIONLESS_STORE = """
    class Store:  # a class, but without the options_model every slot implementation declares
        def __init__(self, options, context):
            pass
"""

QUITTING_OBSERVER = """
    import sys
    from orchestrator.hookspecs import hookimpl


    @hookimpl
    def orchestrator_stage_finished(stage):
        sys.exit(3)
"""

CONFIG = """
[pipelines.p]
stages = [{ id = "only", command = "true" }]
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding two installed distributions: a working observer, and a broken one."""
    base = tmp_path_factory.mktemp("packages")
    demo = write_package(
        base,
        "codex-orchestrator-demo-observer",
        {"demo_observer.py": OBSERVER},
        {"codex_orchestrator.plugins": {"demo": "demo_observer"}},
        version="1.2.3",
    )
    broken = write_package(
        base,
        "codex-orchestrator-broken",
        {
            "broken_native.py": BROKEN_IMPORT,
            "exiting_module.py": EXITING_IMPORT,
            "optionless_store.py": OPTIONLESS_STORE,
            "raising_observer.py": RAISING_OBSERVER,
            "quitting_observer.py": QUITTING_OBSERVER,
            "typo_observer.py": TYPO_OBSERVER,
        },
        {
            "codex_orchestrator.persistence": {
                "broken": "broken_native:Store",
                "optionless": "optionless_store:Store",
            },
            "codex_orchestrator.heartbeat": {"exits": "exiting_module:Beat"},
            "codex_orchestrator.plugins": {
                "broken-import": "broken_native",
                "exits-on-import": "exiting_module",
                "quitting": "quitting_observer",
                "raising": "raising_observer",
                "typo": "typo_observer",
            },
        },
        version="0.0.1",
    )
    target = base / "site"
    pip_install(demo, broken, target=target)
    return target


@pytest.fixture
def project(tmp_path: Path, site: Path) -> Project:
    log = tmp_path / "observer.log"
    project = Project(tmp_path, env={"PYTHONPATH": str(site), "DEMO_OBSERVER_LOG": str(log)})
    project.write_config(CONFIG)
    return project


def observer_log(project: Project) -> list[str]:
    path = Path(project.env["DEMO_OBSERVER_LOG"])
    return path.read_text().splitlines() if path.exists() else []


def listing(project: Project, *args: str, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    result = project.run("plugins", "--format", "json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_a_broken_plugin_is_listed_with_its_error_beside_the_working_ones(
    project: Project,
) -> None:
    document = listing(project)
    persistence = {i["name"]: i for i in document["slots"]["persistence"]["implementations"]}
    assert persistence["filesystem"]["active"] is True
    assert persistence["filesystem"]["distribution"] == "codex-orchestrator"
    broken = persistence["broken"]
    assert (broken["distribution"], broken["version"]) == ("codex-orchestrator-broken", "0.0.1")
    assert broken["active"] is False
    assert "libfoo.so.1" in broken["error"]
    optionless = persistence["optionless"]  # a class without options_model: listed, not a crash
    assert optionless["active"] is False and "declares no options_model" in optionless["error"]
    observers = {o["name"]: o for o in document["observers"]}
    assert observers["demo"]["status"] == "active"
    assert observers["demo"]["version"] == "1.2.3"
    assert observers["raising"]["status"] == "active"
    assert observers["broken-import"]["status"] == "error"
    assert "libfoo.so.1" in observers["broken-import"]["error"]
    assert observers["typo"]["status"] == "error"
    assert "orchestrator_run_strated" in observers["typo"]["error"]
    # A plugin that calls sys.exit while being imported is just another broken plugin.
    exits = {i["name"]: i for i in document["slots"]["heartbeat"]["implementations"]}["exits"]
    assert exits["error"] == "SystemExit: refusing to run here"
    assert observers["exits-on-import"]["error"] == "SystemExit: refusing to run here"


def test_the_text_listing_marks_the_active_implementation_and_the_broken_one(
    project: Project,
) -> None:
    result = project.run("plugins", "--set", "plugins.id_sanitizer=strict")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("  * filesystem") for line in lines)
    broken = next(line for line in lines if "broken " in line and "cannot load" in line)
    assert "codex-orchestrator-broken 0.0.1" in broken and "libfoo.so.1" in broken


@pytest.mark.parametrize(
    ("selection", "group", "cause"),
    [
        ("persistence=broken", "codex_orchestrator.persistence", "libfoo.so.1"),
        ("heartbeat=exits", "codex_orchestrator.heartbeat", "SystemExit: refusing to run here"),
        (
            "persistence=optionless",
            "codex_orchestrator.persistence",
            "declares no options_model; set options_model = "
            "orchestrator.plugin.PersistenceOptions (or a subclass of it) on the class",
        ),
    ],
)
def test_an_active_plugin_that_cannot_load_is_one_clear_error(
    project: Project, selection: str, group: str, cause: str
) -> None:
    slot, name = selection.split("=")
    listed = listing(project, "--set", f"plugins.{selection}")
    assert listed["slots"][slot]["active"] == name
    result = project.run("start", "p", "--set", f"plugins.{selection}")
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: plugin {name!r} in group {group} failed to load")
    assert cause in message
    assert not project.runs_dir.exists()


def test_observers_hear_the_run_and_a_failing_one_never_fails_it(project: Project) -> None:
    summary = project.start_json("p")
    assert observer_log(project) == [
        f"started {summary['run_id']}",
        "stage only succeeded",
        "completed succeeded",
    ]
    assert project.manifest(summary)["observers"]["demo"] == {"stages": 1}
    result = project.run("start", "p")
    assert result.returncode == 0
    assert "observer 'raising' failed" in result.stderr and "observer bug" in result.stderr
    assert "observer 'quitting' failed in orchestrator_stage_finished" in result.stderr
    assert "'broken-import'" in result.stderr  # reported, and skipped


def test_disabled_observers_are_neither_loaded_nor_called(project: Project) -> None:
    disabled = ["demo", "broken-import", "exits-on-import", "quitting", "raising"]
    project.write_config(f"[plugins]\ndisabled = {json.dumps(disabled)}\n" + CONFIG)
    observers = {
        o["name"]: o["status"]
        for o in listing(project)["observers"]
        if o["distribution"] != "codex-orchestrator"
    }
    assert observers == {**dict.fromkeys(disabled, "disabled"), "typo": "error"}
    result = project.run("start", "p", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert observer_log(project) == []
    assert "broken-import" not in result.stderr and "raising" not in result.stderr


def test_the_environment_switch_turns_off_third_party_observers_only(project: Project) -> None:
    env = {AUTOLOAD_SWITCH: "1"}
    observers = listing(project, env=env)["observers"]
    third_party = {o["status"] for o in observers if o["distribution"] != "codex-orchestrator"}
    assert third_party == {f"not loaded ({AUTOLOAD_SWITCH})"}
    built_in = {o["status"] for o in observers if o["distribution"] == "codex-orchestrator"}
    assert built_in <= {"active"}
    result = project.run("start", "p", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert observer_log(project) == []
    assert result.stderr == ""
