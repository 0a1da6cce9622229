"""PostgreSQL persistence at scale: ``python benchmarks/postgres_scale.py [--quick] [--json F]``.

Starts a throwaway PostgreSQL server (the system's binaries, as in the plugin's tests), or uses
the one ``--dsn`` names (in a schema of its own, dropped at the end), and measures, against the
same scenario on the built-in ``filesystem`` persistence:

1. concurrent starts: N ``start`` processes of one task at once, alternating between two
   checkouts of one project that share the database (filesystem: N from one checkout, since
   two checkouts cannot share its files); wall time, and what was lost: runs missing from
   the history, the metrics or either checkout's ``status`` listing, and runs left in progress;
2. log throughput: one stage printing ``--flood-mib`` MiB of random bytes; wall time of the
   run, MiB/s, the orchestrator's peak memory, and a reader's (another checkout reading the
   log back through the persistence) peak memory and digest check.

Needs ``codex-orchestrator-postgres`` installed (``pip install ./plugins/postgres``) and the
PostgreSQL server binaries (Debian: ``apt-get install postgresql``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import installed  # noqa: F401  (exits 2 with one line when the package is not installed)

from orchestrator.testing import Project

MIB = 1024 * 1024
FLOOD = """
import random, sys
rng, left = random.Random(11), {size}
while left:
    block = rng.randbytes(min(left, 1 << 16))
    sys.stdout.buffer.write(block)
    left -= len(block)
"""
READER = """
import base64, hashlib, json, resource, sys
from orchestrator.kernel import Kernel
from orchestrator.run_logs import read_events
kernel = Kernel.load()
run = kernel.persistence.find_run(sys.argv[1], None)
digest = hashlib.sha256()
for event in read_events(kernel.persistence, run, run.commands_dir / "01-flood.ndjson"):
    if event["type"] == "exec:chunk":
        raw = event.get("data_b64")
        digest.update(base64.b64decode(raw) if raw is not None else event["data"].encode())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"sha256": digest.hexdigest(), "peak_kb": peak}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def config(kind: str, options: dict[str, Any], pipeline: str) -> str:
    if kind == "filesystem":
        return pipeline
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in options.items())
    return (
        '[plugins]\npersistence = "postgres"\nheartbeat = "postgres"\n\n'
        f"[persistence]\n{table}\n{pipeline}"
    )


def checkouts(base: Path, kind: str, options: dict[str, Any], pipeline: str) -> list[Project]:
    count = 2 if kind == "postgres" else 1
    projects = []
    for number in range(count):
        project = Project(base / f"{kind}-{number}")
        project.write_config(config(kind, options, pipeline))
        projects.append(project)
    return projects


def concurrent_starts(base: Path, kind: str, options: dict[str, Any], n: int) -> dict[str, Any]:
    pipeline = '[pipelines.p]\nstages = [{ id = "only", command = "true" }]\n'
    projects = checkouts(base / f"starts-{n}", kind, options, pipeline)
    began = time.monotonic()
    processes = [
        projects[i % len(projects)].popen("start", "p", "--format", "json") for i in range(n)
    ]
    results = [(p.communicate(timeout=1800), p.returncode) for p in processes]
    wall = time.monotonic() - began
    failed = [err[-300:] for (out, err), code in results if code != 0]
    started = {json.loads(out)["run_id"] for (out, _), code in results if code == 0}
    kernel_env = projects[0].env
    from orchestrator.kernel import Kernel

    saved = os.getcwd()
    os.chdir(projects[0].root)
    try:
        persistence = Kernel.load(environ=kernel_env).persistence
        history = {e["run_id"] for e in (persistence.read_state("0101") or {}).get("runs", [])}
        metrics = {line["run_id"] for line in persistence.read_metrics("0101")}
    finally:
        os.chdir(saved)
    listed: list[set[str]] = []
    in_progress = 0
    for project in projects:
        status = project.run("status", "--limit", "0", "--format", "json", timeout=600)
        listing = json.loads(status.stdout)
        listed.append({entry["run_id"] for entry in listing})
        in_progress += sum(1 for entry in listing if entry["status"] == "in_progress")
    return {
        "persistence": kind,
        "starts": n,
        "checkouts": len(projects),
        "wall_s": round(wall, 2),
        "starts_per_s": round(n / wall, 1),
        "failed": len(failed),
        "failures": failed[:3],
        "lost_history": len(started - history),
        "lost_metrics": len(started - metrics),
        "lost_listing": max(len(started - seen) for seen in listed),
        "left_in_progress": in_progress,
    }


