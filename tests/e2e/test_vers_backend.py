"""The Vers backend end to end, against the Vers API emulator.

Every test drives the real `vers-swarm` binary (a `serve` process over raw
JSON-RPC, or the command line) with VERS_API_KEY set, so the bridge uses the
VersProvider: REST through libcurl to the emulator's HTTPS API (private test
CA) and exec over SSH inside TLS to `{vm_id}.vm.test` (SNI-routed by the
emulator's TLS terminator to a real sshd in a real sandbox).

The emulator's counters (requests per route, TLS handshakes, live VMs) and
faults (injected statuses, dropped connections, truncated bodies) let the
tests see what went over the wire. Each test works in a fresh
VERS_SWARM_HOME, deletes its VMs through a Vers-configured bridge in a
finally block, and its `rig` fixture checks at teardown that the emulator's
live VM count is back where it was before the test.

Tests that depend on the whole quota (8 vCPUs) or on every labelled VM of
the key (gc --reconcile) use an emulator of this module alone, so VMs of
other modules cannot skew them. Every wait is bounded; no test asserts
wall-clock durations.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import (
    CLI_TIMEOUT,
    REPO_ROOT,
    TIMEOUT,
    RawServer,
    check_tool_result,
    close_servers,
    parse_cli_json,
    poll,
    run_cli,
)

# --------------------------------------------------------------------------- helpers

GET_VMS = "GET /api/v1/vms"
NEW_ROOT = "POST /api/v1/vm/new_root"
BRANCHES = "POST /api/v1/vm/branch/by_commit/{commit_id}"
DELETE_VM = "DELETE /api/v1/vm/{vm_id}"
EXEC_ENDPOINT = "POST /api/v1/vm/{vm_id}/exec"
STREAM_ENDPOINT = "POST /api/v1/vm/{vm_id}/exec/stream"
EXEC_LIMIT_S = 3  # the own emulator's synchronous exec limit (the live service's is ~30 s)

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def retry_busy(fn: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Run `fn`, again while exec fails with ETXTBSY (the binary is being relinked)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except OSError as exc:
            if exc.errno != errno.ETXTBSY or time.monotonic() >= deadline:
                raise AssertionError(f"cannot start {what}: {exc}") from None
            time.sleep(0.5)


def requests_of(counters: dict, key: str) -> int:
    return int(counters.get("requests", {}).get(key, 0))


def tool_error_text(resp: dict, what: str) -> str:
    """The message of a tools/call that must come back as a result with isError: true."""
    assert "error" not in resp, f"{what}: a JSON-RPC error instead of an isError result: {resp!r:.3000}"
    result = resp.get("result")
    assert isinstance(result, dict), f"{what}: no result: {resp!r:.3000}"
    assert result.get("isError") is True, f"{what}: expected isError: true, got {result!r:.3000}"
    texts = [c.get("text", "") for c in result.get("content", []) if isinstance(c, dict) and c.get("type") == "text"]
    assert texts and all(isinstance(t, str) for t in texts), f"{what}: no text content: {result!r:.3000}"
    return "\n".join(texts)


def tool_ok(srv: RawServer, name: str, arguments: dict, *, timeout: float | None = None) -> dict:
    """tools/call that must succeed (isError false); its structuredContent."""
    result = srv.call_tool(name, arguments, timeout=timeout)
    assert not result.get("isError"), f"{name} {arguments!r:.500} failed: {result!r:.3000}"
    return result["structuredContent"]


def cli_json(r: subprocess.CompletedProcess[str], what: str) -> Any:
    assert r.returncode == 0, f"{what} exited {r.returncode}: stdout={r.stdout[-2000:]!r} stderr={r.stderr[-2000:]!r}"
    return parse_cli_json(r.stdout)


def wrong_key_for(key: str) -> str:
    """A key of the same length and owner id, with different hex digits."""
    owner, hex_part = key[:36], key[36:]
    while True:
        other = secrets.token_hex(len(hex_part) // 2)
        if other != hex_part:
            return owner + other


def fetch_private_key(emu: Any, vm_id: str) -> str:
    """The VM's private key text, straight from the emulator's API."""
    req = urllib.request.Request(f"{emu.base_url}/vm/{vm_id}/ssh_key",
                                 headers={"Authorization": f"Bearer {emu.api_key}"})
    with urllib.request.urlopen(req, context=emu.ssl_context(), timeout=60) as r:
        key = json.loads(r.read())["ssh_private_key"]
    assert "PRIVATE KEY" in key, f"the emulator's key for {vm_id} does not look like a private key"
    return key


def key_needles(private_key: str) -> list[str]:
    """The key text, its header and each of its base64 body lines."""
    lines = [ln.strip() for ln in private_key.strip().splitlines()]
    body = [ln for ln in lines if ln and not ln.startswith("-----") and len(ln) >= 16]
    assert body, "a private key without body lines"
    return [private_key.strip(), lines[0]] + body


def assert_no_secrets(sources: dict[str, str], needles: dict[str, str]) -> None:
    """No needle (secret) occurs in any source text; the failure names where, not what."""
    leaks = []
    for source, text in sources.items():
        for name, needle in needles.items():
            if needle and needle in text:
                leaks.append(f"{name} found in {source}")
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)


def registry_dump(home: Path) -> str:
    con = sqlite3.connect(str(home / "registry.sqlite"), timeout=30)
    try:
        return "\n".join(con.iterdump())
    finally:
        con.close()


def new_home() -> Path:
    base = os.environ.get("VS_E2E_TMPDIR", "/var/tmp")
    if not os.path.isdir(base):
        base = tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="vs-e2e-vers-", dir=base))


# --------------------------------------------------------------------------- the rig


class VersRig:
    """Servers and CLI runs against one emulator, cleaned up by the fixture.

    `baseline` is the emulator's live VM count when the test started; the
    teardown deletes every VM of the test's homes through a Vers-configured
    CLI and checks the count is back to it."""

    def __init__(self, vs_bin: Path, emu: Any, home: Path, tmp_path: Path) -> None:
        self.vs_bin = vs_bin
        self.emu = emu
        self.home = home
        self.tmp_path = tmp_path
        self.homes: list[Path] = [home]
        self.servers: list[RawServer] = []
        self._n = 0
        emu.clear_faults()
        self.baseline = self.live()

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(self.emu.env())
        env.update(extra)
        return env

    def live(self) -> int:
        return int(self.emu.counters()["vms_live"])

    def counters(self) -> dict:
        return self.emu.counters()

    def serve(self, *, home: Path | None = None, env: dict[str, str] | None = None, init: bool = True,
              timeout: float = TIMEOUT) -> RawServer:
        self._n += 1
        path = self.tmp_path / f"serve-{self._n}.stderr"
        srv = retry_busy(lambda: RawServer(self.vs_bin, home or self.home, stderr_path=path,
                                           env=self.env() if env is None else env, timeout=timeout),
                         "vers-swarm serve")
        self.servers.append(srv)
        if init:
            srv.initialize()
        return srv

    def cli(self, *args: str, home: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return retry_busy(lambda: run_cli(self.vs_bin, home or self.home, list(args),
                                          env=self.env() if env is None else env, timeout=timeout),
                          f"vers-swarm {' '.join(args)}")

    def create(self, srv: RawServer, **kwargs: Any) -> str:
        out = tool_ok(srv, "create_vm", kwargs)
        assert isinstance(out.get("vm_id"), str) and out["vm_id"], out
        return out["vm_id"]

    def delete(self, srv: RawServer, vm_ids: list[str]) -> dict:
        """Delete through a Vers-configured server; every id must be deleted."""
        out = tool_ok(srv, "delete", {"vm_ids": list(vm_ids)}, timeout=2 * TIMEOUT)
        assert sorted(out["deleted"]) == sorted(vm_ids), f"delete {vm_ids}: {out!r}"
        return out

    def teardown(self) -> None:
        errors: list[str] = []
        try:
            self.emu.clear_faults()
        except Exception as exc:  # noqa: BLE001
            errors.append(f"clearing faults: {exc}")
        errors += close_servers(self.servers)
        for home in self.homes:
            if not home.exists():
                continue
            try:
                r = self.cli("call", "delete", '{"all":true}', home=home)
                if r.returncode != 0:
                    errors.append(f"cleanup delete in {home} exited {r.returncode}: {r.stdout[-1000:]!r} {r.stderr[-1000:]!r}")
                else:
                    left = parse_cli_json(r.stdout).get("deleted")
                    if left:
                        errors.append(f"the test left VMs live: {left}")
            except AssertionError as exc:
                errors.append(str(exc))
        try:
            poll(self.live, lambda n: n == self.baseline, "vms_live back to its value before the test", timeout=30)
        except AssertionError as exc:
            errors.append(str(exc))
        if errors:
            pytest.fail("\n".join(errors))


@pytest.fixture(scope="module")
def own_emulator() -> Iterator[Any]:
    """An emulator of this module alone: 8 vCPUs / 16384 MiB, nothing but our VMs."""
    sys.path.insert(0, str(REPO_ROOT / "tests" / "fixtures"))
    from vers_emulator import Emulator  # noqa: E402

    state = Path(tempfile.mkdtemp(prefix="vs-emulator-own-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    emu = Emulator(state, https=True, vcpu_quota=8, mem_quota_mib=16384, exec_limit_s=EXEC_LIMIT_S)
    with emu:
        yield emu
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture()
def rig(vs_bin: Path, emulator: Any, fresh_home: Path, tmp_path: Path) -> Iterator[VersRig]:
    """A rig on the session's emulator."""
    r = VersRig(vs_bin, emulator, fresh_home, tmp_path)
    try:
        yield r
    finally:
        r.teardown()


