"""Many bridge processes share one SQLite registry: 8 processes doing 1,000
rounds of create-row / bind / unbind each lose no update and never see
"database is locked"."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

PROCESSES = 8
OPS = 1000


def test_eight_processes_share_the_registry_without_losing_updates(vs_bin: Path, fresh_home: Path) -> None:
    bench = vs_bin.parent / "vers-swarm-bench"
    procs = [
        subprocess.Popen([str(bench), "registry-stress", "--home", str(fresh_home), "--ops", str(OPS), "--tag", f"p{i}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(PROCESSES)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert "locked" not in err and "busy" not in err.lower(), err
        outputs.append(json.loads(out))
    for i, out in enumerate(outputs):
        assert out == {"tag": f"p{i}", "created": OPS, "bound": OPS, "unbound": OPS // 2}

    db = sqlite3.connect(fresh_home / "registry.sqlite")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM vms WHERE provider = 'stress'").fetchone()[0] == PROCESSES * OPS
        sessions = dict(db.execute("SELECT name, vm_id FROM sessions").fetchall())
        # Every odd round stays bound, to its own VM; every even round was unbound.
        assert len(sessions) == PROCESSES * OPS // 2
        for i in range(PROCESSES):
            for n in range(OPS):
                name = f"p{i}-s-{n}"
                if n % 2:
                    assert sessions[name] == f"p{i}-vm-{n}"
                else:
                    assert name not in sessions
        bound = dict(db.execute("SELECT vm_id, session FROM vms WHERE session IS NOT NULL").fetchall())
        assert bound == {vm: name for name, vm in sessions.items()}
    finally:
        # The rows name no real VM: drop them so teardown finds nothing to delete.
        db.execute("DELETE FROM sessions")
        db.execute("DELETE FROM vms WHERE provider = 'stress'")
        db.commit()
        db.close()
