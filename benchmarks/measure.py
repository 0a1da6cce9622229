"""Measuring processes: wall time, exit code and peak memory of one command, precisely.

Every command runs in its own session with stdout and stderr going to files (no pipe to drain,
no polling): the parent blocks in ``os.wait4`` and a watchdog timer kills the process group if
it overruns. ``os.wait4`` returns the child's resource usage, so peak RSS comes for free; on
Linux that figure is the largest of the process and the descendants it waited for. Where the
orchestrator's own peak matters (output capture), :class:`HighWaterSampler` also reads
``VmHWM`` from ``/proc/<pid>/status`` of that one process while it runs.

Standard library only, so the suite runs wherever the orchestrator runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1_000_000
MIB = 1024 * 1024


@dataclass
class Measured:
    """One finished (or killed) command."""

    rc: int | None  # None when the watchdog killed it
    wall_s: float
    maxrss_mb: float  # ru_maxrss from wait4: the process and the children it waited for
    cpu_s: float  # user + system CPU time of the process and the children it waited for
    stdout: str
    stderr: str
    own_peak_rss_mb: float | None = None  # VmHWM of the process itself, when sampled

    @property
    def timed_out(self) -> bool:
        return self.rc is None


class HighWaterSampler:
    """Reads ``VmHWM`` (the kernel's peak-RSS mark) of one pid until it exits.

    VmHWM only grows, so the last value read before the process ends is its peak, short of
    whatever it added in the final sampling interval.
    """

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _read(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii", errors="replace") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None  # a zombie has no memory lines

    def _loop(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is not None:
                self.peak_kb = max(self.peak_kb, value)
            self._stop.wait(self.interval_s)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024 if self.peak_kb else None


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (a session we started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_measured(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
    sample_rss: bool = False,
) -> Measured:
    """Run ``cmd`` to completion; wall time from just before spawn to the blocking wait's return."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        sampler = HighWaterSampler(proc.pid) if sample_rss else None
        killed = threading.Event()

        def expire() -> None:
            killed.set()
            kill_group(proc.pid)

        timer = threading.Timer(timeout_s, expire)
        timer.daemon = True
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        own_peak = sampler.stop() if sampler else None
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return Measured(
        rc=None if killed.is_set() else proc.returncode,
        wall_s=wall,
        maxrss_mb=usage.ru_maxrss / 1024,
        cpu_s=usage.ru_utime + usage.ru_stime,
        stdout=stdout,
        stderr=stderr,
        own_peak_rss_mb=own_peak,
    )


def summarize(values: Iterable[float | int | None]) -> dict[str, Any]:
    """Median, min, max and count of the values that are not None."""
    data = [v for v in values if v is not None]
    if not data:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(data), "min": min(data), "max": max(data), "n": len(data)}


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The value below which ``fraction`` of ``values`` lie (nearest rank); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def dir_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (0 when it does not exist)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def emit_report(report: Mapping[str, Any], target: Path | None) -> int:
    """Print a benchmark's report as JSON and, when asked, write it to ``target``; exit code 0."""
    text = json.dumps(report, indent=2)
    print(text)
    if target:
        target.write_text(text + "\n", encoding="utf-8")
    return 0