@pytest.fixture()
def own_rig(vs_bin: Path, own_emulator: Any, fresh_home: Path, tmp_path: Path) -> Iterator[VersRig]:
    """A rig on this module's emulator; the whole quota is free when the test starts."""
    r = VersRig(vs_bin, own_emulator, fresh_home, tmp_path)
    assert r.baseline == 0, f"this module's emulator has {r.baseline} live VMs before the test (an earlier test leaked)"
    try:
        yield r
    finally:
        r.teardown()


# --------------------------------------------------------------------------- 1, 2: exec over SSH in TLS, pooled


def test_exec_goes_over_ssh_inside_tls_not_the_exec_endpoint(rig: VersRig) -> None:
    srv = rig.serve()
    vm_id = rig.create(srv)
    try:
        assert rig.live() == rig.baseline + 1
        before = rig.counters()
        out = srv.exec(vm_id, "echo over-ssh")
        assert out["exit_code"] == 0 and out["stdout"] == "over-ssh\n", out
        after = rig.counters()
        assert after["tls_handshakes"] > before["tls_handshakes"], f"exec made no TLS handshake: {before} -> {after}"
        assert requests_of(after, EXEC_ENDPOINT) == requests_of(before, EXEC_ENDPOINT), \
            f"exec used the REST exec endpoint instead of SSH: {after['requests']}"

        api = rig.serve(env=rig.env(VERS_SWARM_EXEC="api"))
        before = rig.counters()
        out = api.exec(vm_id, "echo over-api")
        assert out["exit_code"] == 0 and out["stdout"] == "over-api\n", out
        after = rig.counters()
        rest = lambda c: requests_of(c, EXEC_ENDPOINT) + requests_of(c, STREAM_ENDPOINT)  # noqa: E731
        assert rest(after) - rest(before) == 1, \
            f"VERS_SWARM_EXEC=api did not call a REST exec endpoint once: {before['requests']} -> {after['requests']}"
        assert after["tls_handshakes"] == before["tls_handshakes"], \
            f"VERS_SWARM_EXEC=api still opened SSH: {before['tls_handshakes']} -> {after['tls_handshakes']}"
        api.close()
    finally:
        rig.delete(srv, [vm_id])
    assert rig.live() == rig.baseline


