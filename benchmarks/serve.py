"""The status page under a large history: first paint, answer times, idle memory and idle CPU.

Builds a project of 50 tasks and 10,000 runs (one task holds 9,951 of them, the others one
each; each task's first run is real, the rest are clones of it, see history.py), starts
``codex-orchestrator serve`` on a free port, and measures:

- the task list's answer time (first request, then the median of the next ones), and the other
  views' and the API's;
- first contentful paint of the task list in Debian's chromium, when it is installed;
- the server's resident memory once idle;
- its CPU time over an idle stretch with no page open, and with two pages open (the change loop
  ticking every second over 10,000 runs).

    .venv/bin/python benchmarks/serve.py [--runs 10000] [--tasks 50] [--idle 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import installed  # noqa: F401  (exits 2 with one line when the package is not installed)
from history import clone_history
from ours import OurProject

PIPELINES = {"p": ["echo lint ok", "echo 12 passed"]}
BIG_TASK = "t00"


def build(base: Path, tasks: int, runs: int) -> OurProject:
    project = OurProject(base / "serve-bench", PIPELINES)
    names = [f"t{i:02d}" for i in range(tasks)]
    for name in names:
        result = subprocess.run(
            project.start("p", task=name),
            cwd=project.root,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise SystemExit(f"error: start failed for task {name}: {result.stderr.strip()}")
    template = sorted(p.name for p in project.run_dirs(BIG_TASK))[-1]
    clone_history(project, BIG_TASK, template, runs - tasks)
    return project


def _reuse(base: Path) -> OurProject:
    """The project an earlier ``--workdir`` run built (OurProject's constructor starts anew)."""
    from orchestrator.testing import Project

    project = object.__new__(OurProject)
    project.project = Project(base)
    project.pycache = base.parent / "pycache"
    return project


def _stat(pid: int) -> tuple[float, int]:
    """CPU seconds used so far, and resident memory in KiB."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return cpu, rss_kb


def _get(url: str) -> tuple[float, int]:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as answer:
        body = answer.read()
    return time.perf_counter() - began, len(body)


def _timed(url: str, repeat: int, pid: int) -> dict[str, Any]:
    """Wall time of the first request and the median of the next ones, and the server's CPU
    time per request (steady on a busy machine, where wall times are not)."""
    first, size = _get(url)
    cpu0, _ = _stat(pid)
    later = [_get(url)[0] for _ in range(repeat)]
    cpu1, _ = _stat(pid)
    return {
        "first_s": round(first, 3),
        "median_s": round(statistics.median(later), 3),
        "server_cpu_s_per_request": round((cpu1 - cpu0) / repeat, 3),
        "bytes": size,
    }


def _listen(url: str, stop: threading.Event) -> None:
    with urllib.request.urlopen(url, timeout=600) as stream:
        while not stop.is_set():
            if not stream.readline():
                return


def _browser_first_paint(url: str) -> dict[str, Any] | None:
    chromium, driver_path = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (chromium.exists() and driver_path.exists()):
        return None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    os.environ["SE_OFFLINE"] = "true"
    profile = tempfile.mkdtemp(prefix="serve-bench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(driver_path)), options=options)
    try:
        paints = []
        for _ in range(3):
            driver.get("about:blank")
            driver.get(url)
            paint = None
            for _ in range(100):  # the entry is recorded a moment after the load event
                paint = driver.execute_script(
                    "const p = performance.getEntriesByName('first-contentful-paint')[0];"
                    "return p ? p.startTime : null"
                )
                if paint is not None:
                    break
                time.sleep(0.05)
            paints.append(paint)
        return {"first_contentful_paint_ms": [round(p) if p else None for p in paints]}
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of each idle stretch")
    parser.add_argument(
        "--workdir", type=Path, help="build the project here and keep it (reused when present)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as folder:
        began = time.perf_counter()
        kept = args.workdir / "serve-bench" if args.workdir else None
        if kept is not None and (kept / "project").is_dir():
            project = _reuse(kept)
            print(f"reusing the project in {kept}")
        else:
            project = build(args.workdir or Path(folder), args.tasks, args.runs)
            spent = time.perf_counter() - began
            print(f"built {args.tasks} tasks, {args.runs} runs in {spent:.1f} s")
        server = subprocess.Popen(
            project.command("serve", "--port", "0"),
            cwd=project.root,
            env=project.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            assert server.stderr is not None
            line = server.stderr.readline()
            found = re.search(r"http://\S+", line)
            if not found:
                raise SystemExit(f"error: serve did not start: {line.strip()}")
            url = found.group(0)
            results: dict[str, Any] = {"load_average_at_start": os.getloadavg()[0]}
            results["task_list"] = _timed(url, 5, server.pid)
            results["task_list_api"] = _timed(url + "api/tasks", 3, server.pid)
            results["big_task_runs_page"] = _timed(url + f"tasks/{BIG_TASK}", 3, server.pid)
            results["big_task_runs_api_limit_50"] = _timed(
                url + f"api/tasks/{BIG_TASK}/runs", 3, server.pid
            )
            newest = sorted(p.name for p in project.run_dirs(BIG_TASK))[-1]
            results["run_page"] = _timed(url + f"runs/{newest}?task={BIG_TASK}", 3, server.pid)
            results["browser"] = _browser_first_paint(url)
            time.sleep(2)
            cpu0, _ = _stat(server.pid)
            time.sleep(args.idle)
            cpu1, rss_idle = _stat(server.pid)
            results["idle_no_page"] = {
                "cpu_percent": round(100 * (cpu1 - cpu0) / args.idle, 2),
                "rss_mb": round(rss_idle / 1024, 1),
            }
            stop = threading.Event()
            listeners = [
                threading.Thread(target=_listen, args=(url + path, stop), daemon=True)
                for path in ("events/tasks", f"events/tasks/{BIG_TASK}")
            ]
            for listener in listeners:
                listener.start()
            time.sleep(3)  # the first fingerprints (reading each task's history once)
            cpu0, _ = _stat(server.pid)
            time.sleep(args.idle)
            cpu1, rss_open = _stat(server.pid)
            stop.set()
            results["idle_two_pages_open"] = {
                "cpu_percent": round(100 * (cpu1 - cpu0) / args.idle, 2),
                "rss_mb": round(rss_open / 1024, 1),
            }
            began = time.perf_counter()
            subprocess.run(
                project.command("status", "--task", BIG_TASK, "--format", "json"),
                cwd=project.root,
                env=project.env,
                capture_output=True,
                timeout=120,
                check=True,
            )
            results["baseline_status_cli_s"] = round(time.perf_counter() - began, 3)
            results["load_average_at_end"] = os.getloadavg()[0]
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
