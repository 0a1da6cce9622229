"""Building and installing throwaway plugin distributions, exactly as a user would with pip.

Tests use these to prove what an installed third-party package does (a broken plugin, an
observer) without touching the environment the test suite runs in: packages go either into a
``--target`` folder put on ``PYTHONPATH`` of the CLI under test, or into a fresh virtual
environment layered over the current one.

Installs are offline (``--no-index --no-build-isolation``): they need ``setuptools`` >= 70.1
(or ``wheel``) in the running environment, which the ``test`` extra provides.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Mapping
from pathlib import Path

PIP_TIMEOUT_SECONDS = 300


def write_package(
    base: Path,
    name: str,
    modules: Mapping[str, str],
    entry_points: Mapping[str, Mapping[str, str]],
    version: str = "0.1.0",
) -> Path:
    """A source tree for distribution ``name``: top-level ``modules`` (file name -> source)."""
    folder = base / name
    folder.mkdir(parents=True)
    groups = "".join(
        f'\n[project.entry-points."{group}"]\n'
        + "".join(f'"{key}" = "{value}"\n' for key, value in points.items())
        for group, points in entry_points.items()
    )
    module_names = sorted(Path(file).stem for file in modules)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        f'\n[project]\nname = "{name}"\nversion = "{version}"\n'
        f"\n[tool.setuptools]\npy-modules = {module_names!r}\n{groups}",
        encoding="utf-8",
    )
    for file, source in modules.items():
        (folder / file).write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


def pip_install(*sources: Path, target: Path | None = None, python: Path | None = None) -> None:
    """``pip install`` local source trees, offline, into ``target`` or ``python``'s env."""
    command = [sys.executable, "-m", "pip"]
    if python is not None:
        command += ["--python", str(python)]
    command += [
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        "--no-build-isolation",
        "--disable-pip-version-check",
    ]
    if target is not None:
        command += ["--target", str(target)]
    command += [str(source.resolve()) for source in sources]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip install failed ({result.returncode}): {result.stderr[-3000:]}")


def fresh_venv(path: Path) -> Path:
    """A new virtual environment that also sees this one's packages; returns its python.

    Whatever is installed into it stays there, so the running environment is never changed.
    """
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)],
        check=True,
        timeout=PIP_TIMEOUT_SECONDS,
    )
    python = path / "bin" / "python"
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    # An "import" line in a .pth file runs at start-up: addsitedir also honours the parent's
    # own .pth files (editable installs among them).
    (Path(site_packages) / "_parent_environment.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n", encoding="utf-8"
    )
    return python
