"""The suite's ``project.run`` forks each CLI process from a warm launcher
(``orchestrator.testing.warm``): it must behave exactly as a new interpreter would."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.testing import Project

CONFIG = '[pipelines.p]\nstages = [{ id = "a", command = "echo $PPID" }]\n'


def steady(text: str) -> str:
    """Output with what differs between any two runs (run ids, durations) blanked."""
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d-]+Z-[0-9a-f]{8}", "RUN", text)
    return re.sub(r"\d+(\.\d+)? (s|ms)\b", "T", text)


def orchestrator_pid(project: Project) -> int:
    summary = project.start_json("p")
    return int(project.stage_output(summary, 1)["stdout"])


def test_each_call_is_a_process_of_its_own(tmp_path: Path) -> None:
    project = Project(tmp_path)
    assert project.warm, "the suite's conftest turns the warm launcher on"
    project.write_config(CONFIG)
    first, second = orchestrator_pid(project), orchestrator_pid(project)
    assert len({first, second, os.getpid()}) == 3


@pytest.mark.parametrize(
    "args",
    [
        ("start", "nope"),  # exit 2, one line on stderr
        ("config", "--format", "json"),
        ("exec", "--", "sh", "-c", "cat; echo err >&2; exit 3"),  # standard input, both streams
        ("status", "--task", "0101"),
    ],
)
def test_a_warm_call_answers_exactly_as_a_new_interpreter(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    project = Project(tmp_path)
    project.write_config(CONFIG)
    warm = project.run(*args, input="from stdin\n")
    cold = subprocess.run(
        project.command(*args),
        cwd=project.root,
        env=project.env,
        input="from stdin\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (warm.returncode, steady(warm.stdout), steady(warm.stderr)) == (
        cold.returncode,
        steady(cold.stdout),
        steady(cold.stderr),
    )


def probe_distribution(base: Path, module: str) -> Path:
    """A folder holding an installed distribution that registers ``module:Store`` as the
    ``probe`` persistence (for ``PYTHONPATH``)."""
    site = base / "site"
    info = site / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    name = module.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[codex_orchestrator.persistence]\nprobe = {module}:Store\n"
    )
    return site


def test_a_call_that_changes_how_python_starts_gets_a_new_interpreter(tmp_path: Path) -> None:
    """A PYTHONPATH given to one call is honoured: an implementation registered by a
    distribution on that path is listed by that call, and only by it."""
    site = probe_distribution(tmp_path, "path_probe")
    project = Project(tmp_path)
    project.write_config(CONFIG)

    def listed(env: dict[str, str]) -> set[str]:
        result = project.run("plugins", "--format", "json", env=env)
        assert result.returncode == 0, result.stderr
        implementations = json.loads(result.stdout)["slots"]["persistence"]["implementations"]
        return {implementation["name"] for implementation in implementations}

    assert "probe" not in listed({})
    assert "probe" in listed({"PYTHONPATH": str(site)})
    assert "probe" not in listed({})


def test_calls_that_keep_the_same_pythonpath_get_a_warm_launcher_of_their_own(
    tmp_path: Path,
) -> None:
    """From the second call with one PYTHONPATH on, calls are forked from a launcher started
    with it; a plugin module found there is still imported by each command itself (what it
    does on import happens in every call, as in a new interpreter), never by the launcher."""
    from orchestrator.testing.warm import Launcher

    site = probe_distribution(tmp_path, "import_probe")
    log = tmp_path / "imports.log"
    (site / "import_probe.py").write_text(
        "import os\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    log.write(f'{os.getpid()}\\n')\n"
        "class Store:\n"
        "    pass\n"
    )
    project = Project(tmp_path)
    project.write_config('[plugins]\npersistence = "probe"\n' + CONFIG)
    answers = [project.run("start", "p", env={"PYTHONPATH": str(site)}) for _ in range(4)]
    assert len({(a.returncode, a.stderr) for a in answers}) == 1, answers  # the same each time
    assert answers[0].returncode == 2 and "probe" in answers[0].stderr, answers[0]
    importers = log.read_text().split()
    assert len(importers) == len(set(importers)) == 4, importers  # each call imported it
    keys = [dict(key) for key in Launcher._instances]
    assert any(key.get("PYTHONPATH") == str(site) for key in keys), keys


def test_a_call_past_its_timeout_is_killed(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "a", command = "echo $$ > stage.pid; exec sleep 600" }]\n'
    )
    with pytest.raises(subprocess.TimeoutExpired):
        project.run("start", "p", timeout=3)
    # as with subprocess.run, the command was SIGKILLed and its stage is left: end it
    os.kill(int((project.root / "stage.pid").read_text()), signal.SIGKILL)
    runs = list((project.runs_dir / "0101" / "cli").iterdir())
    assert len(runs) == 1
    lock = runs[0] / ".run.lock"
    wait_until_free(lock)


def wait_until_free(lock: Path) -> None:
    """The killed command's run lock is free: no process of it is left holding it."""
    import fcntl

    deadline = time.monotonic() + 60
    with lock.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, "the timed-out command is still running"
                time.sleep(0.05)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_popen_is_forked_warm_and_behaves_as_popen(tmp_path: Path) -> None:
    """``project.popen`` forks the CLI from a launcher: a process of its own (its pid is the
    stage's parent, /proc shows its own environment), with pipes, ``communicate``, bytes on
    request, ``stderr=STDOUT`` and signals as ``subprocess.Popen`` gives them; ``fresh=True``
    (or a stream the launcher cannot hand over) starts a new interpreter instead."""
    project = Project(tmp_path)
    project.write_config(
        '[pipelines.p]\nstages = [{ id = "a", command = "echo $PPID; touch started; sleep 60" }]\n'
        '[pipelines.q]\nstages = [{ id = "a", command = "echo $PPID" }]\n'
    )
    process = project.popen("start", "p", "--format", "json")
    deadline = time.monotonic() + 120
    while not (project.root / "started").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    assert parent_of(process.pid) != os.getpid(), "forked from the launcher"
    environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
    assert f"CODEX_ORCHESTRATOR_ROOT={project.root}".encode() in environ
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    summary = json.loads(out)
    assert summary["status"] == "cancelled"
    assert project.stage_output(summary, 1)["stdout"].strip() == str(process.pid).encode()

    merged = project.popen("start", "nope", stderr=subprocess.STDOUT, text=False)
    out, err = merged.communicate(timeout=60)
    assert (merged.returncode, err) == (2, None)
    assert isinstance(out, bytes) and out.startswith(b"error: ") and b"nope" in out

    fresh = project.popen("start", "q", "--format", "json", fresh=True)
    out, _ = fresh.communicate(timeout=120)
    assert isinstance(fresh, subprocess.Popen)  # a child of this process, reaped here
    assert project.stage_output(json.loads(out), 1)["stdout"].strip() == str(fresh.pid).encode()