def test_hundred_execs_share_one_tls_session(rig: VersRig) -> None:
    srv = rig.serve()
    vm_id = rig.create(srv)
    try:
        before = rig.counters()["tls_handshakes"]
        for i in range(100):
            out = srv.exec(vm_id, "true")
            assert out["exit_code"] == 0 and not out.get("timed_out"), f"exec #{i}: {out!r}"
        added = rig.counters()["tls_handshakes"] - before
        assert added == 1, f"100 sequential execs on one VM made {added} TLS handshakes (want 1: a pooled session)"
    finally:
        rig.delete(srv, [vm_id])
    assert rig.live() == rig.baseline


# --------------------------------------------------------------------------- 3: faults and retries


def test_list_vms_retries_503_twice(rig: VersRig) -> None:
    rig.emu.add_faults({"match": r"^GET /api/v1/vms$", "status": 503, "times": 2})
    before = rig.counters()
    out = cli_json(rig.cli("call", "list_vms", "{}"), "call list_vms under two 503s")
    assert out == {"vms": []}, out
    after = rig.counters()
    assert requests_of(after, GET_VMS) - requests_of(before, GET_VMS) == 3, \
        f"want 3 GET /vms (two 503s, then success): {before['requests']} -> {after['requests']}"
    assert after["faults_fired"] - before["faults_fired"] == 2


def test_delete_honours_429_retry_after(rig: VersRig) -> None:
    vm_id = cli_json(rig.cli("call", "create_vm", "{}"), "call create_vm")["vm_id"]
    try:
        rig.emu.add_faults({"match": rf"^DELETE /api/v1/vm/{vm_id}$", "status": 429, "retry_after": 1, "times": 1})
        before = rig.counters()
        out = cli_json(rig.cli("call", "delete", json.dumps({"vm_id": vm_id})), "call delete under a 429")
        after = rig.counters()
        assert out.get("deleted") == [vm_id], out
        assert out.get("not_found") == [], out
        assert requests_of(after, DELETE_VM) - requests_of(before, DELETE_VM) == 2, \
            f"want 2 DELETE requests (429, then success): {before['requests']} -> {after['requests']}"
        assert after["faults_fired"] - before["faults_fired"] == 1
    finally:
        rig.emu.clear_faults()
        rig.cli("call", "delete", json.dumps({"vm_id": vm_id}))
    assert rig.live() == rig.baseline


@pytest.mark.parametrize("fault", [{"drop": True}, {"truncate": True}], ids=["dropped-connection", "truncated-json"])
def test_list_vms_retries_a_broken_answer(rig: VersRig, fault: dict) -> None:
    vm_id = cli_json(rig.cli("call", "create_vm", "{}"), "call create_vm")["vm_id"]
    try:
        rig.emu.add_faults({"match": r"^GET /api/v1/vms$", "times": 1, **fault})
        before = rig.counters()
        out = cli_json(rig.cli("call", "list_vms", "{}"), f"call list_vms under {fault}")
        after = rig.counters()
        assert [v["vm_id"] for v in out["vms"]] == [vm_id], out
        assert out["vms"][0]["state"] != "missing", f"the retried list did not see the VM: {out!r}"
        assert after["faults_fired"] - before["faults_fired"] == 1
        assert requests_of(after, GET_VMS) - requests_of(before, GET_VMS) == 2, \
            f"want 2 GET /vms (the broken one, then a retry): {before['requests']} -> {after['requests']}"
    finally:
        rig.emu.clear_faults()
        out = cli_json(rig.cli("call", "delete", json.dumps({"vm_id": vm_id})), "call delete")
        assert out["deleted"] == [vm_id], out
    assert rig.live() == rig.baseline


def test_create_is_not_retried_on_503(rig: VersRig) -> None:
    srv = rig.serve()
    rig.emu.add_faults({"match": r"^POST /api/v1/vm/new_root$", "status": 503, "times": 1})
    before = rig.counters()
    msg = tool_error_text(srv.call_tool_raw("create_vm", {}), "create_vm under a 503")
    after = rig.counters()
    assert requests_of(after, NEW_ROOT) - requests_of(before, NEW_ROOT) == 1, \
        f"create_vm was retried (want exactly 1 POST new_root): {before['requests']} -> {after['requests']}"
    assert "503" in msg, f"the error does not name the 503: {msg!r}"
    assert rig.live() == rig.baseline
    assert tool_ok(srv, "list_vms", {}) == {"vms": []}


