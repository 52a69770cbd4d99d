"""`swarm_map`: fan-out/fan-in over branches of one commit, end to end.

Each test branches real local VMs (namespaces + overlayfs) from a golden
commit whose VM is deleted right after the commit, so the only VMs alive
during a test are the ones the swarm (or the test) makes. Every test checks
that nothing of its swarm is left, and the home fixtures fail the module if a
VM survived. Waits are bounded; no test asserts wall-clock durations (the
read timeouts are bounds against hanging, nothing more).
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest

from conftest import TIMEOUT, RawServer, error_path, parse_cli_json, poll, run_cli

STATUSES = {"ok", "failed", "timeout", "cancelled", "error"}


# --------------------------------------------------------------------------- helpers


def make_golden(srv: RawServer) -> tuple[str, str]:
    """A labelled commit with /root/golden.txt; its VM is deleted. (label, commit_id)."""
    label = f"golden-{secrets.token_hex(6)}"
    vm_id = srv.create_vm()
    try:
        srv.sh(vm_id, f"printf '%s' '{label}' > /root/golden.txt")
        out = srv.plain("commit", {"vm_id": vm_id, "label": label})
        assert isinstance(out.get("commit_id"), str) and out["commit_id"], out
        assert out.get("label") == label, out
    finally:
        deleted = srv.delete_vms([vm_id])
        assert vm_id in deleted["deleted"], deleted
    return label, out["commit_id"]


def swarm(srv: RawServer, arguments: dict, *, timeout: float | None = None) -> tuple[dict, bool]:
    """tools/call swarm_map; (structuredContent checked against the outputSchema, isError)."""
    result = srv.call_tool("swarm_map", arguments, timeout=timeout)
    sc = result["structuredContent"]
    check_swarm_shape(sc, arguments)
    return sc, bool(result.get("isError"))


def check_swarm_shape(sc: dict, arguments: dict | None = None) -> None:
    """Invariants every swarm_map result keeps: task order, counts that add up, kept VMs."""
    assert isinstance(sc["swarm_id"], str) and sc["swarm_id"], sc
    assert isinstance(sc["from_commit"], str) and sc["from_commit"], sc
    results = sc["results"]
    assert [r["index"] for r in results] == list(range(len(results))), "results are not in task order"
    if arguments is not None:
        n = len(arguments["tasks"]) if "tasks" in arguments else len(arguments["inputs"])
        assert len(results) == n, f"{len(results)} results for {n} tasks"
    summary = sc["summary"]
    assert summary["total"] == len(results), summary
    for status in STATUSES:
        assert summary[status] == sum(1 for r in results if r["status"] == status), (status, summary, results)
    kept = [r["vm_id"] for r in results if "vm_id" in r]
    assert sorted(summary["kept"]) == sorted(kept), f"summary.kept {summary['kept']} vs results' vm_ids {kept}"


def swarm_vms(srv: RawServer, swarm_id: str) -> list[dict]:
    return srv.plain("list_vms", {"swarm_id": swarm_id})["vms"]


def all_vms(srv: RawServer) -> list[dict]:
    return srv.plain("list_vms", {})["vms"]


@pytest.fixture()
def golden(server: RawServer) -> tuple[str, str]:
    """(label, commit_id) of a fresh golden commit in the module's home; `server` is initialized."""
    server.initialize()
    return make_golden(server)


def ls_vm_ids(vs_bin: Path, home: Path) -> list[str]:
    r = run_cli(vs_bin, home, ["ls"])
    assert r.returncode == 0, f"`ls` exited {r.returncode}: {r.stdout!r} {r.stderr[-2000:]!r}"
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


# --------------------------------------------------------------------------- fan-out / fan-in


