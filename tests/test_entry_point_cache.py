"""The cached entry-point scan (entry_point_cache.py) follows every change to what is installed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from orchestrator.testing import Project
from orchestrator.testing.packages import pip_install, write_package

SANITIZER = """
class Shout:
    requires_plugin_api = 1

    def __init__(self, options, context):
        pass

    def sanitize(self, value, kind):
        return value
"""


def sanitizers(project: Project) -> list[str]:
    result = project.run("plugins", "--format", "json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    return sorted(i["name"] for i in listing["slots"]["id_sanitizer"]["implementations"])


def cache_files(project: Project) -> list[Path]:
    return sorted((project.home / ".cache" / "codex-orchestrator").glob("entry-points-*.json"))


def test_installing_upgrading_and_removing_a_plugin_is_seen_at_once(
    project: Project, tmp_path: Path
) -> None:
    project.env["XDG_CACHE_HOME"] = str(project.home / ".cache")
    site = tmp_path / "site"
    site.mkdir()
    project.env["PYTHONPATH"] = str(site)
    before = sanitizers(project)
    assert "shout" not in before
    assert len(cache_files(project)) == 1  # the scan was kept
    assert sanitizers(project) == before  # and read back

    source = write_package(
        tmp_path / "src",
        "shout-sanitizer",
        {"shout_sanitizer.py": SANITIZER},
        {"codex_orchestrator.id_sanitizer": {"shout": "shout_sanitizer:Shout"}},
    )
    pip_install(source, target=site)
    assert sanitizers(project) == sorted([*before, "shout"])

    # an entry point renamed in place (an editable install's metadata rewritten)
    (entry_points,) = site.glob("shout_sanitizer-*.dist-info/entry_points.txt")
    entry_points.write_text(entry_points.read_text().replace("shout =", "yell ="))
    assert sanitizers(project) == sorted([*before, "yell"])

    for installed in site.glob("shout_sanitizer*"):
        shutil.rmtree(installed) if installed.is_dir() else installed.unlink()
    assert sanitizers(project) == before


def test_an_unwritable_cache_only_costs_the_scan(project: Project) -> None:
    project.env["XDG_CACHE_HOME"] = str(project.home / "not-a-folder")
    (project.home / "not-a-folder").write_text("a file where the cache folder would be")
    result = project.run("plugins")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "strict" in result.stdout


def test_commands_in_many_folders_keep_one_scan_in_the_cache(project: Project) -> None:
    """The user's cache holds the one kept scan, however many folders commands run in.

    stevedore keeps a scan of its own, keyed by ``sys.path`` and the mtime of every entry: under
    ``python -m`` (the SDK, nested runs) the first entry is the working folder, so each new
    folder cost a full scan and left a 20 KB file that nothing ever removes (thousands of them
    in a busy home)."""
    cache = project.home / ".cache"
    project.env["XDG_CACHE_HOME"] = str(cache)
    project.write_config('[pipelines.checks]\nstages = [{ id = "hi", command = "echo hi" }]\n')
    for name in ("a", "b", "c"):
        folder = project.root / name
        folder.mkdir()
        for command in ("plan", "start"):
            result = project.run(command, "checks", cwd=folder)
            assert result.returncode == 0, result.stderr
    kept = sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())
    assert kept == [str(path.relative_to(cache)) for path in cache_files(project)], kept
    assert len(kept) == 1
