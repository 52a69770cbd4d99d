"""Sessions: naming a VM for a sub-agent, and the scoped bridge a sub-agent runs.

A coordinator (a plain `serve` on the module's home) binds session names to
VMs with create_vm {session}, branch {sessions}, bind_session, or swarm_map
task sessions; exec/commit/read_file/write_file then accept a session instead
of a vm_id. A sub-agent's bridge is `serve --session NAME` (or
VERS_SWARM_SESSION=NAME) on the same VERS_SWARM_HOME: it offers only exec,
read_file, write_file and commit, and only on its session's VM.

Session names are random per test, so tests sharing the module's registry do
not collide; every VM a test makes is deleted in a finally block.
"""

from __future__ import annotations

import json
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import anyio
import pytest

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import TIMEOUT, RawServer, assert_invalid, close_servers, error_path, server_env, tool_error_text

SCOPED_TOOLS = {"exec", "read_file", "write_file", "commit"}
# ssh_credentials {vm_id|session} also acts on the session's own VM only; the server
# may offer it on a scoped bridge (it must then be scoped like exec), nothing else.
OPTIONAL_SCOPED_TOOLS = {"ssh_credentials"}


def assert_scoped_tool_set(tools: set[str]) -> None:
    assert SCOPED_TOOLS <= tools <= SCOPED_TOOLS | OPTIONAL_SCOPED_TOOLS, (
        f"a scoped bridge must list exec, read_file, write_file, commit (and at most "
        f"{sorted(OPTIONAL_SCOPED_TOOLS)}): {sorted(tools)}"
    )
COORDINATOR_ONLY = ["create_vm", "delete", "branch", "swarm_map", "list_vms", "sessions", "bind_session",
                    "unbind_session", "commits"]


# --------------------------------------------------------------------------- helpers


def name(prefix: str = "s") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def session_map(srv: RawServer) -> dict[str, str]:
    """session -> vm_id, from the sessions tool."""
    out = srv.call_tool("sessions", {})["structuredContent"]
    return {s["session"]: s["vm_id"] for s in out["sessions"]}


@contextmanager
def vms(srv: RawServer, *vm_ids: str) -> Iterator[list[str]]:
    """Delete these VMs (and any appended to the list) when the block ends."""
    tracked = list(vm_ids)
    try:
        yield tracked
    finally:
        if srv.proc.poll() is None and tracked:
            srv.delete_vms(tracked)


@pytest.fixture()
def coord(server: RawServer) -> RawServer:
    """The coordinator's bridge, after the MCP handshake."""
    server.initialize()
    return server


@pytest.fixture()
def scoped(vs_bin: Path, vs_home: Path, tmp_path: Path) -> Iterator[Callable[..., RawServer]]:
    """Factory: scoped(session, via_env=False) -> an initialized sub-agent bridge on the
    module's home (`serve --session NAME`, or VERS_SWARM_SESSION=NAME); like the `serve`
    fixture, each is closed at teardown and must exit 0 with nothing but JSON-RPC on stdout."""
    started: list[RawServer] = []

    def start(session: str, *, via_env: bool = False) -> RawServer:
        srv = RawServer(
            vs_bin, vs_home,
            stderr_path=tmp_path / f"scoped-{len(started)}.stderr",
            env={"VERS_SWARM_SESSION": session} if via_env else None,
            args=("serve",) if via_env else ("serve", "--session", session),
        )
        started.append(srv)
        srv.initialize()
        return srv

    yield start
    errors = close_servers(started)
    if errors:
        pytest.fail("\n".join(errors))


# --------------------------------------------------------------------------- coordinator side


def test_create_vm_with_session_and_use_it_by_name(coord: RawServer) -> None:
    s = name()
    out = coord.call_tool("create_vm", {"session": s})["structuredContent"]
    vm_id = out["vm_id"]
    with vms(coord, vm_id):
        assert out.get("session") == s, out
        assert session_map(coord).get(s) == vm_id
        assert [v["vm_id"] for v in coord.plain("list_vms", {"session": s})["vms"]] == [vm_id]

        r = coord.call_tool("write_file", {"session": s, "path": "/root/note", "content": "by-session"})
        assert r["structuredContent"]["size"] == len("by-session")
        assert coord.sh(vm_id, "cat /root/note") == "by-session"  # same VM, addressed by id
        r = coord.call_tool("exec", {"session": s, "command": "cat /root/note"})
        assert r["structuredContent"]["stdout"] == "by-session"
        r = coord.call_tool("read_file", {"session": s, "path": "/root/note"})
        assert r["structuredContent"]["content"] == "by-session"
        c = coord.call_tool("commit", {"session": s, "label": name("c")})["structuredContent"]
        assert c.get("vm_id", vm_id) == vm_id, c
        # plain methods accept the session too
        assert coord.plain("exec", {"session": s, "command": "echo plain"})["stdout"] == "plain\n"

        d = coord.call_tool("delete", {"session": s})["structuredContent"]
        assert d["deleted"] == [vm_id], d
    assert s not in session_map(coord)
    assert vm_id not in {v["vm_id"] for v in coord.plain("list_vms", {})["vms"]}


