#!/usr/bin/env bash
# A scripted JSON-RPC session with no MCP handshake: every tool is also a
# plain method. Needs root (local backend) and a built vers-swarm.
set -euo pipefail
vs=${VERS_SWARM_BIN:-.build/debug/vers-swarm}
coproc SERVER { "$vs" serve; }
send() { echo "$1" >&"${SERVER[1]}"; IFS= read -r line <&"${SERVER[0]}"; echo "$line"; }
vm=$(send '{"jsonrpc":"2.0","id":1,"method":"create_vm","params":{}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["vm_id"])')
send "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"exec\",\"params\":{\"vm_id\":\"$vm\",\"command\":\"uname -a; echo hello > /srv/hello\"}}"
send "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"commit\",\"params\":{\"vm_id\":\"$vm\",\"label\":\"example-$$\"}}"
send "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"branch\",\"params\":{\"from\":\"example-$$\",\"count\":2}}"
send '{"jsonrpc":"2.0","id":5,"method":"delete","params":{"all":true}}'
exec {SERVER[1]}>&-
wait