def test_thirty_two_tasks_in_order_and_torn_down(server: RawServer, golden: tuple[str, str]) -> None:
    label, commit_id = golden
    args = {"from": label, "template": "sleep 1; echo {input}", "inputs": list(range(32)), "concurrency": 32}
    sc, is_error = swarm(server, args, timeout=2 * TIMEOUT)
    assert is_error is False, sc
    assert sc["from_commit"] == commit_id
    for n, r in enumerate(sc["results"]):
        assert r["index"] == n
        assert r["status"] == "ok", r
        assert r["exit_code"] == 0, r
        assert r["stdout"] == f"{n}\n", r
        assert r["stderr"] == "", r
        assert r["attempts"] == 1, r
        assert "vm_id" not in r, f"keep none, yet result {n} names a VM: {r!r}"
    s = sc["summary"]
    assert (s["total"], s["ok"], s["failed"], s["timeout"], s["cancelled"], s["error"]) == (32, 32, 0, 0, 0, 0), s
    assert s["kept"] == []
    assert swarm_vms(server, sc["swarm_id"]) == [], "the swarm's VMs outlived the call"


def test_tasks_see_the_golden_commit_and_index_placeholder(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    args = {"from": label, "template": "printf '%s:%s:' {index} {input}; cat /root/golden.txt",
            "inputs": ["a", 7, "c d"]}
    sc, is_error = swarm(server, args)
    assert is_error is False, sc
    assert [r["stdout"] for r in sc["results"]] == [f"0:a:{label}", f"1:7:{label}", f"2:c d:{label}"]
    assert swarm_vms(server, sc["swarm_id"]) == []


def test_task_objects_env_and_stdin(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    args = {"from": label, "tasks": [
        {"command": 'printf "%s" "$WHO"', "env": {"WHO": "env-value"}},
        {"command": "cat", "stdin": "from-stdin"},
        {"command": ["printf", "%s|", "argv", "with space"]},
        "echo plain",
    ]}
    sc, is_error = swarm(server, args)
    assert is_error is False, sc
    assert [r["stdout"] for r in sc["results"]] == ["env-value", "from-stdin", "argv|with space|", "plain\n"]
    assert swarm_vms(server, sc["swarm_id"]) == []


def test_each_task_runs_on_its_own_branch(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    # every task appends to the same file: on separate branches each sees only its own line
    args = {"from": label, "template": "echo {input} >> /root/shared.txt; cat /root/shared.txt",
            "inputs": ["one", "two", "three", "four"], "concurrency": 2}
    sc, is_error = swarm(server, args)
    assert is_error is False, sc
    assert [r["stdout"] for r in sc["results"]] == ["one\n", "two\n", "three\n", "four\n"]


# --------------------------------------------------------------------------- first_success


def test_first_success_cancels_the_rest(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    args = {"from": label, "tasks": ["sleep 1; echo win", "sleep 30", "sleep 30", "sleep 30"],
            "mode": "first_success", "concurrency": 4}
    # 25 s is a bound against hanging (the losers sleep 30 s), not a timing assertion
    sc, is_error = swarm(server, args, timeout=25)
    assert is_error is False, sc
    winner, *losers = sc["results"]
    assert winner["status"] == "ok" and winner["stdout"] == "win\n" and winner["exit_code"] == 0, winner
    for r in losers:
        assert r["status"] == "cancelled", r
        assert "vm_id" not in r, r
    assert sc["summary"]["cancelled"] == 3 and sc["summary"]["ok"] == 1, sc["summary"]
    assert sc["summary"]["kept"] == []
    assert swarm_vms(server, sc["swarm_id"]) == [], "cancelled branches were left behind"


def test_first_success_with_no_success_is_error(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    sc, is_error = swarm(server, {"from": label, "tasks": ["exit 1", "exit 2"], "mode": "first_success"})
    assert is_error is True, sc
    assert [r["status"] for r in sc["results"]] == ["failed", "failed"], sc
    assert [r["exit_code"] for r in sc["results"]] == [1, 2], sc
    assert swarm_vms(server, sc["swarm_id"]) == []


# --------------------------------------------------------------------------- cancellation and crashes


def test_notifications_cancelled_stops_the_swarm(serve, fresh_home: Path) -> None:
    srv = serve(home=fresh_home)
    srv.initialize()
    label, _ = make_golden(srv)
    watcher = serve(home=fresh_home)  # a second bridge on the same registry
    assert all_vms(watcher) == []

    mid = f"swarm-cancel-{secrets.token_hex(4)}"
    srv.send({"jsonrpc": "2.0", "id": mid, "method": "tools/call",
              "params": {"name": "swarm_map",
                         "arguments": {"from": label, "tasks": ["sleep 30"] * 4, "concurrency": 4}}})
    vms = poll(lambda: all_vms(watcher), lambda v: len(v) >= 4, "4 swarm VMs in the registry")
    assert len(vms) == 4, vms
    swarm_ids = {v.get("swarm_id") for v in vms}
    assert len(swarm_ids) == 1 and None not in swarm_ids, f"the VMs do not name one swarm: {vms!r}"
    assert srv.responses(mid) == [], "the swarm answered before it was cancelled"

    srv.notify("notifications/cancelled", {"requestId": mid, "reason": "e2e"})
    resp = srv.wait_response(mid, timeout=25)
    assert "error" in resp and "result" not in resp, f"a cancelled request must get an error: {resp!r:.2000}"
    assert resp["error"]["code"] == -32800, resp

    poll(lambda: all_vms(watcher), lambda v: v == [], "no VM left after cancellation")
    (swarm_id,) = swarm_ids
    assert swarm_vms(srv, swarm_id) == []
    assert srv.result("ping") == {}  # the bridge keeps serving
    srv.close()
    assert len(srv.responses(mid)) == 1, f"expected exactly one response for {mid}: {srv.responses(mid)!r}"


def test_kill_9_mid_swarm_then_gc(serve, vs_bin: Path, fresh_home: Path) -> None:
    srv = serve(home=fresh_home)
    srv.initialize()
    label, _ = make_golden(srv)
    srv.send({"jsonrpc": "2.0", "id": "doomed", "method": "tools/call",
              "params": {"name": "swarm_map",
                         "arguments": {"from": label, "tasks": ["sleep 60"] * 8, "concurrency": 8}}})
    vm_ids = poll(lambda: ls_vm_ids(vs_bin, fresh_home), lambda ids: len(ids) >= 8, "8 swarm VMs in `ls`")
    assert len(vm_ids) == 8, vm_ids

    srv.proc.kill()  # SIGKILL, this process only
    srv.abort()  # reap it; the serve fixture skips its clean-exit checks for it
    assert srv.proc.returncode == -9, srv.proc.returncode

    r = run_cli(vs_bin, fresh_home, ["gc"])
    assert r.returncode == 0, f"gc exited {r.returncode}: {r.stdout!r} {r.stderr[-2000:]!r}"
    report = parse_cli_json(r.stdout)
    assert set(report) >= {"deleted", "dropped_rows", "abandoned_swarms", "backend_vms", "registry_vms"}, report
    assert set(vm_ids) <= set(report["deleted"]), f"gc did not delete the swarm's VMs {vm_ids}: {report!r}"
    assert len(report["abandoned_swarms"]) == 1, report
    assert report["backend_vms"] == 0 and report["registry_vms"] == 0, report
    r = run_cli(vs_bin, fresh_home, ["ls"])
    assert r.returncode == 0 and r.stdout == "", f"`ls` after gc: {r.stdout!r} {r.stderr[-2000:]!r}"


# --------------------------------------------------------------------------- progress


def test_progress_notifications(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    mid = "swarm-progress"
    server.send({"jsonrpc": "2.0", "id": mid, "method": "tools/call",
                 "params": {"name": "swarm_map", "_meta": {"progressToken": "tok"},
                            "arguments": {"from": label, "template": "echo {input}", "inputs": [1, 2, 3, 4]}}})
    resp = server.wait_response(mid)
    assert "result" in resp and resp["result"].get("isError") is False, resp
    server.close()  # nothing may follow; every message is in now
    pos = next(i for i, m in enumerate(server.messages) if m.get("id") == mid and "method" not in m)
    progress = [(i, m) for i, m in enumerate(server.messages)
                if m.get("method") == "notifications/progress"]
    assert len(progress) == 4, f"expected 4 progress notifications: {[m for _, m in progress]!r}"
    for i, m in progress:
        assert i < pos, f"a progress notification came after the response: {m!r}"
        assert m["params"]["progressToken"] == "tok", m
        assert m["params"]["total"] == 4, m
        assert "id" not in m, f"notifications carry no id: {m!r}"
    values = [m["params"]["progress"] for _, m in progress]
    assert values == [1, 2, 3, 4], values


def test_no_progress_without_token(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    swarm(server, {"from": label, "tasks": ["true", "true"]})
    server.close()
    assert not [m for m in server.messages if m.get("method") == "notifications/progress"]


# --------------------------------------------------------------------------- retries, keep, commits


def test_retries_rerun_a_failed_task(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    sc, is_error = swarm(server, {"from": label, "tasks": ["echo try; exit 3"], "retries": 2})
    assert is_error is True, sc
    (r,) = sc["results"]
    assert r["status"] == "failed" and r["attempts"] == 3 and r["exit_code"] == 3, r
    assert r["stdout"] == "try\n", r
    assert sc["summary"]["failed"] == 1
    assert swarm_vms(server, sc["swarm_id"]) == []


def test_retry_runs_on_a_fresh_branch(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    # fails unless the marker of an earlier attempt is present: on fresh branches it never is
    cmd = "if [ -e /root/attempted ]; then echo reused; exit 0; fi; touch /root/attempted; exit 4"
    sc, is_error = swarm(server, {"from": label, "tasks": [cmd], "retries": 1})
    assert is_error is True, sc
    (r,) = sc["results"]
    assert (r["status"], r["attempts"], r["exit_code"]) == ("failed", 2, 4), r


def test_keep_failed(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    sc, is_error = swarm(server, {"from": label, "tasks": ["true", "echo bad > /root/why; exit 1"], "keep": "failed"})
    assert is_error is True, sc
    ok, failed = sc["results"]
    assert ok["status"] == "ok" and "vm_id" not in ok, ok
    assert failed["status"] == "failed" and failed["exit_code"] == 1, failed
    kept = failed.get("vm_id")
    assert isinstance(kept, str) and kept, failed
    try:
        assert sc["summary"]["kept"] == [kept], sc["summary"]
        assert kept in {v["vm_id"] for v in all_vms(server)}
        assert [v["vm_id"] for v in swarm_vms(server, sc["swarm_id"])] == [kept]
        assert server.sh(kept, "cat /root/why") == "bad\n"  # the failed state is there to inspect
    finally:
        out = server.plain("delete", {"swarm_id": sc["swarm_id"]})
    assert out["deleted"] == [kept], out
    assert swarm_vms(server, sc["swarm_id"]) == []


def test_keep_all(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    sc, is_error = swarm(server, {"from": label, "tasks": ["true", "true"], "keep": "all"})
    kept = [r.get("vm_id") for r in sc["results"]]
    try:
        assert is_error is False, sc
        assert all(isinstance(k, str) and k for k in kept) and len(set(kept)) == 2, sc
        assert sorted(sc["summary"]["kept"]) == sorted(kept)
        assert sorted(v["vm_id"] for v in swarm_vms(server, sc["swarm_id"])) == sorted(kept)
    finally:
        out = server.delete_vms([k for k in kept if k])
    assert sorted(out["deleted"]) == sorted(kept), out


def test_commit_results(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    args = {"from": label, "template": "printf '%s' {input} > /root/out.txt", "inputs": ["zero", "one"],
            "commit_results": True}
    sc, is_error = swarm(server, args)
    assert is_error is False, sc
    sid = sc["swarm_id"]
    commit_ids = [r.get("commit_id") for r in sc["results"]]
    assert all(isinstance(c, str) and c for c in commit_ids) and len(set(commit_ids)) == 2, sc
    assert swarm_vms(server, sid) == [], "commit_results must not keep the VMs"

    listed = server.plain("commits", {})["commits"]
    by_label = {c.get("label"): c["commit_id"] for c in listed if c.get("label")}
    assert by_label.get(f"{sid}/0") == commit_ids[0], listed
    assert by_label.get(f"{sid}/1") == commit_ids[1], listed

    out = server.plain("branch", {"from": f"{sid}/1"})
    (vm,) = [v["vm_id"] for v in out["vms"]]
    try:
        assert out["from_commit"] == commit_ids[1]
        assert server.sh(vm, "cat /root/out.txt") == "one"
        assert server.sh(vm, "cat /root/golden.txt") == label  # on top of the golden commit
    finally:
        assert vm in server.delete_vms([vm])["deleted"]


# --------------------------------------------------------------------------- templates, timeouts


def test_template_inputs_are_not_shell_injected(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    inputs = ["$(touch /tmp/pwned)", "a; touch /tmp/pwned2", "x'y", "`id`", "", "--", "multi\nline", "\\n %s"]
    args = {"from": label, "inputs": inputs,
            "template": "printf '%s' {input}; test ! -e /tmp/pwned && test ! -e /tmp/pwned2"}
    sc, is_error = swarm(server, args)
    assert is_error is False, sc
    for inp, r in zip(inputs, sc["results"]):
        assert r["status"] == "ok", (inp, r)
        assert r["stdout"] == inp, (inp, r)


def test_timeout_kills_the_task(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    sc, is_error = swarm(server, {"from": label, "tasks": ["echo started; sleep 5; echo finished", "echo fast"],
                                  "timeout_s": 1})
    assert is_error is True, sc
    slow, fast = sc["results"]
    assert slow["status"] == "timeout" and slow["exit_code"] == 124, slow
    assert "finished" not in slow["stdout"], slow
    assert fast["status"] == "ok" and fast["stdout"] == "fast\n", fast
    assert sc["summary"]["timeout"] == 1
    assert swarm_vms(server, sc["swarm_id"]) == []


def test_max_output_bytes_bounds_each_stream(server: RawServer, golden: tuple[str, str]) -> None:
    label, _ = golden
    sc, _ = swarm(server, {"from": label, "tasks": ["head -c 100000 /dev/zero | tr '\\0' a"],
                           "max_output_bytes": 1000})
    (r,) = sc["results"]
    assert r["status"] == "ok", r
    out = r["stdout"]
    # head and tail kept (1000 bytes in all), the middle elided and marked
    assert "elided" in out, out[:2000]
    head, _, tail = out.partition("elided")
    kept = head.rsplit("\n", 1)[0] + tail.split("\n", 1)[-1]  # the marker line removed
    assert kept == "a" * 1000, (len(out), out[:2000])
    assert len(out.encode()) < 2000, len(out)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "extra, path",
    [
        ({"template": "echo {input}", "inputs": [1], "concurrency": 0}, "arguments.concurrency"),
        ({"tasks": []}, "arguments.tasks"),
        ({"tasks": ["true"], "template": "echo {input}", "inputs": [1]}, ("arguments.tasks", "arguments.template")),
        ({"template": "echo hi", "inputs": [1]}, "arguments.template"),
        ({"tasks": ["true"], "mode": "some"}, "arguments.mode"),
        ({"tasks": ["true"], "keep": "x"}, "arguments.keep"),
        ({"tasks": ["true"], "retries": 11}, "arguments.retries"),
    ],
    ids=["concurrency-0", "empty-tasks", "tasks-and-template", "template-without-input", "bad-mode",
         "bad-keep", "retries-11"],
)
def test_bad_arguments_name_the_field(server: RawServer, golden: tuple[str, str], extra: dict,
                                      path: str | tuple[str, ...]) -> None:
    label, _ = golden
    before = len(all_vms(server))
    resp = server.call_tool_raw("swarm_map", {"from": label, **extra})
    assert "error" in resp, f"expected -32602, got {resp!r:.2000}"
    assert resp["error"]["code"] == -32602, resp
    expected = path if isinstance(path, tuple) else (path,)
    assert error_path(resp) in expected, f"error.data.path should be one of {expected}: {resp!r}"
    assert len(all_vms(server)) == before


def test_unknown_from_is_not_found(server: RawServer) -> None:
    server.initialize()
    before = all_vms(server)
    missing = f"no-such-label-{secrets.token_hex(4)}"
    resp = server.call_tool_raw("swarm_map", {"from": missing, "tasks": ["true"]})
    assert "result" in resp, f"an unknown label is a tool failure, not a JSON-RPC error: {resp!r}"
    res = resp["result"]
    assert res.get("isError") is True, res
    assert "structuredContent" not in res, res
    text = " ".join(c.get("text", "") for c in res["content"])
    assert missing in text, text
    # as a plain method the same failure is -32000 kind not_found
    resp = server.request("swarm_map", {"from": missing, "tasks": ["true"]})
    assert resp.get("error", {}).get("code") == -32000, resp
    assert resp["error"].get("data", {}).get("kind") == "not_found", resp
    assert all_vms(server) == before, "a swarm from an unknown commit created VMs"


def test_plain_method_returns_structured_output(server: RawServer) -> None:
    # no MCP handshake at all
    label, _ = make_golden(server)
    out = server.plain("swarm_map", {"from": label, "tasks": ["echo a", "exit 5"]})
    assert set(out) >= {"swarm_id", "from_commit", "results", "summary"}, out
    check_swarm_shape(out)
    assert [r["status"] for r in out["results"]] == ["ok", "failed"], out
    assert [r["exit_code"] for r in out["results"]] == [0, 5], out
    assert out["results"][0]["stdout"] == "a\n"
    jsonschema.validate(out, server.tool_schemas()["swarm_map"])
    resp = server.request("swarm_map", {"from": label, "tasks": ["true"], "concurrency": 0})
    assert resp.get("error", {}).get("code") == -32602, resp
    assert error_path(resp) == "concurrency", resp
    assert swarm_vms(server, out["swarm_id"]) == []


def test_tools_list_schema(server: RawServer) -> None:
    server.initialize()
    tools = {t["name"]: t for t in server.result("tools/list", {})["tools"]}
    t = tools["swarm_map"]
    props = t["inputSchema"]["properties"]
    for name in ["from", "tasks", "template", "inputs", "concurrency", "timeout_s", "retries", "mode", "keep",
                 "commit_results", "max_output_bytes"]:
        assert name in props, f"swarm_map inputSchema lacks {name}"
    assert set(props["mode"]["enum"]) == {"all", "first_success"}
    assert set(props["keep"]["enum"]) == {"none", "failed", "all"}
    assert (props["concurrency"]["minimum"], props["concurrency"]["maximum"]) == (1, 256)
    assert (props["retries"]["minimum"], props["retries"]["maximum"]) == (0, 10)
    out = t["outputSchema"]
    assert set(out["required"]) >= {"swarm_id", "from_commit", "results", "summary"}
    status = out["properties"]["results"]["items"]["properties"]["status"]
    assert set(status["enum"]) == STATUSES


def test_plain_call_progress_token_in_meta(server: RawServer, golden: tuple[str, str]) -> None:
    """A plain-method call may carry MCP's `_meta` (it is not a tool argument): its progressToken is honoured."""
    label, _ = golden
    resp = server.request("swarm_map", {"from": label, "tasks": ["true", "true", "true"], "_meta": {"progressToken": 7}})
    assert "result" in resp, resp
    progress = [m["params"] for m in server.messages
                if m.get("method") == "notifications/progress" and m.get("params", {}).get("progressToken") == 7]
    assert [p["progress"] for p in progress] == [1, 2, 3]
    assert all(p["total"] == 3 for p in progress)
