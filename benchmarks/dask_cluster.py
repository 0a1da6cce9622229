"""Stages on a Dask cluster against stages on this machine (docs/performance.md, "Dask").

Starts a real cluster on 127.0.0.1 (``dask scheduler`` + one ``dask worker`` process, killed
at the end) and measures, for the ``dask`` runner against the built-in ``subprocess`` one:

- the latency of a ``true`` stage through the runner (submit, run on the worker, outcome back);
- a whole ``codex-orchestrator start`` of a one-stage ``true`` pipeline (CLI process included,
  so the dask figure includes connecting to the scheduler);
- streaming: seconds and MiB/s for a command writing 64 MiB, the time to the first byte of a
  command that writes one line, and how much the client process grew while 64 MiB streamed.

    .venv/bin/python benchmarks/dask_cluster.py [--quick] [--json FILE] [--scheduler ADDRESS]

``--quick`` takes 3 samples of each in-process figure and one ``start`` per runner (20 and 5
without it); ``--scheduler`` measures a running cluster instead of starting one (the tests pass
theirs). Needs ``pip install ./plugins/dask``. Exits 2 with one line when it is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import installed  # noqa: F401  (exits with a clear line when the package is missing)

try:
    from codex_orchestrator_dask.testing import LocalTestCluster
except ImportError:
    print(
        "error: codex-orchestrator-dask is not installed for this Python; "
        "pip install ./plugins/dask",
        file=sys.stderr,
    )
    raise SystemExit(2) from None

FLOOD_BYTES = 64 * 1024 * 1024


def build_runner(name: str, scheduler: str) -> Any:
    from orchestrator.contracts import SlotContext
    from orchestrator.testing.conformance import build

    options = {"scheduler": scheduler} if name == "dask" else {}
    context = SlotContext(Path.cwd(), Path.cwd() / ".runs", Path.cwd() / "out")
    return build("command_runner", name, options, context)


def request(argv: list[str]) -> Any:
    from orchestrator.contracts import CommandRequest

    return CommandRequest(argv=argv, shell=None, cwd=Path.cwd(), env=dict(os.environ))


def stage_latency(runner: Any, count: int) -> list[float]:
    """Seconds for ``true`` through ``runner.run``, ``count`` times (after one warm-up)."""
    runner.run(request(["true"]), lambda stream, data: None)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        outcome = runner.run(request(["true"]), lambda stream, data: None)
        times.append(time.perf_counter() - started)
        assert outcome.exit_code == 0, outcome
    return times


def first_byte(runner: Any, count: int) -> list[float]:
    """Seconds from ``run`` to the first byte of ``echo ready``."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        seen: list[float] = []

        def on_output(
            stream: str, data: bytes, seen: list[float] = seen, started: float = started
        ) -> None:
            if not seen:
                seen.append(time.perf_counter() - started)

        runner.run(request(["echo", "ready"]), on_output)
        times.append(seen[0])
    return times


