"""Benchmarks for the peer tool, the npm package ``@kbediako/codex-orchestrator@0.2.1``.

The peer is installed into a throw-away npm prefix and driven through its own CLI:

    <prefix>/node_modules/.bin/codex-orchestrator start <pipeline> --task <task> --format json

in a temporary project folder holding a repo-local ``codex.orchestrator.json``.  Every
process is started in its own session and bounded by a timeout; on timeout the whole
process group is killed.  Results are plain dicts of numbers (medians/min/max).

Run ``python benchmarks/peer.py --quick`` for a small end-to-end pass that installs the
peer into a temporary directory, runs all scenarios and prints a table plus JSON.

Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

PEER_PACKAGE = "@kbediako/codex-orchestrator"
PEER_VERSION = "0.2.1"
PEER_SPEC = f"{PEER_PACKAGE}@{PEER_VERSION}"
PEER_BIN = "codex-orchestrator"
CONFIG_NAME = "codex.orchestrator.json"
DEFAULT_TASK = "bench"
MB = 1_000_000

# Environment variables the peer reads that could redirect its repo root, task id or
# config; they are removed so a run only sees the temporary project.
_STRIPPED_ENV_PREFIXES = ("CODEX_", "MCP_RUNNER_", "RLM_", "DESIGN_")
_STRIPPED_ENV_NAMES = ("TASK", "NOTES", "MANIFEST")

# Runs one command in a fresh interpreter and reports wall time and the peak RSS of
# its waited-for descendants (getrusage(RUSAGE_CHILDREN).ru_maxrss, in KiB on Linux).
_RSS_WRAPPER = r"""
import json, os, resource, signal, subprocess, sys, threading, time
timeout = float(sys.argv[1])
state = {"timed_out": False}
def expire(proc):
    state["timed_out"] = True
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
with open(sys.argv[2], "wb") as out, open(sys.argv[3], "wb") as err:
    started = time.monotonic()
    proc = subprocess.Popen(sys.argv[4:], stdout=out, stderr=err, start_new_session=True)
    timer = threading.Timer(timeout, expire, (proc,))
    timer.start()
    rc = proc.wait()
    wall = time.monotonic() - started
    timer.cancel()
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall_s": wall, "maxrss_kb": usage.ru_maxrss,
                  "timed_out": state["timed_out"]}))
