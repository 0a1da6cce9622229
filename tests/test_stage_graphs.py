"""Stage graphs (``needs``): real processes that prove overlap, the cap and the order by what
they write themselves (timestamps, files), never by how long anything took."""

from __future__ import annotations

import json
import signal

import pytest
from lifecycle_support import lines, wait_for

from orchestrator.testing import Project
from orchestrator.testing.project import group_running, process_running

# what these commands decide and print: the CLI runs in-process (orchestrator.testing)
pytestmark = pytest.mark.in_process

# waits inside stages end after 60 s at most, so a broken scheduler fails a test, never hangs it
WAIT = "i=0; until [ -f {file} ] || [ $i -ge 3000 ]; do sleep 0.02; i=$((i+1)); done"


def stamp(name: str) -> str:
    """The time in ns into ``name``; the file appears only once the time is in it."""
    return f"date +%s%N > {name}.tmp && mv {name}.tmp {name}"


def waits_for(file: str) -> str:
    return WAIT.format(file=file)


def ns(project: Project, name: str) -> int:
    return int((project.root / name).read_text().strip())


def stage(stage_id: str, command: str, **extra: object) -> str:
    fields = "".join(f", {key} = {json.dumps(value)}" for key, value in extra.items())
    return f"{{ id = {json.dumps(stage_id)}, command = {json.dumps(command)}{fields} }}"


def pipeline(*stages: str, name: str = "g", **keys: object) -> str:
    head = "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
    return f"[pipelines.{name}]\n{head}stages = [\n  " + ",\n  ".join(stages) + ",\n]\n"


def by_id(document: dict) -> dict[str, dict]:
    return {c["id"]: c for c in document["commands"]}


def test_independent_stages_overlap_and_a_dependent_starts_after_all_it_needs(
    project: Project,
) -> None:
    # a and b each wait until the other has started: run one after another, the first would
    # wait in vain (and fail after 60 s, since it checks)
    project.write_config(
        pipeline(
            stage(
                "a",
                f"{stamp('a.start')}; {waits_for('b.start')}; test -f b.start; {stamp('a.end')}",
            ),
            stage(
                "b",
                f"{stamp('b.start')}; {waits_for('a.start')}; test -f a.start; {stamp('b.end')}",
            ),
            stage("c", stamp("c.start"), needs=["a", "b"]),
        )
    )

    summary = project.start_json("g", "--max-parallel", "2")

    assert summary["status"] == "succeeded"
    assert ns(project, "a.start") < ns(project, "b.end")
    assert ns(project, "b.start") < ns(project, "a.end")
    assert ns(project, "c.start") > max(ns(project, "a.end"), ns(project, "b.end"))
    manifest = project.manifest(summary)
    assert [c["id"] for c in manifest["commands"]] == ["a", "b", "c"]  # declared order
    assert [c["needs"] for c in manifest["commands"]] == [[], [], ["a", "b"]]
    assert project.validate_manifests() == 1


def test_at_most_max_parallel_stages_run_at_once(project: Project) -> None:
    # each stage counts the stages running beside it for a while
    project.write(
        "count.sh",
        "mkdir -p running done; touch running/$1\n"
        'i=0; while [ "$(ls running | wc -l)" -lt 2 ] && [ "$(ls done | wc -l)" -lt 5 ] '
        "&& [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done\n"
        "n=0; while [ $n -lt 10 ]; do ls running | wc -l >> counts; sleep 0.05; n=$((n+1)); "
        "done\nrm running/$1; touch done/$1\n",
    )
    stages = [stage(f"s{n}", f"sh count.sh s{n}") for n in range(6)]
    stages.append(stage("last", "true", needs=["s0"]))
    project.write_config(pipeline(*stages, max_parallel=1))

    summary = project.start_json("g", "--max-parallel", "2")  # the flag wins over the key

    assert summary["status"] == "succeeded"
    counts = [int(n) for n in lines(project.root / "counts")]
    assert max(counts) == 2


def test_the_pipeline_key_caps_a_graph_and_one_at_a_time_keeps_declared_order(
    project: Project,
) -> None:
    stages = [stage(f"s{n}", f"echo s{n} >> order") for n in range(5)]
    stages.append(stage("after", "echo after >> order", needs=["s4"]))
    project.write_config(pipeline(*stages, max_parallel=1))

    summary = project.start_json("g")

    assert summary["status"] == "succeeded"
    assert lines(project.root / "order") == ["s0", "s1", "s2", "s3", "s4", "after"]


