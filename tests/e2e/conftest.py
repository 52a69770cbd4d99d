"""Fixtures and helpers for the vers-swarm end-to-end tests.

The suite drives the real `vers-swarm` binary:

* over MCP with the official Python SDK (test_mcp_sdk.py),
* over raw newline-delimited JSON-RPC 2.0 on stdio (`RawServer`, used by
  test_raw_jsonrpc.py and test_isolation.py),
* through its command line (test_cli.py).

Environment knobs:

* ``VERS_SWARM_BIN``      path of the binary (default: <repo>/.build/debug/vers-swarm)
* ``VS_E2E_TMPDIR``       where per-module state dirs are created (default /var/tmp:
                          not /tmp, because a VM has a private /tmp of its own, so a
                          state dir under /tmp would be hidden for the wrong reason
                          and the isolation test would prove nothing)
* ``VS_E2E_TIMEOUT``      seconds for any single wait (default 60)

Every wait is bounded; no test asserts wall-clock durations.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

try:  # jsonschema ships as a dependency of the mcp SDK
    import jsonschema
except ImportError:  # pragma: no cover - the mcp SDK always brings it
    jsonschema = None  # type: ignore[assignment]


REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / ".build" / "debug" / "vers-swarm"
TIMEOUT = float(os.environ.get("VS_E2E_TIMEOUT", "60"))
CLOSE_TIMEOUT = 30.0
CLI_TIMEOUT = 2 * TIMEOUT

# Variables that would make the server talk to the Vers cloud or scope it to a
# session; every server and CLI run starts from an environment without them.
_SCRUBBED_ENV = ("VERS_API_KEY", "VERS_SWARM_SESSION", "VERS_SWARM_BACKEND", "VERS_BASE_URL")

_MISSING = object()


# --------------------------------------------------------------------------- helpers


def server_env(home: Path | str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a server or CLI run: ours, minus Vers credentials, plus the home."""
    env = dict(os.environ)
    for key in _SCRUBBED_ENV:
        env.pop(key, None)
    env["VERS_SWARM_HOME"] = str(home)
    if extra:
        env.update(extra)
    return env


def parse_cli_json(stdout: str) -> Any:
    """The JSON document a CLI command printed: the whole stdout, else its last JSON line."""
    text = stdout.strip()
    if not text:
        raise AssertionError("command printed nothing on stdout")
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"no JSON document on stdout: {stdout[:2000]!r}")


