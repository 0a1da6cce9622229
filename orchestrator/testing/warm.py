"""A CLI process without the cost of starting Python: forked from a launcher that imported it.

Every ``project.run(...)`` of the subprocess harness starts ``python -m orchestrator``: an
interpreter and the imports of every library the CLI uses, about 0.2 s of CPU on a quiet 2-core
machine before the command does anything, and most of a short command's cost. The launcher here
is one process per test process that imports the CLI once and then, for each call, forks a child
that becomes the command: the caller's standard streams (passed over a Unix socket), its
working folder, environment and arguments, ``sys.path[0]`` as ``python -m`` sets it, then the
CLI's own entry point, which exits with the command's exit code. The child is a process of its
own (pid, locks, files, database connections, stages), exactly as a subprocess would be.

Where a warm child could differ from a fresh interpreter, it becomes one: a call whose
environment changes how Python itself starts (``PYTHONPATH`` and the other ``PYTHON*``
variables, the locale) from its launcher's, or made after a distribution was installed or
removed on ``sys.path`` (the entry-point cache's key changed), ``exec``\\ s
``python -m orchestrator`` in place, same pid. Calls that keep coming with the same such
settings (a module's tests putting their plugins on ``PYTHONPATH``) get a launcher of their own,
started with those settings, so they are forked warm too.
The same launchers also start processes the caller keeps handling, as ``subprocess.Popen``
would (:meth:`Launcher.popen`: ``project.popen`` of the CLI, serve, the conformance kit's helper
processes): the caller holds pipes to (or ``/dev/null`` as) its standard streams and can
``communicate`` with it, poll, wait for, signal and kill it; with ``session`` it leads a session
of its own (``os.killpg(pid, SIGKILL)`` ends it and whatever it started); and its
``/proc/<pid>/environ`` shows its own environment, not the launcher's: the launcher starts
with room reserved in its environment block (:data:`ROOM_VARIABLE`) and the child writes its
environment there. Where it does not fit, the child ``exec``\\ s a new interpreter instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

WARM_MODULES = (
    "orchestrator.cli.main",
    "orchestrator.cli.reporter",
    "orchestrator.cli.signals",
    "orchestrator.cli.streams",
    "ctypes",  # a stage's supervision (the parent-death signal)
    "orchestrator.pipeline",
    "orchestrator.run_plan",
    "orchestrator.engine",
    "orchestrator.kernel",
    "orchestrator.config.loader",
    "orchestrator.entry_point_cache",
    "pydantic_settings",
    "cyclopts",
    "stevedore",
    "filelock",
    "pluggy",
    "tenacity",
    "orchestrator.serve.app",  # serve's web stack (starlette, jinja2) and its server
    "uvicorn",
)
"""What a launcher imports before it forks: the modules every command loads, and serve's. A
name that is gone or cannot be imported (an extra not installed) only costs its children the
import (the launcher never fails on it)."""

_MAIN = str(Path(__file__).resolve().parents[1] / "__main__.py")

ROOM_VARIABLE = "ORCHESTRATOR_WARM_ENVIRON_ROOM"
"""Set (to :data:`ROOM_BYTES` filler bytes) in a launcher's starting environment and removed
from it at once: the space a child that shows its own environment writes it into."""
ROOM_BYTES = 64 * 1024

_environ_area: tuple[int, int] | None = None
"""Where this launcher's starting environment block lies in its memory (``/proc/self/stat``
fields 50 and 51), when it holds the room; what ``/proc/<pid>/environ`` reads."""


def interpreter_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The variables read when Python starts, before any command runs: a warm child whose call
    differs in any of them from its launcher is not the same as a fresh interpreter."""
    return {
        key: value
        for key, value in env.items()
        if key.startswith("PYTHON") or key in ("LANG", "LANGUAGE") or key.startswith("LC_")
    }


def installed_key() -> str:
    """Changes when a distribution is installed, upgraded or removed on ``sys.path``."""
    from orchestrator.entry_point_cache import cache_key

    return cache_key()


