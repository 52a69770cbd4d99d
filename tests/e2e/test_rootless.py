"""Without root the local backend falls back to rootless VMs (user
namespaces, the host OS read-only, directory copies) and says so: the same
workflow as the unprivileged user `nobody`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

USER = "nobody"


@pytest.fixture()
def as_nobody(vs_bin: Path):
    """run(*args) -> CompletedProcess of `vers-swarm ARGS` as `nobody`, with binaries and a home it can use."""
    base = Path(tempfile.mkdtemp(prefix="vs-rootless-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    bindir = base / "bin"
    bindir.mkdir()
    for name in ("vers-swarm", "vers-swarm-init"):
        shutil.copy2(vs_bin.parent / name, bindir / name)
        os.chmod(bindir / name, 0o755)
    home = base / "home"
    home.mkdir()
    shutil.chown(home, user=USER)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = ["env", "-i", "PATH=/usr/bin:/bin", f"VERS_SWARM_HOME={home}"]
        r = subprocess.run(["runuser", "-u", USER, "--", *env, str(bindir / "vers-swarm"), *args],
                           capture_output=True, text=True, timeout=300, cwd="/")
        if check:
            assert r.returncode == 0, f"{args}: exit {r.returncode}: {r.stdout[-2000:]} {r.stderr[-2000:]}"
        return r

    run.home = home  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        run("call", "delete", '{"all":true}', check=False)
        leftover = run("ls", check=False).stdout
        shutil.rmtree(base, ignore_errors=True)
        assert leftover == "", f"VMs left behind: {leftover}"


def call(run, tool: str, args: dict[str, Any], ok: bool = True) -> dict:
    r = run("call", tool, json.dumps(args), check=ok)
    return json.loads(r.stdout)


def sh(run, vm: str, command: str, **extra: Any) -> dict:
    return call(run, "exec", {"vm_id": vm, "command": command, **extra}, ok=False)


def test_rootless_workflow_and_isolation(as_nobody) -> None:
    run = as_nobody
    doctor = run("doctor").stdout
    assert "warn  privileges: not root: rootless VM" in doctor, doctor

    created = call(run, "create_vm", {})
    vm = created["vm_id"]
    assert created["isolation"] == "user-namespaces+copies"
    assert any("rootless VM" in w for w in created["warnings"]), created

    assert sh(run, vm, "echo gold > /srv/golden.txt")["exit_code"] == 0
    # The host OS is read-only; the host's /root, the state dir and host processes are out of sight.
    assert "Read-only file system" in sh(run, vm, "touch /usr/vs-rootless")["stderr"]
    assert not Path("/usr/vs-rootless").exists()
    assert sh(run, vm, "ls -A /root")["stdout"] == ""
    assert sh(run, vm, f"ls -A {run.home}")["stdout"] == ""
    assert sh(run, vm, f"kill -0 {os.getpid()}")["exit_code"] != 0
    assert "VERS_SWARM_HOME" not in sh(run, vm, "env")["stdout"]

    call(run, "commit", {"vm_id": vm, "label": "golden"})
    branched = call(run, "branch", {"from": "golden", "count": 2})
    workers = [v["vm_id"] for v in branched["vms"]]
    for w in workers:
        r = sh(run, w, f"cat /srv/golden.txt; echo {w} > /srv/mine.txt")
        assert r["stdout"] == "gold\n", r
    for w in workers:
        assert sh(run, w, "cat /srv/mine.txt")["stdout"] == f"{w}\n"
    assert sh(run, vm, "test -e /srv/mine.txt")["exit_code"] == 1

    # A timeout kills the command's whole tree; background processes survive between execs.
    r = sh(run, vm, "(sleep 120; echo late) & sleep 120", timeout_s=1)
    assert r["timed_out"] is True and r["exit_code"] == 124
    left = sh(run, vm, "ps -eo stat=,comm= | awk '$1 !~ /^Z/ && $2 == \"sleep\"' | wc -l")["stdout"].strip()
    assert left == "0"
    assert sh(run, vm, "sleep 120 & echo $! > /tmp/bg")["exit_code"] == 0
    assert sh(run, vm, "kill -0 $(cat /tmp/bg)")["exit_code"] == 0

    swarm = call(run, "swarm_map", {"from": "golden", "template": "cat /srv/golden.txt; echo {input}", "inputs": [1, 2, 3]})
    assert [x["stdout"] for x in swarm["results"]] == ["gold\n1\n", "gold\n2\n", "gold\n3\n"]

    deleted = call(run, "delete", {"vm_ids": [vm, *workers]})
    assert sorted(deleted["deleted"]) == sorted([vm, *workers])
    assert call(run, "list_vms", {})["vms"] == []