"""


@dataclass
class ProcResult:
    """Outcome of one bounded subprocess."""

    rc: int | None
    wall_s: float
    stdout: str
    stderr: str
    timed_out: bool


@dataclass
class PeerRun:
    """One measured ``start`` of the peer."""

    rc: int | None
    wall_s: float
    maxrss_kb: int | None
    timed_out: bool
    run_id: str | None
    status: str | None
    peer_reported_s: float | None


# --------------------------------------------------------------------------- helpers


def summarize(values: Iterable[float | int | None]) -> dict[str, float | int | None]:
    """Median/min/max/count of the non-None values (None fields when there are none)."""
    data = [v for v in values if v is not None]
    if not data:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(data),
        "min": min(data),
        "max": max(data),
        "n": len(data),
    }


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    """Kill the session/process group led by ``proc`` (which we started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_bounded(
    cmd: Sequence[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 60.0,
) -> ProcResult:
    """Run ``cmd`` in its own session; kill its process group when it overruns."""
    started = time.monotonic()
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # a detached grandchild still holds the pipes
            out, err = b"", b""
    wall = time.monotonic() - started
    return ProcResult(
        rc=None if timed_out else proc.returncode,
        wall_s=wall,
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        timed_out=timed_out,
    )


def peer_env(home: Path) -> dict[str, str]:
    """Environment for the peer: isolated HOME, no inherited peer settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_STRIPPED_ENV_PREFIXES) and key not in _STRIPPED_ENV_NAMES
    }
    env["HOME"] = str(home)
    env["NO_COLOR"] = "1"
    # Refuse the peer's packaged fallback config (its own pipelines run npm scripts).
    env["CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED"] = "1"
    return env


def parse_peer_json(stdout: str) -> dict[str, Any] | None:
    """Extract the JSON document the peer prints after its ``[Codex-Orchestrator]`` log lines."""
    match = re.search(r"^\{", stdout, re.MULTILINE)
    if match is None:
        return None
    try:
        doc, _ = json.JSONDecoder().raw_decode(stdout[match.start() :])
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _iso_seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    except ValueError:
        return None
    return delta.total_seconds()


def read_json(path: Path) -> Any:
    """Parse a JSON file; None when missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def dir_bytes(path: Path) -> int:
    """Total size of regular files under ``path``."""
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- install


def find_peer_cli(prefix: Path) -> Path | None:
    """Path of the peer's CLI inside an npm prefix, if installed there."""
    cli = prefix / "node_modules" / ".bin" / PEER_BIN
    return cli if cli.exists() else None


def install_peer(prefix: Path, timeout_s: float = 300.0) -> tuple[Path | None, str]:
    """``npm install --prefix <prefix> @kbediako/codex-orchestrator@0.2.1``.

    Returns ``(cli_path, "")`` on success, ``(None, reason)`` otherwise.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, "node and/or npm not found on PATH"
    prefix.mkdir(parents=True, exist_ok=True)
    cmd = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", PEER_SPEC]
    try:
        res = run_bounded(cmd, cwd=prefix, timeout_s=timeout_s)
    except OSError as exc:
        return None, f"could not run npm: {exc}"
    if res.timed_out:
        return None, f"npm install timed out after {timeout_s:.0f}s"
    if res.rc != 0:
        return None, f"npm install failed (rc={res.rc}): {res.stderr.strip()[-500:]}"
    cli = find_peer_cli(prefix)
    if cli is None:
        return None, f"npm install succeeded but {PEER_BIN} is missing under {prefix}"
    return cli, ""


def peer_version(cli: Path, timeout_s: float = 30.0) -> str | None:
    """Output of ``codex-orchestrator --version`` (None on failure)."""
    res = run_bounded([str(cli), "--version"], timeout_s=timeout_s)
    if res.rc != 0:
        return None
    return res.stdout.strip() or None


# --------------------------------------------------------------------------- projects


def command_stage(stage_id: str, command: str) -> dict[str, str]:
    """A peer stage of kind ``command`` (runs ``command`` through a shell)."""
    return {"kind": "command", "id": stage_id, "title": stage_id, "command": command}


def pipeline(pipeline_id: str, commands: Sequence[str]) -> dict[str, Any]:
    """A peer pipeline whose stages run ``commands`` in order."""
    stages = [command_stage(f"s{i + 1}", cmd) for i, cmd in enumerate(commands)]
    return {"id": pipeline_id, "title": pipeline_id, "stages": stages}


def write_peer_config(project: Path, pipelines: dict[str, Sequence[str]]) -> Path:
    """Write ``codex.orchestrator.json`` (runtimeMode cli, one pipeline per entry)."""
    config = {
        "runtimeMode": "cli",
        "pipelines": [pipeline(pid, cmds) for pid, cmds in pipelines.items()],
    }
    path = project / CONFIG_NAME
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def make_peer_project(root: Path, name: str, pipelines: dict[str, Sequence[str]]) -> Path:
    """Create ``root/name`` holding a peer config; removes any previous content."""
    project = root / name
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    write_peer_config(project, pipelines)
    return project


def output_command(size_bytes: int, newlines: bool) -> str:
    """Shell command printing exactly ``size_bytes`` bytes to stdout."""
    if newlines:
        return f"yes {'x' * 79} | head -c {size_bytes}"
    return f"head -c {size_bytes} /dev/zero | tr '\\0' x"


# --------------------------------------------------------------------------- runs


def run_dir(project: Path, task: str, run_id: str) -> Path:
    """Directory of one run: ``.runs/<task>/cli/<run_id>``."""
    return project / ".runs" / task / "cli" / run_id


def start_command(cli: Path, pipeline_id: str, task: str) -> list[str]:
    """The peer CLI invocation that starts ``pipeline_id`` for ``task``."""
    return [str(cli), "start", pipeline_id, "--task", task, "--format", "json", "--no-interactive"]


def _manifest_outcome(
    project: Path, task: str, run_id: str | None
) -> tuple[str | None, float | None]:
    if run_id is None:
        return None, None
    manifest = read_json(run_dir(project, task, run_id) / "manifest.json")
    if not isinstance(manifest, dict):
        return None, None
    seconds = _iso_seconds(manifest.get("started_at"), manifest.get("completed_at"))
    return manifest.get("status"), seconds


def measure_start(
    cli: Path,
    project: Path,
    home: Path,
    pipeline_id: str,
    task: str = DEFAULT_TASK,
    timeout_s: float = 60.0,
) -> PeerRun:
    """Start one pipeline through a fresh RSS-measuring wrapper interpreter."""
    with tempfile.TemporaryDirectory(prefix="peer-io-") as io_dir:
        out_path, err_path = Path(io_dir, "out"), Path(io_dir, "err")
        wrapper = [sys.executable, "-c", _RSS_WRAPPER, str(timeout_s), str(out_path), str(err_path)]
        cmd = wrapper + start_command(cli, pipeline_id, task)
        res = run_bounded(cmd, cwd=project, env=peer_env(home), timeout_s=timeout_s + 30)
        stdout = out_path.read_text(errors="replace") if out_path.exists() else ""
    measured = parse_peer_json(res.stdout) or {}
    doc = parse_peer_json(stdout) or {}
    run_id = doc.get("run_id")
    status, reported = _manifest_outcome(project, task, run_id)
    return PeerRun(
        rc=measured.get("rc"),
        wall_s=float(measured.get("wall_s", res.wall_s)),
        maxrss_kb=measured.get("maxrss_kb"),
        timed_out=bool(measured.get("timed_out", res.timed_out)),
        run_id=run_id,
        status=status,
        peer_reported_s=reported,
    )


def summarize_runs(runs: Sequence[PeerRun]) -> dict[str, Any]:
    """Aggregate repeated runs into medians/min/max plus outcome counts."""
    return {
        "wall_s": summarize(r.wall_s for r in runs),
        "peer_reported_s": summarize(r.peer_reported_s for r in runs),
        "maxrss_mb": summarize(r.maxrss_kb / 1024 if r.maxrss_kb else None for r in runs),
        "runs": len(runs),
        "failures": sum(1 for r in runs if r.rc != 0 or r.status != "succeeded"),
        "timeouts": sum(1 for r in runs if r.timed_out),
        "statuses": dict(Counter(str(r.status) for r in runs)),
    }


def _repeat_start(
    cli: Path, project: Path, home: Path, pipeline_id: str, repeats: int, timeout_s: float
) -> list[PeerRun]:
    return [
        measure_start(cli, project, home, pipeline_id, timeout_s=timeout_s)
        for _ in range(max(1, repeats))
    ]


# --------------------------------------------------------------------------- scenarios


def bench_start(
    cli: Path, workdir: Path, repeats: int = 5, timeout_s: float = 60.0
) -> dict[str, Any]:
    """(a) Start of a one-stage pipeline whose stage runs ``true``; one unmeasured warm-up."""
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    project = make_peer_project(workdir, "start", {"one": ["true"]})
    warmup = measure_start(cli, project, home, "one", timeout_s=timeout_s)
    result = summarize_runs(_repeat_start(cli, project, home, "one", repeats, timeout_s))
    result["warmup_wall_s"] = warmup.wall_s
    return result


def bench_stage_overhead(
    cli: Path,
    workdir: Path,
    stage_counts: Sequence[int] = (10, 100),
    repeats: int = 3,
    timeout_s: float = 180.0,
) -> dict[str, Any]:
    """(b) Pipelines of N ``true`` stages; per-stage overhead = (t(N) - t(1)) / (N - 1)."""
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    counts = sorted({1, *stage_counts})
    project = make_peer_project(workdir, "stages", {f"n{n}": ["true"] * n for n in counts})
    measure_start(cli, project, home, "n1", timeout_s=timeout_s)  # warm-up
    by_n = {
        n: summarize_runs(_repeat_start(cli, project, home, f"n{n}", repeats, timeout_s))
        for n in counts
    }
    return {
        "by_stages": {str(n): res for n, res in by_n.items()},
        "per_stage_overhead_ms": _overheads(by_n, "wall_s"),
        "per_stage_overhead_peer_reported_ms": _overheads(by_n, "peer_reported_s"),
    }


def _overheads(by_n: dict[int, dict[str, Any]], key: str) -> dict[str, float | None]:
    base = by_n[1][key]["median"]
    out: dict[str, float | None] = {}
    for n, res in by_n.items():
        if n == 1:
            continue
        t_n = res[key]["median"]
        out[str(n)] = None if base is None or t_n is None else (t_n - base) / (n - 1) * 1000
    return out


def bench_output(
    cli: Path,
    workdir: Path,
    sizes: Sequence[int] = (5 * MB,),
    newlines: Sequence[bool] = (False, True),
    repeats: int = 1,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """(c) One stage printing N bytes to stdout, with and without newlines.

    Reports wall time, peak RSS (largest process of the peer tree) and bytes the peer
    wrote under the run directory; each run directory is deleted after measuring.
    """
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    cases = {_output_case(size, nl): (size, nl) for size in sizes for nl in newlines}
    pipelines = {name: [output_command(size, nl)] for name, (size, nl) in cases.items()}
    project = make_peer_project(workdir, "output", pipelines)
    results: dict[str, Any] = {}
    for name, (size, nl) in cases.items():
        runs, stored = [], []
        for _ in range(max(1, repeats)):
            run = measure_start(cli, project, home, name, timeout_s=timeout_s)
            runs.append(run)
            stored.append(_drop_run(project, run))
        results[name] = {
            "bytes": size,
            "newlines": nl,
            **summarize_runs(runs),
            "stored_mb": summarize(b / MB for b in stored if b is not None),
        }
    return results


def _output_case(size: int, newlines: bool) -> str:
    return f"out-{size}-{'lines' if newlines else 'nolines'}"


def _drop_run(project: Path, run: PeerRun, task: str = DEFAULT_TASK) -> int | None:
    """Bytes stored under the run directory, which is then removed (saves disk)."""
    if run.run_id is None:
        return None
    path = run_dir(project, task, run.run_id)
    size = dir_bytes(path)
    shutil.rmtree(path, ignore_errors=True)
    return size


def bench_concurrent(
    cli: Path,
    workdir: Path,
    concurrency: Sequence[int] = (20, 50),
    repeats: int = 1,
    timeout_s: float = 180.0,
) -> dict[str, Any]:
    """(d) K simultaneous ``start`` calls on one task id; counts lost/stuck runs."""
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for k in concurrency:
        rounds = [
            _concurrent_round(cli, workdir, home, k, i, timeout_s) for i in range(max(1, repeats))
        ]
        results[str(k)] = _summarize_rounds(rounds)
    return results


def _concurrent_round(
    cli: Path, workdir: Path, home: Path, k: int, index: int, timeout_s: float
) -> dict[str, Any]:
    project = make_peer_project(workdir, f"concurrent-{k}-{index}", {"one": ["true"]})
    logs = workdir / f"concurrent-{k}-{index}-logs"
    logs.mkdir(exist_ok=True)
    wall, rcs = _launch_all(
        start_command(cli, "one", DEFAULT_TASK), project, home, logs, k, timeout_s
    )
    return {
        "wall_s": wall,
        **_inspect_task(project, DEFAULT_TASK, k),
        **_exit_counts(rcs),
        "errors": _error_samples(logs),
    }


def _launch_all(
    cmd: list[str], project: Path, home: Path, logs: Path, k: int, timeout_s: float
) -> tuple[float, list[int | None]]:
    """Start ``k`` copies of ``cmd`` at once; wait for all, killing any past the deadline."""
    env = peer_env(home)
    procs: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    for i in range(k):
        with open(logs / f"{i}.out", "wb") as out, open(logs / f"{i}.err", "wb") as err:
            procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=project,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            )
    killed: list[subprocess.Popen[bytes]] = []
    timer = _watchdog(procs, timeout_s, killed)
    codes = [proc.wait() for proc in procs]  # blocking waits: no polling granularity
    wall = time.monotonic() - started
    timer.cancel()
    rcs = [None if proc in killed else rc for proc, rc in zip(procs, codes, strict=True)]
    return wall, rcs


def _watchdog(
    procs: Sequence[subprocess.Popen[bytes]],
    timeout_s: float,
    killed: list[subprocess.Popen[bytes]],
) -> threading.Timer:
    """Timer that kills the process group of every proc still running after ``timeout_s``."""

    def expire() -> None:
        for proc in procs:
            if proc.poll() is None:
                killed.append(proc)
                _kill_group(proc)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    return timer


def _exit_counts(rcs: Sequence[int | None]) -> dict[str, int]:
    return {
        "exit_zero": sum(1 for rc in rcs if rc == 0),
        "exit_nonzero": sum(1 for rc in rcs if rc not in (0, None)),
        "timed_out": sum(1 for rc in rcs if rc is None),
    }


def _inspect_task(project: Path, task: str, k: int) -> dict[str, Any]:
    """Compare K starts with the peer's manifests, run history and metrics log."""
    manifests = sorted((project / ".runs" / task / "cli").glob("*/manifest.json"))
    statuses = [_status_of(p) for p in manifests]
    history = read_json(project / "out" / task / "runs.json")
    history_runs = history.get("runs", []) if isinstance(history, dict) else []
    history_ids = {r.get("runId") for r in history_runs if isinstance(r, dict)}
    runs_root = project / ".runs" / task
    metrics = _count_lines([runs_root / "metrics.json"])
    pending = _count_lines(sorted((runs_root / "metrics.pending").glob("*.jsonl")))
    drift = read_json(project / "out" / task / "control-plane" / "drift.json")
    return {
        "starts": k,
        "manifests": len(statuses),
        "manifest_statuses": dict(Counter(statuses)),
        "manifests_not_succeeded": sum(1 for s in statuses if s != "succeeded"),
        "history_runs": len(history_ids),
        "missing_from_history": k - len(history_ids),
        "metrics_entries": metrics,
        "metrics_pending": pending,
        "missing_from_metrics": k - metrics - pending,
        "drift_samples": drift.get("total_samples") if isinstance(drift, dict) else None,
    }


def _count_lines(paths: Iterable[Path]) -> int:
    """Non-empty lines over ``paths`` (missing files count as empty)."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += sum(
                1 for line in path.read_text(errors="replace").splitlines() if line.strip()
            )
    return total


def _status_of(manifest_path: Path) -> str:
    doc = read_json(manifest_path)
    return str(doc.get("status")) if isinstance(doc, dict) else "unreadable"


def _error_samples(logs: Path, limit: int = 5) -> dict[str, int]:
    """Most frequent non-log stderr lines of the concurrent runs."""
    lines: Counter[str] = Counter()
    for err in logs.glob("*.err"):
        for line in err.read_text(errors="replace").splitlines():
            if line.strip() and not line.startswith("[Codex-Orchestrator]"):
                lines[line.strip()[:200]] += 1
    return dict(lines.most_common(limit))


def _summarize_rounds(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "wall_s",
        "manifests",
        "manifests_not_succeeded",
        "history_runs",
        "missing_from_history",
        "metrics_entries",
        "metrics_pending",
        "missing_from_metrics",
        "drift_samples",
        "exit_zero",
        "exit_nonzero",
        "timed_out",
    )
    out: dict[str, Any] = {key: summarize(r[key] for r in rounds) for key in keys}
    out["starts"] = rounds[0]["starts"]
    out["rounds"] = len(rounds)
    out["manifest_statuses"] = [r["manifest_statuses"] for r in rounds]
    out["errors"] = [r["errors"] for r in rounds]
    return out


# --------------------------------------------------------------------------- driver


@dataclass
class Plan:
    """Parameters of one benchmark pass."""

    start_repeats: int
    stage_counts: tuple[int, ...]
    stage_repeats: int
    output_sizes: tuple[int, ...]
    output_newlines: tuple[bool, ...]
    output_repeats: int
    concurrency: tuple[int, ...]
    concurrent_repeats: int
    output_timeout_s: float = 300.0


QUICK_PLAN = Plan(3, (10, 100), 1, (5 * MB,), (False, True), 1, (20,), 1, 120.0)
DEFAULT_PLAN = Plan(5, (10, 100), 3, (20 * MB,), (False, True), 1, (20, 50), 1)
FULL_PLAN = Plan(5, (10, 100), 3, (20 * MB, 200 * MB), (False, True), 1, (20, 50), 3, 900.0)


def run_all(cli: Path, workdir: Path, plan: Plan) -> dict[str, Any]:
    """Run scenarios a-d with ``plan`` under ``workdir``; returns one dict."""
    started = time.monotonic()
    results: dict[str, Any] = {
        "peer": PEER_SPEC,
        "peer_version": peer_version(cli),
        "start_one_stage": bench_start(cli, workdir, plan.start_repeats),
        "stage_overhead": bench_stage_overhead(cli, workdir, plan.stage_counts, plan.stage_repeats),
        "output": bench_output(
            cli,
            workdir,
            plan.output_sizes,
            plan.output_newlines,
            plan.output_repeats,
            plan.output_timeout_s,
        ),
        "concurrent": bench_concurrent(cli, workdir, plan.concurrency, plan.concurrent_repeats),
    }
    results["total_s"] = time.monotonic() - started
    return results


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Rows (scenario, median, min, max, note) for the printed table."""
    rows: list[tuple[str, str, str, str, str]] = []
    a = results["start_one_stage"]
    rows.append(_stat_row("a start 1x true: wall s", a["wall_s"], f"failures={a['failures']}"))
    rows.append(_stat_row("a start 1x true: peak RSS MB", a["maxrss_mb"], ""))
    b = results["stage_overhead"]
    for n, res in b["by_stages"].items():
        rows.append(
            _stat_row(f"b {n} stages: wall s", res["wall_s"], f"failures={res['failures']}")
        )
    for n, ms in b["per_stage_overhead_ms"].items():
        rows.append((f"b per-stage overhead (N={n}) ms", _fmt(ms), "", "", "(t(N)-t(1))/(N-1)"))
    for name, res in results["output"].items():
        note = f"status={res['statuses']} stored={_fmt(res['stored_mb']['median'])}MB"
        rows.append(_stat_row(f"c {name}: wall s", res["wall_s"], note))
        rows.append(_stat_row(f"c {name}: peak RSS MB", res["maxrss_mb"], ""))
    for k, res in results["concurrent"].items():
        note = (
            f"missing_from_history={_fmt(res['missing_from_history']['median'])} "
            f"not_succeeded={_fmt(res['manifests_not_succeeded']['median'])} "
            f"exit_nonzero={_fmt(res['exit_nonzero']['median'])} "
            f"drift_samples={_fmt(res['drift_samples']['median'])}"
        )
        rows.append(_stat_row(f"d {k} concurrent: wall s", res["wall_s"], note))
    return rows


def _stat_row(label: str, stats: dict[str, Any], note: str) -> tuple[str, str, str, str, str]:
    return (label, _fmt(stats["median"]), _fmt(stats["min"]), _fmt(stats["max"]), note)


def format_table(results: dict[str, Any]) -> str:
    """Plain-text table of the main figures."""
    header = ("scenario", "median", "min", "max", "note")
    rows = [header, *table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row))
        for row in rows
    ]
    return "\n".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"Benchmark the peer tool {PEER_SPEC}.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    mode.add_argument("--full", action="store_true", help="adds 200 MB output, 3 rounds of d")
    parser.add_argument(
        "--peer-prefix", type=Path, help="reuse/install the peer in this npm prefix"
    )
    parser.add_argument("--workdir", type=Path, help="keep projects here instead of a temp dir")
    parser.add_argument("--repeats", type=int, help="override start/stage repeats")
    parser.add_argument("--sizes-mb", type=float, nargs="+", help="override output sizes (MB)")
    parser.add_argument(
        "--only-no-newlines", action="store_true", help="c: only the no-newline case"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", help="override K values for d")
    parser.add_argument("--output-timeout", type=float, help="timeout per output run (s)")
    return parser.parse_args(argv)


def _plan_from_args(args: argparse.Namespace) -> Plan:
    plan = QUICK_PLAN if args.quick else FULL_PLAN if args.full else DEFAULT_PLAN
    plan = Plan(**vars(plan))
    if args.repeats:
        plan.start_repeats = plan.stage_repeats = args.repeats
    if args.sizes_mb:
        plan.output_sizes = tuple(int(s * MB) for s in args.sizes_mb)
    if args.only_no_newlines:
        plan.output_newlines = (False,)
    if args.concurrency:
        plan.concurrency = tuple(args.concurrency)
    if args.output_timeout:
        plan.output_timeout_s = args.output_timeout
    return plan


def _ensure_peer(prefix: Path) -> tuple[Path | None, str]:
    cli = find_peer_cli(prefix)
    return (cli, "") if cli is not None else install_peer(prefix)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: install the peer, run all scenarios, print a table and JSON."""
    args = _parse_args(argv)
    plan = _plan_from_args(args)
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        cli, reason = _ensure_peer(args.peer_prefix or Path(tmp, "npm"))
        if cli is None:
            print(json.dumps({"peer": PEER_SPEC, "skipped": reason}, indent=2))
            return 2
        workdir = args.workdir or Path(tmp, "work")
        workdir.mkdir(parents=True, exist_ok=True)
        results = run_all(cli, workdir, plan)
    print(format_table(results))
    print()
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