def test_bind_and_unbind(coord: RawServer) -> None:
    a, b = coord.create_vm(), coord.create_vm()
    with vms(coord, a, b):
        s = name()
        out = coord.call_tool("bind_session", {"session": s, "vm_id": a})["structuredContent"]
        assert out == {"session": s, "vm_id": a}
        assert session_map(coord)[s] == a
        assert coord.call_tool("exec", {"session": s, "command": "echo hi"})["structuredContent"]["stdout"] == "hi\n"

        out = coord.call_tool("unbind_session", {"session": s})["structuredContent"]
        assert out == {"session": s, "vm_id": a}
        assert s not in session_map(coord)
        assert a in {v["vm_id"] for v in coord.plain("list_vms", {})["vms"]}, "unbinding must not delete the VM"

        # the name and the VM are both free again
        assert coord.call_tool("bind_session", {"session": s, "vm_id": b})["structuredContent"]["vm_id"] == b
        t = name()
        assert coord.call_tool("bind_session", {"session": t, "vm_id": a})["structuredContent"]["vm_id"] == a
        assert session_map(coord)[s] == b and session_map(coord)[t] == a


def test_binding_a_session_twice_is_a_conflict(coord: RawServer) -> None:
    a, b = coord.create_vm(), coord.create_vm()
    with vms(coord, a, b):
        s = name()
        coord.call_tool("bind_session", {"session": s, "vm_id": a})
        text = tool_error_text(coord.call_tool_raw("bind_session", {"session": s, "vm_id": b}))
        assert a in text, f"the conflict should name the VM the session is bound to: {text!r}"
        assert session_map(coord)[s] == a, "a refused bind changed the binding"
        resp = coord.request("bind_session", {"session": s, "vm_id": b})
        assert resp.get("error", {}).get("code") == -32000, resp
        assert resp["error"]["data"]["kind"] == "conflict", resp


def test_binding_a_vm_bound_to_another_session_is_refused(coord: RawServer) -> None:
    a = coord.create_vm()
    with vms(coord, a):
        s, t = name(), name()
        coord.call_tool("bind_session", {"session": s, "vm_id": a})
        text = tool_error_text(coord.call_tool_raw("bind_session", {"session": t, "vm_id": a}))
        assert s in text or a in text, text
        sessions = session_map(coord)
        assert sessions.get(s) == a and t not in sessions, sessions


def test_unbind_unknown_session_is_not_found(coord: RawServer) -> None:
    s = name("ghost")
    text = tool_error_text(coord.call_tool_raw("unbind_session", {"session": s}))
    assert s in text, text
    resp = coord.request("unbind_session", {"session": s})
    assert resp.get("error", {}).get("code") == -32000, resp
    assert resp["error"]["data"]["kind"] == "not_found", resp


def test_bind_to_unknown_vm_is_not_found(coord: RawServer) -> None:
    missing = f"vm-missing-{secrets.token_hex(4)}"
    s = name()
    text = tool_error_text(coord.call_tool_raw("bind_session", {"session": s, "vm_id": missing}))
    assert missing in text, text
    assert s not in session_map(coord)


def test_session_bound_to_nothing(coord: RawServer) -> None:
    s = name("ghost")
    for tool, args in [("exec", {"command": "true"}), ("read_file", {"path": "/etc/hostname"}),
                       ("write_file", {"path": "/root/x", "content": "x"}), ("commit", {})]:
        text = tool_error_text(coord.call_tool_raw(tool, {"session": s, **args}))
        assert s in text, (tool, text)
    resp = coord.request("exec", {"session": s, "command": "true"})
    assert resp.get("error", {}).get("code") == -32000, resp
    assert resp["error"]["data"]["kind"] == "not_found", resp


