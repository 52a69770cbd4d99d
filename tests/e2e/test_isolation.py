"""Local-backend isolation: what a VM must not see or touch on the host.

The server runs with VERS_API_KEY set (and VERS_SWARM_BACKEND=local so it still
uses the local backend): the key must never reach a VM. Commands are run with
plain JSON-RPC `exec` on a RawServer and are written to exit 0, reporting what
they found on stdout, so a missing file reads as "ABSENT" rather than an error.

Host files these tests create (markers, a fake SSH host key) are removed in
finally blocks, and so is anything a broken sandbox might have leaked.
"""

from __future__ import annotations

import glob
import os
import secrets
import shlex
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from conftest import RawServer

SECRET = f"secret-vs-e2e-{secrets.token_hex(12)}"
ISOLATED_ENV = {"VERS_API_KEY": SECRET, "VERS_SWARM_BACKEND": "local"}
# top-level host directories the base image is allowed to show (DESIGN.md, mask layer)
ALLOWLISTED_TOP = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "opt", "var"}


@pytest.fixture()
def iso(serve) -> RawServer:
    """A server started with a Vers API key in its environment but the local backend."""
    return serve(env=ISOLATED_ENV)


@contextmanager
def new_vm(srv: RawServer) -> Iterator[str]:
    """A VM for the duration of a with-block (created after any host fixtures exist)."""
    vm_id = srv.create_vm()
    try:
        yield vm_id
    finally:
        if srv.proc.poll() is None:
            out = srv.delete_vms([vm_id])
            assert vm_id in out.get("deleted", []), out


@pytest.fixture()
def iso_vm(iso: RawServer) -> Iterator[str]:
    with new_vm(iso) as vm_id:
        yield vm_id


def exists_probe(paths: list[str]) -> str:
    """A shell snippet printing 'VISIBLE <path>' for each path that exists."""
    return "; ".join(f"[ -e {shlex.quote(p)} ] && echo VISIBLE {shlex.quote(p)}" for p in paths) + "; true"