def test_create_whose_answer_was_lost_finds_its_vm(rig: VersRig) -> None:
    """The service made the VM but the answer was lost (a proxy 504 after the
    work was done): create_vm is not retried, finds that VM by its request
    label and returns it, so nothing is left unrecorded."""
    srv = rig.serve()
    rig.emu.add_faults({"match": r"^POST /api/v1/vm/new_root$", "status": 504, "apply": True, "times": 1})
    before = rig.counters()
    created = tool_ok(srv, "create_vm", {})
    after = rig.counters()
    assert requests_of(after, NEW_ROOT) - requests_of(before, NEW_ROOT) == 1, "create_vm was retried"
    vm_id = created["vm_id"]
    assert any("lost" in w for w in created.get("warnings", [])), created
    try:
        assert rig.live() == rig.baseline + 1
        assert [v["vm_id"] for v in tool_ok(srv, "list_vms", {})["vms"]] == [vm_id]
        assert srv.sh(vm_id, "echo found") == "found\n"
    finally:
        rig.delete(srv, [vm_id])
    assert rig.live() == rig.baseline


def test_html_502_page_gives_a_precise_error(rig: VersRig) -> None:
    srv = rig.serve()
    rig.emu.add_faults({"match": r"^POST /api/v1/vm/new_root$", "status": 502, "times": 1,
                        "body": HTML_502, "content_type": "text/html"})
    before = rig.counters()
    msg = tool_error_text(srv.call_tool_raw("create_vm", {}), "create_vm under an HTML 502")
    after = rig.counters()
    assert requests_of(after, NEW_ROOT) - requests_of(before, NEW_ROOT) == 1, after["requests"]
    assert "502" in msg, f"the error does not name the 502: {msg!r}"
    assert "new_root" in msg or "create" in msg.lower(), f"the error does not say which call failed: {msg!r}"
    assert srv.proc.poll() is None, "the server died on an HTML error page"
    # still serving, and still creating
    vm_id = rig.create(srv)
    try:
        assert srv.sh(vm_id, "echo alive") == "alive\n"
    finally:
        rig.delete(srv, [vm_id])
    assert rig.live() == rig.baseline


# --------------------------------------------------------------------------- 4: a wrong key


def test_wrong_key_is_refused_and_never_echoed(rig: VersRig) -> None:
    right = rig.emu.api_key
    wrong = wrong_key_for(right)
    assert len(wrong) == len(right) and wrong != right
    env = rig.env(VERS_API_KEY=wrong, VERS_SWARM_LOG="debug")
    srv = rig.serve(env=env)
    msg = tool_error_text(srv.call_tool_raw("create_vm", {}), "create_vm with a wrong key")
    assert "VERS_API_KEY" in msg, f"the error does not point at VERS_API_KEY: {msg!r}"
    assert "403" in msg, f"the error does not name the 403: {msg!r}"
    srv.close()
    assert rig.live() == rig.baseline

    doctor = rig.cli("doctor", env=env)
    assert doctor.returncode != 0, f"doctor exited 0 with a wrong key: {doctor.stdout!r}"
    assert re.search(r"(?m)^fail\s+api key\b", doctor.stdout), f"doctor does not fail the api key line:\n{doctor.stdout}"

    sources = {
        "the create_vm message": msg,
        "serve stdout": "\n".join(json.dumps(m) for m in srv.messages),
        "serve stderr": srv.stderr_path.read_text(errors="replace"),
        "doctor stdout": doctor.stdout,
        "doctor stderr": doctor.stderr,
    }
    assert_no_secrets(sources, {"the wrong key": wrong, "the wrong key's hex": wrong[36:],
                                "the right key": right, "the right key's hex": right[36:]})


# --------------------------------------------------------------------------- 5, 6, 7: the quota


def test_quota_refuses_a_third_four_vcpu_vm(own_rig: VersRig) -> None:
    rig = own_rig
    srv = rig.serve()
    made: list[str] = []
    try:
        made.append(rig.create(srv, vcpu_count=4))
        made.append(rig.create(srv, vcpu_count=4))
        assert rig.live() == 2
        msg = tool_error_text(srv.call_tool_raw("create_vm", {"vcpu_count": 4}), "a third 4-vCPU create_vm")
        assert re.search(r"quota|limit", msg, re.I), f"the error does not mention the quota: {msg!r}"
        assert rig.live() == 2, "the refused create left a VM"
        listed = sorted(v["vm_id"] for v in tool_ok(srv, "list_vms", {})["vms"])
        assert listed == sorted(made), listed
    finally:
        if made:
            rig.delete(srv, made)
    assert rig.live() == 0


def make_golden_commit(rig: VersRig, srv: RawServer) -> tuple[str, str]:
    """(golden VM id, commit id): a 1-vCPU VM with /root/golden, committed; the VM stays live."""
    vm_id = rig.create(srv, vcpu_count=1)
    srv.sh(vm_id, "echo golden > /root/golden")
    out = tool_ok(srv, "commit", {"vm_id": vm_id, "label": f"golden-{secrets.token_hex(4)}"})
    assert isinstance(out.get("commit_id"), str) and out["commit_id"], out
    return vm_id, out["commit_id"]


@contextlib.contextmanager
def golden_commit(rig: VersRig) -> Iterator[tuple[RawServer, str, str]]:
    """(server, golden VM id, commit id); afterwards the golden VM is deleted
    and nothing else the test made may still be live."""
    srv = rig.serve()
    golden, commit_id = make_golden_commit(rig, srv)
    try:
        yield srv, golden, commit_id
    finally:
        rig.delete(srv, [golden])
    assert rig.live() == rig.baseline