def test_deleting_a_vm_removes_its_binding(coord: RawServer) -> None:
    a = coord.create_vm()
    s = name()
    with vms(coord, a):
        coord.call_tool("bind_session", {"session": s, "vm_id": a})
        assert session_map(coord)[s] == a
        assert coord.delete_vms([a])["deleted"] == [a]
    assert s not in session_map(coord), "a deleted VM's binding is still listed"
    text = tool_error_text(coord.call_tool_raw("exec", {"session": s, "command": "true"}))
    assert s in text, text


def test_vm_id_and_session_together_is_invalid(coord: RawServer) -> None:
    a, b = coord.create_vm(), coord.create_vm()
    with vms(coord, a, b):
        s = name()
        coord.call_tool("bind_session", {"session": s, "vm_id": a})
        coord.sh(b, "echo B > /root/who")
        resp = coord.call_tool_raw("exec", {"session": s, "vm_id": b, "command": "echo X > /root/who"})
        assert resp.get("error", {}).get("code") == -32602, resp
        assert error_path(resp) in ("arguments.session", "arguments.vm_id"), resp
        assert coord.sh(b, "cat /root/who") == "B\n"
        # binding a session again to the VM it already has is harmless
        out = coord.call_tool("bind_session", {"session": s, "vm_id": a})["structuredContent"]
        assert out == {"session": s, "vm_id": a}


# --------------------------------------------------------------------------- branch with sessions


def test_branch_with_sessions(coord: RawServer) -> None:
    origin = coord.create_vm()
    with vms(coord, origin) as made:
        coord.sh(origin, "echo golden > /root/golden")
        names = [name("w") for _ in range(3)]
        out = coord.call_tool("branch", {"from": origin, "sessions": names})["structuredContent"]
        made.extend(v["vm_id"] for v in out["vms"])
        assert [v.get("session") for v in out["vms"]] == names, out
        assert len({v["vm_id"] for v in out["vms"]}) == 3 and origin not in made[1:]
        sessions = session_map(coord)
        for v in out["vms"]:
            assert sessions[v["session"]] == v["vm_id"]

        # each session addresses its own VM
        for i, n in enumerate(names):
            coord.call_tool("write_file", {"session": n, "path": "/root/me", "content": n})
            assert coord.call_tool("exec", {"session": n, "command": "cat /root/golden"})["structuredContent"]["stdout"] == "golden\n"
        for v in out["vms"]:
            assert coord.sh(v["vm_id"], "cat /root/me") == v["session"]

        d = coord.call_tool("delete", {"session": names[0]})["structuredContent"]
        assert d["deleted"] == [out["vms"][0]["vm_id"]], d
        sessions = session_map(coord)
        assert names[0] not in sessions and names[1] in sessions and names[2] in sessions


def test_branch_with_sessions_and_matching_count(coord: RawServer) -> None:
    origin = coord.create_vm()
    with vms(coord, origin) as made:
        names = [name("w"), name("w")]
        out = coord.call_tool("branch", {"from": origin, "sessions": names, "count": 2})["structuredContent"]
        made.extend(v["vm_id"] for v in out["vms"])
        assert [v.get("session") for v in out["vms"]] == names


@pytest.mark.parametrize("count", [1, 3])
def test_branch_sessions_count_mismatch(coord: RawServer, count: int) -> None:
    origin = coord.create_vm()
    with vms(coord, origin):
        before = {v["vm_id"] for v in coord.plain("list_vms", {})["vms"]}
        names = [name("w"), name("w")]
        assert_invalid(coord.call_tool_raw("branch", {"from": origin, "sessions": names, "count": count}),
                       "arguments.sessions")
        assert_invalid(coord.request("branch", {"from": origin, "sessions": names, "count": count}), "sessions")
        assert {v["vm_id"] for v in coord.plain("list_vms", {})["vms"]} == before
        assert not set(names) & set(session_map(coord))


def test_branch_duplicate_session_names(coord: RawServer) -> None:
    origin = coord.create_vm()
    with vms(coord, origin):
        dup = name("w")
        assert_invalid(coord.call_tool_raw("branch", {"from": origin, "sessions": [dup, dup]}), "arguments.sessions")
        assert dup not in session_map(coord)


def test_branch_with_a_taken_session_name_creates_nothing(coord: RawServer) -> None:
    a = coord.create_vm()
    with vms(coord, a):
        taken = name("taken")
        coord.call_tool("bind_session", {"session": taken, "vm_id": a})
        before = {v["vm_id"] for v in coord.plain("list_vms", {})["vms"]}
        fresh = name("w")
        resp = coord.call_tool_raw("branch", {"from": a, "sessions": [fresh, taken]})
        leaked = {v["vm_id"] for v in coord.plain("list_vms", {})["vms"]} - before
        if leaked:
            coord.delete_vms(sorted(leaked))
        assert "error" in resp or resp["result"].get("isError") is True, f"branch reused a bound session: {resp!r:.2000}"
        assert leaked == set(), f"a refused branch left VMs behind: {leaked}"
        assert session_map(coord)[taken] == a


