"""examples/scripted_session.py runs as written against the built server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scripted_session_example(vs_bin: Path, fresh_home: Path) -> None:
    env = {**os.environ, "VERS_SWARM_HOME": str(fresh_home), "VERS_SWARM_BIN": str(vs_bin)}
    env.pop("VERS_API_KEY", None)
    r = subprocess.run([sys.executable, str(ROOT / "examples/scripted_session.py")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    responses = [line for line in r.stdout.splitlines() if line.startswith("< ")]
    assert len(responses) == 7  # create, exec, commit, branch, 2 × exec, delete
    assert '"deleted": ["' in responses[-1], responses[-1]
    ls = subprocess.run([str(vs_bin), "ls"], env=env, capture_output=True, text=True, timeout=60)
    assert ls.stdout == ""


def test_host_config_examples_start_the_server() -> None:
    """Every host config in examples/ is valid JSON whose server runs `vers-swarm serve`."""
    import json

    configs = sorted(ROOT.glob("examples/**/*.json"))
    assert configs
    for path in configs:
        servers = json.loads(path.read_text())["mcpServers"]
        for server in servers.values():
            assert Path(server["command"]).name == "vers-swarm", path
            assert server["args"][0] == "serve", path
