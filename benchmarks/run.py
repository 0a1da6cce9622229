"""The benchmark suite: ``python benchmarks/run.py [--quick] [--peer]``.

Runs the scenarios of docs/performance.md against the installed ``codex-orchestrator``, prints
a table (ours, the baseline measured in the same run, the peer tool with ``--peer``, ratios,
targets) and writes everything as one JSON document. ``--quick`` runs every scenario small
(well under a minute) so CI can prove the suite still works; its figures are not the ones to
quote. Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import installed  # noqa: F401  (exits 2 with one line when the package is not installed)
import peer as peer_tool
from measure import MB
from report import markdown, table
from scenarios import QUICK, SCENARIOS, PeerSide, Plan

HERE = Path(__file__).resolve().parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every scenario, small (CI)")
    parser.add_argument(
        "--peer", action="store_true", help="also run the peer tool (needs node and npm)"
    )
    parser.add_argument(
        "--peer-prefix", type=Path, help="npm prefix holding (or to receive) the peer install"
    )
    parser.add_argument(
        "--only", nargs="+", choices=list(SCENARIOS), help="run only these scenarios"
    )
    parser.add_argument("--json", type=Path, help="where to write the JSON (default: results/)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--workdir", type=Path, help="keep the projects here (default: temp)")
    parser.add_argument("--repeats", type=int, help="override the repeats of every scenario")
    parser.add_argument("--output-mb", type=float, help="bytes printed by the capture stages")
    parser.add_argument("--peer-output-mb", type=float, help="the same, for the peer tool")
    parser.add_argument("--concurrency", type=int, nargs="+", help="concurrent starts (4.)")
    parser.add_argument("--peer-concurrency", type=int, nargs="+", help="the same, for the peer")
    parser.add_argument("--history-runs", type=int, help="runs in the task's history (5.)")
    parser.add_argument("--heartbeat-seconds", type=float, help="length of the stage in 6.")
    return parser.parse_args(argv)


def plan_from(args: argparse.Namespace) -> Plan:
    plan = replace(QUICK) if args.quick else Plan()
    if args.repeats:
        plan = replace(
            plan,
            start_repeats=args.repeats,
            stage_repeats=args.repeats,
            output_repeats=args.repeats,
            concurrency_rounds=args.repeats,
            history_repeats=args.repeats,
        )
    if args.output_mb:
        plan.output_bytes = int(args.output_mb * MB)
    if args.peer_output_mb:
        plan.peer_output_bytes = int(args.peer_output_mb * MB)
    if args.concurrency:
        plan.concurrency = tuple(args.concurrency)
    if args.peer_concurrency:
        plan.peer_concurrency = tuple(args.peer_concurrency)
    if args.history_runs:
        plan.history_runs = args.history_runs
    if args.heartbeat_seconds:
        plan.heartbeat_stage_s = args.heartbeat_seconds
    return plan


def setup_peer(args: argparse.Namespace, tmp: Path) -> tuple[PeerSide | None, str | None]:
    if not args.peer:
        return None, "not requested (--peer)"
    prefix = args.peer_prefix or tmp / "npm"
    cli = peer_tool.find_peer_cli(prefix)
    reason = ""
    if cli is None:
        log(f"installing {peer_tool.PEER_SPEC} into {prefix}")
        cli, reason = peer_tool.install_peer(prefix)
    if cli is None:
        return None, reason
    side = PeerSide(cli=cli, workdir=tmp / "peer")
    side.version = peer_tool.peer_version(cli)
    return side, None


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_from(args)
    chosen = args.only or list(SCENARIOS)
    started = time.perf_counter()
    document: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "command": " ".join(["python", "benchmarks/run.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "plan": asdict(plan),
        "results": {},
        "errors": {},
        "rows": [],
    }
    tmp = Path(tempfile.mkdtemp(prefix="orchestrator-bench-"))
    work = args.workdir or tmp / "work"
    work.mkdir(parents=True, exist_ok=True)
    try:
        peer, skipped = setup_peer(args, tmp)
        document["peer"] = {
            "spec": peer_tool.PEER_SPEC,
            "version": peer.version if peer else None,
            "skipped": skipped,
        }
        if args.peer and peer is None:
            log(f"peer skipped: {skipped}")
        for name in chosen:
            log(f"[{name}]")
            began = time.perf_counter()
            try:
                results, rows = SCENARIOS[name](work, plan, peer, log)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                document["errors"][name] = f"{type(exc).__name__}: {exc}"
                log(traceback.format_exc())
                continue
            results["elapsed_s"] = time.perf_counter() - began
            document["results"][name] = results
            document["rows"].extend(rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the projects too, unless --workdir keeps them
    document["machine"]["load_average_at_end"] = (
        os.getloadavg() if hasattr(os, "getloadavg") else None
    )
    document["elapsed_s"] = time.perf_counter() - started
    target = args.json or HERE / "results" / f"{document['mode']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(markdown(document["rows"]) + "\n", encoding="utf-8")
    print(table(document["rows"]))
    print()
    for name, error in document["errors"].items():
        print(f"scenario {name} failed: {error}")
    print(f"total {document['elapsed_s']:.1f} s; JSON written to {target}")
    return 1 if document["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
