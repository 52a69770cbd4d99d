"""read_file / write_file on a VM, end to end.

read_file {vm_id|session, path, encoding utf8|base64, max_bytes} ->
{path, content, encoding, size, truncated};
write_file {vm_id|session, path, content, encoding, mode, create_dirs} -> {path, size}.

Each test gets its own VM (the `vm` fixture deletes it). Content is checked
both through the file tools and through exec, so a tool that agreed with
itself but wrote something else would be caught.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import RawServer, assert_invalid, error_path, tool_error_text

ALL_BYTES = bytes(range(256))


# --------------------------------------------------------------------------- helpers


@pytest.fixture()
def srv(server: RawServer) -> RawServer:
    server.initialize()
    return server


def write(srv: RawServer, vm_id: str, path: str, content: str, **kw: Any) -> dict:
    r = srv.call_tool("write_file", {"vm_id": vm_id, "path": path, "content": content, **kw})
    assert r.get("isError") is False, r
    return r["structuredContent"]


def read(srv: RawServer, vm_id: str, path: str, **kw: Any) -> dict:
    r = srv.call_tool("read_file", {"vm_id": vm_id, "path": path, **kw})
    assert r.get("isError") is False, r
    return r["structuredContent"]


def host_file(content: bytes) -> Iterator[Path]:
    """A host file under /var/tmp (a directory the VM image shows read-only)."""
    p = Path(f"/var/tmp/vs-e2e-host-{secrets.token_hex(6)}")
    p.write_bytes(content)
    try:
        yield p
    finally:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------- round trips


def test_text_round_trip(srv: RawServer, vm: str) -> None:
    text = "héllo ☃ wörld\nsecond line\n\ttabbed\n"
    w = write(srv, vm, "/root/t.txt", text)
    assert w == {"path": "/root/t.txt", "size": len(text.encode())}
    r = read(srv, vm, "/root/t.txt")
    assert r == {"path": "/root/t.txt", "content": text, "encoding": "utf8", "size": len(text.encode()),
                 "truncated": False}
    assert srv.sh(vm, "cat /root/t.txt") == text
    # explicit utf8 encoding both ways, overwriting
    write(srv, vm, "/root/t.txt", "short", encoding="utf8")
    assert read(srv, vm, "/root/t.txt", encoding="utf8")["content"] == "short"


def test_empty_file(srv: RawServer, vm: str) -> None:
    assert write(srv, vm, "/root/empty", "")["size"] == 0
    assert srv.sh(vm, "wc -c < /root/empty").strip() == "0"
    r = read(srv, vm, "/root/empty")
    assert (r["content"], r["size"], r["truncated"]) == ("", 0, False), r


def test_binary_round_trip_all_byte_values(srv: RawServer, vm: str) -> None:
    data = ALL_BYTES + ALL_BYTES[::-1]
    w = write(srv, vm, "/root/all.bin", base64.b64encode(data).decode(), encoding="base64")
    assert w["size"] == len(data)
    # what is on disk, seen from inside the VM
    assert srv.sh(vm, "sha256sum /root/all.bin").split()[0] == hashlib.sha256(data).hexdigest()
    r = read(srv, vm, "/root/all.bin", encoding="base64")
    assert r["encoding"] == "base64" and r["size"] == len(data) and r["truncated"] is False, r
    assert base64.b64decode(r["content"]) == data


def test_larger_binary_round_trip(srv: RawServer, vm: str) -> None:
    data = os.urandom(300_000)
    assert write(srv, vm, "/root/big.bin", base64.b64encode(data).decode(), encoding="base64")["size"] == len(data)
    assert srv.sh(vm, "sha256sum /root/big.bin").split()[0] == hashlib.sha256(data).hexdigest()
    r = read(srv, vm, "/root/big.bin", encoding="base64")
    assert r["truncated"] is False and base64.b64decode(r["content"]) == data


def test_file_written_by_exec_read_back(srv: RawServer, vm: str) -> None:
    srv.sh(vm, "printf 'a\\000b\\377' > /root/raw.bin")
    r = read(srv, vm, "/root/raw.bin", encoding="base64")
    assert base64.b64decode(r["content"]) == b"a\x00b\xff" and r["size"] == 4


def test_content_is_written_verbatim(srv: RawServer, vm: str) -> None:
    content = (
        "it's \"quoted\" and 'single'\n"
        "$(touch /tmp/pwned) `touch /tmp/pwned2` $HOME ${PATH} \\n \\\\\n"
        "'; touch /tmp/pwned3; echo '\n"
        "EOF\n"
        "%s %d %%\n"
        "no trailing newline"
    )
    assert write(srv, vm, "/root/v.txt", content)["size"] == len(content.encode())
    assert read(srv, vm, "/root/v.txt")["content"] == content
    assert srv.sh(vm, "cat /root/v.txt") == content
    assert srv.sh(vm, "ls -A /tmp") == "", "writing the content ran part of it as shell"


def test_path_with_spaces_and_quotes(srv: RawServer, vm: str) -> None:
    path = "/root/dir with space/it's $(x) `y`.txt"
    write(srv, vm, path, "odd name", create_dirs=True)
    assert read(srv, vm, path)["content"] == "odd name"
    assert srv.exec(vm, ["cat", path])["stdout"] == "odd name"


# --------------------------------------------------------------------------- mode, create_dirs


def test_mode_0755_makes_an_executable(srv: RawServer, vm: str) -> None:
    script = "#!/bin/sh\necho \"ran with $1\"\n"
    write(srv, vm, "/root/tool.sh", script, mode="0755")
    assert srv.sh(vm, "stat -c %a /root/tool.sh").strip() == "755"
    out = srv.call_tool("exec", {"vm_id": vm, "command": ["/root/tool.sh", "arg"]})
    assert out["structuredContent"]["stdout"] == "ran with arg\n", out


def test_mode_sets_permissions(srv: RawServer, vm: str) -> None:
    write(srv, vm, "/root/secret", "s", mode="0600")
    assert srv.sh(vm, "stat -c %a /root/secret").strip() == "600"
    write(srv, vm, "/root/plain", "p", mode="644")
    assert srv.sh(vm, "stat -c %a /root/plain").strip() == "644"
    assert srv.exec(vm, "/root/plain")["exit_code"] != 0  # not executable


def test_create_dirs(srv: RawServer, vm: str) -> None:
    path = "/root/a/b/c/file.txt"
    text = tool_error_text(srv.call_tool_raw("write_file", {"vm_id": vm, "path": path, "content": "x"}))
    assert path in text or "/root/a" in text, text
    assert srv.sh(vm, "test -e /root/a && echo present || echo absent") == "absent\n"
    assert write(srv, vm, path, "deep", create_dirs=True) == {"path": path, "size": 4}
    assert read(srv, vm, path)["content"] == "deep"
    assert srv.sh(vm, "cat /root/a/b/c/file.txt") == "deep"
    # create_dirs on an existing directory is fine
    write(srv, vm, "/root/a/b/other.txt", "o", create_dirs=True)
    assert sorted(srv.sh(vm, "ls /root/a/b").split()) == ["c", "other.txt"]


# --------------------------------------------------------------------------- reading limits and errors


def test_max_bytes_truncates(srv: RawServer, vm: str) -> None:
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    write(srv, vm, "/root/abc", alphabet)
    r = read(srv, vm, "/root/abc", max_bytes=10)
    assert r == {"path": "/root/abc", "content": alphabet[:10], "encoding": "utf8", "size": 26, "truncated": True}
    r = read(srv, vm, "/root/abc", max_bytes=10, encoding="base64")
    assert base64.b64decode(r["content"]) == alphabet[:10].encode() and r["truncated"] is True and r["size"] == 26
    r = read(srv, vm, "/root/abc", max_bytes=26)
    assert r["content"] == alphabet and r["truncated"] is False
    r = read(srv, vm, "/root/abc", max_bytes=1000)
    assert r["content"] == alphabet and r["truncated"] is False


def test_non_utf8_as_utf8_says_use_base64(srv: RawServer, vm: str) -> None:
    write(srv, vm, "/root/bin", base64.b64encode(b"ok\xff\xfe\x80").decode(), encoding="base64")
    text = tool_error_text(srv.call_tool_raw("read_file", {"vm_id": vm, "path": "/root/bin"}))
    assert "base64" in text, text
    assert base64.b64decode(read(srv, vm, "/root/bin", encoding="base64")["content"]) == b"ok\xff\xfe\x80"


def test_missing_file(srv: RawServer, vm: str) -> None:
    path = f"/root/missing-{secrets.token_hex(4)}"
    text = tool_error_text(srv.call_tool_raw("read_file", {"vm_id": vm, "path": path}))
    assert path in text, text
    resp = srv.request("read_file", {"vm_id": vm, "path": path})
    assert resp.get("error", {}).get("code") == -32000, resp
    assert resp["error"]["data"]["kind"] == "not_found", resp


def test_read_a_directory_is_error(srv: RawServer, vm: str) -> None:
    tool_error_text(srv.call_tool_raw("read_file", {"vm_id": vm, "path": "/root"}))


def test_write_over_a_directory_is_error(srv: RawServer, vm: str) -> None:
    srv.sh(vm, "mkdir -p /root/d && touch /root/d/keep")
    tool_error_text(srv.call_tool_raw("write_file", {"vm_id": vm, "path": "/root/d", "content": "x"}))
    assert srv.sh(vm, "ls /root/d") == "keep\n"


def test_unknown_vm(srv: RawServer) -> None:
    missing = f"vm-missing-{secrets.token_hex(4)}"
    text = tool_error_text(srv.call_tool_raw("read_file", {"vm_id": missing, "path": "/etc/hostname"}))
    assert missing in text, text
    text = tool_error_text(srv.call_tool_raw("write_file", {"vm_id": missing, "path": "/root/x", "content": "x"}))
    assert missing in text, text


# --------------------------------------------------------------------------- bad params


@pytest.mark.parametrize("tool", ["read_file", "write_file"])
@pytest.mark.parametrize("path", ["root/x.txt", "x", "./x", ""], ids=["relative", "bare", "dot", "empty"])
def test_relative_path_is_invalid(srv: RawServer, vm: str, tool: str, path: str) -> None:
    args: dict[str, Any] = {"vm_id": vm, "path": path}
    if tool == "write_file":
        args["content"] = "x"
    assert_invalid(srv.call_tool_raw(tool, args), "arguments.path")
    assert_invalid(srv.request(tool, args), "path")


@pytest.mark.parametrize(
    "bad",
    ["!!!not base64!!!", "a", "YQ=x", "=YQ="],
    ids=["not-alphabet", "one-char", "data-after-padding", "leading-padding"],
)
def test_bad_base64_is_invalid(srv: RawServer, vm: str, bad: str) -> None:
    resp = srv.call_tool_raw("write_file", {"vm_id": vm, "path": "/root/b", "content": bad, "encoding": "base64"})
    written = srv.sh(vm, "test -e /root/b && od -An -tx1 /root/b || echo absent")
    assert written == "absent\n", f"invalid base64 {bad!r} was written as bytes {written.strip()}: {resp!r:.1000}"
    assert_invalid(resp, "arguments.content")


@pytest.mark.parametrize(
    "tool, extra, path",
    [
        ("write_file", {"content": "x", "mode": "999"}, "arguments.mode"),
        ("write_file", {"content": "x", "mode": "rwx"}, "arguments.mode"),
        ("write_file", {"content": "x", "encoding": "hex"}, "arguments.encoding"),
        ("write_file", {}, "arguments.content"),
        ("write_file", {"content": 5}, "arguments.content"),
        ("write_file", {"content": "x", "create_dirs": "yes"}, "arguments.create_dirs"),
        ("read_file", {"encoding": "latin1"}, "arguments.encoding"),
        ("read_file", {"max_bytes": 0}, "arguments.max_bytes"),
        ("read_file", {"max_bytes": "10"}, "arguments.max_bytes"),
        ("read_file", {"offset": 3}, "arguments.offset"),
    ],
    ids=["mode-999", "mode-rwx", "encoding-hex", "no-content", "int-content", "string-create_dirs",
         "read-encoding", "max_bytes-0", "string-max_bytes", "unknown-argument"],
)
def test_bad_arguments_name_the_field(srv: RawServer, vm: str, tool: str, extra: dict, path: str) -> None:
    assert_invalid(srv.call_tool_raw(tool, {"vm_id": vm, "path": "/root/p", **extra}), path)


# --------------------------------------------------------------------------- symlinks


def test_symlink_to_shadow_does_not_reach_the_host(srv: RawServer, vm: str) -> None:
    srv.sh(vm, "ln -s /etc/shadow /tmp/s")
    host_shadow = Path("/etc/shadow").read_bytes() if Path("/etc/shadow").exists() else b""
    for path in ["/tmp/s", "/etc/shadow"]:
        for encoding in ["utf8", "base64"]:
            resp = srv.call_tool_raw("read_file", {"vm_id": vm, "path": path, "encoding": encoding})
            text = tool_error_text(resp)
            assert "root:" not in text, f"the host's /etc/shadow leaked through {path}: {text[:200]!r}"
            if host_shadow:
                assert base64.b64encode(host_shadow[:32]).decode()[:40] not in text


def test_write_through_a_symlink_stays_in_the_vm(srv: RawServer, vm: str) -> None:
    original = f"host-original-{secrets.token_hex(4)}\n".encode()
    gen = host_file(original)
    target = next(gen)
    try:
        hostdir = Path(f"/var/tmp/vs-e2e-hostdir-{secrets.token_hex(6)}")
        hostdir.mkdir()
        try:
            srv.sh(vm, f"ln -s {target} /tmp/link && ln -s {hostdir} /tmp/dirlink")
            write(srv, vm, "/tmp/link", "changed-in-vm\n")
            write(srv, vm, "/tmp/dirlink/dropped.txt", "dropped\n")
            assert read(srv, vm, "/tmp/link")["content"] == "changed-in-vm\n"  # the VM sees its own write
            assert target.read_bytes() == original, "write_file through a symlink changed a host file"
            assert list(hostdir.iterdir()) == [], "write_file through a symlinked dir wrote on the host"
        finally:
            for p in hostdir.iterdir():
                p.unlink()
            hostdir.rmdir()
    finally:
        gen.close()


# --------------------------------------------------------------------------- sessions


def test_file_tools_by_session(srv: RawServer, vm: str) -> None:
    s = f"files-{secrets.token_hex(4)}"
    srv.call_tool("bind_session", {"session": s, "vm_id": vm})
    try:
        r = srv.call_tool("write_file", {"session": s, "path": "/root/s.txt", "content": "via session"})
        assert r["structuredContent"] == {"path": "/root/s.txt", "size": 11}
        assert srv.sh(vm, "cat /root/s.txt") == "via session"
        r = srv.call_tool("read_file", {"session": s, "path": "/root/s.txt"})
        assert r["structuredContent"]["content"] == "via session"
    finally:
        srv.call_tool("unbind_session", {"session": s})