def run_cli(
    vs_bin: Path, home: Path | str, args: list[str], *, env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT, input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `vers-swarm ARGS` with the given home; never hangs (bounded by `timeout`)."""
    try:
        return subprocess.run(
            [str(vs_bin), *args],
            env=server_env(home, env),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the child
        raise AssertionError(
            f"`vers-swarm {' '.join(args)}` did not finish within {timeout} s; "
            f"stdout={exc.stdout!r:.2000} stderr={exc.stderr!r:.2000}"
        ) from None


def jsonrpc_problem(msg: Any) -> str | None:
    """Why `msg` is not a valid JSON-RPC 2.0 message a server may send, or None."""
    if not isinstance(msg, dict):
        return f"not a JSON object: {type(msg).__name__}"
    if msg.get("jsonrpc") != "2.0":
        return 'missing or wrong "jsonrpc" (must be "2.0")'
    if "method" in msg:  # server-to-client notification or request
        if not isinstance(msg["method"], str):
            return '"method" is not a string'
        if "result" in msg or "error" in msg:
            return "a message with a method must not carry result/error"
        return None
    if "id" not in msg:
        return "a response must carry an id (null when unknown)"
    mid = msg["id"]
    if not (mid is None or isinstance(mid, str) or (isinstance(mid, (int, float)) and not isinstance(mid, bool))):
        return f"ill-typed id {mid!r}"
    if ("result" in msg) == ("error" in msg):
        return "a response must carry exactly one of result and error"
    if "error" in msg:
        err = msg["error"]
        if not isinstance(err, dict):
            return "error is not an object"
        if not isinstance(err.get("code"), int) or isinstance(err.get("code"), bool):
            return "error.code is not an integer"
        if not isinstance(err.get("message"), str):
            return "error.message is not a string"
    return None


def id_key(mid: Any) -> str:
    """A dict key that keeps 1, 1.0, "1" and True apart."""
    return json.dumps(mid, sort_keys=True)


def normalize_path(path: Any) -> Any:
    """'arguments.vm_id', '$.arguments.vm_id' and '/arguments/vm_id' all become 'arguments.vm_id'."""
    if not isinstance(path, str):
        return path
    p = path.strip()
    if p.startswith("$"):
        p = p[1:]
    p = p.replace("/", ".").strip(".")
    return p


def error_path(response: dict) -> Any:
    err = response.get("error") or {}
    data = err.get("data")
    if isinstance(data, dict):
        return normalize_path(data.get("path"))
    return None


def check_tool_result(result: Any, output_schema: dict | None = None) -> dict:
    """Assert the shape every tools/call result must have; return its structuredContent."""
    assert isinstance(result, dict), f"tools/call result is not an object: {result!r}"
    assert "structuredContent" in result, f"tools/call result without structuredContent: {result!r:.2000}"
    sc = result["structuredContent"]
    assert isinstance(sc, dict), f"structuredContent is not an object: {sc!r:.2000}"
    content = result.get("content")
    assert isinstance(content, list), f"content is not a list: {result!r:.2000}"
    texts = [c for c in content if isinstance(c, dict) and c.get("type") == "text"]
    assert len(texts) == 1, f"expected exactly one text content block, got {content!r:.2000}"
    assert json.loads(texts[0]["text"]) == sc, "the text block does not hold the same JSON as structuredContent"
    if "isError" in result:
        assert isinstance(result["isError"], bool), f"isError is not a boolean: {result['isError']!r}"
    if output_schema is not None and jsonschema is not None:
        jsonschema.validate(sc, output_schema)
    return sc


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` visible in our mount namespace."""
    prefix = str(path.resolve())
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) < 5:
                    continue
                mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])  # \040 -> space
                if mp == prefix or mp.startswith(prefix + "/"):
                    found.append(mp)
    except OSError:
        pass
    return found


# --------------------------------------------------------------------------- RawServer


