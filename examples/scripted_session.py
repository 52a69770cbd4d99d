#!/usr/bin/env python3
"""A scripted JSON-RPC session: no MCP handshake, every tool called as a
plain method, one JSON object per line over `vers-swarm serve`'s stdio.

    VERS_SWARM_HOME=/tmp/demo python3 examples/scripted_session.py

Prints each request and response; deletes everything it made.
"""
import itertools
import json
import os
import subprocess
import sys

server = subprocess.Popen([os.environ.get("VERS_SWARM_BIN", "vers-swarm"), "serve"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
ids = itertools.count(1)


def call(method: str, params: dict) -> dict:
    request = {"jsonrpc": "2.0", "id": next(ids), "method": method, "params": params}
    print(">", json.dumps(request))
    server.stdin.write(json.dumps(request) + "\n")
    server.stdin.flush()
    response = json.loads(server.stdout.readline())
    print("<", json.dumps(response)[:300])
    if "error" in response:
        raise SystemExit(f"{method} failed: {response['error']['message']}")
    return response["result"]


made = []
try:
    vm = call("create_vm", {})["vm_id"]
    made.append(vm)
    call("exec", {"vm_id": vm, "command": "uname -sr; echo hello > /srv/hello"})
    label = f"example-{os.getpid()}"
    call("commit", {"vm_id": vm, "label": label})
    branched = call("branch", {"from": label, "count": 2})
    made += [v["vm_id"] for v in branched["vms"]]
    for v in branched["vms"]:
        out = call("exec", {"vm_id": v["vm_id"], "command": ["cat", "/srv/hello"]})
        assert out["stdout"] == "hello\n", out
finally:
    if made:
        call("delete", {"vm_ids": made})
    server.stdin.close()
    sys.exit(server.wait())