def flood(runner_name: str, scheduler: str) -> dict[str, Any]:
    """64 MiB through the runner in a fresh process: seconds, bytes, and its growth (KiB)."""
    code = (
        "import json, resource, sys, time\n"
        "sys.path.insert(0, sys.argv[3])\n"
        "from dask_cluster import build_runner, request\n"
        "runner = build_runner(sys.argv[1], sys.argv[2])\n"
        "runner.run(request(['true']), lambda s, d: None)\n"
        "count = [0]\n"
        "def on_output(stream, data): count[0] += len(data)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "started = time.perf_counter()\n"
        f"outcome = runner.run(request(['head', '-c', '{FLOOD_BYTES}', '/dev/zero']), on_output)\n"
        "seconds = time.perf_counter() - started\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'seconds': seconds, 'bytes': count[0], 'exit_code': outcome.exit_code,"
        " 'grown_kib': after - before}))\n"
    )
    here = str(Path(__file__).resolve().parent)
    result = subprocess.run(
        [sys.executable, "-c", code, runner_name, scheduler, here],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"flood with {runner_name} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def cli_start(runner_name: str, scheduler: str, count: int, base: Path) -> list[float]:
    """Seconds for ``codex-orchestrator start`` of a one-stage ``true`` pipeline."""
    from orchestrator.testing.conformance import SlotProject

    options = {"scheduler": scheduler} if runner_name == "dask" else {}
    project = SlotProject(base / runner_name, "command_runner", runner_name, options=options)
    project.write_pipeline('stages = [{ id = "t", command = ["true"] }]')
    times = []
    for _ in range(count):
        started = time.perf_counter()
        result = project.run("start", "p", "--format", "json", timeout=600)
        times.append(time.perf_counter() - started)
        assert result.returncode == 0, result.stderr
    return times


class NoScheduler(Exception):
    """The scheduler given with ``--scheduler`` cannot be reached."""


@contextmanager
def scheduler_address(given: str | None, base: Path) -> Iterator[str]:
    """``given`` once it answers on its port, or the address of a cluster started for the run."""
    if given:
        host, _, port = given.removeprefix("tcp://").rpartition(":")
        if not given.startswith("tcp://") or not host or not port.isdigit():
            raise NoScheduler(f"--scheduler: {given!r} is not an address like tcp://HOST:PORT")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as exc:
            raise NoScheduler(f"--scheduler: cannot reach {given}: {exc.strerror or exc}") from None
        yield given
        return
    with LocalTestCluster(base / "cluster") as cluster:
        yield cluster.address


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
        "n": len(ordered),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="measure this running cluster (tcp://HOST:PORT) instead of starting one",
    )
    args = parser.parse_args()
    if args.json is not None:
        args.json = args.json.resolve()
    repeat = 3 if args.quick else 20
    cli_repeat = 1 if args.quick else 5
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dask-bench-") as folder:
        base = Path(folder)
        os.chdir(base)
        try:
            with scheduler_address(args.scheduler, base) as address:
                for name in ("subprocess", "dask"):
                    runner = build_runner(name, address)
                    results[name] = {
                        "true_stage_s": summary(stage_latency(runner, repeat)),
                        "first_byte_s": summary(first_byte(runner, repeat)),
                        "cli_start_s": summary(cli_start(name, address, cli_repeat, base)),
                        "flood": flood(name, address),
                    }
                from codex_orchestrator_dask.cluster import close_all

                close_all()
        except NoScheduler as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    results["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = [
        ("`true` stage through the runner (median s)", "true_stage_s", "median"),
        ("`true` stage through the runner (p90 s)", "true_stage_s", "p90"),
        ("first byte of `echo ready` (median s)", "first_byte_s", "median"),
        ("`codex-orchestrator start`, one `true` stage (median s)", "cli_start_s", "median"),
    ]
    print(f"{'figure':<58} {'subprocess':>11} {'dask':>9}")
    for label, key, stat in rows:
        print(
            f"{label:<58} {results['subprocess'][key][stat]:>11.3f} "
            f"{results['dask'][key][stat]:>9.3f}"
        )
    for name in ("subprocess", "dask"):
        flood_result = results[name]["flood"]
        assert flood_result["bytes"] == FLOOD_BYTES, flood_result
    print(
        f"{'64 MiB streamed (s)':<58} {results['subprocess']['flood']['seconds']:>11.2f} "
        f"{results['dask']['flood']['seconds']:>9.2f}"
    )
    print(
        f"{'64 MiB streamed (MiB/s)':<58} "
        f"{64 / results['subprocess']['flood']['seconds']:>11.1f} "
        f"{64 / results['dask']['flood']['seconds']:>9.1f}"
    )
    print(
        f"{'client growth while 64 MiB streamed (MiB)':<58} "
        f"{results['subprocess']['flood']['grown_kib'] / 1024:>11.1f} "
        f"{results['dask']['flood']['grown_kib'] / 1024:>9.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