class RawServer:
    """`vers-swarm serve` driven over raw newline-delimited JSON-RPC.

    A reader thread parses every stdout line; lines that are not valid JSON-RPC 2.0
    are recorded and fail `close()`. Every wait is bounded.
    """

    def __init__(
        self,
        vs_bin: Path,
        home: Path | str,
        *,
        stderr_path: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = ("serve",),
        timeout: float = TIMEOUT,
    ) -> None:
        self.home = Path(home)
        self.timeout = timeout
        self.stderr_path = Path(stderr_path)
        self.env = server_env(home, env)
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [str(vs_bin), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self.env,
        )
        self.messages: list[Any] = []  # every parsed stdout line, in order
        self.bad_lines: list[str] = []  # every line that is not valid JSON-RPC 2.0
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._eof = False
        self._ids = itertools.count(1_000_001)  # far from the ids tests choose
        self._closed = False
        self.returncode: int | None = None
        self._schemas: dict[str, dict | None] | None = None
        self._reader = threading.Thread(target=self._read_stdout, name="vs-stdout", daemon=True)
        self._reader.start()

    # -- plumbing

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            for raw in iter(self.proc.stdout.readline, b""):
                line = raw[:-1] if raw.endswith(b"\n") else raw
                try:
                    msg = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    with self._cond:
                        self.bad_lines.append(f"not JSON: {raw[:500]!r}")
                        self._cond.notify_all()
                    continue
                problem = jsonrpc_problem(msg)
                with self._cond:
                    if problem:
                        self.bad_lines.append(f"{problem}: {raw[:500]!r}")
                    self.messages.append(msg)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            self._stderr.flush()
        except ValueError:
            pass
        try:
            data = self.stderr_path.read_bytes()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")

    def next_id(self) -> int:
        return next(self._ids)

    def send_line(self, text: str | bytes) -> None:
        """Write one raw line (a newline is appended when missing)."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        if not data.endswith(b"\n"):
            data += b"\n"
        self.send_bytes(data)

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        with self._send_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def send(self, obj: Any) -> None:
        self.send_line(json.dumps(obj))

    def wait_for(self, predicate: Callable[[Any], bool], what: str, timeout: float | None = None) -> Any:
        """The first message satisfying `predicate`; AssertionError after `timeout` or on EOF."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._cond:
            while True:
                for msg in self.messages:
                    if predicate(msg):
                        return msg
                if self._eof:
                    raise AssertionError(
                        f"server closed stdout before {what} (exit code {self.proc.poll()}); "
                        f"stderr tail:\n{self.stderr_tail()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {what} within {timeout or self.timeout} s; stderr tail:\n{self.stderr_tail()}")
                self._cond.wait(remaining)

    def responses(self, mid: Any = _MISSING) -> list[dict]:
        """Responses received so far (all, or those for one id)."""
        with self._cond:
            out = [m for m in self.messages if isinstance(m, dict) and "method" not in m and "id" in m]
        if mid is _MISSING:
            return out
        key = id_key(mid)
        return [m for m in out if id_key(m.get("id")) == key]

    def wait_response(self, mid: Any, timeout: float | None = None) -> dict:
        key = id_key(mid)
        return self.wait_for(
            lambda m: isinstance(m, dict) and "method" not in m and "id" in m and id_key(m["id"]) == key,
            f"response to id {mid!r}",
            timeout,
        )

    # -- requests

    def request(self, method: str, params: Any = _MISSING, *, id: Any = _MISSING, timeout: float | None = None) -> dict:
        """Send a request and return its whole response object."""
        mid = self.next_id() if id is _MISSING else id
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": mid, "method": method}
        if params is not _MISSING:
            msg["params"] = params
        self.send(msg)
        return self.wait_response(mid, timeout)

    def notify(self, method: str, params: Any = _MISSING) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not _MISSING:
            msg["params"] = params
        self.send(msg)

    def result(self, method: str, params: Any = _MISSING, *, timeout: float | None = None) -> Any:
        resp = self.request(method, params, timeout=timeout)
        assert "error" not in resp, f"{method} failed: {resp!r:.3000}"
        return resp["result"]

    def initialize(self, version: str = "2025-11-25") -> dict:
        res = self.result(
            "initialize",
            {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "vs-e2e", "version": "0"}},
        )
        self.notify("notifications/initialized")
        return res

    def tool_schemas(self) -> dict[str, dict | None]:
        """name -> outputSchema, from tools/list (cached)."""
        if self._schemas is None:
            tools = self.result("tools/list", {})["tools"]
            self._schemas = {t["name"]: t.get("outputSchema") for t in tools}
        return self._schemas

    def call_tool_raw(self, name: str, arguments: Any = _MISSING, *, timeout: float | None = None) -> dict:
        """tools/call; the whole response (result or error)."""
        params: dict[str, Any] = {"name": name}
        if arguments is not _MISSING:
            params["arguments"] = arguments
        return self.request("tools/call", params, timeout=timeout)

    def call_tool(self, name: str, arguments: Any = _MISSING, *, timeout: float | None = None) -> dict:
        """tools/call that must produce a result; checks its shape and outputSchema."""
        resp = self.call_tool_raw(name, arguments, timeout=timeout)
        assert "error" not in resp, f"tools/call {name} gave a JSON-RPC error: {resp!r:.3000}"
        check_tool_result(resp["result"], self.tool_schemas().get(name))
        return resp["result"]

    def plain(self, method: str, params: Any = _MISSING, *, timeout: float | None = None) -> Any:
        """A tool called as a plain JSON-RPC method; its structured output."""
        return self.result(method, params, timeout=timeout)

    def create_vm(self, **kwargs: Any) -> str:
        out = self.plain("create_vm", kwargs)
        assert isinstance(out.get("vm_id"), str) and out["vm_id"], f"create_vm gave no vm_id: {out!r}"
        return out["vm_id"]

    def delete_vms(self, vm_ids: list[str]) -> dict:
        return self.plain("delete", {"vm_ids": list(vm_ids)})

    def exec(self, vm_id: str, command: Any, **kwargs: Any) -> dict:
        """Plain-method exec: the structured exec output, whatever the exit code
        (a plain call returns exec's result even for a non-zero exit)."""
        resp = self.request("exec", {"vm_id": vm_id, "command": command, **kwargs}, timeout=kwargs.get("timeout_s", 0) + self.timeout)
        if "result" in resp:
            return resp["result"]
        raise AssertionError(f"exec {command!r} on {vm_id} failed: {resp!r:.3000}")

    def sh(self, vm_id: str, command: str, **kwargs: Any) -> str:
        """Run a shell command that must succeed; its stdout."""
        out = self.exec(vm_id, command, **kwargs)
        assert out.get("exit_code") == 0 and not out.get("timed_out"), f"`{command}` failed in {vm_id}: {out!r:.3000}"
        return out["stdout"]

    # -- lifetime

    def close(self, timeout: float = CLOSE_TIMEOUT) -> int:
        """EOF on stdin; the server must answer what is in flight and exit 0."""
        if self._closed:
            return self.returncode if self.returncode is not None else -1
        self._closed = True
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise AssertionError(
                f"server did not exit within {timeout} s of stdin EOF; stderr tail:\n{self.stderr_tail()}"
            ) from None
        self._reader.join(10)
        self._stderr.close()
        self.returncode = rc
        assert rc == 0, f"server exited with {rc} after stdin EOF; stderr tail:\n{self.stderr_tail()}"
        assert not self.bad_lines, "stdout carried lines that are not JSON-RPC 2.0:\n" + "\n".join(self.bad_lines[:20])
        return rc

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # this process only, by pid
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._reader.join(5)
        try:
            self._stderr.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Stop without the clean-exit assertions (used after a failure)."""
        if not self._closed:
            self._closed = True
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(CLOSE_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self._kill()

    def __enter__(self) -> "RawServer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def poll(fn: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout: float = TIMEOUT,
         interval: float = 0.2) -> Any:
    """Call fn until done(value); AssertionError with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s; last value: {value!r:.3000}")
        time.sleep(interval)


