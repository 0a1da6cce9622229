"""Stage graphs: ``python benchmarks/graphs.py [--quick] [--repeats N]``.

Four measurements, each against a baseline taken in the same run (docs/performance.md,
"Stage graphs"):

1. ``parallel``: 8 independent ``sleep 1`` stages with ``max_parallel = 8`` against one
   ``sleep 1`` stage (target: wall within 1.2x).
2. ``chain``: 100 ``true`` stages, each needing the one before, against the same 100 without
   ``needs`` (target: cost per stage within 1.2x).
3. ``wide``: 1,000 independent ``true`` stages (200 with ``--quick``) against 100 (cost per
   stage flat), with the number of manifest writes (paced: far fewer than one per stage).
4. ``output``: 8 stages each printing 50 MB (1 MB with ``--quick``) at once against one such
   stage: the orchestrator's own peak RSS (within the single-stage figure times 8) and every
   byte in the logs (checked by SHA-256 of each stage's output rebuilt from its log).

For ``wide``, the cost per stage is the run's wall less that of a one-stage ``true`` run
(start-up and the run's own records), divided by the other stages; ``chain`` compares the walls
of two 100-stage runs (wall / 100 per stage).

Prints one line per figure on stdout (progress on stderr) and a JSON document with ``--json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import installed  # noqa: F401  (exits 2 with one line when the package is not installed)
from measure import Measured, run_measured
from ours import OurProject

from orchestrator.capture import event_bytes

LINE = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789\n"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def stage(stage_id: str, command: str, needs: Sequence[str] | None = None) -> str:
    extra = f", needs = {json.dumps(list(needs))}" if needs is not None else ""
    return f"  {{ id = {json.dumps(stage_id)}, command = {json.dumps(command)}{extra} }},"


def pipeline(name: str, stages: Sequence[str], **keys: object) -> str:
    head = "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
    return f"[pipelines.{name}]\n{head}stages = [\n" + "\n".join(stages) + "\n]\n"


def output_command(size: int) -> str:
    return f"yes {LINE[:-1].decode()} | head -c {size}"


def expected_sha(size: int) -> str:
    data = (LINE * (size // len(LINE) + 1))[:size]
    return hashlib.sha256(data).hexdigest()


def config(size: int, wide: int) -> str:
    sleeps = [stage(f"s{i}", "sleep 1", needs=[]) for i in range(8)]
    return "\n".join(
        [
            pipeline("one-sleep", [stage("s0", "sleep 1")]),
            pipeline("one-true", [stage("t0", "true")]),
            pipeline("parallel", sleeps, max_parallel=8),
            pipeline(
                "chain-graph",
                [stage(f"t{i}", "true", needs=[f"t{i - 1}"] if i else []) for i in range(100)],
            ),
            pipeline("chain-plain", [stage(f"t{i}", "true") for i in range(100)]),
            pipeline("wide-100", [stage(f"w{i}", "true", needs=[]) for i in range(100)]),
            pipeline("wide-many", [stage(f"w{i}", "true", needs=[]) for i in range(wide)]),
            pipeline("output-one", [stage("o0", output_command(size))]),
            pipeline(
                "output-eight",
                [stage(f"o{i}", output_command(size), needs=[]) for i in range(8)],
                max_parallel=8,
            ),
        ]
    )


def run(project: OurProject, name: str, *, sample_rss: bool = False) -> tuple[Measured, dict]:
    measured = run_measured(
        project.start(name), cwd=project.root, env=project.env, timeout_s=900, sample_rss=sample_rss
    )
    if measured.rc != 0:
        raise SystemExit(f"{name}: exit {measured.rc}: {measured.stderr.strip()[-400:]}")
    return measured, json.loads(measured.stdout)


def run_end(project: OurProject, summary: dict) -> dict[str, Any]:
    events = (project.root / summary["artifact_root"] / "runner.ndjson").read_text()
    return next(e for e in map(json.loads, events.splitlines()) if e["type"] == "run:end")


def logged_sha(project: OurProject, summary: dict, index: int, stage_id: str) -> tuple[str, int]:
    folder = project.root / summary["artifact_root"] / "commands"
    digest = hashlib.sha256()
    total = 0
    with (folder / f"{index:02d}-{stage_id}.ndjson").open(encoding="utf-8") as handle:
        for line in handle:
            event = json.loads(line)
            if event["type"] == "exec:chunk" and event["stream"] == "stdout":
                data = event_bytes(event)
                digest.update(data)
                total += len(data)
    return digest.hexdigest(), total


def median(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 MB output stages, 200 wide stages, one repeat, no warm-up run",
    )
    parser.add_argument("--repeats", type=int, help="rounds of each measurement (default 3)")
    parser.add_argument("--output-mb", type=float, help="MB each output stage prints (50)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    size = int((args.output_mb or (1 if args.quick else 50)) * 1024 * 1024)
    wide = 200 if args.quick else 1000
    figures: dict[str, Any] = {
        "repeats": repeats,
        "output_bytes_per_stage": size,
        "wide_stages": wide,
    }
    with tempfile.TemporaryDirectory(prefix="graph-bench-") as base:
        project = OurProject(Path(base) / "project", {})
        project.project.write_config(config(size, wide))
        samples: dict[str, list[float]] = {}
        rss: dict[str, list[float]] = {}
        writes: list[int] = []
        if not args.quick:  # warm-up: the first command of a project pays for caches
            run(project, "one-sleep")
        for round_ in range(1, repeats + 1):
            log(f"round {round_}/{repeats}")
            for name in ("one-sleep", "parallel", "chain-plain", "chain-graph"):
                measured, _ = run(project, name)
                samples.setdefault(name, []).append(measured.wall_s)
            for name in ("one-true", "wide-100", "wide-many"):
                measured, summary = run(project, name)
                samples.setdefault(name, []).append(measured.wall_s)
                if name == "wide-many":
                    writes.append(run_end(project, summary)["manifest_writes"])
            for name, count in (("output-one", 1), ("output-eight", 8)):
                measured, summary = run(project, name, sample_rss=True)
                rss.setdefault(name, []).append(measured.own_peak_rss_mb or 0.0)
                want = expected_sha(size)
                for command in summary["commands"]:
                    sha, total = logged_sha(project, summary, command["index"], command["id"])
                    if sha != want or total != size:
                        raise SystemExit(f"{name}: stage {command['id']} lost bytes ({total})")
                figures.setdefault("bytes_checked", 0)
                figures["bytes_checked"] += count * size
    wall = {name: median(values) for name, values in samples.items()}
    figures["wall_s"] = wall
    figures["parallel_ratio"] = wall["parallel"] / wall["one-sleep"]
    # same stage count on both sides: the walls compare per-stage cost directly, with no
    # start-up figure subtracted (which, on a busy machine, would be most of the noise)
    figures["chain_per_stage_ms"] = {
        "graph": wall["chain-graph"] * 10,  # 100 stages: seconds * 1000 / 100
        "plain": wall["chain-plain"] * 10,
    }
    figures["chain_ratio"] = wall["chain-graph"] / wall["chain-plain"]
    # the cost a stage adds: the run's wall less a one-stage run's (start-up, records), per stage
    base = wall["one-true"]
    figures["wide_per_stage_ms"] = {
        "100": (wall["wide-100"] - base) * 1000 / 99,
        str(wide): (wall["wide-many"] - base) * 1000 / (wide - 1),
    }
    figures["wide_ratio"] = (
        figures["wide_per_stage_ms"][str(wide)] / figures["wide_per_stage_ms"]["100"]
    )
    figures["wide_manifest_writes"] = median([float(w) for w in writes])
    figures["output_peak_rss_mb"] = {name: median(values) for name, values in rss.items()}
    one, eight = (
        figures["output_peak_rss_mb"]["output-one"],
        figures["output_peak_rss_mb"]["output-eight"],
    )
    print(
        f"8 x sleep 1, max_parallel 8:  {wall['parallel']:.2f} s   one stage: "
        f"{wall['one-sleep']:.2f} s   ratio {figures['parallel_ratio']:.2f} (target <= 1.2)"
    )
    print(
        f"chain of 100 true, graph:     {figures['chain_per_stage_ms']['graph']:.1f} ms/stage   "
        f"without needs: {figures['chain_per_stage_ms']['plain']:.1f} ms/stage   "
        f"ratio {figures['chain_ratio']:.2f} (target <= 1.2)"
    )
    per_stage = figures["wide_per_stage_ms"][str(wide)]
    print(
        f"{wide:,} independent true:       {per_stage:.1f} ms/stage   "
        f"100: {figures['wide_per_stage_ms']['100']:.1f} ms/stage   "
        f"ratio {figures['wide_ratio']:.2f} (flat: ~1); manifest writes for {wide:,} stages: "
        f"{figures['wide_manifest_writes']:.0f}"
    )
    print(
        f"8 x {size / 1048576:.0f} MB output at once:   peak RSS {eight:.0f} MB   one stage: "
        f"{one:.0f} MB   ratio {eight / one:.2f} (bound: 8); "
        f"{figures['bytes_checked'] / 1048576:.0f} MB checked byte for byte"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
