# The HAN link beyond one event (docs/HAN.md), on the MicroPython unix port against
# the gateway emulator tools/han_emu.py with mutual TLS:
#   - the trigger carries the time status it was taken with and its uncertainty; the
#     gateway records both and marks an event whose time is not legal time;
#   - han.server_hostname is the name checked in the gateway's certificate and sent
#     as SNI (RFC 6066 section 3);
#   - one TLS session, many events: HTTP/1.1 persistence (RFC 9112 9.3) against a
#     gateway that keeps connections, one that closes after each answer, one that
#     closes idle connections early, and one whose close crosses the next request
#     (RFC 9112 9.3.1: sent again on a new connection); every event arrives exactly
#     once, in order, whatever the gateway does with the connection.
import os
import shutil

import pytest

from test_han_mp import POST, Emu, cfg, run_mp

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl CLI")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    import subprocess
    from conftest import ROOT
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(["sh", os.path.join(ROOT, "tools", "mkpki.sh"), str(d)], check=True, capture_output=True)
    return str(d)


@pytest.fixture
def emu(tmp_path, pki):
    e = Emu(str(tmp_path), pki)
    yield e
    e.stop()


STAMPED = POST.replace('"timestamp": 1700000000}',
                       '"timestamp": 1700000000, "time_status": cfg.get("st"), "error_ms": cfg.get("err")}')

# (status and uncertainty the event was taken with) -> what the gateway records
TIME_CASES = [
    ("S", 14, {"time_status": "S", "error_ms": 14, "legal_time": True}),
    ("I", 14, {"time_status": "I", "error_ms": None, "legal_time": False, "mark": "time set by hand (I): not legal time"}),
    ("U", None, {"time_status": "U", "error_ms": None, "legal_time": False, "mark": "time unknown (U): not legal time"}),
    (None, None, {"time_status": "U", "error_ms": None, "legal_time": False, "mark": "time unknown (U): not legal time"}),
]


@pytest.mark.parametrize("st,err,recorded", TIME_CASES)
def test_trigger_carries_its_time_status(emu, pki, st, err, recorded):
    out = run_mp(STAMPED, cfg(emu, pki, st=st, err=err))
    assert "ok" in out, out  # a U event is accepted: it happened, only its time is not legal
    [stored] = emu.events()
    assert {k: stored.get(k) for k in recorded} == recorded, stored
    assert ("mark" in stored) == ("mark" in recorded), stored


@pytest.mark.parametrize("name,ok", [("localhost", True), ("gateway.invalid", False)])
def test_server_hostname_is_checked_and_sent(emu, pki, name, ok):
    # the URL names the address; the gateway certificate names 127.0.0.1 and localhost
    out = run_mp(POST, cfg(emu, pki, **{"han.server_hostname": name}))
    if ok:
        assert "ok" in out, out
        [stored] = emu.events()
        assert stored["sni"] == "localhost", stored
    else:
        assert out.get("err", "").startswith("gateway certificate not trusted"), out
        assert emu.events() == []


# N events through the outbox, one added every add_every_ms; prints the HAN client's
# counters with the outbox status when all are acknowledged.
SESSION = r'''
import sys
sys.path.insert(0, %(fw)r)
import asyncio, json
from dicamm.drivers.clock import Clock
from dicamm.drivers.han_client import HanClient
from dicamm.services.outbox import Outbox
cfg = json.load(open(sys.argv[1]))
N = cfg["n"]
async def main():
    han = HanClient.from_config(cfg)
    ob = Outbox(cfg["root"], Clock(), han.post_event, cls_id=cfg["cls_id"], backoff_min_ms=50,
                backoff_max_ms=400, link=han)
    task = asyncio.create_task(ob.run())
    for i in range(N):
        ob.add("test", "ev-%%03d" %% i, 1700000000000 + i * 1000, "S", 1000 + i, error_ms=7)
        await asyncio.sleep_ms(cfg["add_every_ms"])
    while ob.pending():
        await asyncio.sleep_ms(10)
    st = ob.status()
    st["han"] = han.status()
    print(json.dumps({"done": st}))
asyncio.run(main())
'''


def _once_in_order(emu, n):
    ev = emu.events()
    assert [e["text"] for e in ev] == ["ev-%03d" % i for i in range(n)], ev
    assert len({e["uuid"] for e in ev}) == n
    assert all(e["time_status"] == "S" and e["error_ms"] == 7 for e in ev), ev
    return ev


# (gateway's connections, device's han.idle_s, real ms between events, emulator's early_ms)
SESSIONS = {
    "keep": ("keep", 60, 30, None),
    "close": ("close", 60, 30, None),
    "device-closes": ("keep", 0, 30, None),
    "early": ("early", 60, 400, 100),
    "race": ("race", 60, 30, None),
}


@pytest.mark.parametrize("kind", sorted(SESSIONS))
def test_every_event_once_whatever_the_gateway_does_with_the_connection(emu, pki, tmp_path, kind):
    conn, idle_s, every, early = SESSIONS[kind]
    n = 8
    emu.set_mode("ok", conn=conn, **({"early_ms": early} if early else {}))
    out = run_mp(SESSION, cfg(emu, pki, n=n, root=str(tmp_path / "root"), add_every_ms=every,
                              **{"han.idle_s": idle_s}))
    done = out["done"]
    han = done["han"]
    assert done["pending"] == 0 and done["acked"] == n, done
    ev = _once_in_order(emu, n)
    conns = [e["conn"] for e in ev]
    if kind == "keep":
        # one handshake, then every event over the same session
        assert han["connects"] == 1 and han["reused"] == n - 1 and han["stale"] == 0, han
        assert len(set(conns)) == 1 and [e["on_conn"] for e in ev] == list(range(1, n + 1)), ev
    elif kind in ("close", "device-closes"):
        # the gateway (or the device's han.idle_s 0) ends each connection after one answer
        assert han["connects"] == n and han["reused"] == 0, han
        assert len(set(conns)) == n and {e["on_conn"] for e in ev} == {1}, ev
    elif kind == "early":
        # each idle connection was closed by the gateway before the next event: the
        # device sees that and opens a new one
        assert han["connects"] == n and han["stale"] >= n - 1, han
        assert len(set(conns)) == n, ev
    else:
        # race: the gateway recorded each later event, then closed without answering; the
        # device sent it again on a new connection and got the same record (200)
        assert han["stale"] == n - 1 and han["connects"] == n, han
        assert done["attempts"] == n, done  # the resend is inside one post, not an outbox retry
        assert [e["on_conn"] for e in ev] == [1] + [2] * (n - 1), ev
    assert done["last_error"] is None, done


def test_kept_connection_closed_after_idle_time(emu, pki, tmp_path):
    # han.idle_s: the device itself closes an idle kept connection (the emulator logs
    # it as the client's close); with idle_s 1 and 1.6 s between two events the second
    # needs a new connection, though the gateway would keep it for 30 s
    emu.set_mode("ok", conn="keep")
    out = run_mp(SESSION, cfg(emu, pki, n=2, root=str(tmp_path / "root"), add_every_ms=1600,
                              **{"han.idle_s": 1}))
    han = out["done"]["han"]
    assert han["connects"] == 2 and han["reused"] == 0 and han["stale"] == 0, han
    assert han["kept_ms"] is None  # the script waits 1.6 s after the last event: closed by then too
    ev = _once_in_order(emu, 2)
    assert ev[0]["conn"] != ev[1]["conn"]

