# tools/verify_tx.py finds deleted, altered and reordered transaction records,
# read from the firmware's journal files or from an export.
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from dicamm.drivers import txstore
from dicamm.proto import txrecord
from dicamm.drivers.journal import Journal

TOOL = os.path.join(ROOT, "tools", "verify_tx.py")
KEY = bytes(range(32))


def chain(n=6):
    j = _Mem()
    t = txstore.Transactions(j, KEY, "CLS1", "SN-42", "EM-1")
    wh = 10000
    for i in range(n):
        t.begin(wh, 1700000000000 + i * 3600000, "S", "b%d" % i)
        wh += 250 + i
        t.end(wh, 1700000000000 + i * 3600000 + 1800000, "S", "e%d" % i, "E" if i % 2 else "ER")
    return [json.loads(p) for p in j.items]


class _Mem:
    def __init__(self):
        self.items = []

    def append(self, p):
        self.items.append(p)
        return len(self.items)

    def last(self, n):
        return [(i + 1, p) for i, p in enumerate(self.items)][-n:] if n else []


def write_journal(d, recs):
    j = Journal(str(d), "tx", 65536, 1024)
    for r in recs:
        j.append(txrecord.canonical(r))
    j.close()
    return str(d)


def run(source, *extra):
    r = subprocess.run([sys.executable, TOOL, "--key-hex", KEY.hex(), "--json", source, *extra],
                       capture_output=True, text=True)
    return r.returncode, json.loads(r.stdout)


def problems(out):
    return [(p["pg"], p["problem"].split(":")[0]) for p in out["problems"]]


def test_intact_journal(tmp_path):
    recs = chain()
    code, out = run(write_journal(tmp_path / "j", recs))
    assert code == 0 and out["ok"] and out["records"] == 6, out
    assert (out["first_pg"], out["last_pg"]) == (1, 6)
    assert out["energy_wh"] == sum(250 + i for i in range(6))


def test_key_file_and_text_output(tmp_path):
    (tmp_path / "device.key").write_bytes(KEY)
    src = write_journal(tmp_path / "j", chain())
    r = subprocess.run([sys.executable, TOOL, "--key", str(tmp_path / "device.key"), src],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "chain intact" in r.stdout, r.stdout


def test_deleted_record(tmp_path):
    recs = chain()
    del recs[2]
    code, out = run(write_journal(tmp_path / "j", recs))
    assert code == 1
    assert (4, "deleted") in problems(out), out


def test_altered_record(tmp_path):
    recs = chain()
    recs[3]["end"]["reading_wh"] += 100
    recs[3]["energy_wh"] += 100
    code, out = run(write_journal(tmp_path / "j", recs))
    assert code == 1
    p = problems(out)
    assert (4, "altered") in p, out
    assert (5, "chain broken") in p, out  # the next record no longer matches either


def test_reordered_records(tmp_path):
    recs = chain()
    recs[1], recs[2] = recs[2], recs[1]
    code, out = run(write_journal(tmp_path / "j", recs))
    assert code == 1
    assert (2, "reordered") in problems(out), out


def test_wrong_key(tmp_path):
    src = write_journal(tmp_path / "j", chain(3))
    r = subprocess.run([sys.executable, TOOL, "--key-hex", "11" * 32, "--json", src], capture_output=True, text=True)
    out = json.loads(r.stdout)
    assert r.returncode == 1 and [p[1] for p in problems(out)] == ["altered"] * 3


def test_flipped_byte_on_flash(tmp_path):
    d = write_journal(tmp_path / "j", chain(3))
    seg = sorted(f for f in os.listdir(d) if f.startswith("tx."))[0]
    path = os.path.join(d, seg)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x20
    open(path, "wb").write(bytes(data))
    code, out = run(d)
    assert code == 1
    assert any(p["problem"] == "unreadable record" for p in out["problems"]), out


@pytest.mark.parametrize("fmt", ["jsonl", "array"])
def test_export_files(tmp_path, fmt):
    recs = chain()
    path = tmp_path / ("x." + fmt)
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in recs))
    else:
        path.write_text(json.dumps(recs))
    assert run(str(path))[0] == 0
    bad = recs[:4] + recs[5:]
    path.write_text(json.dumps(bad))
    code, out = run(str(path))
    assert code == 1 and (6, "deleted") in problems(out), out
