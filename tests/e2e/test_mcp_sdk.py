"""The coordinator workflow through the official MCP Python SDK (mcp 2.x).

create a VM, prepare it, commit it as "golden", branch 3 workers from the label,
let each worker write its own file (concurrently), check they are isolated from
each other and from the original, then delete everything.

`ClientSession.call_tool` validates structuredContent against the tool's
outputSchema for every non-error result; error results are validated here.
"""

from __future__ import annotations

import json
import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import pytest

from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import TIMEOUT, server_env

try:
    import jsonschema
except ImportError:  # pragma: no cover
    jsonschema = None  # type: ignore[assignment]

EXPECTED_TOOLS = {"create_vm", "exec", "commit", "branch", "delete", "list_vms", "commits"}


def run_async(fn, *args: Any, timeout: float = 4 * TIMEOUT) -> Any:
    """Run an async test body under a hard deadline."""

    async def main() -> Any:
        with anyio.fail_after(timeout):
            return await fn(*args)

    return anyio.run(main)


@asynccontextmanager
async def mcp_session(vs_bin: Path, home: Path, errlog_path: Path,
                      backend: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    env = server_env(home)
    params = StdioServerParameters(
        command=str(vs_bin),
        args=["serve"],
        # stdio_client passes only a safe subset of our environment plus this.
        env={"VERS_SWARM_HOME": env["VERS_SWARM_HOME"], **(backend or {})},
    )
    with open(errlog_path, "a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=TIMEOUT) as session:
                await session.initialize()
                yield session


def structured(result: Any, schemas: dict[str, Any] | None = None, tool: str | None = None) -> dict:
    """Check the shared shape of a CallToolResult and return its structured content."""
    sc = result.structured_content
    assert isinstance(sc, dict), f"no structured content: {result!r}"
    texts = [c for c in result.content if getattr(c, "type", None) == "text"]
    assert len(texts) == 1, f"expected exactly one text content block: {result.content!r}"
    assert json.loads(texts[0].text) == sc, "text block and structured content differ"
    if schemas is not None and tool is not None and jsonschema is not None and schemas.get(tool):
        jsonschema.validate(sc, schemas[tool])
    return sc


async def output_schemas(session: ClientSession) -> dict[str, Any]:
    tools = (await session.list_tools()).tools
    return {t.name: t.output_schema for t in tools}


async def sh(session: ClientSession, vm_id: str, command: str) -> str:
    r = await session.call_tool("exec", {"vm_id": vm_id, "command": command})
    sc = structured(r)
    assert not r.is_error and sc["exit_code"] == 0, f"`{command}` failed on {vm_id}: {sc!r}"
    return sc["stdout"]


async def delete_quietly(session: ClientSession, vm_ids: list[str]) -> None:
    if not vm_ids:
        return
    with anyio.move_on_after(TIMEOUT, shield=True):
        try:
            await session.call_tool("delete", {"vm_ids": vm_ids})
        except Exception:
            pass  # the home teardown deletes what is left, and reports it


# --------------------------------------------------------------------------- tests


def test_initialize_and_tool_schemas(vs_bin: Path, vs_home: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with mcp_session(vs_bin, vs_home, tmp_path / "stderr.log") as s:
            init = s.initialize_result
            assert init is not None
            assert init.protocol_version == "2025-11-25"
            assert init.capabilities.tools is not None
            assert init.capabilities.logging is not None
            await s.send_ping()
            tools = (await s.list_tools()).tools
            names = {t.name for t in tools}
            assert EXPECTED_TOOLS <= names, f"missing tools: {EXPECTED_TOOLS - names}"
            for t in tools:
                assert isinstance(t.input_schema, dict) and t.input_schema.get("type") == "object", t.name
                assert isinstance(t.output_schema, dict) and t.output_schema.get("type") == "object", (
                    f"{t.name} has no object outputSchema"
                )
                assert t.description, f"{t.name} has no description"
            by_name = {t.name: t for t in tools}
            assert "vm_id" in by_name["exec"].input_schema.get("properties", {})
            assert "command" in by_name["exec"].input_schema.get("properties", {})

    run_async(body)


def test_high_level_client_in_auto_mode(vs_bin: Path, fresh_home: Path, tmp_path: Path,
                                       backend_env: dict[str, str]) -> None:
    """`mcp.Client` as shipped (mode="auto") first probes `server/discover`
    (MCP 2026-07-28); vers-swarm speaks the handshake era, answers -32601, and
    the client falls back to `initialize`: the tools work the same."""

    async def body() -> None:
        params = StdioServerParameters(command=str(vs_bin), args=["serve"],
                                       env={"VERS_SWARM_HOME": server_env(fresh_home)["VERS_SWARM_HOME"], **backend_env})
        async with Client(params) as client:
            assert client.protocol_version == "2025-11-25"
            assert EXPECTED_TOOLS <= {t.name for t in (await client.list_tools()).tools}
            vm = structured(await client.call_tool("create_vm", {}))["vm_id"]
            try:
                ok = await client.call_tool("exec", {"vm_id": vm, "command": "echo auto"})
                assert not ok.is_error and structured(ok)["stdout"] == "auto\n", ok
                failed = await client.call_tool("exec", {"vm_id": vm, "command": "exit 3"})
                assert failed.is_error and structured(failed)["exit_code"] == 3, failed
            finally:
                deleted = structured(await client.call_tool("delete", {"vm_ids": [vm]}))
            assert deleted["deleted"] == [vm], deleted
            assert structured(await client.call_tool("list_vms", {}))["vms"] == []

    run_async(body)


def test_golden_branch_workflow(vs_bin: Path, fresh_home: Path, tmp_path: Path, backend_env: dict[str, str]) -> None:
    token = secrets.token_hex(8)

    async def body() -> None:
        created: list[str] = []
        async with mcp_session(vs_bin, fresh_home, tmp_path / "stderr.log", backend_env) as s:
            schemas = await output_schemas(s)
            try:
                # (1) a VM, prepared with what every worker needs
                r = await s.call_tool("create_vm", {})
                assert not r.is_error, r
                vm = structured(r)
                origin = vm["vm_id"]
                created.append(origin)
                assert isinstance(origin, str) and origin
                assert isinstance(vm["state"], str)
                assert "isolation" in vm, f"create_vm does not report its isolation: {vm!r}"

                await sh(s, origin, f"mkdir -p /srv && printf 'golden-{token}' > /srv/golden.txt")
                assert await sh(s, origin, "cat /srv/golden.txt") == f"golden-{token}"

                # (2) commit it as the golden image
                r = await s.call_tool("commit", {"vm_id": origin, "label": "golden", "description": "e2e golden"})
                assert not r.is_error, r
                c = structured(r)
                assert isinstance(c["commit_id"], str) and c["commit_id"]
                assert c.get("label") == "golden"
                assert c.get("vm_id") == origin

                r = await s.call_tool("commits", {})
                assert not r.is_error, r
                listed = structured(r)["commits"]
                assert any(x["commit_id"] == c["commit_id"] and x.get("label") == "golden" for x in listed), listed

                # (3) three workers branched from the label
                r = await s.call_tool("branch", {"from": "golden", "count": 3})
                assert not r.is_error, r
                b = structured(r)
                workers = [v["vm_id"] for v in b["vms"]]
                created.extend(workers)
                assert len(workers) == 3 and len(set(workers)) == 3, b
                assert origin not in workers
                assert b["from_commit"] == c["commit_id"]

                # (4) each worker reads the golden file and writes its own, concurrently
                seen: dict[str, str] = {}

                async def work(w: str) -> None:
                    seen[w] = await sh(s, w, "cat /srv/golden.txt")
                    await sh(s, w, f"printf '%s' '{w}' > /srv/mine.txt")

                async with anyio.create_task_group() as tg:
                    for w in workers:
                        tg.start_soon(work, w)
                assert seen == {w: f"golden-{token}" for w in workers}

                # (5) each worker sees its own file and nobody else's
                for w in workers:
                    assert await sh(s, w, "cat /srv/mine.txt") == w
                    names = (await sh(s, w, "ls -A /srv")).split()
                    assert sorted(names) == ["golden.txt", "mine.txt"], (w, names)
                assert (await sh(s, origin, "[ -e /srv/mine.txt ] && echo present || echo absent")).strip() == "absent"
                assert await sh(s, origin, "cat /srv/golden.txt") == f"golden-{token}"

                r = await s.call_tool("list_vms", {})
                listed_ids = {v["vm_id"] for v in structured(r)["vms"]}
                assert set(created) <= listed_ids, (created, listed_ids)

                # (6) delete everything
                r = await s.call_tool("delete", {"vm_ids": created})
                assert not r.is_error, r
                d = structured(r)
                assert sorted(d["deleted"]) == sorted(created), d
                assert d["not_found"] == [], d
                deleted_ok = list(created)
                created.clear()

                # idempotent
                r = await s.call_tool("delete", {"vm_ids": deleted_ok})
                assert not r.is_error, r
                d = structured(r, schemas, "delete")
                assert d["deleted"] == [], d
                assert sorted(d["not_found"]) == sorted(deleted_ok), d

                r = await s.call_tool("list_vms", {})
                assert not r.is_error, r
                assert structured(r)["vms"] == [], "VMs are still listed after delete"

                # the commit (and its label) outlive the VMs
                r = await s.call_tool("commits", {})
                assert any(x.get("label") == "golden" for x in structured(r)["commits"])
            finally:
                await delete_quietly(s, created)

    run_async(body)


@asynccontextmanager
async def session_with_vm(vs_bin: Path, home: Path, tmp_path: Path,
                          backend: dict[str, str]) -> AsyncIterator[tuple[ClientSession, dict[str, Any], str]]:
    """An SDK session, the tools' output schemas and a fresh VM, deleted afterwards."""
    async with mcp_session(vs_bin, home, tmp_path / "stderr.log", backend) as s:
        schemas = await output_schemas(s)
        vm = structured(await s.call_tool("create_vm", {}))["vm_id"]
        try:
            yield s, schemas, vm
        finally:
            await delete_quietly(s, [vm])


def test_failing_command_is_error(vs_bin: Path, vs_home: Path, tmp_path: Path, backend_env: dict[str, str]) -> None:
    async def body() -> None:
        async with session_with_vm(vs_bin, vs_home, tmp_path, backend_env) as (s, schemas, vm):
            r = await s.call_tool("exec", {"vm_id": vm, "command": "echo out; echo err >&2; exit 3"})
            assert r.is_error is True
            sc = structured(r, schemas, "exec")
            assert sc["exit_code"] == 3
            assert sc["timed_out"] is False
            assert sc["stdout"] == "out\n"
            assert sc["stderr"] == "err\n"

            # argv form, env, cwd and stdin
            r = await s.call_tool(
                "exec",
                {"vm_id": vm, "command": ["sh", "-c", 'printf "%s:%s:" "$FOO" "$(pwd)"; cat'],
                 "env": {"FOO": "bar"}, "cwd": "/usr", "stdin": "piped"},
            )
            assert not r.is_error, r
            assert structured(r)["stdout"] == "bar:/usr:piped"

    run_async(body)


def test_timeout_kills_command(vs_bin: Path, vs_home: Path, tmp_path: Path, backend_env: dict[str, str]) -> None:
    async def body() -> None:
        async with session_with_vm(vs_bin, vs_home, tmp_path, backend_env) as (s, schemas, vm):
            r = await s.call_tool("exec", {"vm_id": vm, "command": "echo started; sleep 5; echo finished", "timeout_s": 1})
            assert r.is_error is True
            sc = structured(r, schemas, "exec")
            assert sc["timed_out"] is True
            assert sc["exit_code"] == 124
            assert "finished" not in sc["stdout"]
            # the VM is still usable afterwards
            assert await sh(s, vm, "echo alive") == "alive\n"

    run_async(body)
