"""examples/coordinator.py, run as written: golden VM, commit, one branch per
sub-agent session, one scoped bridge per sub-agent, collect, tear down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_coordinator_example_runs_subagents_on_scoped_bridges(vs_bin: Path, fresh_home: Path) -> None:
    env = {**os.environ, "VERS_SWARM_HOME": str(fresh_home), "VERS_SWARM_BIN": str(vs_bin)}
    env.pop("VERS_API_KEY", None)
    r = subprocess.run([sys.executable, str(ROOT / "examples/coordinator.py"), "--agents", "3"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert [vm["session"] for vm in summary["vms"]] == ["agent-1", "agent-2", "agent-3"]
    vm_of = {vm["session"]: vm["vm_id"] for vm in summary["vms"]}
    for n, result in enumerate(summary["results"], start=1):
        name = f"agent-{n}"
        assert result["session"] == name
        # A sub-agent's bridge offers only what acts on its own VM.
        assert result["tools"] == ["commit", "exec", "read_file", "ssh_credentials", "write_file"]
        assert result["exit_code"] == 0
        assert result["stdout"] == f"{name} on vm-{vm_of[name][:8]}: {n * n}\n"
    assert "deleted 4 VMs, 0 left" in r.stderr
    ls = subprocess.run([str(vs_bin), "ls"], env=env, capture_output=True, text=True, timeout=60)
    assert ls.returncode == 0 and ls.stdout == ""
    sessions = subprocess.run([str(vs_bin), "call", "sessions", "{}"], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(sessions.stdout) == {"sessions": []}
