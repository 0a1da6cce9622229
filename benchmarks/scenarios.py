"""The six scenarios of the suite. Each returns ``(results, rows)``: raw figures and table rows.

Within a scenario every repetition is a round that runs each command once (ours, its baseline
and, with ``--peer``, the peer tool's), so all of them share the same moment of machine noise;
figures are medians over the rounds with min and max beside them.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import peer as peer_tool
from measure import (
    MB,
    Measured,
    dir_bytes,
    kill_group,
    percentile,
    ratio,
    run_measured,
    summarize,
)
from ours import TASK, OurProject, parse_summary, read_json
from report import row

PEER_ONE_STAGE_S = 0.294  # measured here once (benchmarks/README-peer.md); used without --peer
LIBRARIES_IMPORT = (
    "import cyclopts, pydantic, pydantic_settings, stevedore, pluggy, filelock, tenacity; "
    "from pydantic import BaseModel"
)
"""What `start` must import whatever it does: the libraries the design prescribes."""
Log = Callable[[str], None]


@dataclass
class Plan:
    start_repeats: int = 10
    stage_counts: tuple[int, ...] = (10, 100, 1000)
    stage_repeats: int = 5
    output_bytes: int = 200 * MB
    output_repeats: int = 3
    concurrency: tuple[int, ...] = (50, 200)
    concurrency_rounds: int = 3
    history_runs: int = 10_000
    history_repeats: int = 5
    heartbeat_stage_s: float = 120.0
    heartbeat_settings: tuple[str, ...] = ()  # --set overrides; empty = the defaults
    peer_stage_counts: tuple[int, ...] = (10, 100, 1000)
    peer_output_bytes: int = 200 * MB
    peer_output_repeats: int = 1
    peer_concurrency: tuple[int, ...] = (50,)
    peer_concurrency_rounds: int = 1
    warm_up: bool = True  # start-up and stages begin with an uncounted command (fills caches)


QUICK = Plan(
    start_repeats=2,
    stage_counts=(10, 100),
    stage_repeats=1,
    output_bytes=2 * MB,
    output_repeats=1,
    concurrency=(6,),
    concurrency_rounds=1,
    history_runs=200,
    history_repeats=1,
    heartbeat_stage_s=2.0,
    heartbeat_settings=(
        "heartbeat.interval_seconds=0.1",
        "heartbeat.manifest_throttle_seconds=0.5",
    ),
    peer_stage_counts=(10, 100),
    peer_output_bytes=5 * MB,
    peer_concurrency=(10,),
    warm_up=False,  # its figures are not quoted: the first command may pay for the caches
)


@dataclass
class PeerSide:
    """The installed peer tool and where its projects live."""

    cli: Path
    workdir: Path
    version: str | None = None
    home: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home = self.workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)

    def project(self, name: str, pipelines: dict[str, list[str]]) -> Path:
        return peer_tool.make_peer_project(self.workdir, name, pipelines)

    def start(self, project: Path, pipeline_id: str, timeout_s: float = 120.0) -> Measured:
        return run_measured(
            peer_tool.start_command(self.cli, pipeline_id, peer_tool.DEFAULT_TASK),
            cwd=project,
            env=peer_tool.peer_env(self.home),
            timeout_s=timeout_s,
        )


def _ok(m: Measured) -> bool:
    return m.rc == 0


def _walls(samples: list[Measured]) -> list[float]:
    return [m.wall_s for m in samples if _ok(m)]


def _failures(samples: list[Measured]) -> int:
    return sum(1 for m in samples if not _ok(m))


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (
        datetime.fromisoformat(end.replace("Z", "+00:00"))
        - datetime.fromisoformat(start.replace("Z", "+00:00"))
    ).total_seconds()


# ----------------------------------------------------------------------- 1. start-up


def startup(work: Path, plan: Plan, peer: PeerSide | None, log: Log) -> tuple[dict, list]:
    project = OurProject(work / "startup", {"one": ["true"]})
    commands: dict[str, tuple[list[str], Path | None, dict[str, str] | None]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], None, None),
        "sh -c true": (["/bin/sh", "-c", "true"], None, None),
        "import the libraries": ([sys.executable, "-c", LIBRARIES_IMPORT], None, None),
        "--help": (project.command("--help"), project.root, project.env),
        "start": (project.start("one"), project.root, project.env),
    }
    if peer is not None:
        peer_project = peer.project("startup", {"one": ["true"]})
        commands["peer start"] = (
            peer_tool.start_command(peer.cli, "one", peer_tool.DEFAULT_TASK),
            peer_project,
            peer_tool.peer_env(peer.home),
        )
    samples: dict[str, list[Measured]] = {name: [] for name in commands}
    first = 0 if plan.warm_up else 1
    for round_index in range(first, plan.start_repeats + 1):  # round 0 warms caches, not counted
        for name, (cmd, cwd, env) in commands.items():
            measured = run_measured(cmd, cwd=cwd, env=env, timeout_s=120)
            if round_index:
                samples[name].append(measured)
    log(f"  start-up: {plan.start_repeats} rounds of {', '.join(commands)}")
    stats = {name: summarize(_walls(s)) for name, s in samples.items()}
    rss = {name: summarize(m.maxrss_mb for m in s if _ok(m)) for name, s in samples.items()}
    peer_start = stats.get("peer start")
    peer_median = peer_start["median"] if peer_start else PEER_ONE_STAGE_S
    start_median = stats["start"]["median"]
    results = {
        "wall_s": stats,
        "peak_rss_mb": rss,
        "failures": {name: _failures(s) for name, s in samples.items()},
        "peer_reference_s": peer_median,
    }
    rows = [
        row("1 start-up", "sh -c true", "s", stats["sh -c true"]),
        row("1 start-up", "python -c pass", "s", stats["python -c pass"]),
        row(
            "1 start-up",
            "import the libraries",
            "s",
            stats["import the libraries"],
            baseline=stats["python -c pass"],
            baseline_label="python -c pass",
            note="cyclopts, pydantic(-settings), stevedore, pluggy, filelock, tenacity",
        ),
        row(
            "1 start-up",
            "--help",
            "s",
            stats["--help"],
            baseline=stats["python -c pass"],
            baseline_label="python -c pass",
        ),
        row(
            "1 start-up",
            "start, 1 stage `true`",
            "s",
            stats["start"],
            baseline=stats["python -c pass"],
            baseline_label="python -c pass",
            peer=peer_start,
            target=f"<= 0.5 x peer ({peer_median / 2:.3f} s)",
            met=None if start_median is None else start_median <= peer_median / 2,
            note=f"failures={results['failures']['start']}",
        ),
        row(
            "1 start-up",
            "start, 1 stage, over the libraries",
            "s",
            stats["start"],
            baseline=stats["import the libraries"],
            baseline_label="import the libraries",
            note="what start costs beyond importing what the design prescribes",
        ),
        row(
            "1 start-up",
            "start, 1 stage: CPU time",
            "s",
            summarize(m.cpu_s for m in samples["start"] if _ok(m)),
            peer=summarize(m.cpu_s for m in samples.get("peer start", []) if _ok(m)) or None,
            note="user + system, less sensitive to a busy machine than wall time",
        ),
        row(
            "1 start-up",
            "start, 1 stage: peak RSS",
            "MB",
            rss["start"],
            peer=rss.get("peer start"),
        ),
    ]
    return results, rows


# ----------------------------------------------------------------------- 2. per-stage overhead


def _spawn_floor_command(count: int) -> list[str]:
    loop = f'i=0; while [ "$i" -lt {count} ]; do /bin/sh -c true; i=$((i+1)); done'
    return ["/bin/sh", "-c", loop]


def stage_overhead(work: Path, plan: Plan, peer: PeerSide | None, log: Log) -> tuple[dict, list]:
    counts = sorted({1, *plan.stage_counts})
    project = OurProject(work / "stages", {f"n{n}": ["true"] * n for n in counts})
    peer_counts = sorted({1, *plan.peer_stage_counts}) if peer else []
    peer_project = (
        peer.project("stages", {f"n{n}": ["true"] * n for n in peer_counts}) if peer else None
    )
    floor_count = max(counts)
    ours: dict[int, list[Measured]] = {n: [] for n in counts}
    theirs: dict[int, list[Measured]] = {n: [] for n in peer_counts}
    floor: list[float] = []
    engine_s: dict[int, list[float]] = {n: [] for n in counts}  # manifest completed - started
    if plan.warm_up:
        run_measured(project.start("n1"), cwd=project.root, env=project.env)
    for _ in range(plan.stage_repeats):
        spawn = run_measured(_spawn_floor_command(floor_count), timeout_s=600)
        floor.append(spawn.wall_s / floor_count * 1000)
        for n in counts:
            measured = run_measured(
                project.start(f"n{n}"), cwd=project.root, env=project.env, timeout_s=600
            )
            ours[n].append(measured)
            summary = parse_summary(measured.stdout) or {}
            seconds = _seconds_between(summary.get("started_at"), summary.get("completed_at"))
            if seconds is not None:
                engine_s[n].append(seconds)
        for n in peer_counts:
            assert peer is not None and peer_project is not None
            theirs[n].append(peer.start(peer_project, f"n{n}", timeout_s=900))
        shutil.rmtree(project.task_dir(), ignore_errors=True)
        shutil.rmtree(project.root / "out", ignore_errors=True)
    log(f"  stages: {plan.stage_repeats} rounds of N={counts}")

    def overhead(samples: dict[int, list[Measured]], n: int) -> float | None:
        base = summarize(_walls(samples[1]))["median"]
        t_n = summarize(_walls(samples[n]))["median"]
        if base is None or t_n is None:
            return None
        return (t_n - base) / (n - 1) * 1000

    def overhead_range(samples: dict[int, list[Measured]], n: int) -> dict[str, Any]:
        """Per-stage overhead with min/max taken round by round against that round's t(1)."""
        per_round = [
            (m.wall_s - b.wall_s) / (n - 1) * 1000
            for b, m in zip(samples[1], samples[n], strict=False)
            if _ok(b) and _ok(m)
        ]
        stats = summarize(per_round)
        stats["median"] = overhead(samples, n)
        return stats

    floor_stats = summarize(floor)
    results: dict[str, Any] = {
        "wall_s": {str(n): summarize(_walls(s)) for n, s in ours.items()},
        "failures": {str(n): _failures(s) for n, s in ours.items()},
        "per_stage_overhead_ms": {str(n): overhead_range(ours, n) for n in counts if n > 1},
        "engine_run_s": {str(n): summarize(v) for n, v in engine_s.items()},
        "spawn_floor_ms": floor_stats,
    }
    if peer:
        results["peer_wall_s"] = {str(n): summarize(_walls(s)) for n, s in theirs.items()}
        results["peer_per_stage_overhead_ms"] = {
            str(n): overhead_range(theirs, n) for n in peer_counts if n > 1
        }
    rows = []
    per_stage = results["per_stage_overhead_ms"]
    for n in counts:
        if n == 1:
            continue
        value = per_stage[str(n)]["median"]
        rows.append(
            row(
                "2 per-stage",
                f"overhead per stage, N={n}",
                "ms",
                per_stage[str(n)],
                baseline=floor_stats,
                baseline_label="spawn sh -c true",
                peer=results.get("peer_per_stage_overhead_ms", {}).get(str(n)),
                target="<= 5 ms",
                met=None if value is None else value <= 5.0,
                note=f"failures={results['failures'][str(n)]}",
            )
        )
    # Flatness: the marginal cost of one more stage between consecutive N, from the run's own
    # times (manifest completed_at - started_at), so start-up noise and fixed costs cancel.
    segments = list(itertools.pairwise(counts))
    marginal: dict[str, dict[str, Any]] = {}
    for a, b in segments:
        per_round = [
            (y - x) / (b - a) * 1000 for x, y in zip(engine_s[a], engine_s[b], strict=False)
        ]
        stats = summarize(per_round)
        da, db = summarize(engine_s[a])["median"], summarize(engine_s[b])["median"]
        stats["median"] = None if da is None or db is None else (db - da) / (b - a) * 1000
        marginal[f"{a}-{b}"] = stats
        rows.append(
            row(
                "2 per-stage",
                f"marginal cost per stage, N={a}..{b}",
                "ms",
                stats,
                baseline=floor_stats,
                baseline_label="spawn sh -c true",
                note="(run time at N=b - at N=a) / (b - a), run times from the manifest",
            )
        )
    results["marginal_ms"] = marginal
    judged = [seg for seg in segments if seg[0] >= 10] or segments
    if len(judged) < 2:
        judged = segments
    first, last = judged[0], judged[-1]
    growth = ratio(
        marginal[f"{last[0]}-{last[1]}"]["median"], marginal[f"{first[0]}-{first[1]}"]["median"]
    )
    results["growth"] = growth
    rows.append(
        row(
            "2 per-stage",
            f"growth, N={first[0]}..{first[1]} -> N={last[0]}..{last[1]}",
            "x",
            growth,
            target="flat (<= 1.25x)",
            met=None if growth is None else growth <= 1.25,
            note="marginal cost per stage at the largest N over that at the smallest"
            + (
                ""
                if growth is not None
                else "; undefined this time: the cost at the smallest N was not above 0 ms "
                "(the machine's noise was larger than it; use more --repeats)"
            ),
        )
    )
    return results, rows


