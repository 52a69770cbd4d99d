"""The `vers-swarm` command line: call, ls, doctor.

VMs live in the registry of VERS_SWARM_HOME, so they outlive the process that
created them: one `call` creates, another execs, another deletes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import parse_cli_json


def _create(cli, **kw) -> str:
    r = cli("call", "create_vm", "{}", **kw)
    assert r.returncode == 0, f"call create_vm exited {r.returncode}: {r.stdout!r} {r.stderr[-2000:]!r}"
    out = parse_cli_json(r.stdout)
    assert isinstance(out, dict) and isinstance(out.get("vm_id"), str) and out["vm_id"], out
    return out["vm_id"]


def _delete(cli, vm_id: str, **kw) -> dict:
    r = cli("call", "delete", json.dumps({"vm_id": vm_id}), **kw)
    assert r.returncode == 0, f"call delete exited {r.returncode}: {r.stdout!r} {r.stderr[-2000:]!r}"
    return parse_cli_json(r.stdout)


def test_call_create_vm_prints_json(cli) -> None:
    r = cli("call", "create_vm", "{}")
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout!r} {r.stderr[-2000:]!r}"
    out = parse_cli_json(r.stdout)
    try:
        assert isinstance(out.get("vm_id"), str) and out["vm_id"], out
        assert isinstance(out.get("state"), str), out
    finally:
        if isinstance(out, dict) and out.get("vm_id"):
            assert out["vm_id"] in _delete(cli, out["vm_id"])["deleted"]


def test_call_exec_exit_status_follows_the_command(cli) -> None:
    vm_id = _create(cli)
    try:
        ok = cli("call", "exec", json.dumps({"vm_id": vm_id, "command": "echo hi"}))
        assert ok.returncode == 0, f"exit {ok.returncode}: {ok.stdout!r} {ok.stderr[-2000:]!r}"
        out = parse_cli_json(ok.stdout)
        assert out["exit_code"] == 0 and out["stdout"] == "hi\n", out

        bad = cli("call", "exec", json.dumps({"vm_id": vm_id, "command": "echo failing >&2; exit 3"}))
        assert bad.returncode != 0, f"a failing command exited 0: {bad.stdout!r}"
        if bad.stdout.strip():  # when the result is printed, it is the exec output
            out = parse_cli_json(bad.stdout)
            assert out["exit_code"] == 3, out
    finally:
        _delete(cli, vm_id)


def test_call_rejects_bad_input(cli) -> None:
    r = cli("call", "no_such_tool", "{}")
    assert r.returncode != 0, r.stdout
    r = cli("call", "exec", "this is not json")
    assert r.returncode != 0, r.stdout
    r = cli("call", "exec", json.dumps({"command": "true"}))  # no vm_id
    assert r.returncode != 0, r.stdout
    assert "vm_id" in r.stdout + r.stderr


def test_ls_lists_vms_until_deleted(cli, fresh_home: Path) -> None:
    vm_id = _create(cli, home=fresh_home)
    deleted = False
    try:
        r = cli("ls", home=fresh_home)
        assert r.returncode == 0, f"exit {r.returncode}: {r.stdout!r} {r.stderr[-2000:]!r}"
        assert vm_id in r.stdout, f"`ls` does not list {vm_id}: {r.stdout!r}"
        assert vm_id in _delete(cli, vm_id, home=fresh_home)["deleted"]
        deleted = True
        r = cli("ls", home=fresh_home)
        assert r.returncode == 0, f"exit {r.returncode}: {r.stdout!r} {r.stderr[-2000:]!r}"
        assert vm_id not in r.stdout, f"`ls` still lists {vm_id} after delete: {r.stdout!r}"
    finally:
        if not deleted:
            _delete(cli, vm_id, home=fresh_home)


def test_doctor(cli) -> None:
    r = cli("doctor")
    assert r.returncode == 0, f"doctor exited {r.returncode}: {r.stdout!r} {r.stderr[-2000:]!r}"
    text = r.stdout + r.stderr
    checks = [l for l in text.splitlines() if re.search(r"\b(ok|warn|fail)\b", l, re.IGNORECASE)]
    assert checks, f"doctor printed no ok/warn/fail lines: {text!r}"
