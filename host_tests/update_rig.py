# The update's test parts shared by test_e2e_update and test_update_kills: the
# release tool, an HTTPS server over release folders (with faults), and the
# console steps of an update.
import hashlib
import json
import os
import subprocess
import sys

from conftest import TOOLS
from release_server import ReleaseServer  # noqa: F401 (tools/: the tests' and the fleet's)
from waiting import wait_until

RELEASE = os.path.join(TOOLS, "release.py")


def tool(*args):
    r = subprocess.run([sys.executable, RELEASE] + list(args), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip().splitlines()[-1]


def update_state(rig):
    return rig.fw.json("update --json")


def install(rig, url, *flags):
    # -> the update's state when it failed, or None when the firmware restarted into it
    out = rig.fw.command(" ".join(("update install", url) + flags))
    assert any("started" in ln for ln in out), out

    def done():
        if not rig.fw.alive():
            return "exited"
        try:
            d = update_state(rig)
        except (AssertionError, TimeoutError, RuntimeError):   # the console went as the firmware exits
            return None
        return d if d["state"] == "failed" else None
    d = wait_until(done, 60, what="update failed or restarted")
    return None if d == "exited" else d


def restarted(rig):
    # The unix port's restart: the firmware exited; start it again as the power would.
    wait_until(lambda: not rig.fw.alive(), 30, what="firmware exit")
    rig.start_firmware()
    return rig.fw.json("status --json")


def folder_is_whole(folder):
    # Every file of the manifest in a code folder, byte for byte as signed.
    m = json.load(open(os.path.join(folder, "manifest.json")))
    for e in m["files"]:
        p = os.path.join(folder, *e["path"].split("/"))
        assert hashlib.sha256(open(p, "rb").read()).hexdigest() == e["sha256"], (folder, e["path"])
    return m["version"]


def stage_consistent(stage):
    # What a failed or cut download leaves: nothing, or files each whole as signed
    # (for a resumed update of the same release, listed in pending.json).
    if not os.path.exists(stage):
        return 0
    if os.path.exists(os.path.join(stage, "manifest.json")):
        folder_is_whole(stage)
        return -1
    entries = {e["path"]: e for e in json.load(open(os.path.join(stage, "pending.json")))["files"]}
    n = 0
    for dirpath, _, names in os.walk(stage):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), stage).replace(os.sep, "/")
            if rel == "pending.json":
                continue
            e = entries[rel]
            b = open(os.path.join(dirpath, name), "rb").read()
            assert len(b) == e["size"] and hashlib.sha256(b).hexdigest() == e["sha256"], ("a part left", rel)
            n += 1
    return n
