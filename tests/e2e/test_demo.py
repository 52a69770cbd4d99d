"""The README's main job: `bash scripts/demo` runs the golden-commit workflow
on the local backend and leaves no VM behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_demo_runs_the_workflow_and_leaves_no_vm(fresh_home: Path, vs_bin: Path) -> None:
    env = {**os.environ, "VERS_SWARM_HOME": str(fresh_home)}
    env.pop("VERS_API_KEY", None)
    r = subprocess.run(["bash", "scripts/demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["label"].startswith("golden")
    workers = summary["workers"]
    assert len(workers) == 4
    for n, worker in enumerate(workers, start=1):
        assert worker["exit_code"] == 0
        assert worker["stdout"].endswith(f"computed {n * n}\n"), worker
    assert len({w["vm_id"] for w in workers}) == 4
    assert set(summary["deleted"]) == {summary["golden_vm"], *(w["vm_id"] for w in workers)}
    assert summary["vms_left"] == 0
    for step in ("creating the golden VM", "committing", "branching 4 VMs", "deleting 5 VMs", "0 VM(s) left"):
        assert step in r.stderr, f"progress line {step!r} missing from stderr"
    ls = subprocess.run([str(vs_bin), "ls"], env=env, capture_output=True, text=True, timeout=60)
    assert ls.returncode == 0 and ls.stdout == "", ls