def test_a_failure_skips_its_dependents_and_independent_stages_finish(project: Project) -> None:
    project.write_config(
        pipeline(
            stage("broken", "echo boom >&2; exit 3"),
            stage("fine", "echo fine > fine.txt"),
            stage("after-broken", "touch after-broken.ran", needs=["broken"]),
            stage("transitive", "touch transitive.ran", needs=["after-broken"]),
            stage("after-fine", "touch after-fine.ran", needs=["fine"]),
            stage("allowed", "exit 1", allow_failure=True),
            stage("after-allowed", "touch after-allowed.ran", needs=["allowed"]),
        )
    )

    summary = project.start_json("g", expect=1)

    commands = by_id(project.manifest(summary))
    assert summary["status"] == "failed" and summary["exit_code"] == 1
    assert commands["broken"]["status"] == "failed" and commands["broken"]["exit_code"] == 3
    assert commands["broken"]["error_file"]
    error = json.loads((project.root / commands["broken"]["error_file"]).read_text())
    assert "boom" in error["details"]["stderr"]
    for skipped in ("after-broken", "transitive"):
        assert commands[skipped]["status"] == "skipped"
        assert commands[skipped]["status_detail"] == "needs-failed"
        assert not (project.root / f"{skipped}.ran").exists()
    for ran in ("fine", "after-fine", "after-allowed"):
        assert commands[ran]["status"] == "succeeded"
    assert (project.root / "after-fine.ran").exists()
    assert (project.root / "after-allowed.ran").exists()  # allow_failure ends well enough
    assert commands["allowed"]["status"] == "failed" and commands["allowed"]["allow_failure"]
    assert project.manifest(summary)["status_detail"] == "stage:broken:failed"
    (metrics,) = project.metrics()
    assert (metrics["stages_succeeded"], metrics["stages_failed"], metrics["stages_skipped"]) == (
        3,
        2,
        2,
    )
    assert project.validate_manifests() == 1


def test_fail_fast_cancels_the_running_stages_and_skips_the_rest(project: Project) -> None:
    slow = f"echo $$ > slow.pid; sleep 1000 & echo $! > slow-child.pid; {waits_for('never')}"
    project.write_config(
        pipeline(
            stage("slow", slow),
            stage("breaks", f"{waits_for('slow-child.pid')}; exit 4"),
            stage("after-slow", "touch after-slow.ran", needs=["slow"]),
            stage("waits", "true", needs=["breaks"]),
            fail_fast=True,
        )
    )

    summary = project.start_json("g", "--max-parallel", "2", expect=1, timeout=120)

    manifest = project.manifest(summary)
    commands = by_id(manifest)
    assert manifest["status"] == "failed"  # not cancelled: nobody interrupted the run
    assert manifest["status_detail"] == "stage:breaks:failed"
    assert commands["breaks"]["exit_code"] == 4
    assert commands["slow"]["status"] == "failed"
    assert commands["slow"]["status_detail"] == "cancelled"
    assert commands["after-slow"]["status"] == "skipped"
    assert commands["waits"]["status"] == "skipped"
    assert commands["waits"]["status_detail"] == "needs-failed"
    assert not (project.root / "after-slow.ran").exists()
    for name in ("slow.pid", "slow-child.pid"):
        assert not process_running(int((project.root / name).read_text()))


@pytest.mark.parametrize(
    ("needs", "message"),
    [
        ('["nope"]', "stage 'b' needs 'nope', which is no stage of it"),
        ('["b"]', "stage 'b' needs itself"),
        ('["c"]', "'needs' form a cycle: b -> c -> b"),
    ],
    ids=["unknown", "itself", "cycle"],
)
def test_unknown_needs_and_cycles_are_config_errors_naming_the_stages(
    project: Project, needs: str, message: str
) -> None:
    project.write_config(
        "[pipelines.g]\nstages = [\n"
        '  { id = "a", command = "true" },\n'
        f'  {{ id = "b", command = "true", needs = {needs} }},\n'
        '  { id = "c", command = "true", needs = ["b"] },\n]\n'
    )
    for command in (("start", "g"), ("plan", "g")):
        result = project.run(*command)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not project.runs_dir.exists()


