# Power can fail at any instruction of an update (issue 19, item 4): the firmware
# on the unix port updates back and forth between two signed releases (0.2.0 and
# 0.3.0, the older one with --downgrade) and is killed with SIGKILL at random
# moments of the download, the checks, the switch, the first start on trial and
# the confirmation, at least 30 times. After every cut it starts again, and:
#   - the code that runs is the version its boot record names, from a folder whose
#     every file is as signed (old or new, never between; proto/slots.py);
#   - every TAF16 event whose `event` command answered is in the outbox exactly
#     once, and reaches the gateway once (the HAN emulator's store);
#   - every quarter hour of the load profile seen before is still there, unchanged,
#     and no boundary is there twice.
import json
import os
import random
import re
import shutil
import signal
import time

import pytest

from rig import Rig
from update_rig import ReleaseServer, folder_is_whole, tool, update_state
from waiting import running, wait_delivered, wait_until

pytestmark = pytest.mark.slow  # runs the firmware and the emulators as processes

KILLS = 30
SEED = int(os.environ.get("UPDATE_KILL_SEED", "1919"))
VERSIONS = {"0.2.0": "a", "0.3.0": "b"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("update_kills")
    key = str(tmp / "release-key.pem")
    pub = tool("keygen", "--out", key)
    rels = tmp / "releases"
    for version, name in VERSIONS.items():
        tool("build", "--out", str(rels / name), "--board", "unix", "--key", key, "--version", version)
    # confirm_s 120 device s at 60x: two real seconds on trial, where cuts land too
    r = Rig(tmp, speed=60, load="constant:400", sntp=("good",),
            config={"update": {"pubkey": pub, "ca": "certs/ca.pem", "timeout_ms": 3000, "confirm_s": 120}})
    with running(r) as r:
        srv = ReleaseServer(str(rels), r.pki)
        try:
            yield r, srv
        finally:
            srv.stop()


def running_version(rig):
    # The version the boot record names and the one that answers must agree.
    rec_path = os.path.join(rig.root, "update", "boot.json")
    rec = json.load(open(rec_path)) if os.path.exists(rec_path) else {}
    st = rig.fw.json("status --json")
    if rec.get("active"):
        assert folder_is_whole(os.path.join(rig.root, rec["active"])) == rec["version"] == st["firmware"], (rec, st)
    else:
        assert st["firmware"] == "0.1.0", (rec, st)
    return st["firmware"], rec


def qh_rows(rig):
    return {r["boundary"]: r for r in rig.fw.json("qh --json --last 10000")["qh"]}


def event_uuids(rig):
    return [e["uuid"] for e in rig.fw.json("events --json --last 1000")["events"]]


def test_cuts_at_random_moments_of_updates_lose_and_double_nothing(setup):
    rig, srv = setup
    rnd = random.Random(SEED)
    committed = []         # uuids of events whose command answered
    seen_qh = {}
    outcomes = {}
    kills = 0
    while kills < KILLS:
        if not rig.fw.alive():
            rig.start_firmware()
        version, rec = running_version(rig)
        outcomes[version] = outcomes.get(version, 0) + 1
        rows = qh_rows(rig)
        for b, r in seen_qh.items():
            assert rows.get(b) == r, ("quarter hour lost or changed", b, r, rows.get(b))
        seen_qh = rows
        uuids = event_uuids(rig)
        assert len(uuids) == len(set(uuids)), "an event twice in the outbox"
        missing = [u for u in committed if u not in uuids]
        assert not missing, ("events lost", missing)
        out = rig.fw.command('event "cut %d"' % kills)
        m = re.search(r"event (\S+) recorded", " ".join(out))
        assert m, out
        committed.append(m.group(1))
        st = update_state(rig)
        if st["state"] not in ("check", "download", "restarting"):
            target = "0.3.0" if version != "0.3.0" else "0.2.0"
            flags = " --downgrade" if target < version else ""
            rig.fw.command("update install %s%s" % (srv.url(VERSIONS[target]), flags))
        time.sleep(rnd.uniform(0.0, 2.5))   # a download takes ~5 s: cuts hit every step, resumes get on
        if rig.fw.alive():
            rig.fw.kill()
            kills += 1
    rig.start_firmware()
    version, rec = running_version(rig)
    wait_until(lambda: not update_state(rig)["boot"] or not update_state(rig)["boot"].get("trial"), 60,
               what="the last version confirmed or rolled back")
    rows = qh_rows(rig)
    assert all(rows.get(b) == r for b, r in seen_qh.items())
    uuids = event_uuids(rig)
    assert sorted(uuids) == sorted(set(uuids)) and set(committed) <= set(uuids)
    wait_delivered(rig)
    at_gateway = [e["uuid"] for e in rig.gateway_events()]
    assert len(at_gateway) == len(set(at_gateway)), "an event twice at the gateway"
    assert set(committed) <= set(at_gateway)
    # the cuts reached more than one version: updates went through between them
    assert len(outcomes) >= 2, outcomes
    print("update kills: %d cuts, starts per version %s, %d events, %d quarter hours"
          % (kills, outcomes, len(committed), len(rows)))
