# OCMF 1.4 records (proto/ocmf.py) and their storage (drivers/txstore.py):
# golden payload bytes, TM format (OCMF table 7: "2018-07-24T13:22:04,000+0200 S"),
# RV decimals, the "|" rule (OCMF "Sections": no pipe inside a section),
# signatures, pagination "T<n>" (OCMF table 2), power-cut close with TX "P".
# Dual test: runs on MicroPython and CPython, on the real Journal.
import os

from scratch import fresh_dir

from dicamm.drivers import txstore
from dicamm.drivers.journal import Journal
from dicamm.proto import ocmf, p256

KEY = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721  # RFC 6979 A.2.5
GW = ("DICAMM", "DIC-0001", "0.9.0")
METER = {"vendor": "Eastron", "model": "SDM630-Modbus", "serial": "12345678", "firmware": ""}
T0 = 1796214124000  # 2026-12-02T13:22:04 CET


def _dir(name):
    return fresh_dir('dicamm_ocmf', name)


def test_tm_format_and_back():
    cases = [(T0, "S", "2026-12-02T13:22:04,000+0100 S"),
             (1782998400123, "U", "2026-07-02T15:20:00,123+0200 U"),   # CEST
             (1792889999999, "I", "2026-10-25T02:59:59,999+0200 I"),   # last ms of CEST
             (1792893599999, "I", "2026-10-25T02:59:59,999+0100 I")]   # the same wall time an hour later
    for t, st, want in cases:
        assert ocmf.tm(t, st) == want, (t, ocmf.tm(t, st))
        assert ocmf.parse_tm(want) == (t, st)
    for bad in ("2026-12-02T13:22:04.000+0100 S", "2026-12-02T13:22:04,000+01:00 S", "x"):
        try:
            ocmf.parse_tm(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_kwh_decimals():
    assert ocmf.kwh(1234567, 3) == "1234.567"
    assert ocmf.kwh(1234567, 2) == "1234.57"
    assert ocmf.kwh(1234500, 1) == "1234.5"
    assert ocmf.kwh(5, 3) == "0.005"
    assert ocmf.kwh(499, 0) == "0"
    try:
        ocmf.kwh(-1, 3)
        raise AssertionError("negative energy accepted")
    except ValueError:
        pass


def test_text_never_carries_a_pipe_or_quote():
    assert ocmf.text('a|b"c\\d\ne\u00fc') == "a_b_c_d_e_"


def _readings():
    b = txstore.reading(T0, "S", 1234567, 1000)
    e = txstore.reading(T0 + 1800000, "S", 1236067, 1000)
    return b, e


def test_golden_payload():
    b, e = _readings()
    body = ocmf.payload(7, GW, METER, ocmf.identification("6f1c"), b, e, "R")
    want = ('{"FV":"1.4","GI":"DICAMM","GS":"DIC-0001","GV":"0.9.0","PG":"T7","MV":"Eastron",'
            '"MM":"SDM630-Modbus","MS":"12345678","IS":false,"IL":"NONE","IF":[],"IT":"LOCAL","ID":"6f1c","RD":['
            '{"TM":"2026-12-02T13:22:04,000+0100 S","TX":"B","RV":1234.567,"RI":"01-00:01.08.00*FF","RU":"kWh",'
            '"RT":"AC","EF":"","ST":"G"},'
            '{"TM":"2026-12-02T13:52:04,000+0100 S","TX":"R","RV":1236.067,"RI":"01-00:01.08.00*FF","RU":"kWh",'
            '"RT":"AC","EF":"","ST":"G"},'
            '{"TM":"2026-12-02T13:22:04,000+0100 S","TX":"B","RV":1.000,"RI":"01-00:02.08.00*FF","RU":"kWh",'
            '"RT":"AC","EF":"","ST":"G"},'
            '{"TM":"2026-12-02T13:52:04,000+0100 S","TX":"R","RV":1.000,"RI":"01-00:02.08.00*FF","RU":"kWh",'
            '"RT":"AC","EF":"","ST":"G"}]}')
    assert body == want, body
    s = ocmf.summary(ocmf.envelope(body, 1, 1))
    assert s["pg"] == 7 and s["energy_wh"] == 1500 and s["end"]["reason"] == "R"
    assert s["begin"]["time_ms"] == T0 and s["end"]["export_wh"] == 1000


def test_payload_rules():
    b, e = _readings()
    bad = [(dict(METER, serial=""), "E"), (METER, "EP"), (METER, "B")]
    for meter, reason in bad:
        try:
            ocmf.payload(1, GW, meter, ocmf.identification("u"), b, e, reason)
        except ValueError:
            continue
        raise AssertionError((meter, reason))
    central = ocmf.payload(1, GW, METER, ocmf.identification("u", "req-9"), b, e, "E")
    assert '"IS":true,"IL":"TRUSTED","IF":[],"IT":"CENTRAL","ID":"req-9"' in central


def test_signed_record_verifies_and_tampering_fails():
    b, e = _readings()
    body = ocmf.payload(1, GW, METER, ocmf.identification("u"), b, e, "E")
    rec = ocmf.envelope(body, *p256.sign(KEY, body.encode()))
    assert rec.startswith("OCMF|{") and rec.endswith('"}') and rec.count("|") == 2
    assert '"SA":"ECDSA-secp256r1-SHA256","SD":"30' in rec
    pub = p256.public_key(KEY)
    assert ocmf.signature_ok(rec, pub)
    assert not ocmf.signature_ok(rec.replace("1236.067", "1237.067"), pub)
    assert not ocmf.signature_ok(rec, p256.public_key(2))
    assert not ocmf.signature_ok(rec.replace('"SD":"30', '"SD":"31'), pub)
    assert not ocmf.signature_ok("OCMF|{}", pub)


def test_transactions_pagination_and_restart():
    d = _dir("tx")
    j = Journal(d, "tx", 65536, 8192)
    t = txstore.Transactions(j, KEY, GW)
    assert t.end(txstore.reading(T0, "S", 1), "E") is None  # nothing open
    ident = ocmf.identification("u1")
    t.begin(txstore.reading(T0, "S", 1000, 0), METER, ident)
    assert t.end(txstore.reading(T0 + 600000, "I", 1500, 0), "E") == 1  # its pg
    r1 = t.last_record()
    t.begin(txstore.reading(T0 + 700000, "S", 1500, 0), METER, ident)
    t.end(txstore.reading(T0 + 800000, "S", 1600, 0), "R")
    r2 = t.last_record()
    s1, s2 = ocmf.summary(r1), ocmf.summary(r2)
    assert (s1["pg"], s2["pg"]) == (1, 2)
    assert s1["energy_wh"] == 500 and s2["energy_wh"] == 100
    assert s1["end"]["time_status"] == "I" and s2["end"]["reason"] == "R"
    j.close()
    j2 = Journal(d, "tx", 65536, 8192)
    t2 = txstore.Transactions(j2, KEY, GW)
    t2.begin(txstore.reading(T0 + 900000, "S", 1600, 0), METER, ident)
    # a begin while open aborts the old one (TX A) at its last reading
    t2.begin(txstore.reading(T0 + 950000, "S", 1650, 0), METER, ident)
    assert t2.end(txstore.reading(T0 + 1000000, "S", 1700, 0), "E") == 4
    r4 = t2.last_record()
    rows = t2.list(10)
    assert [r["pg"] for r in rows] == [1, 2, 3, 4], rows
    assert rows[2]["end"]["reason"] == "A" and rows[2]["energy_wh"] == 0
    assert ocmf.summary(r4)["energy_wh"] == 50
    pub = p256.public_key(KEY)
    assert all(ocmf.signature_ok(p, pub) for _, p in j2.records())
    assert t2.public_key_hex().startswith("3059301306072a8648ce3d0201")
    j2.close()


def test_power_cut_closes_with_p_at_the_last_noted_reading():
    d = _dir("cut")
    path = d + "/tx.open"
    j = Journal(d, "tx", 65536, 8192)
    t = txstore.Transactions(j, KEY, GW, open_path=path, note_every_ms=60000)
    t.begin(txstore.reading(T0, "S", 2000, 0), METER, ocmf.identification("ub"), "ub")
    t.note(txstore.reading(T0 + 30000, "S", 2050, 0))  # not written yet (under 60 s)
    t.note(txstore.reading(T0 + 70000, "S", 2100, 0))  # written
    t.note(txstore.reading(T0 + 80000, "S", 2110, 0))  # only in RAM: lost at the cut
    t2 = txstore.Transactions(j, KEY, GW, open_path=path)
    assert t2.open is not None
    assert t2.recover("up") == 1
    s = ocmf.summary(t2.last_record())
    assert (s["begin"]["uuid"], s["end"]["uuid"]) == ("ub", "up")
    assert s["end"]["reason"] == "P" and s["end"]["reading_wh"] == 2100
    assert s["end"]["time_ms"] == T0 + 70000  # the reading's own time, not the restart's
    assert s["energy_wh"] == 100 and s["id"] == "ub"
    t3 = txstore.Transactions(j, KEY, GW, open_path=path)
    assert t3.open is None and t3.recover() is None
    j.close()


def test_end_async_pauses_between_steps():
    from dicamm.platform import asyncio
    d = _dir("async")
    j = Journal(d, "tx", 65536, 8192)
    t = txstore.Transactions(j, KEY, GW)
    t.begin(txstore.reading(T0, "S", 10, 0), METER, ocmf.identification("u"))
    n = [0]

    async def pause():
        n[0] += 1
        await asyncio.sleep_ms(0)
    assert asyncio.run(t.end_async(txstore.reading(T0 + 1000, "S", 20, 0), "E", pause)) == 1  # its pg
    rec = bytes(j.last(1)[0][1]).decode()  # stored in pieces: one OCMF string
    assert n[0] >= 8 and ocmf.signature_ok(rec, t.pub), n
    assert t.open is None and ocmf.summary(rec)["pg"] == 1
    j.close()


def test_key_created_once():
    path = _dir("key") + "/device.key"
    k1 = txstore.load_or_create_key(path)
    k2 = txstore.load_or_create_key(path)
    assert k1 == k2 and 0 < k1 < p256.N
    os.remove(path)


def test_an_open_transaction_of_the_hmac_firmware_ends_as_ocmf():
    # Upgrade: journal and tx.open left by the firmware before issue 17.
    import json
    d = _dir("upgrade")
    path = d + "/tx.open"
    j = Journal(d, "tx", 65536, 8192)
    j.append(b'{"pg":41,"v":1,"mac":"00"}')
    with open(path, "w") as f:
        f.write(json.dumps({"begin": {"reason": "B", "reading_wh": 5000, "time_ms": T0, "time_status": "S",
                                      "uuid": "old-u"}, "last": [5100, T0 + 60000, "S"]}))
    t = txstore.Transactions(j, KEY, GW, open_path=path)
    assert t.recover("up") == 42
    s = ocmf.summary(t.last_record())
    assert s["pg"] == 42 and s["energy_wh"] == 100 and s["end"]["reason"] == "P", s
    assert s["end"]["time_ms"] == T0 + 60000 and s["begin"]["uuid"] == "old-u"
    j.close()