# ----------------------------------------------------------------------- 3. output capture


def output_cases(size: int) -> dict[str, str]:
    lines = peer_tool.output_command(size, True)
    no_lines = peer_tool.output_command(size, False)
    return {
        "stdout, no newlines": no_lines,
        "stdout, 80-byte lines": lines,
        "stderr, no newlines": f"{no_lines} >&2",
    }


def _case_id(index: int) -> str:
    return f"out{index}"


def _output_run(project: OurProject, measured: Measured) -> dict[str, Any]:
    summary = parse_summary(measured.stdout) or {}
    run_id = summary.get("run_id")
    info: dict[str, Any] = {"status": summary.get("status"), "stage_s": None, "disk": None}
    if not run_id:
        return info
    run_dir = project.run_dir(run_id)
    manifest = read_json(run_dir / "manifest.json") or {}
    commands = manifest.get("commands") or [{}]
    stage = commands[0]
    if stage.get("duration_ms") is not None:
        info["stage_s"] = stage["duration_ms"] / 1000
    info["captured"] = (stage.get("stdout_bytes") or 0) + (stage.get("stderr_bytes") or 0)
    info["disk"] = dir_bytes(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return info


def output_capture(work: Path, plan: Plan, peer: PeerSide | None, log: Log) -> tuple[dict, list]:
    size = plan.output_bytes
    cases = output_cases(size)
    ids = {name: _case_id(i) for i, name in enumerate(cases, 1)}
    project = OurProject(work / "output", {ids[name]: [cmd] for name, cmd in cases.items()})
    sink = work / "output-redirect.bin"
    peer_cases = output_cases(plan.peer_output_bytes)
    peer_project = (
        peer.project("output", {ids[name]: [cmd] for name, cmd in peer_cases.items()})
        if peer
        else None
    )
    results: dict[str, Any] = {"bytes": size, "cases": {}}
    rows: list[dict[str, Any]] = []
    for name, command in cases.items():
        ours: list[Measured] = []
        runs: list[dict[str, Any]] = []
        base: list[float] = []
        piped: list[float] = []
        for _ in range(plan.output_repeats):
            redirect = run_measured(
                ["/bin/sh", "-c", f"{{ {command}; }} > {sink} 2>&1"], timeout_s=600
            )
            base.append(redirect.wall_s)
            sink.unlink(missing_ok=True)
            # the floor of any tool that reads a stage's output through a pipe
            through_pipe = run_measured(
                ["/bin/sh", "-c", f"{{ {command}; }} 2>&1 | cat > {sink}"], timeout_s=600
            )
            piped.append(through_pipe.wall_s)
            sink.unlink(missing_ok=True)
            measured = run_measured(
                project.start(ids[name]),
                cwd=project.root,
                env=project.env,
                timeout_s=900,
                sample_rss=True,
            )
            ours.append(measured)
            runs.append(_output_run(project, measured))
        theirs: list[Measured] = []
        their_disk: list[float] = []
        if peer is not None and peer_project is not None:
            for _ in range(plan.peer_output_repeats):
                measured = peer.start(peer_project, ids[name], timeout_s=1800)
                theirs.append(measured)
                doc = peer_tool.parse_peer_json(measured.stdout) or {}
                if doc.get("run_id"):
                    folder = peer_tool.run_dir(peer_project, peer_tool.DEFAULT_TASK, doc["run_id"])
                    their_disk.append(dir_bytes(folder) / plan.peer_output_bytes)
                    shutil.rmtree(folder, ignore_errors=True)
        log(f"  output: {name}, {size / MB:g} MB x {plan.output_repeats}")
        wall = summarize(_walls(ours))
        stage = summarize(r["stage_s"] for r in runs)
        base_stats = summarize(base)
        pipe_stats = summarize(piped)
        own_rss = summarize(m.own_peak_rss_mb for m in ours if _ok(m))
        tree_rss = summarize(m.maxrss_mb for m in ours if _ok(m))
        disk = summarize(r["disk"] / size for r in runs if r["disk"] is not None)
        captured_all = all(r.get("captured") == size for r in runs)
        stage_ratio = ratio(stage["median"], base_stats["median"])
        wall_ratio = ratio(wall["median"], base_stats["median"])
        # what end to end adds to the stage: start-up, the run's records and their fsyncs
        around = summarize(
            m.wall_s - r["stage_s"]
            for m, r in zip(ours, runs, strict=True)
            if _ok(m) and r["stage_s"] is not None
        )
        results["cases"][name] = {
            "command": command,
            "wall_s": wall,
            "stage_s": stage,
            "around_stage_s": around,
            "redirect_s": base_stats,
            "pipe_to_cat_s": pipe_stats,
            "orchestrator_peak_rss_mb": own_rss,
            "wait4_maxrss_mb": tree_rss,
            "disk_bytes_per_output_byte": disk,
            "all_bytes_captured": captured_all,
            "failures": _failures(ours),
            "peer_bytes": plan.peer_output_bytes if peer else None,
            "peer_wall_s": summarize(_walls(theirs)) if peer else None,
            "peer_maxrss_mb": summarize(m.maxrss_mb for m in theirs if _ok(m)) if peer else None,
            "peer_disk_bytes_per_output_byte": summarize(their_disk) if peer else None,
        }
        case = results["cases"][name]
        same_size = peer is None or plan.peer_output_bytes == size
        peer_note = "" if same_size else f" (peer at {plan.peer_output_bytes / MB:g} MB)"
        rows += [
            row(
                "3 capture",
                f"{name}: wall",
                "s",
                wall,
                baseline=base_stats,
                baseline_label="redirect to file",
                peer=case["peer_wall_s"],
                target="<= 1.5 x redirect",
                met=None if wall_ratio is None else wall_ratio <= 1.5,
                note=f"end to end; {size / MB:g} MB, failures={case['failures']}{peer_note}",
            ),
            row(
                "3 capture",
                f"{name}: around the stage",
                "s",
                around,
                note="wall minus stage time: start-up and the run's records, whatever the output",
            ),
            row(
                "3 capture",
                f"{name}: stage time",
                "s",
                stage,
                baseline=base_stats,
                baseline_label="redirect to file",
                target="<= 1.5 x redirect",
                met=None if stage_ratio is None else stage_ratio <= 1.5,
                note="the stage's duration_ms in the manifest: capture without start-up",
            ),
            row(
                "3 capture",
                f"{name}: stage time vs a pipe",
                "s",
                stage,
                baseline=pipe_stats,
                baseline_label="| cat > file",
                note="the floor of reading output through a pipe",
            ),
            row(
                "3 capture",
                f"{name}: orchestrator peak RSS",
                "MB",
                own_rss,
                peer=case["peer_maxrss_mb"],
                target="< 150 MB",
                met=None if own_rss["median"] is None else own_rss["max"] < 150,
                note="VmHWM of the orchestrator process",
            ),
            row(
                "3 capture",
                f"{name}: disk bytes per output byte",
                "x",
                disk,
                peer=case["peer_disk_bytes_per_output_byte"],
                note="all bytes captured" if captured_all else "BYTES MISSING",
            ),
        ]
    return results, rows


# ----------------------------------------------------------------------- 4. contention


def _launch_together(
    cmd: list[str], project: OurProject, k: int, timeout_s: float
) -> tuple[float, list[int | None]]:
    """Start ``k`` copies of ``cmd`` back to back and wait for all (blocking, with a watchdog)."""
    import subprocess

    env = project.env
    procs: list[subprocess.Popen[bytes]] = []
    started = time.perf_counter()
    for _ in range(k):
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=project.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    killed: set[int] = set()

    def expire() -> None:
        for proc in procs:
            if proc.poll() is None:
                killed.add(proc.pid)
                kill_group(proc.pid)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    codes = [proc.wait() for proc in procs]
    wall = time.perf_counter() - started
    timer.cancel()
    return wall, [None if p.pid in killed else c for p, c in zip(procs, codes, strict=True)]


def _lock_waits(project: OurProject) -> list[float]:
    return recorded_waits(project.run_dirs())


def recorded_waits(run_dirs: Iterable[Path]) -> list[float]:
    """Each run's ``state:recorded`` wait (ms): how long recording it in the history took."""
    waits: list[float] = []
    for run_dir in run_dirs:
        try:
            text = (run_dir / "runner.ndjson").read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") == "state:recorded" and "duration_ms" in event:
                waits.append(float(event["duration_ms"]))
    return waits


def _skipped_snapshots(project: OurProject) -> int:
    """Runs that warned that a state snapshot write was skipped (lock not taken in time)."""
    count = 0
    for run_dir in project.run_dirs():
        try:
            text = (run_dir / "runner.ndjson").read_text(encoding="utf-8")
        except OSError:
            continue
        count += "state snapshot skipped" in text
    return count


def _contention_round(work: Path, k: int, index: int, timeout_s: float) -> dict[str, Any]:
    project = OurProject(work / f"contention-{k}-{index}", {"one": ["true"]})
    cmd = project.command("start", "one", "--task", TASK, "--format", "json")
    wall, codes = _launch_together(cmd, project, k, timeout_s)
    state_runs = project.state().get("runs", [])
    state_ids = [r.get("run_id") for r in state_runs]
    final = {r.get("run_id"): r.get("status") for r in state_runs}
    manifests = [read_json(d / "manifest.json") or {} for d in project.run_dirs()]
    succeeded = sum(1 for m in manifests if m.get("status") == "succeeded")
    metric_ids = {m.get("run_id") for m in project.metrics()}
    waits = _lock_waits(project)
    result = {
        "starts": k,
        "wall_s": wall,
        "exit_nonzero": sum(1 for c in codes if c != 0),
        "runs_created": len(manifests),
        "manifests_succeeded": succeeded,
        "state_entries": len(set(state_ids)),
        "state_duplicates": len(state_ids) - len(set(state_ids)),
        "metrics_lines": len(metric_ids),
        "runs_lost": k - min(len(set(state_ids)), len(metric_ids), succeeded),
        "state_not_final": sum(1 for status in final.values() if status != "succeeded"),
        "snapshot_skipped": _skipped_snapshots(project),
        "lock_ms_p50": percentile(waits, 0.5),
        "lock_ms_p99": percentile(waits, 0.99),
        "lock_ms_max": max(waits) if waits else None,
        "lock_samples": len(waits),
    }
    shutil.rmtree(project.root.parent, ignore_errors=True)
    return result


def contention(work: Path, plan: Plan, peer: PeerSide | None, log: Log) -> tuple[dict, list]:
    results: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    peer_results: dict[str, Any] = {}
    if peer is not None:
        peer_results = peer_tool.bench_concurrent(
            peer.cli,
            peer.workdir / "concurrent",
            plan.peer_concurrency,
            plan.peer_concurrency_rounds,
            timeout_s=600,
        )
        results["peer"] = peer_results
    for k in plan.concurrency:
        rounds = [_contention_round(work, k, i, 900) for i in range(plan.concurrency_rounds)]
        log(f"  contention: {k} concurrent starts x {plan.concurrency_rounds}")
        keys = [key for key in rounds[0] if key != "starts"]
        summary = {key: summarize(r[key] for r in rounds) for key in keys}
        summary["rounds"] = rounds
        results[str(k)] = summary
        their = peer_results.get(str(k), {})
        lost = summary["runs_lost"]["max"]
        not_final = summary["state_not_final"]["max"]
        rows += [
            row(
                "4 contention",
                f"{k} concurrent starts: wall",
                "s",
                summary["wall_s"],
                peer=their.get("wall_s"),
            ),
            row(
                "4 contention",
                f"{k} concurrent starts: runs lost",
                "runs",
                summary["runs_lost"],
                peer=their.get("missing_from_history"),
                target="0",
                met=lost == 0,
                note=f"non-zero exits {summary['exit_nonzero']['max']}, "
                f"duplicates {summary['state_duplicates']['max']} "
                "(missing from state.json, metrics.json or not succeeded)",
            ),
            row(
                "4 contention",
                f"{k} concurrent starts: history entries left in_progress",
                "runs",
                summary["state_not_final"],
                target="0",
                met=not_final == 0,
                note=f"snapshot writes that gave up on the lock: "
                f"{summary['snapshot_skipped']['max']} (max of the rounds)",
            ),
            row(
                "4 contention",
                f"{k} concurrent starts: state lock p50",
                "ms",
                summary["lock_ms_p50"],
                note="state:recorded duration_ms (lock wait + read + write)",
            ),
            row(
                "4 contention",
                f"{k} concurrent starts: state lock p99",
                "ms",
                summary["lock_ms_p99"],
            ),
        ]
    return results, rows


# ----------------------------------------------------------------------- 5. history growth


def history_growth(work: Path, plan: Plan, peer: PeerSide | None, log: Log) -> tuple[dict, list]:
    import history

    project = OurProject(work / "history", {"one": ["true"]})
    template = run_measured(project.start("one", task="full"), cwd=project.root, env=project.env)
    summary = parse_summary(template.stdout)
    if not summary or template.rc != 0:
        raise RuntimeError(f"history template run failed: {template.stderr.strip()[-500:]}")
    generated_at = time.perf_counter()
    history.clone_history(project, "full", summary["run_id"], plan.history_runs)
    generation_s = time.perf_counter() - generated_at
    log(f"  history: {plan.history_runs} runs generated in {generation_s:.1f} s")
    empty_run = run_measured(project.start("one", task="empty"), cwd=project.root, env=project.env)
    empty_id = (parse_summary(empty_run.stdout) or {}).get("run_id", "")
    newest_full = summary["run_id"]
    commands = {
        "start": ("full", project.start("one", task="full"), project.start("one", task="empty")),
        "status (task list)": (
            "full",
            project.command("status", "--task", "full", "--format", "json"),
            project.command("status", "--task", "empty", "--format", "json"),
        ),
        "status --limit 0 (every run)": (
            "full",
            project.command("status", "--task", "full", "--limit", "0", "--format", "json"),
            project.command("status", "--task", "empty", "--limit", "0", "--format", "json"),
        ),
        "status RUN_ID": (
            "full",
            project.command("status", newest_full, "--task", "full", "--format", "json"),
            project.command("status", empty_id, "--task", "empty", "--format", "json"),
        ),
        "status RUN_ID, no --task": (
            "full",
            project.command("status", newest_full, "--format", "json"),
            project.command("status", empty_id, "--format", "json"),
        ),
    }
    full: dict[str, list[Measured]] = {name: [] for name in commands}
    empty: dict[str, list[Measured]] = {name: [] for name in commands}
    for _ in range(plan.history_repeats):
        for name, (_task, big, small) in commands.items():
            full[name].append(run_measured(big, cwd=project.root, env=project.env, timeout_s=300))
            empty[name].append(
                run_measured(small, cwd=project.root, env=project.env, timeout_s=300)
            )

    def listed_by(name: str) -> int | None:
        last = full[name][-1]
        if last.rc != 0:
            return None
        try:
            return len(json.loads(last.stdout))
        except (ValueError, TypeError):
            return None

    listed = listed_by("status --limit 0 (every run)")
    listed_default = listed_by("status (task list)")
    results: dict[str, Any] = {
        "runs_in_history": plan.history_runs + 1,
        "generation_s": generation_s,
        "listed_by_status": listed,
        "listed_by_default_status": listed_default,
        "wall_s": {name: summarize(_walls(s)) for name, s in full.items()},
        "baseline_wall_s": {name: summarize(_walls(s)) for name, s in empty.items()},
        "failures": {name: _failures(s) for name, s in full.items()},
        "errors": {name: s[-1].stderr.strip()[-300:] for name, s in full.items() if _failures(s)},
        "state_json_bytes": project.state_path("full").stat().st_size,
    }
    rows = []
    size = plan.history_runs
    for name in commands:
        stats = results["wall_s"][name]
        is_status = name.startswith("status")
        target = "< 1 s" if is_status else None
        failures = results["failures"][name]
        rows.append(
            row(
                "5 history",
                f"{name}, {size} runs",
                "s",
                stats,
                baseline=results["baseline_wall_s"][name],
                baseline_label="1-run task",
                target=target,
                met=(
                    None
                    if not is_status
                    else (failures == 0 and stats["median"] is not None and stats["max"] < 1.0)
                ),
                note=f"failures={failures}"
                + (f", listed {listed_default}" if name == "status (task list)" else "")
                + (f", listed {listed}" if name.startswith("status --limit 0") else ""),
            )
        )
    return results, rows


# ----------------------------------------------------------------------- 6. heartbeat


def _file_version(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def heartbeat(work: Path, plan: Plan, peer: PeerSide | None, log: Log) -> tuple[dict, list]:
    """Counts every replacement of manifest.json and .heartbeat while one long stage runs."""
    import subprocess

    seconds = plan.heartbeat_stage_s
    project = OurProject(work / "heartbeat", {"long": [f"sleep {seconds:g}"]})
    settings = [arg for setting in plan.heartbeat_settings for arg in ("--set", setting)]
    before = set(project.run_dirs())
    proc = subprocess.Popen(
        project.start("long", *settings),
        cwd=project.root,
        env=project.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    manifest_writes: list[tuple[float, str | None]] = []
    heartbeat_writes: list[float] = []
    run_dir: Path | None = None
    last_manifest = last_heartbeat = None
    deadline = time.monotonic() + seconds + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if run_dir is None:
            fresh = set(project.run_dirs()) - before
            run_dir = next(iter(fresh)) if fresh else None
        if run_dir is not None:
            now = time.monotonic()
            version = _file_version(run_dir / "manifest.json")
            if version is not None and version != last_manifest:
                last_manifest = version
                document = read_json(run_dir / "manifest.json") or {}
                manifest_writes.append((now, document.get("status_detail")))
            version = _file_version(run_dir / ".heartbeat")
            if version is not None and version != last_heartbeat:
                last_heartbeat = version
                heartbeat_writes.append(now)
        time.sleep(0.005)
    if proc.poll() is None:
        kill_group(proc.pid)
    stdout, _ = proc.communicate()
    summary = parse_summary(stdout.decode("utf-8", "replace")) or {}
    running = [t for t, detail in manifest_writes if detail == "stage:s1:running"]
    # the first "running" write is the forced stage-start write; the rest are heartbeat writes
    window = (running[-1] - running[0]) if len(running) > 1 else None
    stage_s = None
    if summary.get("commands"):
        stage_s = (summary["commands"][0].get("duration_ms") or 0) / 1000
    during = max(0, len(running) - 1)
    per_minute = during / stage_s * 60 if stage_s else None
    beats_during = [
        t for t in heartbeat_writes if running and running[0] <= t <= running[0] + (stage_s or 0)
    ]
    beat_rate = len(beats_during) / stage_s * 60 if stage_s else None
    results = {
        "stage_seconds": seconds,
        "settings": list(plan.heartbeat_settings) or "defaults",
        "status": summary.get("status"),
        "manifest_writes_total": len(manifest_writes),
        "manifest_heartbeat_writes_during_stage": during,
        "manifest_writes_per_minute": per_minute,
        "heartbeat_file_writes_per_minute": beat_rate,
        "observed_window_s": window,
    }
    log(f"  heartbeat: {seconds:g} s stage, {len(manifest_writes)} manifest writes seen")
    settings_note = ", ".join(plan.heartbeat_settings) or "defaults (interval 5 s, throttle 30 s)"
    rows = [
        row(
            "6 heartbeat",
            f"manifest writes/min during a {seconds:g} s stage",
            "/min",
            per_minute,
            note=settings_note,
        ),
        row(
            "6 heartbeat",
            ".heartbeat writes/min",
            "/min",
            beat_rate,
            note=settings_note,
        ),
    ]
    return results, rows


SCENARIOS: dict[str, Callable[[Path, Plan, PeerSide | None, Log], tuple[dict, list]]] = {
    "startup": startup,
    "stages": stage_overhead,
    "output": output_capture,
    "contention": contention,
    "history": history_growth,
    "heartbeat": heartbeat,
}