# --------------------------------------------------------------------------- swarms and sessions


def test_swarm_task_sessions_and_delete_by_swarm_id(coord: RawServer) -> None:
    origin = coord.create_vm()
    with vms(coord, origin):
        s0, s1 = name("t"), name("t")
        out = coord.call_tool("swarm_map", {"from": origin, "keep": "all", "tasks": [
            {"command": "echo zero > /root/task", "session": s0},
            {"command": "echo one > /root/task", "session": s1},
        ]})["structuredContent"]
        kept = [r.get("vm_id") for r in out["results"]]
        with vms(coord, *[k for k in kept if k]):
            assert all(kept), out
            sessions = session_map(coord)
            assert sessions.get(s0) == kept[0] and sessions.get(s1) == kept[1], sessions
            assert coord.call_tool("exec", {"session": s1, "command": "cat /root/task"})["structuredContent"]["stdout"] == "one\n"

            d = coord.call_tool("delete", {"swarm_id": out["swarm_id"]})["structuredContent"]
            assert sorted(d["deleted"]) == sorted(kept), d
            assert coord.plain("list_vms", {"swarm_id": out["swarm_id"]})["vms"] == []
            sessions = session_map(coord)
            assert s0 not in sessions and s1 not in sessions, sessions
            assert origin in {v["vm_id"] for v in coord.plain("list_vms", {})["vms"]}, "delete swarm_id took the origin"
        # idempotent
        d = coord.call_tool("delete", {"swarm_id": out["swarm_id"]})["structuredContent"]
        assert d["deleted"] == [], d


# --------------------------------------------------------------------------- scoped bridges


@pytest.mark.parametrize("via_env", [False, True], ids=["flag", "env"])
def test_scoped_bridge_acts_on_its_session_only(coord: RawServer, scoped, via_env: bool) -> None:
    mine, other = coord.create_vm(), coord.create_vm()
    with vms(coord, mine, other):
        s, t = name("sub"), name("sub")
        coord.call_tool("bind_session", {"session": s, "vm_id": mine})
        coord.call_tool("bind_session", {"session": t, "vm_id": other})
        coord.sh(mine, "echo mine > /root/who")
        coord.sh(other, "echo other > /root/who")

        sub = scoped(s, via_env=via_env)
        tools = {tt["name"] for tt in sub.result("tools/list", {})["tools"]}
        assert_scoped_tool_set(tools)

        # no vm_id: the session's VM
        assert sub.call_tool("exec", {"command": "cat /root/who"})["structuredContent"]["stdout"] == "mine\n"
        assert sub.plain("exec", {"command": "cat /root/who"})["stdout"] == "mine\n"
        w = sub.call_tool("write_file", {"path": "/root/from-sub", "content": "sub-wrote"})["structuredContent"]
        assert w["size"] == len("sub-wrote")
        assert coord.sh(mine, "cat /root/from-sub") == "sub-wrote"
        r = sub.call_tool("read_file", {"path": "/root/who"})["structuredContent"]
        assert r["content"] == "mine\n"
        # naming its own VM or session explicitly is fine
        assert sub.call_tool("exec", {"vm_id": mine, "command": "cat /root/who"})["structuredContent"]["stdout"] == "mine\n"
        assert sub.call_tool("exec", {"session": s, "command": "cat /root/who"})["structuredContent"]["stdout"] == "mine\n"

        # anything else is refused, naming the scope
        attempts = [
            ("exec", {"vm_id": other, "command": "echo pwned > /root/who"}),
            ("exec", {"session": t, "command": "echo pwned > /root/who"}),
            ("write_file", {"vm_id": other, "path": "/root/who", "content": "pwned\n"}),
            ("write_file", {"session": t, "path": "/root/who", "content": "pwned\n"}),
            ("read_file", {"vm_id": other, "path": "/root/who"}),
            ("read_file", {"session": t, "path": "/root/who"}),
            ("commit", {"vm_id": other}),
            ("commit", {"session": t}),
        ]
        if "ssh_credentials" in tools:
            attempts += [("ssh_credentials", {"vm_id": other}), ("ssh_credentials", {"session": t})]
        for tool, args in attempts:
            text = tool_error_text(sub.call_tool_raw(tool, args))
            assert s in text, f"{tool} {args}: the refusal should name the scope {s!r}: {text!r}"
        assert coord.sh(other, "cat /root/who") == "other\n", "a scoped bridge changed another VM"

        # the coordinator's tools do not exist here
        for tool in COORDINATOR_ONLY:
            resp = sub.request(tool, {})
            assert resp.get("error", {}).get("code") == -32601, (tool, resp)
            assert_invalid(sub.call_tool_raw(tool, {}), "name")
        assert len(coord.plain("list_vms", {})["vms"]) >= 2


