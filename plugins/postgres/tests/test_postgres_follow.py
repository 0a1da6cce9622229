"""The status page over the shared store: a stage's output is read from the database, so a page
served from any checkout shows what a run on another machine printed, and follows it live."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pg_support import config

from orchestrator.testing import Project

DEADLINE_SECONDS = 60.0
TICKER = """\
import os, time
i = 0
while not os.path.exists(os.environ["RELEASE"]):
    print(f"tick {i}", flush=True)
    i += 1
    time.sleep(0.2)
print("released", flush=True)
"""


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    end = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def two_checkouts(
    tmp_path: Path, database: dict[str, Any], *first_stages: str
) -> tuple[Project, Project, Path]:
    """Two checkouts sharing ``database``, whose pipeline ``p`` runs ``first_stages`` and then
    ``work``, the ticker; and the file that releases the ticker."""
    (tmp_path / "tick.py").write_text(TICKER)
    work = f'{{ id = "work", command = ["python3", "-u", "{tmp_path / "tick.py"}"] }}'
    pipeline = (
        "[pipelines.p]\nstages = [\n"
        + "".join(f"  {stage},\n" for stage in (*first_stages, work))
        + "]\n"
    )
    checkouts = []
    for name in ("runner", "viewer"):
        checkout = Project(tmp_path / name)
        checkout.write_config(config(database) + pipeline)
        checkouts.append(checkout)
    return checkouts[0], checkouts[1], tmp_path / "release"


def newest_run(project: Project) -> str | None:
    """The newest run ``status`` lists in ``project`` (None while there is none)."""
    shown = project.run("status", "--format", "json")
    runs = json.loads(shown.stdout) if shown.returncode == 0 else []
    return runs[0]["run_id"] if runs else None


class Served:
    """``serve --port 0`` in ``project``; stopped on close."""

    def __init__(self, project: Project) -> None:
        self.process = project.popen("serve", "--port", "0", stdout=subprocess.DEVNULL)
        self.lines: list[str] = []
        assert self.process.stderr is not None
        threading.Thread(target=self._read, daemon=True).start()
        self.url = wait_for(self._address, "serve to print its address")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.append(raw.decode() if isinstance(raw, bytes) else raw)

    def _address(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited with {self.process.returncode}: {self.lines}")
        for line in self.lines:
            if line.startswith("serving http://"):
                return line.split()[1]
        return None

    def output(self, path: str) -> str:
        """The text of the stage page's output panel (not the summary elsewhere on the page)."""
        with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=60) as response:
            page = response.read().decode()
        panel = re.search(r'<pre id="output"[^>]*>(.*?)</pre>', page, re.S)
        assert panel is not None, page
        return re.sub(r"<[^>]+>", "", panel.group(1))

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def test_a_stage_page_served_elsewhere_shows_and_follows_output_from_the_database(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    runner, viewer, release = two_checkouts(
        tmp_path, postgres_options, '{ id = "hello", command = "echo hello from the database" }'
    )
    live = runner.popen("start", "p", "--format", "json", env={"RELEASE": str(release)})
    served = Served(viewer)
    try:
        run_id = wait_for(
            lambda: newest_run(viewer), "the run to be listed in the viewing checkout"
        )
        assert not (viewer.runs_dir).exists() or not list(viewer.runs_dir.rglob("*.ndjson"))
        assert "hello from the database" in served.output(f"/runs/{run_id}/stages/hello")
        wait_for(
            lambda: "tick 2" in served.output(f"/runs/{run_id}/stages/work"),
            "the live stage's output on its page",
        )
        # the page's live feed continues from where the page stopped, with later output
        events: list[str] = []

        def listen() -> None:
            url = served.url.rstrip("/") + f"/events/runs/{run_id}/stages/work/output?offset=0"
            with urllib.request.urlopen(url, timeout=90) as stream:
                for raw in stream:
                    events.append(raw.decode())
                    if "released" in raw.decode():
                        return

        threading.Thread(target=listen, daemon=True).start()
        wait_for(lambda: any("tick 0" in e for e in events), "the feed to send earlier output")
        release.write_text("go\n")
        wait_for(lambda: any("released" in e for e in events), "the feed to send later output")
        assert sum("tick 0" in e for e in events) == 1, "output was sent twice"
    finally:
        release.write_text("go\n")
        served.close()
        live.communicate(timeout=120)
    assert live.returncode == 0


def test_logs_follow_from_another_checkout_prints_every_byte_once(
    tmp_path: Path, postgres_options: dict[str, Any]
) -> None:
    runner, viewer, release = two_checkouts(tmp_path, postgres_options)
    live = runner.popen("start", "p", env={"RELEASE": str(release)})
    follower = None
    try:
        run_id = wait_for(
            lambda: newest_run(viewer), "the run to be listed in the viewing checkout"
        )
        follower = viewer.popen("logs", run_id, "work", "--follow", text=False)
        assert follower.stdout is not None
        seen = bytearray()

        def read_until(text: bytes) -> bool:
            while text not in seen:
                byte = follower.stdout.read(1) if follower.stdout else b""
                if not byte:
                    return False
                seen.extend(byte)
            return True

        assert read_until(b"tick 3\n"), bytes(seen)
        release.write_text("go\n")
        # read on through the same buffered reader (communicate() would skip what it holds)
        seen.extend(follower.stdout.read())
        assert follower.wait(timeout=120) == 0, follower.stderr.read() if follower.stderr else ""
        ticks = seen.decode().splitlines()
        assert ticks[-1] == "released"
        assert ticks[:-1] == [f"tick {i}" for i in range(len(ticks) - 1)], ticks
    finally:
        release.write_text("go\n")
        if follower is not None and follower.poll() is None:
            follower.kill()
            follower.communicate(timeout=30)
        live.communicate(timeout=120)
    assert live.returncode == 0
