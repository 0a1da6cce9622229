"""Start-up against the runners users pick instead: one job that runs `true`, in nox, tox and ours.

    python benchmarks/startup_peers.py --peers-venv /tmp/peers [--before SOURCE-DIR]
                                       [--repeats 15] [--json PATH]

``--peers-venv`` is a virtual environment with nox and tox installed
(``python -m venv /tmp/peers && /tmp/peers/bin/pip install nox tox``). Each round runs, back to
back, so all meet the same load: ``python -c pass`` (the floor), our ``start`` of a one-stage
``true`` pipeline (every record fsynced), the same with ``--before``'s source tree when given
(``git archive OLD orchestrator | tar -x -C DIR``: a before/after ratio from one run), ``nox -s
one`` (a session with ``venv_backend="none"`` running ``true``) and ``tox -e one``
(``skip_install``, ``commands = true``; its environment made before the first round). Neither
peer writes a durable record of the job. One warm-up round (bytecode, caches) is not counted.
Prints the median wall and CPU time of each and the
ratios; set ``BENCH_SOURCE_TREE`` to measure a frozen copy of a tree as "ours" (``ours.py``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import emit_report, run_measured
from ours import OurProject

NOXFILE = """import nox


@nox.session(venv_backend="none")
def one(session):
    session.run("true", external=True)
"""
TOX_INI = """[tox]
skipsdist = true

[testenv:one]
skip_install = true
allowlist_externals = true
commands = true
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers-venv", type=Path, required=True)
    parser.add_argument("--before", type=Path)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="startup-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    ours = OurProject(work / "ours", {"one": ["true"]})
    peers = work / "peers"
    peers.mkdir(exist_ok=True)
    (peers / "noxfile.py").write_text(NOXFILE, encoding="utf-8")
    (peers / "tox.ini").write_text(TOX_INI, encoding="utf-8")
    peer_env = {k: v for k, v in os.environ.items() if not k.startswith(("TOX", "NOX"))}
    peer_env.pop("PYTHONDONTWRITEBYTECODE", None)
    tox = [str(args.peers_venv / "bin" / "tox"), "-e", "one", "-q"]
    prepared = run_measured(tox, cwd=peers, env=peer_env, timeout_s=600)
    if prepared.rc != 0:
        raise RuntimeError(f"tox failed: {prepared.stdout[-500:]} {prepared.stderr[-500:]}")
    sides: dict[str, tuple[list[str], Path, dict[str, str]]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], peers, peer_env),
        "ours: start, 1 stage `true`": (ours.start("one"), ours.root, ours.env),
        "nox -s one": ([str(args.peers_venv / "bin" / "nox"), "-s", "one"], peers, peer_env),
        "tox -e one": (tox, peers, peer_env),
    }
    if args.before:
        before = ["env", f"PYTHONPATH={args.before}", sys.executable, "-m", "orchestrator"]
        command = [*before, *ours.start("one")[len(ours.command()) :]]
        sides["before: start, 1 stage `true`"] = (command, ours.root, ours.env)
    wall: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    for command, cwd, env in sides.values():  # warm-up, not counted: bytecode, caches
        run_measured(command, cwd=cwd, env=env, timeout_s=300)
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name, (command, cwd, env) in sides.items():
            measured = run_measured(command, cwd=cwd, env=env, timeout_s=300)
            if measured.rc != 0:
                raise RuntimeError(f"{name} failed: {measured.stderr[-500:]}")
            wall[name].append(measured.wall_s)
            cpu[name].append(measured.cpu_s)
    loads.append(os.getloadavg()[0])
    report: dict[str, Any] = {"load_average_begin_end": loads, "repeats": args.repeats}
    for name in sides:
        report[name] = {
            "wall_s": round(statistics.median(wall[name]), 4),
            "wall_min_s": round(min(wall[name]), 4),
            "cpu_s": round(statistics.median(cpu[name]), 4),
        }
    ours_row = report["ours: start, 1 stage `true`"]
    for name in sides:
        row = report[name]
        row["ours_over_this_wall"] = round(ours_row["wall_s"] / row["wall_s"], 3)
        row["ours_over_this_cpu"] = round(ours_row["cpu_s"] / row["cpu_s"], 3)
    return emit_report(report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
