"""Rows of the benchmark table, and the table itself.

A row is one figure: ours (median, min, max over the repeats), optionally a baseline measured
in the same run and the peer tool's figure, the ratios of ours to each, and the target with
whether it was met. The same rows go into the JSON document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from measure import ratio, summarize


def stats_of(value: Any) -> dict[str, Any] | None:
    """Accept a stats dict, a single number or a list of numbers."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, int | float):
        return summarize([value])
    return summarize(value)


def row(
    scenario: str,
    metric: str,
    unit: str,
    ours: Any,
    *,
    baseline: Any = None,
    baseline_label: str | None = None,
    peer: Any = None,
    target: str | None = None,
    met: bool | None = None,
    note: str = "",
) -> dict[str, Any]:
    ours_stats = stats_of(ours)
    baseline_stats = stats_of(baseline)
    peer_stats = stats_of(peer)
    median = ours_stats["median"] if ours_stats else None
    return {
        "scenario": scenario,
        "metric": metric,
        "unit": unit,
        "ours": ours_stats,
        "baseline": baseline_stats,
        "baseline_label": baseline_label,
        "ratio_to_baseline": ratio(median, baseline_stats["median"] if baseline_stats else None),
        "peer": peer_stats,
        "ratio_to_peer": ratio(median, peer_stats["median"] if peer_stats else None),
        "target": target,
        "met": met,
        "note": note,
    }


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 10):
        return str(int(value))
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.1:
        return f"{value:.3f}".rstrip("0").rstrip(".") if magnitude < 1 else f"{value:.2f}"
    return f"{value:.4f}"


def _stat(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("median") is None:
        return "-"
    if stats.get("n", 1) <= 1 or stats["min"] == stats["max"]:
        return _num(stats["median"])
    return f"{_num(stats['median'])} [{_num(stats['min'])}-{_num(stats['max'])}]"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: one line per figure."""
    header = (
        "scenario",
        "figure",
        "unit",
        "ours median [min-max]",
        "baseline",
        "ours/base",
        "peer",
        "ours/peer",
        "target",
        "met",
    )
    lines = [header]
    for r in rows:
        base = _stat(r["baseline"])
        if r["baseline_label"] and base != "-":
            base = f"{base} ({r['baseline_label']})"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        lines.append(
            (
                r["scenario"],
                r["metric"],
                r["unit"],
                _stat(r["ours"]),
                base,
                _ratio(r["ratio_to_baseline"]),
                _stat(r["peer"]),
                _ratio(r["ratio_to_peer"]),
                r["target"] or "",
                met,
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    rendered = [
        "  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(line)).rstrip()
        for line in lines
    ]
    rendered.insert(1, "-" * max(len(line) for line in rendered))
    rendered += [  # a figure without a value says why under the table
        f"{r['metric']}: {r['note']}" for r in rows if r["ours"] is None and r["note"]
    ]
    return "\n".join(rendered)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The same figures as a Markdown table (for docs/performance.md)."""
    lines = [
        "| scenario | figure | ours: median [min-max] | baseline | ours / baseline "
        "| peer | ours / peer | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = _stat(r["baseline"])
        if r["baseline_label"] and base != "-":
            base = f"{base} ({r['baseline_label']})"
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        cells = [
            r["scenario"],
            r["metric"],
            f"{_stat(r['ours'])} {r['unit']}",
            base,
            _ratio(r["ratio_to_baseline"]),
            _stat(r["peer"]),
            _ratio(r["ratio_to_peer"]),
            r["target"] or "",
            met,
        ]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
