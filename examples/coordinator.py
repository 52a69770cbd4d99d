#!/usr/bin/env python3
"""A coordinator on the official MCP Python SDK, driving vers-swarm.

1. prepare a golden VM and commit it with a label;
2. branch one VM per sub-agent session (`branch {from, sessions}`);
3. start one scoped bridge per sub-agent (`vers-swarm serve --session NAME`):
   each sub-agent sees only exec/read_file/write_file/commit on its own VM;
4. let every sub-agent run its task concurrently, collect the results;
5. tear everything down, even when a step fails.

    VERS_SWARM_HOME=/tmp/demo python3 examples/coordinator.py [--agents 3]

Prints one JSON summary on stdout. Needs `pip install mcp` and vers-swarm on
PATH (or VERS_SWARM_BIN).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

VS = os.environ.get("VERS_SWARM_BIN", "vers-swarm")


def bridge(*args: str) -> StdioServerParameters:
    env = {k: os.environ[k] for k in ("VERS_SWARM_HOME", "VERS_API_KEY", "VERS_SWARM_BACKEND") if k in os.environ}
    return StdioServerParameters(command=VS, args=["serve", *args], env=env)


async def call(session: ClientSession, tool: str, arguments: dict) -> dict:
    result = await session.call_tool(tool, arguments)
    structured = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if getattr(result, "is_error", getattr(result, "isError", False)):
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise RuntimeError(f"{tool} failed: {structured or text}")
    return structured


async def sub_agent(name: str, task: str) -> dict:
    """One sub-agent: its own scoped bridge, acting on its session's VM only."""
    async with stdio_client(bridge("--session", name)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            offered = sorted(t.name for t in (await session.list_tools()).tools)
            ran = await call(session, "exec", {"command": task, "timeout_s": 60})
            await call(session, "write_file", {"path": "/root/result.txt", "content": ran["stdout"]})
            back = await call(session, "read_file", {"path": "/root/result.txt"})
            return {"session": name, "tools": offered, "exit_code": ran["exit_code"], "stdout": back["content"]}


async def main(agents: int) -> dict:
    label = f"golden-{uuid.uuid4().hex[:8]}"
    names = [f"agent-{i + 1}" for i in range(agents)]
    async with stdio_client(bridge()) as (read, write):
        async with ClientSession(read, write) as coordinator:
            await coordinator.initialize()
            made: list[str] = []
            try:
                golden = (await call(coordinator, "create_vm", {}))["vm_id"]
                made.append(golden)
                await call(coordinator, "write_file", {
                    "vm_id": golden, "path": "/opt/work/task.sh", "mode": "0755", "create_dirs": True,
                    "content": '#!/bin/sh\necho "$1 on $(hostname): $(( $2 * $2 ))"\n',
                })
                commit = await call(coordinator, "commit", {"vm_id": golden, "label": label})
                branched = await call(coordinator, "branch", {"from": label, "sessions": names})
                made += [vm["vm_id"] for vm in branched["vms"]]
                results = await asyncio.gather(*(
                    sub_agent(name, f"/opt/work/task.sh {name} {i + 1}") for i, name in enumerate(names)
                ))
                return {"label": label, "commit_id": commit["commit_id"], "vms": branched["vms"], "results": list(results)}
            finally:
                deleted = await call(coordinator, "delete", {"vm_ids": made})
                left = await call(coordinator, "list_vms", {})
                print(f"coordinator: deleted {len(deleted['deleted'])} VMs, {len(left['vms'])} left", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=3)
    print(json.dumps(asyncio.run(main(parser.parse_args().agents))))