def log_throughput(base: Path, kind: str, options: dict[str, Any], mib: int) -> dict[str, Any]:
    script = base / "flood.py"
    script.write_text(FLOOD.format(size=mib * MIB))
    pipeline = (
        '[pipelines.p]\nstages = [{ id = "flood", command = '
        + json.dumps([sys.executable, str(script)])
        + " }]\n"
    )
    projects = checkouts(base / f"flood-{kind}", kind, options, pipeline)
    began = time.monotonic()
    result = projects[0].run("start", "p", "--format", "json", timeout=1800)
    wall = time.monotonic() - began
    if result.returncode != 0:
        raise RuntimeError(f"flood run failed: {result.stderr[-500:]}")
    run_id = json.loads(result.stdout)["run_id"]
    reader_project = projects[-1]
    reader = subprocess.run(
        [sys.executable, "-c", READER, run_id],
        cwd=reader_project.root,
        env=reader_project.env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if reader.returncode != 0:
        raise RuntimeError(f"reading the log back failed: {reader.stderr[-500:]}")
    read = json.loads(reader.stdout)
    rng, left, digest = random.Random(11), mib * MIB, hashlib.sha256()
    while left:
        block = rng.randbytes(min(left, 1 << 16))
        digest.update(block)
        left -= len(block)
    run_end = None
    from orchestrator.kernel import Kernel
    from orchestrator.run_logs import read_events

    saved = os.getcwd()
    os.chdir(projects[0].root)
    try:
        persistence = Kernel.load(environ=projects[0].env).persistence
        run = persistence.find_run(run_id, None)
        for event in read_events(persistence, run, run.runner_log_path):
            if event["type"] == "run:end":
                run_end = event
    finally:
        os.chdir(saved)
    return {
        "persistence": kind,
        "flood_mib": mib,
        "wall_s": round(wall, 2),
        "mib_per_s": round(mib / wall, 1),
        "writer_peak_mib": round((run_end or {}).get("peak_rss_kb", 0) / 1024, 1),
        "reader_peak_mib": round(read["peak_kb"] / 1024, 1),
        "lossless": read["sha256"] == digest.hexdigest(),
    }


@contextmanager
def server_dsn(given: str | None) -> Iterator[str]:
    """``given``, or the DSN of a throwaway server started for the benchmark."""
    from codex_orchestrator_postgres.testing import ServerUnavailable, running_server

    if given:
        import psycopg

        try:
            psycopg.connect(given, connect_timeout=10).close()
        except psycopg.Error as exc:
            reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise ServerUnavailable(f"--dsn: cannot connect: {reason}") from None
        yield given
        return
    with running_server() as server:
        yield server.dsn()


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="4 starts (2 per checkout), a 1 MiB flood (CI)"
    )
    parser.add_argument("--starts", type=int, default=200, help="concurrent starts (200)")
    parser.add_argument("--flood-mib", type=int, default=64, help="MiB one stage prints (64)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--dsn",
        help="a PostgreSQL server to measure (libpq DSN) instead of a throwaway one; the "
        "benchmark works in a schema of its own and drops it at the end",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    starts, flood = (4, 1) if args.quick else (args.starts, args.flood_mib)
    try:
        from codex_orchestrator_postgres.testing import ServerUnavailable
    except ImportError:
        print(
            "error: codex-orchestrator-postgres is not installed for this Python; "
            "pip install ./plugins/postgres",
            file=sys.stderr,
        )
        return 2
    results: dict[str, Any] = {"starts": [], "logs": []}
    try:
        with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp, server_dsn(args.dsn) as dsn:
            base = Path(tmp)
            options = {"dsn": dsn, "schema_name": f"bench_{os.getpid()}_{int(time.time())}"}
            try:
                for kind in ("postgres", "filesystem"):
                    log(f"{starts} concurrent starts, {kind} ...")
                    results["starts"].append(concurrent_starts(base, kind, options, starts))
                    log(f"{flood} MiB through one stage, {kind} ...")
                    results["logs"].append(log_throughput(base, kind, options, flood))
            finally:
                if args.dsn:  # a server of the user's: leave it as it was
                    drop_schema(dsn, options["schema_name"])
    except ServerUnavailable as exc:
        what = "" if args.dsn else "PostgreSQL server could not start: "
        print(f"error: {what}{exc}", file=sys.stderr)
        return 2
    print("concurrent starts of one task")
    print("persistence  checkouts  starts  wall s  starts/s  failed  lost  in progress")
    for row in results["starts"]:
        lost = max(row["lost_history"], row["lost_metrics"], row["lost_listing"])
        print(
            f"{row['persistence']:<12} {row['checkouts']:>9} {row['starts']:>7} "
            f"{row['wall_s']:>7} {row['starts_per_s']:>9} {row['failed']:>7} {lost:>5} "
            f"{row['left_in_progress']:>12}"
        )
    print("\nstage log throughput (random bytes on stdout)")
    print("persistence  MiB  wall s  MiB/s  writer peak MiB  reader peak MiB  lossless")
    for row in results["logs"]:
        print(
            f"{row['persistence']:<12} {row['flood_mib']:>4} {row['wall_s']:>7} "
            f"{row['mib_per_s']:>6} {row['writer_peak_mib']:>16} {row['reader_peak_mib']:>16} "
            f"{row['lossless']!s:>9}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