def caller_umask() -> int:
    """This process's umask, read without changing it (another thread may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def become_command(
    streams: Sequence[int],
    args: Sequence[str],
    cwd: str,
    env: Mapping[str, str],
    settings: dict[str, str],
    key: str,
    umask: int | None = None,
    *,
    module: str = "orchestrator",
    session: bool = False,
    show_environment: bool = False,
) -> None:
    """In a forked child: make ``streams`` (three descriptors) its standard input, output and
    error, run ``args`` as ``python -m MODULE`` would (``orchestrator``: the CLI), with the
    caller's ``umask``, and exit with its code (never returns). ``settings`` and ``key`` are the
    launcher's :func:`interpreter_settings` and :func:`installed_key`: where the call's differ,
    a new interpreter is exec'ed instead. ``session``: lead a new session, as
    ``Popen(start_new_session=True)``; ``show_environment``: ``/proc/<pid>/environ`` shows
    ``env`` (a new interpreter is exec'ed where it cannot)."""
    code = 70  # the command could not even start
    try:
        if session:
            os.setsid()
        for target, fd in enumerate(streams):
            os.dup2(fd, target)
        for fd in set(streams):
            if fd > 2:  # the command holds its streams once, as a subprocess does
                os.close(fd)
        if umask is not None:
            os.umask(umask)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        fresh = [sys.executable, "-m", module, *args]
        if (
            interpreter_settings(env) != settings
            or installed_key() != key
            or (show_environment and not _show_environment(env))
        ):
            os.execve(sys.executable, fresh, dict(env))
        import importlib

        importlib.invalidate_caches()  # files written since the launcher started are found
        sys.argv = [_MAIN, *args]
        sys.orig_argv = fresh  # re-executing works
        sys.path[0] = os.getcwd()  # what `python -m` puts first
        import runpy

        code = 1  # what an uncaught exception makes of a fresh interpreter
        # what `python -m orchestrator` does: the package's __main__ becomes `__main__` (code
        # that looks at `__main__`, e.g. multiprocessing, sees the CLI, not this launcher) and
        # runs the console script, which exits the process with the command's exit code
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0  # a module that returns ends as a fresh interpreter does
    except SystemExit as exc:  # run() exits this way when a tracer (coverage) is attached
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # SystemExit("message"): the message on stderr, exit 1
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):  # as an interpreter's exit flushes them
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _show_environment(env: Mapping[str, str]) -> bool:
    """Write ``env`` over this process's starting environment block, so ``/proc/<pid>/environ``
    (what other processes read) shows it; False where it does not fit or did not take."""
    if _environ_area is None:
        return False
    start, end = _environ_area
    block = b"".join(os.fsencode(k) + b"=" + os.fsencode(v) + b"\0" for k, v in env.items())
    if len(block) > end - start:
        return False
    try:  # nothing points into the block any more: os.environ.clear() unset every variable
        with open("/proc/self/mem", "r+b", buffering=0) as memory:
            memory.seek(start)
            memory.write(block.ljust(end - start, b"\0"))
        with open("/proc/self/environ", "rb") as shown:
            return shown.read(len(block)) == block
    except (OSError, OverflowError, ValueError):
        return False


def _reserve_environ_area() -> None:
    """In a launcher: find its starting environment block if it holds the room (see
    :data:`ROOM_VARIABLE`), then drop the variable from its environment."""
    global _environ_area
    if os.environ.pop(ROOM_VARIABLE, None) is None:
        return
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            text = stat.read()
        fields = text[text.rfind(")") + 2 :].split()  # fields 3 onwards
        start, end = int(fields[47]), int(fields[48])
        with open("/proc/self/environ", "rb") as shown:
            if f"{ROOM_VARIABLE}=".encode() in shown.read() and end - start >= ROOM_BYTES:
                _environ_area = (start, end)
    except (OSError, ValueError, IndexError):
        pass


