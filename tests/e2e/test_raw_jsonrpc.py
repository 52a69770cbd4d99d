"""Raw JSON-RPC 2.0 probes of `vers-swarm serve` on stdio.

Every test uses its own server process (the `server` fixture); at teardown the
fixture closes stdin and asserts exit code 0 and that every stdout line was a
valid JSON-RPC 2.0 message, so each test also checks stdout hygiene.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from conftest import RawServer, error_path, id_key

SUPPORTED_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26"]
LATEST = "2025-11-25"


def assert_error(resp: dict, code: int) -> dict:
    assert "error" in resp and "result" not in resp, f"expected a JSON-RPC error {code}, got {resp!r:.2000}"
    err = resp["error"]
    assert err["code"] == code, f"expected error code {code}, got {resp!r:.2000}"
    assert isinstance(err.get("message"), str) and err["message"], resp
    return err


def unknown_vm_id() -> str:
    return f"vm-e2e-missing-{secrets.token_hex(6)}"


# --------------------------------------------------------------------------- framing errors


@pytest.mark.parametrize(
    "line",
    [
        '{"jsonrpc":"2.0","id":1,"method":',
        "{not json}",
        '{"jsonrpc":"2.0","id":1,"method":"ping"',
        "\x7f\x01garbage",
        b"\xff\xfe{}",
    ],
    ids=["truncated", "bare-words", "unclosed", "control-chars", "invalid-utf8"],
)
def test_malformed_json_is_parse_error_with_null_id(server: RawServer, line: str | bytes) -> None:
    server.send_line(line)
    resp = server.wait_for(lambda m: isinstance(m, dict) and "error" in m, "parse error")
    assert resp["id"] is None, resp
    assert_error(resp, -32700)
    # the server keeps serving
    assert server.result("ping") == {}
    server.close()
    assert len(server.responses()) == 2, server.responses()


@pytest.mark.parametrize(
    "line, readable_ids",
    [
        ("42", {None}),
        ('"x"', {None}),
        ("null", {None}),
        ("true", {None}),
        ('{"foo":1}', {None}),
        ("[]", {None}),
        ('[{"jsonrpc":"2.0","id":9,"method":"ping"}]', {None, 9}),  # batches are not supported
        ('{"id":5,"method":"ping"}', {None, 5}),  # no "jsonrpc"
        ('{"jsonrpc":"1.0","id":6,"method":"ping"}', {None, 6}),
        ('{"jsonrpc":"2.0","id":7}', {None, 7}),  # no method
        ('{"jsonrpc":"2.0","id":8,"method":42}', {None, 8}),
        ('{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', {None}),  # ill-typed id
    ],
    ids=["number", "string", "null", "bool", "no-fields", "empty-batch", "batch",
         "no-jsonrpc", "jsonrpc-1.0", "no-method", "method-not-string", "object-id"],
)
def test_not_a_request_object_is_invalid_request(server: RawServer, line: str, readable_ids: set) -> None:
    server.send_line(line)
    resp = server.wait_for(lambda m: isinstance(m, dict) and "method" not in m, "invalid-request error")
    assert_error(resp, -32600)
    assert id_key(resp["id"]) in {id_key(i) for i in readable_ids}, f"unexpected id in {resp!r}"
    assert server.result("ping") == {}
    server.close()
    responses = server.responses()
    assert len(responses) == 2, f"expected one error and one ping response: {responses!r}"


def test_unknown_method(server: RawServer) -> None:
    resp = server.request("no/such/method", {}, id="um-1")
    assert resp["id"] == "um-1"
    assert_error(resp, -32601)


def test_unknown_tool(server: RawServer) -> None:
    server.initialize()
    resp = server.call_tool_raw("no_such_tool", {})
    err = assert_error(resp, -32602)
    assert "no_such_tool" in json.dumps(err)


# --------------------------------------------------------------------------- params validation


@pytest.mark.parametrize(
    "arguments, path",
    [
        ({"command": "true"}, "arguments.vm_id"),
        ({"vm_id": 5, "command": "true"}, "arguments.vm_id"),
        ({"vm_id": "vm-x"}, "arguments.command"),
        ({"vm_id": "vm-x", "command": 5}, "arguments.command"),
        ({"vm_id": "vm-x", "command": "true", "timeout_s": "soon"}, "arguments.timeout_s"),
        ({"vm_id": "vm-x", "command": "true", "env": ["A=1"]}, "arguments.env"),
    ],
    ids=["missing-vm_id", "int-vm_id", "missing-command", "int-command", "string-timeout", "list-env"],
)
def test_tools_call_bad_arguments_name_the_field(server: RawServer, arguments: dict, path: str) -> None:
    server.initialize()
    resp = server.call_tool_raw("exec", arguments)
    assert_error(resp, -32602)
    assert error_path(resp) == path, f"error.data.path should be {path!r}: {resp!r}"


def test_tools_call_arguments_not_an_object(server: RawServer) -> None:
    server.initialize()
    resp = server.request("tools/call", {"name": "exec", "arguments": "vm_id=x"})
    assert_error(resp, -32602)
    assert error_path(resp) == "arguments", resp


@pytest.mark.parametrize(
    "params, path",
    [
        ({"command": "true"}, "vm_id"),
        ({"vm_id": ["a"], "command": "true"}, "vm_id"),
        ({"vm_id": "vm-x", "command": {"x": 1}}, "command"),
    ],
    ids=["missing-vm_id", "list-vm_id", "object-command"],
)
def test_plain_call_bad_params_name_the_field(server: RawServer, params: dict, path: str) -> None:
    resp = server.request("exec", params)
    assert_error(resp, -32602)
    assert error_path(resp) == path, f"error.data.path should be {path!r}: {resp!r}"


@pytest.mark.parametrize("command", ["", []], ids=["empty-string", "empty-argv"])
def test_empty_command_is_invalid_params(server: RawServer, vm: str, command: Any) -> None:
    server.initialize()
    resp = server.call_tool_raw("exec", {"vm_id": vm, "command": command})
    assert_error(resp, -32602)
    assert error_path(resp) == "arguments.command", resp


def test_negative_timeout_is_invalid_params(server: RawServer, vm: str) -> None:
    server.initialize()
    resp = server.call_tool_raw("exec", {"vm_id": vm, "command": "true", "timeout_s": -1})
    assert_error(resp, -32602)
    assert error_path(resp) == "arguments.timeout_s", resp
    resp = server.request("exec", {"vm_id": vm, "command": "true", "timeout_s": -1})
    assert_error(resp, -32602)
    assert error_path(resp) == "timeout_s", resp


# --------------------------------------------------------------------------- ids, notifications, pipelining


def test_notifications_get_no_response(server: RawServer) -> None:
    server.initialize()
    server.notify("notifications/initialized")
    server.notify("ping")
    server.notify("no/such/notification", {"x": 1})
    server.notify("logging/setLevel", {"level": "info"})
    server.notify("tools/list")
    resp = server.request("ping", id="after-notifications")
    assert resp["result"] == {}
    server.close()
    ids = [r["id"] for r in server.responses()]
    assert len(ids) == 2, f"notifications were answered: {server.responses()!r}"  # initialize + ping
    assert "after-notifications" in ids


def test_ids_are_echoed_exactly(server: RawServer) -> None:
    ids: list[Any] = ["abc", "", "1", 1, 0, -7, 2**53 - 1, 1.5, -0.25, "ïd-☃", "x" * 200]
    for mid in ids:
        server.send({"jsonrpc": "2.0", "id": mid, "method": "ping"})
    for mid in ids:
        resp = server.wait_response(mid)
        assert type(resp["id"]) is type(mid) and resp["id"] == mid, (mid, resp)
        assert resp["result"] == {}
    server.close()
    for mid in ids:
        assert len(server.responses(mid)) == 1, (mid, server.responses(mid))
    assert len(server.responses()) == len(ids)


def test_two_hundred_pipelined_requests(server: RawServer) -> None:
    server.initialize()
    lines = []
    expected: dict[str, str] = {}
    for i in range(200):
        mid: Any = i if i % 2 else f"p-{i}"
        method = "tools/list" if i % 3 == 0 else "ping"
        expected[id_key(mid)] = method
        lines.append(json.dumps({"jsonrpc": "2.0", "id": mid, "method": method, "params": {}}))
    server.send_bytes(("\n".join(lines) + "\n").encode())
    for key, method in expected.items():
        resp = server.wait_response(json.loads(key))
        assert "result" in resp, resp
        if method == "ping":
            assert resp["result"] == {}
        else:
            assert isinstance(resp["result"].get("tools"), list) and resp["result"]["tools"]
    server.close()
    by_id: dict[str, int] = {}
    for r in server.responses():
        by_id[id_key(r["id"])] = by_id.get(id_key(r["id"]), 0) + 1
    for key in expected:
        assert by_id.get(key) == 1, f"id {key} got {by_id.get(key, 0)} responses"
    assert len(server.responses()) == 201  # + initialize


def test_stdin_eof_answers_in_flight_pings_and_exits_zero(server: RawServer) -> None:
    for i in range(50):
        server.send({"jsonrpc": "2.0", "id": f"eof-{i}", "method": "ping"})
    server.close()  # asserts exit code 0 within 30 s
    for i in range(50):
        assert len(server.responses(f"eof-{i}")) == 1, f"eof-{i} unanswered"


def test_stdin_eof_finishes_in_flight_exec(serve) -> None:
    first = serve()
    vm_id = first.create_vm()
    try:
        first.send({"jsonrpc": "2.0", "id": "inflight", "method": "exec",
                    "params": {"vm_id": vm_id, "command": "sleep 1; echo done"}})
        first.close()  # EOF right away; the exec must still be answered before exit 0
        (resp,) = first.responses("inflight")
        assert "result" in resp, resp
        assert resp["result"]["exit_code"] == 0
        assert resp["result"]["stdout"] == "done\n"
    finally:
        with serve() as second:
            out = second.delete_vms([vm_id])
            assert vm_id in out["deleted"], out


# --------------------------------------------------------------------------- MCP basics


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_initialize_echoes_supported_version(server: RawServer, version: str) -> None:
    res = server.initialize(version)
    assert res["protocolVersion"] == version
    caps = res["capabilities"]
    assert isinstance(caps.get("tools"), dict), caps
    assert isinstance(caps.get("logging"), dict), caps
    assert isinstance(res["serverInfo"].get("name"), str) and res["serverInfo"]["name"]
    assert isinstance(res["serverInfo"].get("version"), str)


@pytest.mark.parametrize("version", ["2024-11-05", "2099-01-01", "not-a-version"])
def test_initialize_counter_offers_latest(server: RawServer, version: str) -> None:
    res = server.initialize(version)
    assert res["protocolVersion"] == LATEST


def test_ping_and_set_level(server: RawServer) -> None:
    assert server.result("ping") == {}
    server.initialize()
    assert server.result("ping", {}) == {}
    assert server.result("logging/setLevel", {"level": "debug"}) == {}
    assert server.result("logging/setLevel", {"level": "error"}) == {}


def test_tools_list_has_schemas_and_annotations(server: RawServer) -> None:
    server.initialize()
    tools = server.result("tools/list", {})["tools"]
    by_name = {t["name"]: t for t in tools}
    for name in ["create_vm", "exec", "commit", "branch", "delete", "list_vms", "commits"]:
        assert name in by_name, f"{name} missing from tools/list"
        assert by_name[name]["inputSchema"]["type"] == "object"
        assert by_name[name]["outputSchema"]["type"] == "object"
    assert by_name["delete"].get("annotations", {}).get("destructiveHint") is True
    assert by_name["list_vms"].get("annotations", {}).get("readOnlyHint") is True


def test_stdout_carries_only_jsonrpc_with_debug_logging(server: RawServer) -> None:
    server.initialize()
    server.result("logging/setLevel", {"level": "debug"})
    vm_id = server.create_vm()
    try:
        server.sh(vm_id, "echo to-stdout; echo to-stderr >&2")
        server.exec(vm_id, "exit 7")
        server.request("no/such/method")
    finally:
        server.delete_vms([vm_id])
    server.close()  # asserts every stdout line was JSON-RPC 2.0
    for m in server.messages:
        if "method" in m:  # log notifications, if any, are well-formed
            assert m["method"].startswith("notifications/"), m


# --------------------------------------------------------------------------- tools over raw JSON-RPC


def test_plain_list_vms_without_initialize(server: RawServer) -> None:
    out = server.plain("list_vms", {})
    assert isinstance(out.get("vms"), list), out
    out = server.plain("list_vms")  # params omitted altogether
    assert isinstance(out.get("vms"), list), out


def test_tools_call_results_carry_structured_and_text(server: RawServer) -> None:
    server.initialize()
    res = server.call_tool("create_vm", {})  # shape + outputSchema checked by call_tool
    vm_id = res["structuredContent"]["vm_id"]
    try:
        assert res.get("isError", False) is False
        res = server.call_tool("exec", {"vm_id": vm_id, "command": ["echo", "hi there"]})
        assert res.get("isError", False) is False
        sc = res["structuredContent"]
        assert sc["stdout"] == "hi there\n" and sc["exit_code"] == 0
        assert sc["timed_out"] is False and sc["truncated"] is False
        assert isinstance(sc["duration_ms"], (int, float)) and sc["duration_ms"] >= 0
        res = server.call_tool("exec", {"vm_id": vm_id, "command": "exit 3"})
        assert res["isError"] is True and res["structuredContent"]["exit_code"] == 3
        res = server.call_tool("list_vms", {})
        assert vm_id in {v["vm_id"] for v in res["structuredContent"]["vms"]}
    finally:
        res = server.call_tool("delete", {"vm_id": vm_id})
    assert res["structuredContent"]["deleted"] == [vm_id]


def test_exec_unknown_vm(server: RawServer) -> None:
    server.initialize()
    missing = unknown_vm_id()
    resp = server.call_tool_raw("exec", {"vm_id": missing, "command": "true"})
    assert "result" in resp, f"an unknown VM is a tool error, not a protocol error: {resp!r}"
    res = resp["result"]
    assert res.get("isError") is True, res
    texts = [c["text"] for c in res.get("content", []) if c.get("type") == "text"]
    assert texts and missing in texts[0], f"the error does not name {missing}: {res!r}"

    resp = server.request("exec", {"vm_id": missing, "command": "true"})
    err = assert_error(resp, -32000)
    assert "data" in err, f"a tool failure must carry data: {resp!r}"
    assert missing in json.dumps(err), resp


def test_delete_is_idempotent(server: RawServer) -> None:
    missing = unknown_vm_id()
    out = server.plain("delete", {"vm_id": missing})
    assert out["deleted"] == [] and out["not_found"] == [missing], out
    vm_id = server.create_vm()
    out = server.plain("delete", {"vm_ids": [vm_id, missing]})
    assert out["deleted"] == [vm_id] and out["not_found"] == [missing], out
    out = server.plain("delete", {"vm_ids": [vm_id]})
    assert out["deleted"] == [] and out["not_found"] == [vm_id], out


def test_huge_output_is_truncated(server: RawServer, vm: str) -> None:
    server.initialize()
    res = server.call_tool(
        "exec",
        {"vm_id": vm, "command": "head -c 5000000 /dev/zero | tr '\\0' a; echo; echo tail-marker",
         "max_output_bytes": 65536},
    )
    sc = res["structuredContent"]
    assert sc["exit_code"] == 0 and res.get("isError", False) is False, {k: sc[k] for k in sc if k != "stdout"}
    assert sc["truncated"] is True
    assert len(sc["stdout"]) <= 70000, len(sc["stdout"])
    assert sc["stdout"].startswith("a" * 1000)  # the head is kept
    assert "tail-marker" in sc["stdout"]  # ... and so is the tail


def test_client_closing_stdout_early_does_not_kill_the_server(vs_bin, vs_home) -> None:
    """Writes to a closed stdout fail quietly (no SIGPIPE death); EOF still ends the server with 0."""
    import os
    import subprocess

    env = {**os.environ, "VERS_SWARM_HOME": str(vs_home)}
    env.pop("VERS_API_KEY", None)
    p = subprocess.Popen([str(vs_bin), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=env)
    assert p.stdout is not None and p.stdin is not None
    p.stdout.close()
    for i in range(20):
        p.stdin.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}) + "\n").encode())
    p.stdin.close()
    assert p.wait(timeout=60) == 0
