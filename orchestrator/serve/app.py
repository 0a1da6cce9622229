"""The status page's routes (docs/serve.md): HTML views, their live updates, and ``/api/``.

Every route is a GET; none changes anything. Path parameters (task, run and stage ids) go
through the active ID sanitizer before any record is looked up, like every identifier the CLI
takes. Records are read through the persistence and heartbeat slots only, and the JSON documents
are the ones ``status --format json`` prints (``orchestrator.lifecycle.status``).
"""

from __future__ import annotations

import asyncio
import json
import math
import shlex
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from orchestrator.clock import parse_iso, utcnow
from orchestrator.contracts import IdKind, RunLocation
from orchestrator.errors import CorruptRecordError, IdentifierError, RunNotFoundError
from orchestrator.identifiers import check_id
from orchestrator.kernel import Kernel
from orchestrator.lifecycle.status import (
    DEFAULT_LIST_LIMIT,
    age_text,
    detailed_runs,
    run_status,
    seconds_text,
    task_runs,
)
from orchestrator.serve.changes import ChangeHub, Prober, Topic
from orchestrator.serve.git_panel import GitPanel
from orchestrator.serve.memory import TrimWhenIdle
from orchestrator.serve.output import StageLog, read_from, read_tail, stage_log
from orchestrator.serve.overview import (
    can_list_tasks,
    known_tasks,
    project_overview,
    stage_progress,
)
from orchestrator.serve.security import AccessGuard
from orchestrator.serve.task_state import TASK_STATES

HERE = Path(__file__).parent
STATIC_FILES = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}
RUNS_PER_PAGE = 50
OUTPUT_POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


class Problem(Exception):
    """An answer other than 200: the status and one line saying what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ServeState:
    kernel: Kernel
    default_task: str
    git: GitPanel
    hub: ChangeHub
    templates: Environment
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


# ---------------------------------------------------------------------------- helpers


def _state(request: Request) -> ServeState:
    return request.app.state.serve  # type: ignore[no-any-return]


def _checked(state: ServeState, value: str, kind: IdKind, label: str) -> str:
    try:
        checked = check_id(state.kernel.sanitizer, value, kind, label)
    except IdentifierError as exc:
        raise Problem(400, str(exc)) from None
    if checked != value:  # a rewriting sanitizer: the stored id is the rewritten one
        raise Problem(404, f"no {kind} {value!r}: {kind} ids are stored as {checked!r}")
    return checked


def _task_param(request: Request, state: ServeState) -> str | None:
    task = request.query_params.get("task")
    return None if task is None else _checked(state, task, "task", "task ID")


def _locate(request: Request, state: ServeState) -> RunLocation:
    run_id = _checked(state, request.path_params["run"], "run", "run ID")
    task = _task_param(request, state)
    try:
        return state.kernel.persistence.find_run(run_id, task)
    except RunNotFoundError:
        scope = f"task {task}" if task else "any task"
        raise Problem(404, f"unknown run {run_id}: no run with that id for {scope}") from None


def _run_status(state: ServeState, run: RunLocation) -> tuple[Any, Any, dict[str, Any]]:
    try:
        return run_status(state.kernel, run)
    except RunNotFoundError as exc:
        raise Problem(404, str(exc)) from None
    except CorruptRecordError as exc:
        raise Problem(422, str(exc)) from None


def _linker(request: Request) -> Callable[..., str]:
    """``link(path, **query)``: a same-host address that keeps the request's ``?token=``."""
    token = request.query_params.get("token")

    def link(path: str, **query: Any) -> str:
        params = {k: v for k, v in query.items() if v not in (None, "")}
        if token:
            params["token"] = token
        return f"{path}?{urlencode(params)}" if params else path

    return link


def _short_time(text: str | None) -> str:
    if not text:
        return "-"
    return text.replace("T", " ").replace("Z", "")[:19]


def _duration(started: str | None, completed: str | None) -> str:
    if not started:
        return "-"
    try:
        begin = parse_iso(started)
        end = parse_iso(completed) if completed else utcnow()
    except ValueError:
        return "-"
    return seconds_text(max(0, int((end - begin).total_seconds() * 1000)))


