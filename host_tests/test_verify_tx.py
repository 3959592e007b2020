# Transaction records verified independently of the device: tools/verify_tx.py
# with the public key alone, and pyocmf (pinned in requirements-host.txt) with
# its signature check and its Eichrecht rules (those of the S.A.F.E.
# Transparenzsoftware). An altered value, a removed record and a wrong key are
# all caught. OCMF 1.4 (S.A.F.E. e.V.): table 2 (PG), table 7 (readings),
# table 8 (signature), table 10 (meter status).
import json
import os
import subprocess
import sys
import warnings

import pytest
import pyocmf

from conftest import ROOT
from dicamm.drivers import txstore
from dicamm.drivers.journal import Journal
from dicamm.proto import ocmf, p256

TOOL = os.path.join(ROOT, "tools", "verify_tx.py")
KEY = p256.private_from_seed(bytes(range(32)))
GW = ("DICAMM", "DIC-0042", "0.9.0")
METER = {"vendor": "Eastron", "model": "SDM630-Modbus", "serial": "20231234", "firmware": ""}
T0 = 1796214124000  # 2026-12-02 13:22:04 CET
REASONS = ("E", "R", "L", "A", "P", "E")


def chain(d, n=6, stale_at=None):
    j = Journal(str(d), "tx", 65536, 1024)
    t = txstore.Transactions(j, KEY, GW)
    wh = 10000
    for i in range(n):
        start = T0 + i * 3600000
        t.begin(txstore.reading(start, "S", wh, 500), METER, ocmf.identification("b%d" % i, "req-%d" % i if i % 2 else None),
                "b%d" % i)
        wh += 250 + i
        ef, st = ("E", "T") if i == stale_at else ("", "G")
        t.end(txstore.reading(start + 1800000, "S", wh, 500, st, ef), REASONS[i % len(REASONS)], "e%d" % i)
    pub = t.public_key_hex()
    j.close()
    return str(d), pub


def lines(d):
    return [p.decode() for _, p in Journal(d, "tx", 65536, 1024).records()]


def run(source, pub, *extra):
    r = subprocess.run([sys.executable, TOOL, "--pubkey", pub, "--json", source, *extra],
                       capture_output=True, text=True)
    return r.returncode, json.loads(r.stdout)


def problems(out):
    return [(p["pg"], p["problem"].split(":")[0]) for p in out["problems"]]


def test_every_record_verifies_with_pyocmf_and_has_no_eichrecht_issue(tmp_path):
    d, pub = chain(tmp_path / "j")
    recs = lines(d)
    assert len(recs) == 6
    for text in recs:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a SpecWarning is a deviation from OCMF: fail
            rec = pyocmf.OCMF.from_string(text, strict=True)
        ok, issues = rec.verify(pub)
        assert ok, text
        assert issues == [], (text, issues)
        assert rec.payload.FV == "1.4" and rec.payload.MS == "20231234"
        assert rec.payload.PG.startswith("T")
        assert [r.TX for r in rec.payload.RD][0] == "B"
        assert '"XB":"b' in text and '"XE":"e' in text  # the TAF16 events, signed with it
    assert [pyocmf.OCMF.from_string(t).payload.PG for t in recs] == ["T%d" % i for i in range(1, 7)]


def test_pyocmf_catches_altered_value_and_wrong_key(tmp_path):
    d, pub = chain(tmp_path / "j", 2)
    text = lines(d)[0]
    altered = text.replace('"RV":10.250', '"RV":10.260')
    assert altered != text
    assert pyocmf.OCMF.from_string(altered).verify_signature(pub) is False
    other = txstore.Transactions(Journal(str(tmp_path / "o"), "tx", 65536, 1024), 12345, GW).public_key_hex()
    assert pyocmf.OCMF.from_string(text).verify_signature(other) is False