def test_partial_branch_is_rolled_back(own_rig: VersRig) -> None:
    rig = own_rig
    with golden_commit(rig) as (srv, golden, commit_id):
        assert rig.live() == 1
        before = rig.counters()
        msg = tool_error_text(srv.call_tool_raw("branch", {"from": commit_id, "count": 10}, timeout=4 * TIMEOUT),
                              "branch 10 under an 8-vCPU quota")
        assert re.search(r"stopped|part-?way|partial|only", msg, re.I), f"the error does not say the branch stopped part-way: {msg!r}"
        assert re.search(r"quota|limit", msg, re.I), f"the error does not say why (the quota): {msg!r}"
        after = rig.counters()
        assert requests_of(after, BRANCHES) > requests_of(before, BRANCHES), after["requests"]
        assert rig.live() == 1, f"VMs of the partial branch are still live: {rig.live() - 1}"
        listed = [v["vm_id"] for v in tool_ok(srv, "list_vms", {})["vms"]]
        assert listed == [golden], f"list_vms after the failed branch: {listed}"


BRANCH_FAULT = r"^POST /api/v1/vm/branch/by_commit/[^/]+$"


def test_branch_whose_answer_was_lost_leaves_nothing_behind(rig: VersRig) -> None:
    """The service made the children but the answer was lost (a proxy 504
    after the work was done): branch is not retried, finds the unlabelled
    children of the commit and deletes them with the rest of the failed
    branch, so none stays billed and unseen."""
    with golden_commit(rig) as (srv, golden, commit_id):
        rig.emu.add_faults({"match": BRANCH_FAULT, "status": 504, "apply": True, "times": 1})
        before = rig.counters()
        msg = tool_error_text(srv.call_tool_raw("branch", {"from": commit_id, "count": 3}), "branch under a lost answer")
        after = rig.counters()
        assert requests_of(after, BRANCHES) - requests_of(before, BRANCHES) == 1, "branch was retried"
        assert "504" in msg and "3 VM(s) it made anyway were found" in msg and "deleted" in msg, msg
        assert rig.live() == rig.baseline + 1, f"children of the lost branch are still live: {rig.live() - rig.baseline - 1}"
        assert [v["vm_id"] for v in tool_ok(srv, "list_vms", {})["vms"]] == [golden]


def test_swarm_map_uses_the_vms_of_a_lost_branch_answer(rig: VersRig) -> None:
    with golden_commit(rig) as (srv, golden, commit_id):
        rig.emu.add_faults({"match": BRANCH_FAULT, "status": 504, "apply": True, "times": 1})
        before = rig.counters()
        result = srv.call_tool("swarm_map", {"from": commit_id, "tasks": ["cat /root/golden"] * 3, "concurrency": 3},
                               timeout=4 * TIMEOUT)
        sc = result["structuredContent"]
        assert not result.get("isError") and sc["summary"]["ok"] == 3, json.dumps(sc)[:3000]
        assert all(r["stdout"] == "golden\n" for r in sc["results"]), sc["results"]
        assert requests_of(rig.counters(), BRANCHES) - requests_of(before, BRANCHES) == 1, \
            "the swarm branched again instead of using the VMs the lost answer made"
        assert rig.live() == rig.baseline + 1, f"the swarm left {rig.live() - rig.baseline - 1} VM(s) live"


def test_swarm_map_queues_within_the_quota(own_rig: VersRig) -> None:
    rig = own_rig
    with golden_commit(rig) as (srv, golden, commit_id):
        args = {"from": commit_id, "tasks": [f"echo {n}" for n in range(12)], "concurrency": 12}
        result = srv.call_tool("swarm_map", args, timeout=6 * TIMEOUT)
        sc = result["structuredContent"]
        assert not result.get("isError"), f"swarm_map failed under the quota: {json.dumps(sc)[:4000]}"
        results = sc["results"]
        assert [r["index"] for r in results] == list(range(12)), results
        for n, r in enumerate(results):
            assert r["status"] == "ok", f"task {n}: {r!r}"
            assert r["exit_code"] == 0 and r["stdout"] == f"{n}\n", f"task {n}: {r!r}"
        assert sc["summary"]["ok"] == 12, sc["summary"]
        assert rig.live() == 1, f"the swarm left {rig.live() - 1} VM(s) live"
        listed = [v["vm_id"] for v in tool_ok(srv, "list_vms", {})["vms"]]
        assert listed == [golden], listed


# --------------------------------------------------------------------------- 8, 9: sshd dies, VM vanishes


def test_exec_survives_sshd_killed_mid_command(rig: VersRig) -> None:
    srv = rig.serve()
    vm_id = rig.create(srv)
    try:
        assert srv.sh(vm_id, "echo warm") == "warm\n"  # a pooled session exists
        mid = srv.next_id()
        srv.send({"jsonrpc": "2.0", "id": mid, "method": "tools/call",
                  "params": {"name": "exec", "arguments": {"vm_id": vm_id, "command": "sleep 5; echo done",
                                                          "timeout_s": 60}}})
        time.sleep(1.0)
        killer_error: list[BaseException] = []

        def kill() -> None:
            try:
                rig.emu.kill_sshd(vm_id)
            except BaseException as exc:  # noqa: BLE001
                killer_error.append(exc)

        t = threading.Thread(target=kill, daemon=True)
        t.start()
        resp = srv.wait_response(mid, timeout=2 * TIMEOUT)  # answers; no hang
        t.join(TIMEOUT)
        assert not t.is_alive(), "kill_sshd did not return"
        assert not killer_error, f"kill_sshd failed: {killer_error[0]!r}"
        if "error" in resp:
            pass  # a JSON-RPC error is an answer too
        else:
            result = resp["result"]
            sc = result.get("structuredContent") or {}
            assert result.get("isError") is True or sc.get("exit_code") not in (0, None), \
                f"an exec whose sshd was killed mid-command reported success: {result!r:.3000}"
            assert not (sc.get("exit_code") == 0 and "done" in sc.get("stdout", "")), result

        rig.emu.restart_sshd(vm_id)
        out = srv.exec(vm_id, "echo again")
        assert out["exit_code"] == 0 and out["stdout"] == "again\n", f"no reconnect after sshd restarted: {out!r}"
    finally:
        rig.delete(srv, [vm_id])
    assert rig.live() == rig.baseline