def _command_text(command: str | list[str] | None) -> str:
    """A stage's command as a user would type it (an argv list shell-quoted)."""
    if command is None:
        return "-"
    return command if isinstance(command, str) else shlex.join(command)


def _render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    state = _state(request)
    page = state.templates.get_template(template)
    values = {
        "link": _linker(request),
        "short_time": _short_time,
        "duration": _duration,
        "seconds_text": seconds_text,
        "command_text": _command_text,
        "age_text": age_text,
        "states": TASK_STATES,
        "root_name": state.kernel.root.name,
        "token": request.query_params.get("token"),
        "fragment_url": _linker(request)(
            request.url.path, **{**request.query_params, "fragment": "1"}
        ),
        **context,
    }
    if "events" in values:
        values["events_url"] = values["link"](values["events"], task=values.get("task"))
    if request.query_params.get("fragment") == "1" and "live" in page.blocks:
        body = "".join(page.blocks["live"](page.new_context(values)))
    else:
        body = page.render(values)
    return HTMLResponse(body, status_code=status)


def _json(document: Any) -> Response:
    from orchestrator.fsutil import dump_json  # the serializer `status --format json` uses

    return Response(dump_json(document), media_type="application/json")


# ---------------------------------------------------------------------------- HTML views


def _matches(entry: dict[str, Any], state_filter: str, text: str) -> bool:
    if state_filter and entry["state"] != state_filter:
        return False
    if not text:
        return True
    newest = entry.get("newest_run") or {}
    haystack = " ".join(
        str(v or "") for v in (entry["task_id"], newest.get("pipeline_id"), newest.get("run_id"))
    )
    return text.lower() in haystack.lower()


def index(request: Request) -> Response:
    state = _state(request)
    overview = project_overview(state.kernel, state.default_task)
    counts = {name: 0 for name in TASK_STATES}
    for entry in overview:
        counts[entry["state"]] += 1
    state_filter = request.query_params.get("state", "")
    if state_filter and state_filter not in TASK_STATES:
        raise Problem(400, f"unknown state {state_filter!r}; use one of {', '.join(TASK_STATES)}")
    text = request.query_params.get("q", "").strip()
    shown = [e for e in overview if _matches(e, state_filter, text)]
    for entry in shown:
        entry["progress"] = stage_progress(entry["newest_run"])
    return _render(
        request,
        "index.html",
        tasks=shown,
        total=len(overview),
        counts=counts,
        state_filter=state_filter,
        text=text,
        git=state.git.state(),
        lists_tasks=can_list_tasks(state.kernel),
        events="/events/tasks",
    )


def task_page(request: Request) -> Response:
    state = _state(request)
    task = _checked(state, request.path_params["task"], "task", "task ID")
    listing = task_runs(state.kernel, task)
    pages = max(1, math.ceil(len(listing) / RUNS_PER_PAGE))
    try:
        page = int(request.query_params.get("page", "1"))
    except ValueError:
        raise Problem(400, "page must be a whole number (1 is the newest runs)") from None
    if not 1 <= page <= pages:
        raise Problem(404, f"task {task} has {pages} page(s) of runs; there is no page {page}")
    shown = listing[(page - 1) * RUNS_PER_PAGE : page * RUNS_PER_PAGE]
    return _render(
        request,
        "task.html",
        task=task,
        runs=shown,
        total=len(listing),
        page=page,
        pages=pages,
        events=f"/events/tasks/{task}",
    )


def _stage_extras(manifest: Any) -> list[dict[str, Any]]:
    """What the manifest records of each stage beyond the status document (artifacts, digests,
    byte counts), whatever fields the engine of the day adds."""
    return [record.model_dump(mode="json") for record in manifest.commands]