def test_pyocmf_flags_a_stale_reading(tmp_path):
    # A transaction edge that could not read the meter afresh: its reading is
    # the last good one with its own time, ST "T" (timeout) and EF "E": not billable.
    d, pub = chain(tmp_path / "j", 2, stale_at=1)
    rec = pyocmf.OCMF.from_string(lines(d)[1])
    ok, issues = rec.verify(pub)
    assert ok
    codes = {(i.field, i.severity.value) for i in issues}
    assert ("ST", "error") in codes and ("EF", "error") in codes, issues


def test_tool_intact_journal(tmp_path):
    d, pub = chain(tmp_path / "j")
    code, out = run(d, pub)
    assert code == 0 and out["ok"] and out["records"] == 6, out
    assert (out["first_pg"], out["last_pg"]) == (1, 6)
    assert out["energy_wh"] == sum(250 + i for i in range(6))
    assert out["flagged_pg"] == []


def test_tool_text_output_and_key_file(tmp_path):
    d, pub = chain(tmp_path / "j")
    (tmp_path / "key.hex").write_text(pub + "\n")
    r = subprocess.run([sys.executable, TOOL, "--pubkey-file", str(tmp_path / "key.hex"), d],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "all signatures valid" in r.stdout, r.stdout


def _rewrite(src, dst, records):
    j = Journal(str(dst), "tx", 65536, 1024)
    for r in records:
        j.append(r.encode())
    j.close()
    return str(dst)


def test_tool_removed_record(tmp_path):
    d, pub = chain(tmp_path / "j")
    recs = lines(d)
    del recs[2]
    code, out = run(_rewrite(d, tmp_path / "k", recs), pub)
    assert code == 1 and (4, "deleted") in problems(out), out


def test_tool_altered_record(tmp_path):
    d, pub = chain(tmp_path / "j")
    recs = lines(d)
    recs[3] = recs[3].replace('"ST":"G"}', '"ST":"G" }', 1)  # even one blank breaks the signature
    code, out = run(_rewrite(d, tmp_path / "k", recs), pub)
    assert code == 1 and problems(out) == [(4, "altered")], out


def test_tool_reordered_records(tmp_path):
    d, pub = chain(tmp_path / "j")
    recs = lines(d)
    recs[1], recs[2] = recs[2], recs[1]
    code, out = run(_rewrite(d, tmp_path / "k", recs), pub)
    assert code == 1 and (2, "reordered") in problems(out), out


def test_tool_wrong_key(tmp_path):
    d, _ = chain(tmp_path / "j", 3)
    wrong = ocmf.p256.pub_der(p256.public_key(7)).hex()
    code, out = run(d, wrong)
    assert code == 1 and [p[1] for p in problems(out)] == ["altered"] * 3


def test_tool_flipped_byte_on_flash(tmp_path):
    d, pub = chain(tmp_path / "j", 3)
    seg = sorted(f for f in os.listdir(d) if f.startswith("tx."))[0]
    path = os.path.join(d, seg)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x20
    open(path, "wb").write(bytes(data))
    code, out = run(d, pub)
    assert code == 1
    assert any(p["problem"] == "unreadable record" for p in out["problems"]), out


def test_tool_export_file(tmp_path):
    d, pub = chain(tmp_path / "j")
    recs = lines(d)
    path = tmp_path / "export.txt"
    path.write_text("\n".join(recs) + "\n")
    assert run(str(path), pub)[0] == 0
    path.write_text("\n".join(recs[:4] + recs[5:]))
    code, out = run(str(path), pub)
    assert code == 1 and (6, "deleted") in problems(out), out


@pytest.mark.parametrize("bad", ["not ocmf", "OCMF|{}|{}", "OCMF|{\"PG\":\"T1\"}"])
def test_tool_garbage_lines(tmp_path, bad):
    d, pub = chain(tmp_path / "j", 1)
    path = tmp_path / "export.txt"
    path.write_text(lines(d)[0] + "\n" + bad + "\n")
    code, out = run(str(path), pub)
    assert code == 1 and out["problems"], out