def test_plan_shows_the_graph_and_its_json_lists_needs(project: Project) -> None:
    project.write_config(
        pipeline(
            stage("lint", "true"),
            stage("tests", "true"),
            stage("guard", "true", needs=["lint", "tests"]),
            max_parallel=3,
            fail_fast=True,
        )
    )
    text = project.run("plan", "g")
    assert text.returncode == 0, text.stderr
    assert "guard: true (needs lint, tests)" in text.stdout
    assert "a graph, at most 3 at once; fail_fast: [lint, tests] -> [guard]" in text.stdout

    document = json.loads(project.run("plan", "g", "--format", "json").stdout)
    assert [s["needs"] for s in document["stages"]] == [[], [], ["lint", "tests"]]
    assert document["levels"] == [["lint", "tests"], ["guard"]]
    assert (document["graph"], document["max_parallel"], document["fail_fast"]) == (True, 3, True)


def test_resume_reruns_what_failed_or_was_skipped_and_keeps_what_succeeded(
    project: Project,
) -> None:
    project.write_config(
        pipeline(
            stage("gate", "echo run >> gate.count; test -f fixed"),
            stage("other", "echo run >> other.count"),
            stage("after", "echo run >> after.count", needs=["gate", "other"]),
        )
    )
    first = project.start_json("g", expect=1)
    assert by_id(project.manifest(first))["after"]["status_detail"] == "needs-failed"
    (project.root / "fixed").write_text("")

    result = project.run("resume", first["run_id"], "--format", "json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [c["status"] for c in summary["commands"]] == ["succeeded"] * 3
    assert lines(project.root / "gate.count") == ["run", "run"]
    assert lines(project.root / "other.count") == ["run"]  # kept, not run again
    assert lines(project.root / "after.count") == ["run"]
    assert by_id(project.manifest(summary))["after"]["status_detail"] is None


def tree(prefix: str) -> str:
    """A stage with a grandchild; its pids in ``<prefix>.leader`` and ``<prefix>.child``."""
    return f"echo $$ > {prefix}.leader; sleep 1000 & echo $! > {prefix}.child; sleep 1000"


def pids(project: Project, prefix: str) -> tuple[int, int]:
    def read(name: str) -> int | None:
        path = project.root / name
        text = path.read_text().strip() if path.exists() else ""
        return int(text) if text else None

    leader = wait_for(lambda: read(f"{prefix}.leader"), f"{prefix}.leader")
    child = wait_for(lambda: read(f"{prefix}.child"), f"{prefix}.child")
    return leader, child


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["INT", "TERM", "HUP"]
)
def test_a_signal_ends_every_running_stage_tree(project: Project, signum: int) -> None:
    project.write_config(
        pipeline(
            stage("one", tree("one")),
            stage("two", tree("two")),
            stage("after", "touch after.ran", needs=["one"]),
        )
    )
    process = project.popen("start", "g", "--max-parallel", "2", "--format", "json")
    try:
        trees = [pids(project, "one"), pids(project, "two")]
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, stderr
    for leader, child in trees:  # no orphan: every process of every stage is gone
        wait_for(
            lambda leader=leader, child=child: (
                not process_running(child) and not group_running(leader)
            ),
            "the stage's process tree to end",
        )
    summary = json.loads(stdout)
    assert summary["status"] == "cancelled"
    commands = by_id(summary)
    assert commands["one"]["status"] == commands["two"]["status"] == "failed"
    assert commands["after"]["status"] == "skipped"
    assert not (project.root / "after.ran").exists()


def test_a_stage_timeout_ends_only_its_own_tree(project: Project) -> None:
    # "other" outlives the timed-out stage: it ends only once that stage's leader is gone
    outlives = (
        f"{waits_for('slow.child')}; "
        "while kill -0 $(cat slow.leader) 2>/dev/null; do sleep 0.05; done; echo other done"
    )
    project.write_config(
        pipeline(
            stage("slow", tree("slow"), timeout_seconds=1),
            stage("other", outlives, timeout_seconds=120),
            stage("end", "true", needs=["other"]),  # any needs make the pipeline a graph
        )
    )

    summary = project.start_json("g", "--max-parallel", "2", expect=1, timeout=120)

    commands = by_id(project.manifest(summary))
    assert commands["slow"]["status"] == "failed" and commands["slow"]["timed_out"] is True
    assert commands["other"]["status"] == "succeeded"
    assert commands["other"]["summary"] == "other done"
    leader, child = pids(project, "slow")
    assert not process_running(child) and group_running(leader) == []