def test_connection_reset_mid_command_never_runs_it_twice(rig: VersRig) -> None:
    """The network drops the SSH connection while a command runs (sshd stays
    up): the call answers with an error naming the unknown outcome, and the
    command is not sent again on a fresh connection."""
    srv = rig.serve()
    vm_id = rig.create(srv)
    try:
        assert srv.sh(vm_id, "echo warm") == "warm\n"
        mid = srv.next_id()
        srv.send({"jsonrpc": "2.0", "id": mid, "method": "exec",
                  "params": {"vm_id": vm_id, "command": "echo ran >> /root/runs; sleep 3", "timeout_s": 60}})
        poll(lambda: srv.sh(vm_id, "cat /root/runs 2>/dev/null || true"), lambda out: out == "ran\n",
             "the command to start")
        rig.emu.drop_connections(vm_id)
        resp = srv.wait_response(mid, timeout=TIMEOUT)
        assert "error" in resp, f"an exec whose connection was cut reported a result: {resp!r:.2000}"
        assert "not run again" in resp["error"]["message"], resp
        time.sleep(4)  # longer than the command: a second run would have appended by now
        assert srv.sh(vm_id, "cat /root/runs") == "ran\n", "the command ran twice"
    finally:
        rig.delete(srv, [vm_id])
    assert rig.live() == rig.baseline


def test_stale_pooled_connection_is_replaced_before_the_command_runs(rig: VersRig) -> None:
    """A pooled connection the network dropped while idle: the next exec
    notices before its command started, reconnects, and runs it once."""
    srv = rig.serve()
    vm_id = rig.create(srv)
    try:
        assert srv.sh(vm_id, "echo warm") == "warm\n"
        before = rig.emu.counters()["tls_handshakes"]
        rig.emu.drop_connections(vm_id)
        out = srv.exec(vm_id, "echo once >> /root/stale; cat /root/stale")
        assert out["exit_code"] == 0 and out["stdout"] == "once\n", out
        assert rig.emu.counters()["tls_handshakes"] == before + 1
    finally:
        rig.delete(srv, [vm_id])
    assert rig.live() == rig.baseline


def _vm_deleted_behind(rig: VersRig) -> tuple[RawServer, str]:
    """A server and a VM it knew (key cached, SSH session pooled) that the service then deleted."""
    srv = rig.serve()
    vm_id = rig.create(srv)
    try:
        assert srv.sh(vm_id, "echo here") == "here\n"
    except BaseException:
        rig.delete(srv, [vm_id])
        raise
    rig.emu.delete_behind(vm_id)
    assert rig.live() == rig.baseline
    return srv, vm_id


def test_exec_on_a_vm_deleted_behind_the_bridge(rig: VersRig) -> None:
    srv, vm_id = _vm_deleted_behind(rig)
    try:
        msg = tool_error_text(srv.call_tool_raw("exec", {"vm_id": vm_id, "command": "echo hi"}),
                              "exec on a VM deleted behind the bridge")
        assert vm_id in msg, f"the error does not name the VM: {msg!r}"
        assert re.search(r"not found|no longer exists|does not exist|no such vm|gone", msg, re.I), \
            f"the error does not say the VM is gone: {msg!r}"
    finally:
        srv.call_tool_raw("delete", {"vm_id": vm_id})  # drops the registry row
    assert rig.live() == rig.baseline


def test_delete_of_a_vm_deleted_behind_the_bridge(rig: VersRig) -> None:
    srv, vm_id = _vm_deleted_behind(rig)
    out = tool_ok(srv, "delete", {"vm_id": vm_id})
    listed = [v["vm_id"] for v in tool_ok(srv, "list_vms", {})["vms"]]
    assert vm_id not in listed, f"the registry still lists {vm_id}: {listed}"
    assert out.get("not_found") == [vm_id] and out.get("deleted") == [], \
        f"delete of a VM deleted behind the bridge should report it in not_found: {out!r}"
    assert rig.live() == rig.baseline


# --------------------------------------------------------------------------- 10: TLS verification


def test_tls_name_mismatch_and_missing_ca_are_refused(rig: VersRig) -> None:
    srv = rig.serve(env=rig.env(VERS_SSH_HOST_TEMPLATE="{vm_id}.wrong.example"))
    vm_id = rig.create(srv)
    try:
        msg = tool_error_text(srv.call_tool_raw("exec", {"vm_id": vm_id, "command": "echo hi"}),
                              "exec with a host name the certificate does not cover")
        assert re.search(r"certificate|ssl|tls", msg, re.I), f"the error does not name the certificate/TLS problem: {msg!r}"
    finally:
        rig.delete(srv, [vm_id])
    assert rig.live() == rig.baseline

    no_ca = rig.serve(env=rig.env(VERS_CA_FILE=""))
    before = rig.counters()
    msg = tool_error_text(no_ca.call_tool_raw("create_vm", {}), "create_vm without VERS_CA_FILE")
    assert re.search(r"certificate", msg, re.I), f"the error does not name the certificate problem: {msg!r}"
    assert requests_of(rig.counters(), NEW_ROOT) == requests_of(before, NEW_ROOT), "a request went through an unverified TLS"
    assert rig.live() == rig.baseline