def run_page(request: Request) -> Response:
    state = _state(request)
    run = _locate(request, state)
    manifest, _, document = _run_status(state, run)
    return _render(
        request,
        "run.html",
        run=document,
        stages=list(zip(document["commands"], _stage_extras(manifest), strict=True)),
        approvals=[a.model_dump(mode="json") for a in manifest.approvals],
        events=f"/events/runs/{run.run_id}",
        task=run.task_id,
    )


def _stage_of(document: dict[str, Any], manifest: Any, stage_id: str) -> tuple[Any, Any]:
    for entry, record in zip(document["commands"], manifest.commands, strict=True):
        if entry["id"] == stage_id:
            return entry, record
    known = ", ".join(c["id"] for c in document["commands"]) or "none"
    raise Problem(404, f"run {document['run_id']} has no stage {stage_id!r}; its stages: {known}")


def stage_page(request: Request) -> Response:
    state = _state(request)
    run = _locate(request, state)
    stage_id = _checked(state, request.path_params["stage"], "stage", "stage ID")
    manifest, _, document = _run_status(state, run)
    entry, record = _stage_of(document, manifest, stage_id)
    error = None
    if record.error_file:
        name = Path(record.error_file).stem
        try:
            error = state.kernel.persistence.read_error_file(run, name)
        except CorruptRecordError as exc:
            error = {"reason": f"unreadable error file: {exc}"}
    log = _stage_log(state, run, record)
    output = read_tail(log) if log is not None else None
    return _render(
        request,
        "stage.html",
        run=document,
        stage=entry,
        record=record.model_dump(mode="json"),
        error=error,
        output=output,
        task=run.task_id,
        events=f"/events/runs/{run.run_id}",
        output_events=f"/events/runs/{run.run_id}/stages/{stage_id}/output",
    )


def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC_FILES:
        raise Problem(404, f"no such file: {name}")
    return FileResponse(HERE / "static" / name, media_type=STATIC_FILES[name])


# ---------------------------------------------------------------------------- JSON API


def api_tasks(request: Request) -> Response:
    state = _state(request)
    return _json(project_overview(state.kernel, state.default_task))


def api_task_runs(request: Request) -> Response:
    state = _state(request)
    task = _checked(state, request.path_params["task"], "task", "task ID")
    try:
        limit = int(request.query_params.get("limit", str(DEFAULT_LIST_LIMIT)))
    except ValueError:
        limit = -1
    if limit < 0:
        raise Problem(400, "limit must be 0 (all) or a positive number")
    records, _ = detailed_runs(state.kernel, task, limit)
    return _json(records)


def api_run(request: Request) -> Response:
    state = _state(request)
    run = _locate(request, state)
    return _json(_run_status(state, run)[2])


# ---------------------------------------------------------------------------- live updates


def _sse(event: str, data: Any) -> bytes:
    text = json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n".encode()


async def _change_stream(state: ServeState, topic: Topic) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    async with state.hub.subscribe(topic) as queue:
        yield _sse("ready", {})
        while not state.stopping.is_set():
            try:
                await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            yield _sse("change", {"at": time.time()})


