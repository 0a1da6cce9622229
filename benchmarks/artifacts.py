"""Artifacts and digests: memory and time to keep a big artifact, and what digests cost.

    .venv/bin/python benchmarks/artifacts.py [--size-mb 1024] [--repeat 3]

For each repeat, in a temporary project: one ``start`` of a stage that writes a file of
``--size-mb`` MiB (random bytes from /dev/urandom, so neither the disk nor the hash sees zeros)
and keeps it as an artifact, beside the same stage without ``artifacts``. Prints the peak RSS of
the orchestrator process (ru_maxrss of the child, which the stage's own tools do not reach), the
wall time of each, and then the time of ``verify`` (which re-reads and hashes the artifact and
the logs). The figures are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import installed  # noqa: F401  (first: a clear error when the package is missing)

CLI = [sys.executable, "-m", "orchestrator"]


def run(cli_args: list[str], root: Path) -> tuple[float, int, subprocess.CompletedProcess[str]]:
    """(seconds, peak RSS in KiB of the orchestrator process, result)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_ORCHESTRATOR_")}
    env["CODEX_ORCHESTRATOR_ROOT"] = str(root)
    script = (
        "import resource, subprocess, sys, json\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'rc': r.returncode, 'peak': peak, 'out': r.stdout, 'err': r.stderr}))\n"
    )
    began = time.monotonic()
    # a fresh wrapper per command: RUSAGE_CHILDREN then covers that one command only
    wrapper = subprocess.run(
        [sys.executable, "-c", script, *CLI, *cli_args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.monotonic() - began
    report = json.loads(wrapper.stdout)
    result = subprocess.CompletedProcess(cli_args, report["rc"], report["out"], report["err"])
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(cli_args)} exited {result.returncode}: {result.stderr}")
    return seconds, int(report["peak"]), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    make = f"head -c {args.size_mb * 1024 * 1024} /dev/urandom > big.bin"
    config = (
        f'[[pipelines.keep.stages]]\nid = "a"\ncommand = "{make}"\nartifacts = ["big.bin"]\n'
        f'[pipelines.plain]\nstages = [{{ id = "a", command = "{make}" }}]\n'
    )
    rows: dict[str, list[tuple[float, int]]] = {"plain": [], "keep": [], "verify": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="artifacts-bench-") as folder:
            root = Path(folder)
            (root / "codex.orchestrator.toml").write_text(config)
            for pipeline in ("plain", "keep"):
                seconds, peak, result = run(["start", pipeline, "--format", "json"], root)
                rows[pipeline].append((seconds, peak))
            run_id = json.loads(result.stdout)["run_id"]
            seconds, peak, _ = run(["verify", run_id], root)
            rows["verify"].append((seconds, peak))
    print(f"artifact of {args.size_mb} MiB, {args.repeat} repeat(s); median (min-max)")
    print(f"{'command':<40} {'wall s':>18} {'peak RSS MiB':>20}")
    labels = {
        "plain": "start (stage writes it, no artifacts)",
        "keep": "start (artifacts = [big.bin])",
        "verify": "verify (re-hashes log and artifact)",
    }
    for name, values in rows.items():
        secs = [v[0] for v in values]
        peaks = [v[1] / 1024 for v in values]
        print(
            f"{labels[name]:<40} {statistics.median(secs):>7.2f} ({min(secs):.2f}-{max(secs):.2f})"
            f" {statistics.median(peaks):>9.1f} ({min(peaks):.1f}-{max(peaks):.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