class NameBlindTLSListener:
    """A TLS listener that presents the emulator's `*.vm.test` certificate for ANY
    server name (unlike the emulator's terminator, which refuses unknown names
    before a certificate is sent), then an SSH banner. Only a client that checks
    the certificate's name against the host name stops it."""

    def __init__(self, emu: Any) -> None:
        import socket
        import ssl

        tls_dir = Path(emu.state_dir) / "tls"
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(tls_dir / "vm.pem"), str(tls_dir / "vm.key"))
        self.names: list[str | None] = []
        self.handshakes = 0
        self.ctx.sni_callback = lambda sslobj, name, ctx: self.names.append(name)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="name-blind-tls", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import socket

        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Any) -> None:
        conn.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()
            return
        self.handshakes += 1
        try:
            tls.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
            while tls.recv(4096):
                pass
        except OSError:
            pass
        finally:
            tls.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(5)


def test_ssh_certificate_name_is_verified(rig: VersRig) -> None:
    listener = NameBlindTLSListener(rig.emu)
    try:
        srv = rig.serve(env=rig.env(VERS_SSH_HOST_TEMPLATE="{vm_id}.wrong.example",
                                    VERS_SSH_CONNECT_TO=f"127.0.0.1:{listener.port}"))
        vm_id = rig.create(srv)
        try:
            msg = tool_error_text(srv.call_tool_raw("exec", {"vm_id": vm_id, "command": "echo hi"}),
                                  "exec through a TLS endpoint whose certificate does not cover the host name")
            assert f"{vm_id}.wrong.example" in listener.names, f"the bridge did not send the SNI: {listener.names}"
            assert re.search(r"certificate|subject name|host ?name", msg, re.I), \
                f"the error does not name the certificate mismatch: {msg!r}"
        finally:
            rig.delete(srv, [vm_id])
    finally:
        listener.close()
    assert rig.live() == rig.baseline


# --------------------------------------------------------------------------- 11: secrets


def test_secrets_never_leak(rig: VersRig) -> None:
    emu, home = rig.emu, rig.home
    right = emu.api_key
    wrong = wrong_key_for(right)
    srv = rig.serve(env=rig.env(VERS_SWARM_LOG="debug"))
    env_dumps: dict[str, str] = {}
    private_keys: dict[str, str] = {}
    vms: list[str] = []
    env_cmd = "env; echo ---; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; true"
    try:
        vm0 = rig.create(srv)
        vms.append(vm0)
        assert srv.sh(vm0, "echo state > /root/state && cat /root/state") == "state\n"
        env_dumps[vm0] = srv.sh(vm0, env_cmd)
        label = f"secret-{secrets.token_hex(4)}"
        commit = tool_ok(srv, "commit", {"vm_id": vm0, "label": label})
        assert commit.get("commit_id"), commit
        branched = tool_ok(srv, "branch", {"from": label, "count": 2}, timeout=2 * TIMEOUT)
        kids = [v["vm_id"] for v in branched["vms"]]
        vms += kids
        assert len(kids) == 2, branched
        for kid in kids:
            assert srv.sh(kid, "cat /root/state") == "state\n"
            env_dumps[kid] = srv.sh(kid, env_cmd)
        creds = {}
        for vm in vms:
            creds[vm] = tool_ok(srv, "ssh_credentials", {"vm_id": vm})
        failing = srv.call_tool("exec", {"vm_id": vm0, "command": "echo oops >&2; exit 7"})
        assert failing.get("isError") is True and failing["structuredContent"]["exit_code"] == 7, failing

        bad = rig.cli("call", "create_vm", "{}", env=rig.env(VERS_API_KEY=wrong, VERS_SWARM_LOG="debug"))
        assert bad.returncode != 0, f"a wrong-key create_vm exited 0: {bad.stdout!r}"

        for vm in vms:
            private_keys[vm] = fetch_private_key(emu, vm)
        keys_dir = home / "keys"
        key_files = sorted(p for p in keys_dir.iterdir() if p.is_file()) if keys_dir.is_dir() else []
        for vm in vms:
            assert Path(creds[vm]["key_file"]).is_file(), creds[vm]
            assert Path(creds[vm]["key_file"]).resolve().parent == keys_dir.resolve(), creds[vm]
        for p in key_files:
            mode = stat.S_IMODE(p.stat().st_mode)
            assert mode == 0o600, f"{p} has mode {oct(mode)}, not 0600"

        ls = rig.cli("ls", env=rig.env(VERS_SWARM_LOG="debug"))
        assert ls.returncode == 0, ls
        assert all(vm in ls.stdout for vm in vms), ls.stdout
        doctor = rig.cli("doctor", env=rig.env(VERS_SWARM_LOG="debug"))
        assert re.search(r"(?m)^ok\s+api key\b", doctor.stdout), f"doctor with the right key:\n{doctor.stdout}"
        dump = registry_dump(home)

        other_files = {}
        for p in sorted(home.rglob("*")):
            if p.is_file() and keys_dir not in p.parents:
                other_files[f"state file {p.relative_to(home)}"] = p.read_bytes().decode("latin-1")
    finally:
        if vms:
            rig.delete(srv, vms)
    srv.close()
    assert rig.live() == rig.baseline

    sources = {
        "serve stdout": "\n".join(json.dumps(m, ensure_ascii=False) for m in srv.messages) + "\n".join(srv.bad_lines),
        "serve stderr": srv.stderr_path.read_text(errors="replace"),
        "wrong-key call stdout": bad.stdout,
        "wrong-key call stderr": bad.stderr,
        "ls stdout": ls.stdout, "ls stderr": ls.stderr,
        "doctor stdout": doctor.stdout, "doctor stderr": doctor.stderr,
        "registry dump": dump,
        **{f"environment of VM {vm}": text for vm, text in env_dumps.items()},
        **other_files,
    }
    needles = {"the API key": right, "the API key's hex": right[36:],
               "the wrong key": wrong, "the wrong key's hex": wrong[36:]}
    for vm, key in private_keys.items():
        for i, needle in enumerate(key_needles(key)):
            needles[f"VM {vm}'s private key (part {i})"] = needle
    assert_no_secrets(sources, needles)


