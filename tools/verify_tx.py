#!/usr/bin/env python3
"""Verify a DICAMM transaction journal: chain, pagination +1, HMAC per record.

Reads either the journal segment files directly (a directory holding
NAME.NNNNNN files, the firmware's journal format) or an export (a JSON array or
JSON lines of records, as printed by `tx --json`). The device key is the file
root/device.key from the device (--key) or its hex (--key-hex).

Reports deleted, altered and reordered records with their pagination number,
and unreadable journal records (bad CRC). Exit status 0 = intact, 1 = problems.

  tools/verify_tx.py --key ROOT/device.key ROOT/journal [--name tx] [--json]
  tools/verify_tx.py --key-hex 00ff... export.jsonl
"""
import argparse
import binascii
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "firmware"))
sys.path.insert(0, os.path.join(HERE, "..", "host_tests", "shims"))
from dicamm.proto import txrecord  # noqa: E402  (the same canonical form as the device)

_MAGIC = 0xD5


def read_journal(dirpath, name):
    # [(where, record or None)] from the segment files, in sequence order. A
    # record whose CRC fails is reported as unreadable; a torn tail is ignored.
    out = []
    pre = name + "."
    segs = sorted(int(f[len(pre):]) for f in os.listdir(dirpath)
                  if f.startswith(pre) and f[len(pre):].isdigit())
    for first in segs:
        path = os.path.join(dirpath, "%s.%06d" % (name, first))
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos + 11 <= len(data):
            magic, n, seq = struct.unpack_from("<BHI", data, pos)
            if magic != _MAGIC or pos + 11 + n > len(data):
                out.append(("%s@%d" % (os.path.basename(path), pos), None))
                break
            payload = data[pos + 7:pos + 7 + n]
            (crc,) = struct.unpack_from("<I", data, pos + 7 + n)
            where = "journal seq %d" % seq
            if binascii.crc32(payload, binascii.crc32(data[pos:pos + 7])) != crc:
                out.append((where, None))
            else:
                try:
                    out.append((where, json.loads(payload)))
                except ValueError:
                    out.append((where, None))
            pos += 11 + n
    return out


def read_export(path):
    with open(path) as f:
        text = f.read().strip()
    if text.startswith("["):
        recs = json.loads(text)
    else:
        recs = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [("line %d" % (i + 1), r) for i, r in enumerate(recs)]


def verify(source, key, name="tx"):
    recs = read_journal(source, name) if os.path.isdir(source) else read_export(source)
    return recs, txrecord.verify(recs, key)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("source", help="journal directory or export file")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--key", help="the device key file (root/device.key)")
    g.add_argument("--key-hex")
    p.add_argument("--name", default="tx", help="journal name (segment files NAME.NNNNNN)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.key:
        with open(a.key, "rb") as f:
            key = f.read()
    else:
        key = bytes.fromhex(a.key_hex)
    recs, problems = verify(a.source, key, a.name)
    good = [r for _, r in recs if isinstance(r, dict)]
    summary = {"records": len(recs), "first_pg": good[0].get("pg") if good else None,
               "last_pg": good[-1].get("pg") if good else None,
               "energy_wh": sum(r.get("energy_wh", 0) for r in good),
               "ok": not problems,
               "problems": [{"where": w, "pg": pg, "problem": t} for w, pg, t in problems]}
    if a.json:
        print(json.dumps(summary, indent=1))
    else:
        for w, pg, t in problems:
            print("pg %s (%s): %s" % (pg, w, t))
        print("%d records, pagination %s..%s, %s" % (summary["records"], summary["first_pg"],
              summary["last_pg"], "chain intact" if not problems else "%d problems" % len(problems)))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
