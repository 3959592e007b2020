"""Protection and robustness of the console on a pty: the service PIN guards
changes (not reading), wrong PINs are refused and rate-limited; a fuzzed
stream of garbage (random bytes, 10 kB lines, control characters, broken
escape sequences, unbalanced quotes, invalid UTF-8) neither crashes the
console nor stops metering, and changes nothing."""
import json
import os
import random
import re
import time

import pytest

from rig import Rig
from test_cli_pty import PROMPT, PtyFirmware

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(__file__), "..", ".venv", "bin",
                                                                "micropython")), reason="no MicroPython")]

NEEDS = "error: this command needs the service PIN: add --pin PIN or run 'unlock PIN'"


def _bench(tmp_path, speed=1):
    rig = Rig(tmp_path / "rig", meters=("1:sdm630",), load="constant:900", sntp=(), han=None,
              speed=speed).start(firmware=False)
    root = tmp_path / "device"
    os.makedirs(root)
    with open(root / "config.json", "w") as f:
        json.dump({"meter": {"port": rig.pty, "model": "sdm630", "address": 1, "timeout_ms": 300}}, f)
    fw = PtyFirmware(root, clock=rig.clock).start()
    try:
        deadline = time.monotonic() + 30
        while not fw.json("status --json")["meter"].get("ok"):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        yield rig, fw, root
    finally:
        fw.stop()
        rig.stop()


@pytest.fixture
def bench(tmp_path):
    yield from _bench(tmp_path)


@pytest.fixture
def fast_bench(tmp_path):
    # 20x: the 30 s PIN lockout (device time) lasts 1.5 real seconds
    yield from _bench(tmp_path, speed=20)


def _polls_rise(fw, timeout=30):
    p0 = fw.polls()
    deadline = time.monotonic() + timeout
    while fw.polls() <= p0:
        assert time.monotonic() < deadline, "metering stopped"
        time.sleep(0.3)


def test_wrong_pin_refused_and_rate_limited(fast_bench):
    rig, fw, root = fast_bench
    assert fw.command("config set service.pin 4711")[0].startswith("service.pin = \"***\"")
    # changes need the PIN; reading does not
    assert fw.command("config set cls_id CLS-X") == [NEEDS]
    assert fw.command("relay on") == [NEEDS]
    assert fw.command("factory-reset") == [NEEDS]
    assert fw.command("setup") == [NEEDS]
    assert fw.command("cert load ca") == [NEEDS]
    assert fw.json("config show --json")["service.pin"] == "***"
    assert fw.json("relay --json")["state"] == "off"
    assert fw.json("meter read --json")["ok"] is True
    # three wrong PINs, then even the right one is refused for a while
    for _ in range(3):
        assert fw.command("config set cls_id CLS-X --pin 1234") == ["error: wrong PIN"]
    locked_at = rig.clock.now_ms()
    locked = fw.command("config set cls_id CLS-X --pin 4711")
    assert locked[0].startswith("error: too many wrong PINs: locked for "), locked
    assert fw.command("unlock 4711")[0].startswith("error: too many wrong PINs")
    assert "cls_id" not in json.load(open(root / "config.json"))
    assert any("wrong service PIN (3 in a row)" in ln for ln in fw.command("log"))
    _polls_rise(fw)
    # the lock ends after 30 s of device time, not before; the right PIN then works,
    # and 'unlock' opens a session
    left_s = int(locked[0].split("locked for ")[1].split()[0])
    assert 25 <= left_s <= 31, locked
    while True:
        out = fw.command("unlock 4711")
        if out[0].startswith("unlocked"):
            break
        assert out[0].startswith("error: too many wrong PINs"), out
        assert rig.clock.now_ms() - locked_at < 90_000, "lock did not end"
        rig.wait_device_ms(rig.clock.now_ms() + 2000)
    assert rig.clock.now_ms() - locked_at >= (left_s - 1) * 1000
    assert fw.command("config set cls_id CLS-X")[0].startswith("cls_id = \"CLS-X\"")
    fw.command("lock")
    assert fw.command("config set cls_id CLS-Y") == [NEEDS]
    assert fw.command("config set cls_id CLS-Y --pin 4711")[0].startswith("cls_id = \"CLS-Y\"")