def remove_quietly(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass


# --------------------------------------------------------------------------- host files


def test_host_root_and_home_are_invisible(iso: RawServer) -> None:
    token = secrets.token_hex(8)
    root_marker = Path(f"/root/vs-marker-{token}")
    home_marker = Path(f"/home/vs-marker-{token}")
    content = f"host-only-{token}"
    try:
        for m in (root_marker, home_marker):
            m.write_text(content)
        host_users = [n for n in os.listdir("/home") if not n.startswith(".") and n != home_marker.name]
        with new_vm(iso) as iso_vm:
            _check_root_and_home(iso, iso_vm, root_marker, home_marker, host_users, content, token)
    finally:
        remove_quietly(root_marker, home_marker, Path(f"/root/vm-{token}"))


def _check_root_and_home(iso: RawServer, iso_vm: str, root_marker: Path, home_marker: Path,
                         host_users: list[str], content: str, token: str) -> None:
    out = iso.sh(
        iso_vm,
        exists_probe([str(root_marker), str(home_marker)] + [f"/home/{n}" for n in host_users])
        + f"; cat {root_marker} {home_marker} 2>/dev/null; ls -A /root /home 2>/dev/null; true",
    )
    assert "VISIBLE" not in out, out
    assert content not in out, out
    assert token not in out, out
    # the VM's /root and /home are its own and writable
    assert iso.sh(iso_vm, f"echo vm > /root/vm-{token} && cat /root/vm-{token}") == "vm\n"
    assert not Path(f"/root/vm-{token}").exists(), "a write to the VM's /root reached the host"


def _shadow_leaks(path: str, vm_out: dict) -> list[str]:
    try:
        host = Path(path).read_text(errors="replace")
    except OSError:
        return []
    if vm_out["exit_code"] != 0:
        return []  # unreadable (or absent) in the VM
    leaked = []
    if host.strip() and vm_out["stdout"] == host:
        leaked.append(f"{path} is an exact copy of the host's")
    for line in host.splitlines():
        fields = line.split(":")
        if len(fields) > 1 and fields[1] not in ("", "*", "!", "!!", "x", "!*") and line in vm_out["stdout"]:
            leaked.append(f"{path}: password hash of {fields[0]!r} is readable")
    return leaked


def test_shadow_files_are_unreadable(iso: RawServer, iso_vm: str) -> None:
    leaks: list[str] = []
    for path in ("/etc/shadow", "/etc/gshadow"):
        # "cannot read the host's" is the contract (the design goes further and whiteouts them)
        leaks += _shadow_leaks(path, iso.exec(iso_vm, f"cat {path}"))
    assert not leaks, leaks


def test_ssh_host_keys_are_unreadable(serve, fresh_home: Path) -> None:
    """Real host keys and a fake one planted before the server (and its mask) start."""
    ssh_dir = Path("/etc/ssh")
    fake = ssh_dir / f"ssh_host_vse2e{secrets.token_hex(4)}_key"
    fake_body = f"-----BEGIN OPENSSH PRIVATE KEY-----\nvs-e2e-fake-{secrets.token_hex(8)}\n-----END OPENSSH PRIVATE KEY-----\n"
    planted = False
    try:
        if ssh_dir.is_dir():
            fake.write_text(fake_body)
            fake.chmod(0o600)
            planted = True
        srv = serve(home=fresh_home, env=ISOLATED_ENV)
        vm_id = srv.create_vm()
        try:
            host_keys = sorted(glob.glob("/etc/ssh/ssh_host_*_key"))
            out = srv.sh(
                vm_id,
                "for f in /etc/ssh/ssh_host_*_key " + " ".join(shlex.quote(k) for k in host_keys)
                + '; do [ -r "$f" ] && { echo "READABLE $f"; cat "$f"; }; done; true',
            )
            assert "READABLE" not in out, out
            assert "PRIVATE KEY" not in out, out
            for k in host_keys:
                if k.endswith(".pub"):
                    continue
                try:
                    body = Path(k).read_text(errors="replace").strip()
                except OSError:
                    continue
                assert not body or body not in out, f"{k} leaked into the VM"
        finally:
            srv.delete_vms([vm_id])
        if not planted:
            pytest.skip("no /etc/ssh on this host: only the (absent) real keys were checked")
    finally:
        if planted:
            remove_quietly(fake)


def test_state_dir_is_invisible(iso: RawServer, iso_vm: str) -> None:
    home = iso.home.resolve()
    assert any(home.iterdir()), f"the server left nothing in its state dir {home}; nothing to hide"
    out = iso.sh(
        iso_vm,
        exists_probe([str(home)]) + f"; find {shlex.quote(str(home))} -mindepth 1 -maxdepth 3 2>/dev/null | head -50; true",
    )
    listing = [l for l in out.splitlines() if l and not l.startswith("VISIBLE")]
    assert listing == [], f"the VM can list the state dir {home}: {listing}"


def test_project_checkout_is_invisible(iso: RawServer, iso_vm: str) -> None:
    me = Path(__file__).resolve()
    top = me.parts[1] if len(me.parts) > 1 else ""
    if top in ALLOWLISTED_TOP:
        pytest.skip(f"the checkout lives under /{top}, which the base image shows by design")
    marker = me.read_text()[:200]
    out = iso.sh(iso_vm, exists_probe([str(me), str(me.parent)]) + f"; head -c 200 {shlex.quote(str(me))} 2>/dev/null; true")
    assert "VISIBLE" not in out, out
    assert marker not in out


# --------------------------------------------------------------------------- processes


def test_host_processes_are_invisible(iso: RawServer, iso_vm: str) -> None:
    # a unique duration makes the process findable by its command line
    duration = f"300.{secrets.randbelow(10**6):06d}"
    host_sleep = subprocess.Popen(["sleep", duration], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = host_sleep.pid
    try:
        out = iso.sh(
            iso_vm,
            f"[ -e /proc/self/status ] && echo PROC_MOUNTED; "
            f"[ -e /proc/{pid} ] && echo \"PID_VISIBLE $(tr '\\0' ' ' < /proc/{pid}/cmdline 2>/dev/null)\"; "
            f"if kill -0 {pid} 2>/dev/null; then echo KILL0_OK; else echo KILL0_FAILED; fi; "
            f"for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\" 2>/dev/null; echo; done; true",
        )
        assert "PROC_MOUNTED" in out, f"the VM has no /proc; the probe proves nothing: {out}"
        assert "KILL0_FAILED" in out, f"kill -0 {pid} (a host process) succeeded inside the VM: {out}"
        assert f"sleep {duration}" not in out, f"the host's sleep is visible in the VM's /proc: {out}"
        # and it cannot be killed from inside
        iso.sh(iso_vm, f"kill -9 {pid} 2>/dev/null; true")
        assert host_sleep.poll() is None, "a VM killed a host process"
    finally:
        host_sleep.kill()
        host_sleep.wait(10)


# --------------------------------------------------------------------------- secrets


def test_api_key_never_reaches_the_vm(iso: RawServer) -> None:
    with new_vm(iso) as iso_vm:
        out = iso.sh(
            iso_vm,
            "env; echo ---; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'; "
            "echo ---; printf '%s' \"${VERS_API_KEY-unset}\"; true",
        )
    assert "VERS_API_KEY" not in out.rsplit("---", 1)[0], "VERS_API_KEY is in the VM's environment"
    assert out.rsplit("---", 1)[1].strip() == "unset"
    assert SECRET not in out, "the API key's value is visible inside the VM"
    # and the server never echoes it either
    iso.close()
    assert SECRET not in iso.stderr_tail(10**8), "the server logged the API key"
    for m in iso.messages:
        assert SECRET not in str(m)


# --------------------------------------------------------------------------- writes


def test_writes_in_the_vm_leave_the_host_unchanged(iso: RawServer) -> None:
    token = secrets.token_hex(8)
    new_paths = [
        f"/usr/local/bin/vs-e2e-{token}",
        f"/etc/vs-test-{token}",
        f"/tmp/vs-e2e-{token}",
        f"/var/tmp/vs-e2e-{token}",
        f"/opt/vs-e2e-{token}",
        f"/root/vs-e2e-{token}",
    ]
    existing = Path(f"/etc/vs-e2e-existing-{token}")
    doomed = Path(f"/etc/vs-e2e-doomed-{token}")
    try:
        existing.write_text("host-original\n")
        doomed.write_text("host-doomed\n")
        with new_vm(iso) as iso_vm:
            _write_everywhere(iso, iso_vm, token, new_paths, existing, doomed)
    finally:
        remove_quietly(existing, doomed, *(Path(p) for p in new_paths))


def _write_everywhere(iso: RawServer, iso_vm: str, token: str, new_paths: list[str],
                      existing: Path, doomed: Path) -> None:
    script = " && ".join(
        [f"mkdir -p {shlex.quote(str(Path(p).parent))} && printf 'vm-{token}' > {shlex.quote(p)}" for p in new_paths]
        + [f"chmod +x {new_paths[0]}",
           f"echo vm-appended >> {existing}",
           f"rm {doomed}"]
    )
    iso.sh(iso_vm, script)
    # the VM sees its own writes (so the test is not vacuous) ...
    for p in new_paths:
        assert iso.sh(iso_vm, f"cat {shlex.quote(p)}") == f"vm-{token}", p
    assert iso.sh(iso_vm, f"cat {existing}") == "host-original\nvm-appended\n"
    assert "VISIBLE" not in iso.sh(iso_vm, exists_probe([str(doomed)]))
    # ... the host does not
    for p in new_paths:
        assert not os.path.exists(p), f"{p} written in the VM appeared on the host"
    assert existing.read_text() == "host-original\n", "a change in the VM altered a host file"
    assert doomed.exists() and doomed.read_text() == "host-doomed\n", "a delete in the VM removed a host file"
    # ... and neither does another VM
    with new_vm(iso) as other:
        probe = iso.sh(other, exists_probe(new_paths) + f"; cat {existing}")
        assert "VISIBLE" not in probe, probe
        assert probe.endswith("host-original\n"), probe