def close_servers(servers: list["RawServer"]) -> list[str]:
    """Close every server with close()'s checks (exit 0 after EOF, only JSON-RPC on stdout); the failures."""
    errors: list[str] = []
    for srv in servers:
        try:
            srv.close()
        except AssertionError as exc:
            errors.append(str(exc))
        finally:
            srv.abort()
    return errors


def tool_error_text(resp: dict) -> str:
    """The message of a tools/call result with isError true (no JSON-RPC error, no structuredContent)."""
    assert "result" in resp, f"expected a tool result with isError, got {resp!r:.2000}"
    res = resp["result"]
    assert res.get("isError") is True, f"expected isError true: {res!r:.2000}"
    assert "structuredContent" not in res, res
    text = " ".join(c.get("text", "") for c in res.get("content", []) if isinstance(c, dict))
    assert text, res
    return text


def assert_invalid(resp: dict, path: str) -> None:
    """A -32602 error naming `path`."""
    assert resp.get("error", {}).get("code") == -32602, f"expected -32602, got {resp!r:.2000}"
    assert error_path(resp) == path, f"error.data.path should be {path!r}: {resp!r}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The Vers API emulator (HTTPS with a test CA, real sandboxes, real sshd behind TLS), for the session."""
    import sys

    sys.path.insert(0, str(REPO_ROOT / "tests" / "fixtures"))
    from vers_emulator import Emulator  # noqa: E402

    state = Path(tempfile.mkdtemp(prefix="vs-emulator-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    emu = Emulator(state, https=True)
    with emu:
        yield emu
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(params=["local", "vers"])
def backend_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Run the test once on the local backend and once on the Vers backend against the emulator."""
    if request.param == "local":
        return {}
    return dict(request.getfixturevalue("emulator").env())


@pytest.fixture(scope="session")
def vs_bin() -> Path:
    path = Path(os.environ.get("VERS_SWARM_BIN") or DEFAULT_BIN)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"vers-swarm binary not found at {path}: build it first (swift build) or set VERS_SWARM_BIN")
    return path


def _new_home() -> Path:
    base = os.environ.get("VS_E2E_TMPDIR", "/var/tmp")
    if not os.path.isdir(base):
        base = tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="vs-e2e-", dir=base))


def _teardown_home(vs_bin: Path, home: Path) -> None:
    """Delete every VM of `home`, unmount its storage, remove it; fail if VMs were left."""
    problems: list[str] = []
    try:
        r = run_cli(vs_bin, home, ["call", "delete", '{"all":true}'])
        if r.returncode != 0:
            problems.append(f"`call delete {{\"all\":true}}` exited {r.returncode}: stdout={r.stdout[:1000]!r} stderr={r.stderr[-2000:]!r}")
        else:
            out = parse_cli_json(r.stdout)
            left = out.get("deleted") if isinstance(out, dict) else None
            if left:
                problems.append(f"VMs were left running by the tests: {left}")
    except AssertionError as exc:
        problems.append(str(exc))
    try:
        run_cli(vs_bin, home, ["unmount"], timeout=TIMEOUT)
    except Exception:  # unmount failures are tolerated
        pass
    if not _mounts_under(home):  # never recurse into something still mounted
        shutil.rmtree(home, ignore_errors=True)
    if problems:
        pytest.fail("; ".join(problems))


def _home(vs_bin: Path) -> Iterator[Path]:
    home = _new_home()
    try:
        yield home
    finally:
        _teardown_home(vs_bin, home)


@pytest.fixture(scope="module")
def vs_home(vs_bin: Path) -> Iterator[Path]:
    """A fresh VERS_SWARM_HOME shared by the tests of one module."""
    yield from _home(vs_bin)


@pytest.fixture()
def fresh_home(vs_bin: Path) -> Iterator[Path]:
    """A VERS_SWARM_HOME of this test alone (for assertions about the whole registry)."""
    yield from _home(vs_bin)


@pytest.fixture()
def serve(vs_bin: Path, vs_home: Path, tmp_path: Path) -> Iterator[Callable[..., RawServer]]:
    """Factory: serve(home=None, env=None) -> a started RawServer, stopped at teardown."""
    started: list[RawServer] = []
    counter = itertools.count()

    def start(home: Path | None = None, env: dict[str, str] | None = None, timeout: float = TIMEOUT) -> RawServer:
        srv = RawServer(
            vs_bin,
            home or vs_home,
            stderr_path=tmp_path / f"serve-{next(counter)}.stderr",
            env=env,
            timeout=timeout,
        )
        started.append(srv)
        return srv

    yield start
    # Servers the test left running are closed here with the same checks as
    # close(): exit 0 after stdin EOF and nothing but JSON-RPC on stdout.
    errors = close_servers(started)
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture()
def server(serve: Callable[..., RawServer]) -> RawServer:
    """A RawServer on the module's home (no MCP handshake done)."""
    return serve()


@pytest.fixture()
def cli(vs_bin: Path, vs_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """cli(*args, home=None, env=None) -> CompletedProcess of `vers-swarm ARGS`."""

    def run(*args: str, home: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return run_cli(vs_bin, home or vs_home, list(args), env=env, timeout=timeout)

    return run


@pytest.fixture()
def vm(server: RawServer) -> Iterator[str]:
    """A VM created on `server` (plain-method create_vm), deleted at teardown."""
    vm_id = server.create_vm()
    try:
        yield vm_id
    finally:
        if not server._closed and server.proc.poll() is None:
            out = server.delete_vms([vm_id])
            assert vm_id in out.get("deleted", []), f"teardown could not delete {vm_id}: {out!r}"