def warm_up() -> None:
    """Import :data:`WARM_MODULES`, the module of every CLI command, and the module of every
    slot implementation and observer installed here (the plugin distributions import tenacity,
    sqlite3, psycopg...: 0.15 to 0.25 s a command).
    Plugins on ``PYTHONPATH`` are not among them: a test's own plugin may do things on import
    that it expects each command to do (log, fail, print), so each child imports it itself."""
    import importlib

    from orchestrator.cli.main import COMMANDS
    from orchestrator.contracts import OBSERVER_GROUP, SLOTS
    from orchestrator.entry_point_cache import refresh

    groups = {spec.group for spec in SLOTS} | {OBSERVER_GROUP}
    modules = [entry.value.split(":", 1)[0] for entry in refresh() if entry.group in groups]
    folders = _pythonpath_folders()
    commands = [target.split(":", 1)[0] for target, _, _ in COMMANDS]  # cyclopts imports one
    for name in (
        *WARM_MODULES,
        *commands,
        *[name for name in modules if not _found_in(name, folders)],
    ):
        try:
            importlib.import_module(name)
        except Exception:  # a broken plugin stays its commands' business, not the launcher's
            continue


def _pythonpath_folders() -> list[Path]:
    folders = [Path(part).resolve() for part in os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return [folder for folder in folders if str(folder) != os.sep and folder.is_dir()]


def _found_in(module: str, folders: list[Path]) -> bool:
    """Whether ``module``'s top-level package is found in one of ``folders`` (found without
    importing it)."""
    import importlib.util

    if not folders:
        return False
    try:
        spec = importlib.util.find_spec(module.split(".", 1)[0])
    except (ImportError, ValueError):
        return False
    origin = (spec.origin or "") if spec else ""
    locations = [origin, *(spec.submodule_search_locations or [])] if spec else []
    return any(
        Path(place).resolve().is_relative_to(folder)
        for place in locations
        if place
        for folder in folders
    )


# ---------------------------------------------------------------------------- the launcher


def _receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One request: a length-prefixed JSON document and the three standard streams."""
    header, fds, _flags, _address = socket.recv_fds(connection, 8, 3)
    length = int.from_bytes(header.ljust(8, b"\0")[:8], "big")
    body = bytearray(header[8:])
    while len(body) < length:
        chunk = connection.recv(length - len(body))
        if not chunk:
            raise ConnectionError("the caller went away mid-request")
        body += chunk
    return json.loads(body), list(fds)


def serve(path: str) -> None:
    """Accept calls on ``path``; fork a child for each; send back its pid at once and its exit
    code when it ends (a line each); kill it when its caller goes away."""
    _reserve_environ_area()
    warm_up()
    settings = interpreter_settings(os.environ)
    key = installed_key()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    # woken by a child's end (SIGCHLD through the wakeup descriptor) and by the caller's end
    # (its end of our standard input closes), instead of polling for either
    wake_read, wake_write = os.pipe()
    for fd in (wake_read, wake_write):
        os.set_blocking(fd, False)
    _WAKE[:] = [wake_read, wake_write]
    signal.signal(signal.SIGCHLD, _woken)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    with contextlib.suppress(ValueError, OSError):
        selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "caller")
    running: dict[int, socket.socket] = {}
    leaders: set[int] = set()  # children that lead a session (and process group) of their own
    signal.signal(signal.SIGTERM, _leave)
    try:
        _serve_calls(listener, selector, running, leaders, settings, key)
    finally:  # stopped, or the test process is gone: no command outlives the launcher
        for pid in running:
            _end_child(pid, pid in leaders)


_WAKE: list[int] = []
"""The launcher's wakeup pipe (read end, write end); a forked child closes both."""


def _woken(signum: int, frame: Any) -> None:
    """SIGCHLD's handler: the wakeup descriptor has done the work (the loop reaps)."""


def _forget_wakeups() -> None:
    """In a forked child: the launcher's signal wakeups are not the command's."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in _WAKE:
        with contextlib.suppress(OSError):
            os.close(fd)
    _WAKE.clear()


def _end_child(pid: int, leader: bool) -> None:
    """SIGKILL a child still running (with its process group when it leads one)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if leader:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def _leave(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def _serve_calls(
    listener: socket.socket,
    selector: selectors.BaseSelector,
    running: dict[int, socket.socket],
    leaders: set[int],
    settings: dict[str, str],
    key: str,
) -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        for selected, _events in selector.select(timeout=2.0):
            if selected.data == "wake":
                with contextlib.suppress(OSError):
                    os.read(int(selected.fd), 4096)
                continue
            if selected.data == "caller":
                if not os.read(int(selected.fd), 4096):  # end of file: the caller is gone
                    return
                continue
            if selected.fileobj is listener:
                connection, _ = listener.accept()
                try:
                    request, fds = _receive(connection)
                except (OSError, ValueError):
                    connection.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    _forget_wakeups()
                    selector.close()
                    listener.close()
                    for other in (connection, *running.values()):
                        other.close()
                    become_command(
                        fds,
                        request["args"],
                        request["cwd"],
                        request["env"],
                        settings,
                        key,
                        request["umask"],
                        module=request.get("module", "orchestrator"),
                        session=bool(request.get("session")),
                        show_environment=bool(request.get("show_environment")),
                    )
                for fd in fds:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    connection.sendall(f"{pid}\n".encode())
                running[pid] = connection
                if request.get("session"):
                    leaders.add(pid)
                selector.register(connection, selectors.EVENT_READ, pid)
            else:  # a caller's socket readable: it went away (timeout): end its command
                pid = selected.data
                selector.unregister(selected.fileobj)
                if pid in running:
                    _end_child(pid, pid in leaders)
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid not in running:
                continue
            connection = running.pop(pid)
            leaders.discard(pid)
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(connection)
            with contextlib.suppress(OSError):
                connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            connection.close()


# ---------------------------------------------------------------------------- the caller


class Launcher:
    """A launcher of this process, for one set of :func:`interpreter_settings` (started on
    first use, ended with this process)."""

    _instances: dict[tuple[tuple[str, str], ...], Launcher] = {}
    _asked: dict[tuple[tuple[str, str], ...], int] = {}
    _lock = threading.Lock()
    MOST = 4
    """Launchers kept at once by a process; the least recently used one ends first."""
    _stopped_at_exit = False

    def __init__(self, env: Mapping[str, str]) -> None:
        self.folder = tempfile.mkdtemp(prefix="warm-cli-")
        self.path = os.path.join(self.folder, "socket")
        self.pid = os.getpid()
        self.calls = 0  # running now (a launcher is never ended under a running call)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.testing.warm", self.path],
            env={**env, ROOM_VARIABLE: "x" * ROOM_BYTES},
            cwd="/",
            stdin=subprocess.PIPE,  # never written: its end tells the launcher this process ended
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # never in the way of a test that signals its own group
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            self._end()
            raise RuntimeError("the warm CLI launcher did not start")

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.process.poll() is None

    @classmethod
    def get(cls, env: Mapping[str, str], call_env: Mapping[str, str] | None = None) -> Launcher:
        """The launcher for a call with environment ``call_env``; a new one is started with
        ``env`` and the call's interpreter settings. A call whose settings differ from every
        launcher's is served by any launcher (its child ``exec``\\ s a new interpreter) the
        first time they are seen, by a launcher of their own from the second time on. The
        caller runs one call through it (it counts as running until :meth:`call` ends it)."""
        settings = interpreter_settings(call_env if call_env is not None else env)
        key = tuple(sorted(settings.items()))
        with cls._lock:
            for known, existing in list(cls._instances.items()):
                if not existing.alive():
                    del cls._instances[known]
            launcher: Launcher | None = cls._instances.pop(key, None)
            if launcher is None:
                cls._asked[key] = cls._asked.get(key, 0) + 1
                if cls._instances and cls._asked[key] < 2:
                    return cls._borrowed()
                own = interpreter_settings(env)
                base = {k: v for k, v in env.items() if k not in own}
                try:
                    launcher = cls({**base, **settings})
                except RuntimeError:
                    if not cls._instances:  # (what its settings break is the call's to see)
                        raise
                    return cls._borrowed()
                if not cls._stopped_at_exit:  # never left running, even without a fixture
                    import atexit

                    atexit.register(cls.stop)
                    cls._stopped_at_exit = True
                idle = [known for known, other in cls._instances.items() if not other.calls]
                for oldest in idle[: max(0, len(cls._instances) + 1 - cls.MOST)]:
                    cls._instances.pop(oldest)._end()
            cls._instances[key] = launcher  # (re)inserted last: the most recently used
            launcher.calls += 1
            return launcher

    @classmethod
    def _borrowed(cls) -> Launcher:
        """The most recently used launcher, for a call of other settings (its child ``exec``\\ s
        a new interpreter); the caller holds ``_lock``."""
        launcher = next(reversed(cls._instances.values()))
        launcher.calls += 1
        return launcher

    @classmethod
    def call(
        cls,
        env: Mapping[str, str],
        args: Sequence[str],
        cwd: Path,
        call_env: Mapping[str, str],
        input: str | None,
        timeout: float,
    ) -> tuple[int, bytes, bytes]:
        """Run one CLI call in a child of the right launcher (see :meth:`get`):
        ``(exit code, stdout, stderr)``."""
        launcher = cls.get(env, call_env)
        try:
            return launcher.run(args, cwd, call_env, input, timeout)
        finally:
            launcher.release()

    @classmethod
    def popen(
        cls,
        env: Mapping[str, str],
        module: str,
        args: Sequence[str],
        cwd: str | Path,
        call_env: Mapping[str, str],
        stdin: int = subprocess.DEVNULL,
        *,
        stdout: int = subprocess.PIPE,
        stderr: int = subprocess.PIPE,
        text: bool = True,
        session: bool = True,
    ) -> WarmProcess:
        """``python -m MODULE ARGS`` with environment ``call_env``, as ``Popen(...,
        stdin=stdin, stdout=stdout, stderr=stderr, text=text, start_new_session=session)``
        would start it, forked from the right launcher (see :meth:`get`). Each stream is
        ``subprocess.PIPE`` or ``subprocess.DEVNULL`` (``stderr`` may also be
        ``subprocess.STDOUT``). The call runs until the process ends."""
        launcher = cls.get(env, call_env)
        try:
            process = launcher.start(
                module, args, cwd, call_env, stdin, stdout, stderr, text=text, session=session
            )
        except BaseException:
            launcher.release()
            raise
        process.on_end = launcher.release
        return process

    def release(self) -> None:
        """A call that :meth:`get` counted on this launcher has ended."""
        with self._lock:
            self.calls -= 1

    @classmethod
    def stop(cls) -> None:
        """End this process's launchers (if any) and remove their sockets."""
        with cls._lock:
            launchers = list(cls._instances.values())
            cls._instances.clear()
            cls._asked.clear()
        for launcher in launchers:
            if launcher.pid == os.getpid():
                launcher._end()

    def _end(self) -> None:
        self.process.terminate()  # it kills whatever command is still running, then exits
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self.folder)

    def _call(self, request: dict[str, Any], streams: Sequence[int]) -> socket.socket:
        """Send one request with its three standard streams (closed here); the connection
        that answers with the child's pid, then its exit code."""
        body = json.dumps({**request, "umask": caller_umask()}).encode()
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(self.path)
            socket.send_fds(connection, [len(body).to_bytes(8, "big") + body], list(streams))
        except BaseException:
            connection.close()
            raise
        finally:
            for fd in set(streams):
                os.close(fd)
        return connection

    def _open(
        self,
        request: dict[str, Any],
        stdin: int = subprocess.DEVNULL,
        stdout: int = subprocess.PIPE,
        stderr: int = subprocess.PIPE,
    ) -> tuple[socket.socket, int, int, int]:
        """Send ``request`` with the child's three standard streams, each a pipe
        (``subprocess.PIPE``) or ``/dev/null`` (``subprocess.DEVNULL``; ``stderr`` may be
        ``subprocess.STDOUT``). The connection, and this side's ends of the pipes (``-1`` where
        there is none); on failure none is left open."""
        ours: list[int] = []
        theirs: list[int] = []
        try:
            for number, how in enumerate((stdin, stdout, stderr)):
                if how == subprocess.PIPE:
                    read, write = os.pipe()
                    ours.append(write if number == 0 else read)
                    theirs.append(read if number == 0 else write)
                elif how == subprocess.DEVNULL:
                    ours.append(-1)
                    theirs.append(os.open(os.devnull, os.O_RDONLY if number == 0 else os.O_WRONLY))
                elif how == subprocess.STDOUT and number == 2:
                    ours.append(-1)
                    theirs.append(theirs[1])
                else:
                    raise ValueError(f"a warm process's stream {number} cannot be {how!r}")
        except BaseException:
            _close(*ours, *set(theirs))
            raise
        try:
            connection = self._call(request, theirs)  # (it closes theirs)
        except BaseException:
            _close(*ours)
            raise
        return connection, ours[0], ours[1], ours[2]

    def start(
        self,
        module: str,
        args: Sequence[str],
        cwd: str | Path,
        env: Mapping[str, str],
        stdin: int = subprocess.DEVNULL,
        stdout: int = subprocess.PIPE,
        stderr: int = subprocess.PIPE,
        *,
        text: bool = True,
        session: bool = True,
    ) -> WarmProcess:
        """``python -m MODULE ARGS`` as ``Popen(..., stdin=stdin, stdout=stdout,
        stderr=stderr, text=text, start_new_session=session)`` would start it, forked from this
        launcher (streams as :meth:`_open` takes them)."""
        request = {
            "args": list(args),
            "cwd": str(cwd),
            "env": dict(env),
            "module": module,
            "session": session,
            "show_environment": True,
        }
        connection, in_write, out_read, err_read = self._open(request, stdin, stdout, stderr)
        pid_line = b""
        try:
            pid_line = _read_line(connection)
        finally:
            if not pid_line:  # no process: nothing of this call stays open
                connection.close()
                _close(in_write, out_read, err_read)
        if not pid_line:
            raise RuntimeError("the warm launcher did not start the process")
        return WarmProcess(
            [sys.executable, "-m", module, *args],
            int(pid_line),
            connection,
            in_write,
            out_read,
            err_read,
            text=text,
        )

    def run(
        self,
        args: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        input: str | None,
        timeout: float,
    ) -> tuple[int, bytes, bytes]:
        request = {"args": list(args), "cwd": str(cwd), "env": dict(env)}
        stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
        connection, in_write, out_read, err_read = self._open(request, stdin)
        if in_write != -1:
            writer = _stream(in_write, "wb", "utf-8")
            threading.Thread(target=_write_and_close, args=(writer, input), daemon=True).start()
        return _collect(connection, out_read, err_read, timeout)


def _close(*fds: int) -> None:
    for fd in fds:
        if fd != -1:
            os.close(fd)


def _left(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (a ``time.monotonic()`` value), never below 0; None
    for no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _write_and_close(stream: Any, data: str | bytes | None) -> None:
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        if data:
            stream.write(data)
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        stream.close()


def _read_all(stream: Any, box: list[Any]) -> None:
    try:
        box.append(stream.read())
    finally:
        with contextlib.suppress(OSError, ValueError):
            stream.close()


def _collect(
    connection: socket.socket, out_read: int, err_read: int, timeout: float
) -> tuple[int, bytes, bytes]:
    """Both streams to their end and the exit code, or TimeoutExpired (the command is killed)."""
    selector = selectors.DefaultSelector()
    chunks: dict[int, list[bytes]] = {out_read: [], err_read: []}
    for fd in (out_read, err_read):
        selector.register(fd, selectors.EVENT_READ)
    selector.register(connection, selectors.EVENT_READ)
    code: int | None = None
    reply = b""
    deadline = time.monotonic() + timeout
    try:
        while code is None or len(selector.get_map()) > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired("codex-orchestrator", timeout)
            for key, _events in selector.select(timeout=left):
                if key.fileobj is connection:
                    data = connection.recv(64)
                    reply += data
                    lines = reply.split(b"\n")  # the child's pid, then its exit code
                    if not data or len(lines) > 2:
                        selector.unregister(connection)
                        code = int(lines[1]) if len(lines) > 2 else -9
                    continue
                fd = int(key.fd)
                data = os.read(fd, 1 << 16)
                if data:
                    chunks[fd].append(data)
                else:
                    selector.unregister(fd)
        return (
            (code if code is not None else -9),
            b"".join(chunks[out_read]),
            b"".join(chunks[err_read]),
        )
    finally:
        selector.close()
        connection.close()  # before the command ended: the launcher kills it
        os.close(out_read)
        os.close(err_read)


def _read_line(connection: socket.socket) -> bytes:
    """One line of the launcher's answer, read a byte at a time (nothing past it is taken)."""
    line = b""
    while not line.endswith(b"\n"):
        data = connection.recv(1)
        if not data:
            return b""
        line += data
    return line.strip()


def _stream(fd: int, mode: str, encoding: str | None) -> Any:
    """A pipe's end as ``Popen`` wraps it: text (``encoding`` given; writes go straight
    through) or bytes; None where there is no pipe."""
    import io

    if fd == -1:
        return None
    raw = open(fd, mode)  # noqa: SIM115 (the stream lives as long as the process object)
    if encoding is None:
        return raw
    if mode == "wb":
        return io.TextIOWrapper(raw, encoding=encoding, write_through=True)
    return io.TextIOWrapper(raw, encoding=encoding)


class WarmProcess:
    """A process started by :meth:`Launcher.start`, handled as a ``subprocess.Popen``: ``pid``,
    ``stdin``/``stdout``/``stderr`` (text or bytes, None where not a pipe), ``poll``, ``wait``,
    ``communicate``, ``returncode``, ``send_signal``/``terminate``/``kill`` (the process only,
    as ``Popen``'s do), and ``with``. Its parent is the launcher, which reaps it and reports its
    exit code (negative: the signal that ended it)."""

    def __init__(
        self,
        args: list[str],
        pid: int,
        connection: socket.socket,
        in_write: int,
        out_read: int,
        err_read: int,
        *,
        text: bool = True,
    ) -> None:
        import locale

        encoding = locale.getpreferredencoding(False) if text else None  # as Popen decodes
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        self._connection: socket.socket | None = connection
        self._reply = b""
        self._readers: dict[str, tuple[threading.Thread, list[Any]]] = {}
        self.on_end: Callable[[], None] | None = None  # told once, when the process has ended
        self.stdin: Any = _stream(in_write, "wb", encoding)
        self.stdout: Any = _stream(out_read, "rb", encoding)
        self.stderr: Any = _stream(err_read, "rb", encoding)

    def __enter__(self) -> WarmProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for stream in (self.stdout, self.stderr, self.stdin):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.close()
        self.wait()

    def communicate(
        self, input: str | bytes | None = None, timeout: float | None = None
    ) -> tuple[Any, Any]:
        """As ``Popen.communicate``: send ``input`` and close the input, read both outputs
        to their end, wait for the exit; after ``TimeoutExpired`` it can be called again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.stdin is not None and not self._readers:
            stdin, self.stdin = self.stdin, None
            threading.Thread(target=_write_and_close, args=(stdin, input), daemon=True).start()
        for name in ("stdout", "stderr"):
            stream = getattr(self, name)
            if name not in self._readers and stream is not None and not stream.closed:
                box: list[Any] = []
                reader = threading.Thread(target=_read_all, args=(stream, box), daemon=True)
                reader.start()
                self._readers[name] = (reader, box)
        for reader, _ in self._readers.values():
            reader.join(_left(deadline))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.wait(_left(deadline))
        results = {name: box[0] if box else None for name, (_, box) in self._readers.items()}
        return results.get("stdout"), results.get("stderr")

    def _receive(self, timeout: float | None) -> None:
        connection = self._connection
        if connection is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([connection], [], [], _left(deadline))
            if not ready:
                return
            data = connection.recv(64)
            self._reply += data
            if not data or self._reply.endswith(b"\n"):
                break
        if self._reply.strip():
            self.returncode = int(self._reply)
        else:  # the launcher went away (it kills its children as it goes)
            self.returncode = -signal.SIGKILL
        self._connection = None
        connection.close()
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end()

    def poll(self) -> int | None:
        if self.returncode is None:
            self._receive(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._receive(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __del__(self) -> None:
        connection = getattr(self, "_connection", None)
        if connection is not None:  # dropped while running: the launcher ends it
            connection.close()


if __name__ == "__main__":
    serve(sys.argv[1])
