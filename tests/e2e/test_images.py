"""`vers-swarm image import` adds a root file system (a directory or a
tarball) that create_vm can start from instead of the host OS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from conftest import run_cli

APPLETS = ("sh", "echo", "cat", "ls", "sleep", "mkdir")


def busybox_root(path: Path) -> Path:
    (path / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", path / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", path / "bin" / applet)
    (path / "etc").mkdir()
    (path / "etc" / "image-name").write_text("tiny\n")
    return path


def call(vs_bin: Path, home: Path, tool: str, args: dict, ok: bool = True) -> dict:
    r = run_cli(vs_bin, home, ["call", tool, json.dumps(args)])
    if ok:
        assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else {"stderr": r.stderr, "returncode": r.returncode}


def test_images_from_a_directory_and_a_tarball(vs_bin: Path, fresh_home: Path, tmp_path: Path) -> None:
    root = busybox_root(tmp_path / "rootfs")
    r = run_cli(vs_bin, fresh_home, ["image", "import", "tiny", str(root)])
    assert r.returncode == 0, r.stderr
    tarball = tmp_path / "tiny.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root, arcname=".")
    r = run_cli(vs_bin, fresh_home, ["image", "import", "tiny-tar", str(tarball)])
    assert r.returncode == 0, r.stderr
    assert run_cli(vs_bin, fresh_home, ["image", "ls"]).stdout.split() == ["default", "tiny", "tiny-tar"]
    again = run_cli(vs_bin, fresh_home, ["image", "import", "tiny", str(root)])
    assert again.returncode != 0 and "already exists" in again.stderr

    made = []
    try:
        for image in ("tiny", "tiny-tar"):
            vm = call(vs_bin, fresh_home, "create_vm", {"image": image})["vm_id"]
            made.append(vm)
            out = call(vs_bin, fresh_home, "exec", {"vm_id": vm, "command": "pwd; cat /etc/image-name; ls /; test -e /usr"}, ok=False)
            # Only the image: no /usr from the host, commands start in / (the image has no /root).
            assert out["exit_code"] == 1, out
            assert out["stdout"].split() == ["/", "tiny", "bin", "dev", "etc", "proc"], out
        # Commit and branch work on an image VM like on any other.
        call(vs_bin, fresh_home, "exec", {"vm_id": made[0], "command": "mkdir -p /srv && echo gold > /srv/g"})
        call(vs_bin, fresh_home, "commit", {"vm_id": made[0], "label": "tiny-golden"})
        branched = call(vs_bin, fresh_home, "branch", {"from": "tiny-golden", "count": 2})
        made += [v["vm_id"] for v in branched["vms"]]
        for v in branched["vms"]:
            assert call(vs_bin, fresh_home, "exec", {"vm_id": v["vm_id"], "command": "cat /srv/g"})["stdout"] == "gold\n"
        unknown = run_cli(vs_bin, fresh_home, ["call", "create_vm", '{"image":"nope"}'])
        assert unknown.returncode == 1
        assert 'image "nope" not found' in unknown.stderr and '"tiny"' in unknown.stderr
    finally:
        call(vs_bin, fresh_home, "delete", {"vm_ids": made})


def test_an_image_without_a_shell_is_refused(vs_bin: Path, fresh_home: Path, tmp_path: Path) -> None:
    (tmp_path / "empty" / "etc").mkdir(parents=True)
    r = run_cli(vs_bin, fresh_home, ["image", "import", "empty", str(tmp_path / "empty")])
    assert r.returncode != 0 and "no /bin/sh" in r.stderr
    assert run_cli(vs_bin, fresh_home, ["image", "ls"]).stdout.split() == ["default"]