def test_scoped_bridge_commit(coord: RawServer, scoped) -> None:
    mine = coord.create_vm()
    with vms(coord, mine) as made:
        s = name("sub")
        coord.call_tool("bind_session", {"session": s, "vm_id": mine})
        sub = scoped(s)
        sub.call_tool("write_file", {"path": "/root/checkpoint", "content": "step-1"})
        label = name("ckpt")
        c = sub.call_tool("commit", {"label": label})["structuredContent"]
        assert isinstance(c["commit_id"], str) and c["commit_id"]
        out = coord.plain("branch", {"from": label})
        made.extend(v["vm_id"] for v in out["vms"])
        assert out["from_commit"] == c["commit_id"]
        assert coord.sh(made[-1], "cat /root/checkpoint") == "step-1"


def test_scoped_bridge_follows_rebinding(coord: RawServer, scoped) -> None:
    first, second = coord.create_vm(), coord.create_vm()
    with vms(coord, first, second):
        coord.sh(first, "echo first > /root/who")
        coord.sh(second, "echo second > /root/who")
        s = name("sub")
        coord.call_tool("bind_session", {"session": s, "vm_id": first})
        sub = scoped(s)
        assert sub.call_tool("exec", {"command": "cat /root/who"})["structuredContent"]["stdout"] == "first\n"
        coord.call_tool("unbind_session", {"session": s})
        text = tool_error_text(sub.call_tool_raw("exec", {"command": "cat /root/who"}))
        assert s in text, text
        coord.call_tool("bind_session", {"session": s, "vm_id": second})
        assert sub.call_tool("exec", {"command": "cat /root/who"})["structuredContent"]["stdout"] == "second\n"
        tool_error_text(sub.call_tool_raw("exec", {"vm_id": first, "command": "true"}))


def test_scoped_bridge_with_unbound_session(scoped) -> None:
    s = name("ghost")
    sub = scoped(s)
    assert_scoped_tool_set({t["name"] for t in sub.result("tools/list", {})["tools"]})
    text = tool_error_text(sub.call_tool_raw("exec", {"command": "true"}))
    assert s in text, text
    resp = sub.request("exec", {"command": "true"})
    assert resp.get("error", {}).get("code") == -32000 and resp["error"]["data"]["kind"] == "not_found", resp


# --------------------------------------------------------------------------- the official SDK as a sub-agent


def test_sub_agent_over_the_mcp_sdk(coord: RawServer, vs_bin: Path, vs_home: Path, tmp_path: Path) -> None:
    mine, other = coord.create_vm(), coord.create_vm()
    s = name("sdk")
    token = secrets.token_hex(6)
    with vms(coord, mine, other):
        coord.call_tool("bind_session", {"session": s, "vm_id": mine})
        coord.sh(mine, f"printf '%s' 'mine-{token}' > /root/who")

        async def body() -> None:
            params = StdioServerParameters(
                command=str(vs_bin), args=["serve", "--session", s],
                env={"VERS_SWARM_HOME": server_env(vs_home)["VERS_SWARM_HOME"]},
            )
            with open(tmp_path / "sdk-sub.stderr", "a") as errlog:
                async with stdio_client(params, errlog=errlog) as (read, write):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        tools = {t.name for t in (await session.list_tools()).tools}
                        assert_scoped_tool_set(tools)
                        r = await session.call_tool("exec", {"command": "cat /root/who; echo; hostname"})
                        assert not r.is_error, r
                        sc = r.structured_content
                        assert sc["exit_code"] == 0 and sc["stdout"].startswith(f"mine-{token}\n"), sc
                        texts = [c for c in r.content if getattr(c, "type", None) == "text"]
                        assert len(texts) == 1 and json.loads(texts[0].text) == sc
                        r = await session.call_tool("exec", {"vm_id": other, "command": "true"})
                        assert r.is_error is True
                        assert s in " ".join(getattr(c, "text", "") for c in r.content)

        async def main() -> None:
            with anyio.fail_after(4 * TIMEOUT):
                await body()

        anyio.run(main)
