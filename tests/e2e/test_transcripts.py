"""Replays protocol/transcripts/*.jsonl against a real server and checks
protocol/schemas/ against its tools/list."""
import json
import os
import pathlib
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TRANSCRIPTS = sorted((ROOT / "protocol/transcripts").glob("*.jsonl"))


def _bin():
    return os.environ.get("VERS_SWARM_BIN", str(ROOT / ".build/debug/vers-swarm"))


def _pairs(path):
    """(request line, expected response or None) in order."""
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    i, pairs = 0, []
    while i < len(lines):
        line = lines[i]
        try:
            msg = json.loads(line)
        except ValueError:
            msg = None
        expects = not (isinstance(msg, dict) and "method" in msg and "id" not in msg and msg.get("jsonrpc") == "2.0")
        if expects:
            pairs.append((line, json.loads(lines[i + 1])))
            i += 2
        else:
            pairs.append((line, None))
            i += 1
    return pairs


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript_replays_exactly(path):
    pairs = _pairs(path)
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.run([_bin(), "serve"], input="".join(l + "\n" for l, _ in pairs),
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "VERS_SWARM_HOME": home, "VERS_API_KEY": ""})
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(l) for l in proc.stdout.splitlines()]
    expected = [e for _, e in pairs if e is not None]
    # Requests run concurrently: match responses by id, and id-null errors in order.
    by_id = {json.dumps(r.get("id")): r for r in got if r.get("id") is not None}
    nulls = [r for r in got if r.get("id") is None]
    assert len(got) == len(expected)
    exp_nulls = [e for e in expected if e.get("id") is None]
    assert nulls == exp_nulls
    for e in expected:
        if e.get("id") is not None:
            assert by_id[json.dumps(e["id"])] == e


def test_committed_schemas_match_tools_list():
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([_bin(), "serve"], input='{"jsonrpc":"2.0","id":1,"method":"tools/list"}\n',
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "VERS_SWARM_HOME": home}).stdout
    tools = json.loads(out)["result"]["tools"]
    files = sorted(p.name for p in (ROOT / "protocol/schemas").glob("*.json"))
    assert files == sorted(f"{t['name']}.{k}.json" for t in tools for k in ("input", "output"))
    for t in tools:
        assert json.loads((ROOT / f"protocol/schemas/{t['name']}.input.json").read_text()) == t["inputSchema"]
        assert json.loads((ROOT / f"protocol/schemas/{t['name']}.output.json").read_text()) == t["outputSchema"]