def _event_response(stream: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


async def events_tasks(request: Request) -> Response:
    return _event_response(_change_stream(_state(request), ("tasks",)))


async def events_task(request: Request) -> Response:
    state = _state(request)
    task = _checked(state, request.path_params["task"], "task", "task ID")
    return _event_response(_change_stream(state, ("task", task)))


async def events_run(request: Request) -> Response:
    from anyio import to_thread

    state = _state(request)
    run = await to_thread.run_sync(_locate, request, state)
    return _event_response(_change_stream(state, ("run", run.task_id, run.run_id)))


def _stage_log(state: ServeState, run: RunLocation, record: Any) -> StageLog | None:
    kernel = state.kernel
    return stage_log(kernel.persistence, run, record, kernel.root, kernel.context.runs_dir)


def _stage_snapshot(
    state: ServeState, run: RunLocation, stage_id: str
) -> tuple[StageLog | None, bool]:
    """The stage's log and whether more output may still come (the stage runs or waits)."""
    manifest, act, document = _run_status(state, run)
    _, record = _stage_of(document, manifest, stage_id)
    live = manifest.status in ("queued", "in_progress") and not act.stale
    return _stage_log(state, run, record), live and record.status in ("pending", "running")


async def _output_stream(
    state: ServeState, run: RunLocation, stage_id: str, offset: int
) -> AsyncIterator[bytes]:
    from anyio import to_thread

    yield b"retry: 2000\n\n"
    while not state.stopping.is_set():
        log, live = await to_thread.run_sync(_stage_snapshot, state, run, stage_id)
        while log is not None:
            read = await to_thread.run_sync(read_from, log, offset)
            if read.offset == offset:
                break
            offset = read.offset
            if read.pieces:
                yield _sse("output", read.as_json())
        if not live:
            yield _sse("end", {"offset": offset})
            return
        await asyncio.sleep(OUTPUT_POLL_SECONDS)


async def events_output(request: Request) -> Response:
    from anyio import to_thread

    state = _state(request)
    run = await to_thread.run_sync(_locate, request, state)
    stage_id = _checked(state, request.path_params["stage"], "stage", "stage ID")
    try:
        offset = int(request.query_params.get("offset", "0"))
    except ValueError:
        offset = -1
    if offset < 0:
        raise Problem(400, "offset must be a byte offset into the stage's log (0 or more)")
    return _event_response(_output_stream(state, run, stage_id, offset))


# ---------------------------------------------------------------------------- the application


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    if request.url.path.startswith(("/api/", "/events/")):
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    if request.query_params.get("fragment") == "1":
        return PlainTextResponse(exc.message, status_code=exc.status)
    return _render(request, "problem.html", status=exc.status, message=exc.message, code=exc.status)


async def _not_found(request: Request, exc: Exception) -> Response:
    message = f"no page at {request.url.path}"
    status = getattr(exc, "status_code", 404)
    if status == 405:
        message = "this page is read-only: only GET is answered"
    return await _problem(request, Problem(status, message))


def _warm_up(kernel: Kernel, default_task: str) -> None:
    """Pay the one-time costs now, not on the first visitor's page: the modules that reading
    records imports, and anyio's event-loop backend that worker threads run on (0.3 s)."""
    import anyio
    from anyio import to_thread

    project_overview(kernel, default_task)
    anyio.run(to_thread.run_sync, lambda: None)


def build_app(kernel: Kernel, default_task: str, token: str | None) -> Any:
    """The ASGI application: the routes behind the token/Host guard."""
    kernel.load_slots()  # a bad plugin fails now, and no request builds a slot concurrently
    templates = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    for name in templates.list_templates():  # compiled now, not by the first visitor
        templates.get_template(name)
    git = GitPanel(kernel.root)
    git.state()
    _warm_up(kernel, default_task)
    prober = Prober(
        kernel,
        lambda: known_tasks(kernel, default_task),
        extra=lambda: git.state(),
    )
    state = ServeState(kernel, default_task, git, ChangeHub(prober), templates)
    routes = [
        Route("/", index, methods=["GET"]),
        Route("/tasks/{task}", task_page, methods=["GET"]),
        Route("/runs/{run}", run_page, methods=["GET"]),
        Route("/runs/{run}/stages/{stage}", stage_page, methods=["GET"]),
        Route("/static/{name}", static_file, methods=["GET"]),
        Route("/api/tasks", api_tasks, methods=["GET"]),
        Route("/api/tasks/{task}/runs", api_task_runs, methods=["GET"]),
        Route("/api/runs/{run}", api_run, methods=["GET"]),
        Route("/events/tasks", events_tasks, methods=["GET"]),
        Route("/events/tasks/{task}", events_task, methods=["GET"]),
        Route("/events/runs/{run}", events_run, methods=["GET"]),
        Route("/events/runs/{run}/stages/{stage}/output", events_output, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={Problem: _problem, 404: _not_found, 405: _not_found},
    )
    app.state.serve = state
    guard = AccessGuard(TrimWhenIdle(app), token)
    guard.stop_streams = state.stopping.set
    return guard
