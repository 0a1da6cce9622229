"""The graph a pipeline's ``needs`` draw: checking it, its levels, and who depends on whom.

Pure functions over ``{stage id: ids it needs}`` in declared order; ``pipeline.py`` checks a
pipeline with them, ``plan`` shows the levels, the engine schedules by them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Needs = Mapping[str, Sequence[str]]


def unknown_needs(needs: Needs) -> list[tuple[str, str]]:
    """``(stage, missing id)`` for each need that names no stage of the pipeline (or itself)."""
    return [
        (stage, need)
        for stage, wanted in needs.items()
        for need in wanted
        if need not in needs or need == stage
    ]


def find_cycle(needs: Needs) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]`` (a needs b needs ... a), or None when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(stage: str) -> list[str] | None:
        state[stage] = 1
        path.append(stage)
        for need in needs.get(stage, ()):
            if state.get(need) == 1:
                return [*path[path.index(need) :], need]
            if need not in state:
                found = visit(need)
                if found:
                    return found
        path.pop()
        state[stage] = 2
        return None

    for stage in needs:
        if stage not in state:
            found = visit(stage)
            if found:
                return found
    return None


def levels(needs: Needs) -> list[list[str]]:
    """Stages grouped by depth: level 0 needs nothing, level n needs something of level n-1.

    Stages of one level can all run at once; within a level, declared order is kept.
    """
    depth: dict[str, int] = {}

    def depth_of(stage: str) -> int:
        if stage not in depth:
            depth[stage] = 1 + max((depth_of(n) for n in needs[stage]), default=-1)
        return depth[stage]

    grouped: dict[int, list[str]] = {}
    for stage in needs:
        grouped.setdefault(depth_of(stage), []).append(stage)
    return [grouped[level] for level in sorted(grouped)]


def dependents(needs: Needs, roots: Iterable[str]) -> set[str]:
    """Every stage that needs one of ``roots``, directly or not (``roots`` excluded)."""
    wanted_by: dict[str, list[str]] = {}
    for stage, wanted in needs.items():
        for need in wanted:
            wanted_by.setdefault(need, []).append(stage)
    found: set[str] = set()
    todo = list(roots)
    while todo:
        for stage in wanted_by.get(todo.pop(), ()):
            if stage not in found:
                found.add(stage)
                todo.append(stage)
    return found