def test_jsonl_events_name_their_stage_and_a_subpipeline_is_a_node(project: Project) -> None:
    project.write_config(
        pipeline(stage("x", "echo x"), stage("y", "echo y", needs=["x"]), name="child")
        + pipeline(
            stage("a", "echo a"),
            '{ id = "sub", pipeline = "child" }',
            stage("b", "echo b", needs=["a", "sub"]),
        )
    )
    result = project.run("start", "g", "--format", "jsonl")

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    stage_events = [e for e in events if e["type"].startswith("exec:")]
    assert {e["payload"]["stage_id"] for e in stage_events} == {"a", "b", "x", "y"}
    assert all("stage_id" in e["payload"] for e in stage_events)
    summary = events[-1]["payload"]
    sub = by_id(summary)["sub"]
    assert sub["status"] == "succeeded" and sub["sub_run_id"]
    child = project.manifest(
        project.runs_dir / "0101" / "cli" / sub["sub_run_id"] / "manifest.json"
    )
    assert child["parent_run_id"] == summary["run_id"]
    assert [c["needs"] for c in child["commands"]] == [[], ["x"]]


def test_a_pipeline_without_needs_still_stops_at_the_first_failure(project: Project) -> None:
    project.write_config(
        pipeline(stage("one", "exit 1"), stage("two", "touch two.ran"), max_parallel=4)
    )
    summary = project.start_json("g", expect=1)
    assert [c["status"] for c in summary["commands"]] == ["failed", "skipped"]
    assert not (project.root / "two.ran").exists()


def test_an_empty_needs_list_makes_a_graph_of_independent_stages(project: Project) -> None:
    project.write_config(
        pipeline(stage("one", "exit 1", needs=[]), stage("two", "touch two.ran", needs=[]))
    )
    summary = project.start_json("g", expect=1)
    assert [c["status"] for c in summary["commands"]] == ["failed", "succeeded"]
    assert (project.root / "two.ran").exists()


def test_many_stages_ending_at_once_lose_no_update(project: Project) -> None:
    """Stage changes from eight threads at once all land in the one manifest."""
    stages = [stage(f"s{n:02d}", f"echo out{n}; echo err{n} >&2", needs=[]) for n in range(60)]
    project.write_config(pipeline(*stages, max_parallel=8))

    summary = project.start_json("g")

    manifest = project.manifest(summary)
    assert manifest["status"] == "succeeded"
    for n, record in enumerate(manifest["commands"]):
        assert record["status"] == "succeeded", record
        assert record["summary"] == f"out{n}"
        assert (record["stdout_bytes"], record["stderr_bytes"]) == (
            len(f"out{n}\n"),
            len(f"err{n}\n"),
        )
        assert record["started_at"] and record["completed_at"]
    end = next(e for e in project.runner_events(summary) if e["type"] == "run:end")
    assert end["manifest_flushed"] is True
    (metrics,) = project.metrics()
    assert metrics["stages_succeeded"] == 60


def test_progress_and_status_say_why_a_stage_was_skipped(project: Project) -> None:
    project.write_config(
        pipeline(stage("broken", "exit 1"), stage("after", "true", needs=["broken"]))
    )
    result = project.run("start", "g")  # text, off a terminal: a line per start and end

    assert result.returncode == 1, result.stderr
    assert "[1] broken FAILED" in result.stdout
    assert "[2] after skipped (needs-failed)" in result.stdout
    status = project.run("status", project.run_dirs()[0].name)
    assert "skipped (needs-failed)" in status.stdout


def test_max_parallel_out_of_range_is_a_usage_error(project: Project) -> None:
    project.write_config(pipeline(stage("a", "true", needs=[])))
    result = project.run("start", "g", "--max-parallel", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --max-parallel 0: give a number of stages from 1 to 1024"
    )
    assert not project.runs_dir.exists()


def test_from_selects_a_stage_and_what_depends_on_it_in_a_graph(project: Project) -> None:
    project.write_config(
        pipeline(
            stage("build", "touch build.ran"),
            stage("test", "touch test.ran", needs=["build"]),
            stage("lint", "touch lint.ran", needs=[]),
            stage("ship", "touch ship.ran", needs=["test", "lint"]),
        )
    )
    summary = project.start_json("g", "--from", "test")

    commands = by_id(project.manifest(summary))
    assert [commands[s]["status"] for s in ("build", "test", "lint", "ship")] == [
        "skipped",
        "succeeded",
        "skipped",
        "succeeded",
    ]
    assert commands["lint"]["status_detail"] == "not-selected"
    assert sorted(p.name for p in project.root.glob("*.ran")) == ["ship.ran", "test.ran"]
