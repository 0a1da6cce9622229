"""Is the wait at many concurrent starts the history lock's design, or CPU starvation?

    python benchmarks/contention_split.py [--starts 200] [--rounds 1]

Each round launches ``--starts`` concurrent ``start`` commands of one task (they share one
history and its lock), then as many spread over as many tasks (no two share a history or a lock),
in the same project shape, back to back. If the shared-task side takes no longer than the
spread side, the time is the machine's (every process waits for a core), not the lock's. Each
run's ``state:recorded`` event gives how long recording its history entry took (the lock wait
included): its p50 and p99 are printed for both sides, with the runs lost (missing from the
history or the metrics, or not succeeded). One start of another task warms each project up
(bytecode, caches) before the clock starts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import emit_report, percentile, run_measured
from ours import OurProject
from scenarios import _launch_together, recorded_waits


def _recorded_ms(project: OurProject, tasks: list[str]) -> list[float]:
    return recorded_waits(run_dir for task in tasks for run_dir in project.run_dirs(task))


def _side(work: Path, starts: int, spread: bool) -> dict[str, Any]:
    project = OurProject(work, {"one": ["true"]})
    tasks = [f"t{n:03d}" for n in range(starts)] if spread else ["shared"] * starts
    script = project.root / "launch.sh"  # one command line per start, each its own task
    script.write_text(
        "#!/bin/sh\nexec "
        + " ".join(project.command("start", "one", "--format", "json"))
        + ' --task "$1"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    warm = run_measured([str(script), "warm-up"], cwd=project.root, env=project.env)
    if warm.rc != 0:  # bytecode and the entry-point cache made before the clock starts
        raise RuntimeError(f"warm-up start failed: {warm.stderr[-500:]}")
    began = time.perf_counter()
    if spread:
        import subprocess

        procs = [
            subprocess.Popen(
                [str(script), task],
                cwd=project.root,
                env=project.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for task in tasks
        ]
        codes = [proc.wait(timeout=1800) for proc in procs]
        wall = time.perf_counter() - began
    else:
        wall, codes = _launch_together([str(script), "shared"], project, starts, 1800)
    distinct = sorted(set(tasks))
    recorded = _recorded_ms(project, distinct)
    history = {
        r.get("run_id"): r.get("status") for t in distinct for r in project.state(t).get("runs", [])
    }
    metrics = {m.get("run_id") for t in distinct for m in project.metrics(t)}
    succeeded = sum(1 for s in history.values() if s == "succeeded")
    result = {
        "wall_s": round(wall, 2),
        "exit_nonzero": sum(1 for c in codes if c != 0),
        "runs_lost": starts - min(len(history), len(metrics), succeeded),
        "recorded_ms_p50": round(percentile(recorded, 0.5) or 0, 1),
        "recorded_ms_p99": round(percentile(recorded, 0.99) or 0, 1),
        "recorded_samples": len(recorded),
    }
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="contention-split-"))
    rounds = []
    for index in range(args.rounds):
        load = os.getloadavg()[0]
        one = _side(work / f"one-{index}", args.starts, spread=False)
        many = _side(work / f"many-{index}", args.starts, spread=True)
        rounds.append({"load_at_start": load, "one_task": one, "many_tasks": many})
        print(json.dumps(rounds[-1]), flush=True)
    ratio = statistics.median(r["one_task"]["wall_s"] / r["many_tasks"]["wall_s"] for r in rounds)
    report = {"starts": args.starts, "rounds": rounds, "one_over_many_wall": round(ratio, 3)}
    return emit_report(report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
