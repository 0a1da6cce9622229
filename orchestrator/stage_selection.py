"""Which stages of a pipeline a ``start`` runs: ``--only``, ``--skip`` and ``--from``.

Pure functions over the resolved stage list (and, in a graph, its ``needs``). Stages left out
are recorded ``skipped`` with ``status_detail`` :data:`NOT_SELECTED`, and ``resume`` never runs
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from orchestrator.errors import UsageError

NOT_SELECTED = "not-selected"


def split_ids(values: Iterable[str]) -> list[str]:
    """``--only a,b --only c`` -> ``[a, b, c]`` (blank items dropped)."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _check(option: str, ids: Sequence[str], known: Sequence[str]) -> None:
    unknown = [stage for stage in ids if stage not in known]
    if unknown:
        raise UsageError(
            f"{option}: unknown stage {', '.join(repr(s) for s in unknown)}; "
            f"stages of this pipeline: {', '.join(known)}"
        )


def from_stage(
    stage_ids: Sequence[str], start: str, needs: Mapping[str, Sequence[str]] | None = None
) -> set[str]:
    """``--from``: ``start`` and every stage after it; in a graph (``needs`` given), ``start`` and
    every stage that depends on it, directly or not."""
    if needs is not None:
        from orchestrator.stage_graph import dependents

        return {start, *dependents(needs, [start])}
    return set(stage_ids[stage_ids.index(start) :])


def selected_stages(
    stage_ids: Sequence[str],
    *,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    from_: str | None = None,
    needs: Mapping[str, Sequence[str]] | None = None,
) -> set[str]:
    """The stages a run executes; every id is checked (an unknown one is a usage error that lists
    the known ones) and a selection that leaves nothing to run is one too."""
    _check("--only", only, stage_ids)
    _check("--skip", skip, stage_ids)
    if from_ is not None:
        _check("--from", [from_], stage_ids)
    chosen = set(only) if only else set(stage_ids)
    if from_ is not None:
        chosen &= from_stage(stage_ids, from_, needs)
    chosen -= set(skip)
    if not chosen:
        raise UsageError("--only/--skip/--from leave no stage to run; check the stage ids")
    return chosen