def _garbage(rnd):
    out = []
    for i in range(400):
        kind = i % 8
        if kind == 0:
            out.append(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200))))
        elif kind == 1:
            out.append(bytes(rnd.choice(b"\x00\x01\x02\x04\x07\x08\x09\x0b\x0c\x1a\x1b\x7f") for _ in range(50)))
        elif kind == 2:
            out.append(b'status "unclosed quote ' + bytes(rnd.randrange(32, 127) for _ in range(30)))
        elif kind == 3:
            out.append(b"\x1b[" + bytes(rnd.randrange(32, 64) for _ in range(20)))   # unfinished escape
        elif kind == 4:
            out.append("m\u00e4ter r\u00e9ad \u2603".encode() + b"\xff\xfe\xc3")      # bad UTF-8
        elif kind == 5:
            out.append(b"config set " + bytes(rnd.randrange(33, 127) for _ in range(rnd.randrange(400, 600))))
        elif kind == 6:
            out.append(b"meter --from --to --bauds ' \" -- --- --json --pin")
        else:
            out.append(bytes(rnd.randrange(32, 127) for _ in range(rnd.randrange(0, 80))))
    for _ in range(5):
        out.insert(rnd.randrange(len(out)), bytes(rnd.randrange(33, 127) for _ in range(10240)))
    return out


def test_fuzzed_garbage_keeps_metering_and_changes_nothing(bench):
    rig, fw, root = bench
    fw.command("config set service.pin 2468")      # so that no garbage can change anything
    config_before = open(root / "config.json", "rb").read()
    p0 = fw.polls()
    rnd = random.Random(7)
    lines = _garbage(rnd)
    for i, g in enumerate(lines):
        fw.write(g.replace(b"\r", b"").replace(b"\n", b"") + b"\r")
        if i % 50 == 0:
            fw.write(b"\x03")    # Ctrl-C now and then
    fw.write(b"\r")
    fw.type("echo fuzz" + "-done")
    fw.expect(re.compile(r"(?<!echo )fuzz-done\n" + PROMPT), 120)   # the answer, not the echoed line
    assert "line too long (max 512 characters): ignored" in fw.buf
    assert "error: line is not text: ignored" in fw.buf
    assert "error: unclosed quote" in fw.buf
    assert "internal error" not in fw.buf
    assert fw.alive()
    # still metering, status fine, nothing changed
    d = fw.json("status --json")
    assert d["meter"]["ok"] is True and d["firmware"] and d["uptime_s"] >= 0
    assert d["bus"]["polls"] > p0
    _polls_rise(fw)
    assert open(root / "config.json", "rb").read() == config_before
    assert fw.command("echo alive") == ["alive"]
    assert not fw.stderr


def test_half_typed_line_does_not_block_metering(bench):
    rig, fw, root = bench
    fw.write(b"status --js")                          # no Enter yet
    n0 = len(rig.meter_reads())
    deadline = time.monotonic() + 30
    while len(rig.meter_reads()) < n0 + 3:            # the meter is still read
        assert time.monotonic() < deadline, "metering blocked by a half-typed line"
        time.sleep(0.2)
    fw.write(b"on\r")                                 # the line completes as typed
    out = fw.expect(PROMPT, 30)
    d = json.loads(out.split("\n")[1])
    assert d["meter"]["ok"] is True


def test_mem_shows_heap_and_block_map(bench):
    rig, fw, root = bench
    d = fw.json("mem --json")
    assert 0 < d["alloc"] < d["total"] and d["peak_alloc"] >= d["alloc"] > 0 and d["samples"] >= 1
    out = fw.command("mem --map", timeout=30)
    text = "\n".join(out)
    # MicroPython's own dump: totals, then the block map (h/=/. and type letters)
    assert "GC: total:" in text and "GC memory layout" in text, text[:400]
    # and the interned names, which are never freed (a count that grows with uptime is a leak)
    assert re.search(r"qstr pool: n_pool=\d+, n_qstr=\d+", text), text[-400:]
    rows = [ln for ln in out if re.match(r"^[0-9a-f]{8}: [A-Za-z=.]+$", ln)]
    assert rows and any("=" in r and "." in r for r in rows), out[:12]
    assert fw.command("echo alive") == ["alive"]
