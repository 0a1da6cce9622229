"""Helpers for the exec/event-stream, notification and telemetry tests: real streams, real
local HTTP receivers (127.0.0.1 only)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
WAIT_SECONDS = 60  # only to avoid hanging forever; never an assertion about speed


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def validate_event(event: dict[str, Any]) -> None:
    _validator("events.schema.json").validate(event)


def parse_stream(text: str) -> list[dict[str, Any]]:
    """Every line of a finished jsonl stream, each checked against the events schema."""
    events = [json.loads(line) for line in text.splitlines()]
    for event in events:
        validate_event(event)
    return events


def stream_lines(process: subprocess.Popen[str]) -> Iterator[dict[str, Any]]:
    """The events of a live stream, as they arrive, each checked against the schema.

    A watchdog kills the process after WAIT_SECONDS, so a stream that is not live (a command
    waiting for the test to see its output) fails the test instead of hanging it.
    """
    assert process.stdout is not None
    watchdog = threading.Timer(WAIT_SECONDS, process.kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        for line in process.stdout:
            event = json.loads(line)
            validate_event(event)
            yield event
    finally:
        watchdog.cancel()


def of_type(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == type_]


def chunk_text(events: list[dict[str, Any]], stream: str = "stdout") -> str:
    return "".join(
        e["payload"].get("data", "")
        for e in events
        if e["type"] == "exec:chunk" and e["payload"]["stream"] == stream
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST.

    ``statuses`` are answered in order (the last one repeats); ``decode`` may turn the body into
    something easier to check (e.g. a decoded protobuf).
    """

    statuses: list[int] = field(default_factory=lambda: [200])
    received: list[Received] = field(default_factory=list)
    answered: int = 0
    server: ThreadingHTTPServer | None = None
    arrived: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {key.lower(): value for key, value in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body))
                index = min(receiver.answered, len(receiver.statuses) - 1)
                receiver.answered += 1
                status = receiver.statuses[index]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused at once)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Blackhole:
    """A port on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    import time

    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
