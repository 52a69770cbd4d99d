"""The benchmark programs run and print their ratios (values are not
asserted: this machine is shared and noisy; only that each measurement
was taken and is a positive number)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _ratios(output: str) -> dict[str, float]:
    return {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^(.*?):\s+([0-9.]+)x?\s", output, re.M)}


def test_swarm_map_benchmark_prints_its_ratio(vs_bin: Path) -> None:
    r = subprocess.run([str(vs_bin.parent / "vers-swarm-bench"), "swarm-map", "--rounds", "1", "--tasks", "8"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert _ratios(r.stdout)["swarm-map ratio (wall time / single-task time)"] > 0


def test_ssh_latency_benchmark_prints_its_ratios_and_handshakes(vs_bin: Path) -> None:
    r = subprocess.run(["bash", str(ROOT / "scripts/bench-ssh"), "--execs", "20"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ratios = _ratios(r.stdout)
    for name in ("OpenSSH ControlMaster / pooled libssh2", "fresh OpenSSH / pooled libssh2",
                 "pooled libssh2 / local `sh -c true`"):
        assert ratios[name] > 0, r.stdout
    # One pooled session: the handshake count is exact, not a timing.
    assert "TCP/TLS handshakes for 21 execs on one VM: 1 " in r.stdout, r.stdout