# --------------------------------------------------------------------------- 12: gc --reconcile


def test_gc_reconcile_recovers_vms_of_a_lost_state_dir(own_rig: VersRig) -> None:
    rig = own_rig
    home_a = new_home()
    rig.homes.append(home_a)
    made: list[str] = []
    try:
        a1 = cli_json(rig.cli("call", "create_vm", json.dumps({"session": "s-a"}), home=home_a), "create_vm in home A")
        made.append(a1["vm_id"])
        a2 = cli_json(rig.cli("call", "create_vm", "{}", home=home_a), "create_vm in home A")
        made.append(a2["vm_id"])
        assert rig.live() == 2
        shutil.rmtree(home_a)  # the state dir is lost
        assert not home_a.exists()

        home_b = rig.home  # a fresh state dir, same key
        report = cli_json(rig.cli("gc", "--reconcile", home=home_b), "gc --reconcile in home B")
        assert sorted(report.get("recovered", [])) == sorted(made), f"gc --reconcile report: {report!r}"
        assert rig.live() == 2, "gc --reconcile deleted VMs it should have recovered"

        ls = rig.cli("ls", home=home_b)
        assert ls.returncode == 0, ls
        for vm in made:
            assert vm in ls.stdout, f"`ls` in home B does not list {vm}:\n{ls.stdout}"
        sessions = cli_json(rig.cli("call", "sessions", "{}", home=home_b), "call sessions")
        bound = {s["session"]: s["vm_id"] for s in sessions["sessions"]}
        assert bound.get("s-a") == made[0], f"session s-a is not bound to {made[0]}: {sessions!r}"

        out = cli_json(rig.cli("call", "delete", '{"all":true}', home=home_b), "delete all in home B")
        assert sorted(out["deleted"]) == sorted(made), out
        made = []
    finally:
        shutil.rmtree(home_a, ignore_errors=True)
    assert rig.live() == rig.baseline


# --------------------------------------------------------------------------- 13: ssh_credentials


def test_ssh_credentials_log_in_with_openssh(rig: VersRig) -> None:
    if not shutil.which("ssh") or not shutil.which("openssl"):
        pytest.fail("ssh and openssl are needed on PATH")
    srv = rig.serve()
    vm_id = rig.create(srv)
    try:
        resp = srv.call_tool_raw("ssh_credentials", {"vm_id": vm_id})
        assert "PRIVATE KEY" not in json.dumps(resp), "ssh_credentials returned key text"
        assert "error" not in resp and not resp["result"].get("isError"), resp
        sc = check_tool_result(resp["result"], srv.tool_schemas().get("ssh_credentials"))
        key_file = Path(sc["key_file"])
        assert key_file.is_file(), sc
        mode = stat.S_IMODE(key_file.stat().st_mode)
        assert mode == 0o600, f"{key_file} has mode {oct(mode)}, not 0600"
        assert sc["vm_id"] == vm_id and sc["user"] == "root", sc
        cmd = sc["ssh_command"] + " -o UserKnownHostsFile=/dev/null -o BatchMode=yes 'echo ok'"
        try:
            r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=TIMEOUT,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"ssh_command did not finish within {TIMEOUT} s: {exc.stderr!r:.2000}") from None
        assert r.returncode == 0 and r.stdout == "ok\n", \
            f"ssh_command failed (exit {r.returncode}): stdout={r.stdout!r} stderr={r.stderr[-2000:]!r}\ncommand: {cmd}"
    finally:
        rig.delete(srv, [vm_id])
    assert rig.live() == rig.baseline


def test_api_exec_streams_commands_past_the_sync_limit(own_rig: VersRig) -> None:
    """With VERS_SWARM_EXEC=api, short commands use the synchronous endpoint and the rest the streamed one,
    so a command longer than the service's synchronous limit still completes."""
    srv = own_rig.serve(env=own_rig.env(VERS_SWARM_EXEC="api"))
    vm_id = own_rig.create(srv)
    try:
        before = own_rig.counters()
        out = srv.exec(vm_id, f"sleep {EXEC_LIMIT_S + 1}; echo done")
        assert out["exit_code"] == 0 and out["stdout"] == "done\n", out
        after = own_rig.counters()
        assert requests_of(after, STREAM_ENDPOINT) - requests_of(before, STREAM_ENDPOINT) == 1
        assert requests_of(after, EXEC_ENDPOINT) == requests_of(before, EXEC_ENDPOINT)

        quick = srv.exec(vm_id, "echo quick", timeout_s=10)
        assert quick["stdout"] == "quick\n", quick
        assert requests_of(own_rig.counters(), EXEC_ENDPOINT) - requests_of(after, EXEC_ENDPOINT) == 1

        # A short timeout promises a short command: one that outlives the synchronous limit gets a clear error.
        resp = srv.request("exec", {"vm_id": vm_id, "command": f"sleep {EXEC_LIMIT_S + 2}", "timeout_s": 20},
                           timeout=60)
        assert resp["error"]["code"] == -32000, resp
        assert "504" in resp["error"]["message"] and "SSH" in resp["error"]["message"], resp
    finally:
        own_rig.delete(srv, [vm_id])
