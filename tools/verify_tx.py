#!/usr/bin/env python3
"""Verify DICAMM transaction records (OCMF 1.4) with the device's public key alone.

Reads either the journal segment files directly (a directory holding NAME.NNNNNN
files, the firmware's journal format) or an export: one OCMF string per line, as
printed by `tx export`. The public key is the hex DER key the device shows
(`tx key`, `config show`), given with --pubkey HEX or --pubkey-file FILE; no secret
is needed. (--key ROOT/device.key derives it from a bench device's key file.)

Per record: the ECDSA signature over the exact payload bytes, the pagination
"T<n>" rising by exactly 1 (a deleted record leaves a gap, a reordered one goes
backwards), end reading >= begin reading, the readings' status and error flags;
unreadable journal records (bad CRC) are reported too. Exit status 0 = intact.

  tools/verify_tx.py --pubkey 3059... ROOT/data [--name tx] [--json]
  tools/verify_tx.py --pubkey-file key.hex export.txt
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
from dicamm.proto import ocmf, p256  # noqa: E402  (the same record format as the device)

_MAGIC = 0xD5


def read_raw(dirpath, name):
    # [(where, payload bytes or None)] from the segment files, in sequence
    # order. A record whose CRC fails is None; a torn tail is ignored.
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
            ok = binascii.crc32(payload, binascii.crc32(data[pos:pos + 7])) == crc
            out.append(("journal seq %d" % seq, payload if ok else None))
            pos += 11 + n
    return out


def read_journal(dirpath, name):
    # [(where, JSON record or None)]: for the JSON journals (outbox, acks).
    out = []
    for where, p in read_raw(dirpath, name):
        try:
            out.append((where, json.loads(p) if p is not None else None))
        except ValueError:
            out.append((where, None))
    return out


def read_export(path):
    with open(path) as f:
        lines = [line.strip() for line in f.read().splitlines()]
    return [("line %d" % (i + 1), line.encode()) for i, line in enumerate(lines) if line]


def public_key(hex_text):
    return p256.pub_from_der(binascii.unhexlify("".join(hex_text.split())))


def key_file_public(path):
    from dicamm.drivers import txstore
    return p256.public_key(txstore.load_or_create_key(path))


def check(raw, pub):
    # raw: [(where, OCMF bytes or None)]. Returns ([(where, summary or None)],
    # [(where, pg, problem)]).
    recs, problems = [], []
    prev = None
    for where, p in raw:
        s = None
        if p is not None:
            try:
                s = ocmf.summary(p)
            except (ValueError, KeyError, TypeError):
                s = None
        recs.append((where, s))
        if s is None:
            problems.append((where, None, "unreadable record"))
            prev = None
            continue
        pg = s.get("pg")
        if not ocmf.signature_ok(p, pub):
            problems.append((where, pg, "altered: signature does not match"))
        b, e = s.get("begin"), s.get("end")
        if not b or not e:
            problems.append((where, pg, "missing readings"))
        elif e["reading_wh"] < b["reading_wh"]:
            problems.append((where, pg, "energy: end reading below begin"))
        if prev is not None and isinstance(pg, int) and isinstance(prev, int) and pg != prev + 1:
            if pg > prev + 1:
                problems.append((where, pg, "deleted: pagination jumps from T%d to T%d" % (prev, pg)))
            else:
                problems.append((where, pg, "reordered: pagination T%d after T%d" % (pg, prev)))
        prev = pg
    return recs, problems


def verify(source, pub, name="tx"):
    raw = read_raw(source, name) if os.path.isdir(source) else read_export(source)
    return check(raw, pub)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("source", help="journal directory or export file")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--pubkey", help="hex DER public key (as `tx key` shows it)")
    g.add_argument("--pubkey-file")
    g.add_argument("--key", help="a bench device's key file (root/device.key): derive the public key")
    p.add_argument("--name", default="tx", help="journal name (segment files NAME.NNNNNN)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.key:
        pub = key_file_public(a.key)
    else:
        pub = public_key(a.pubkey if a.pubkey else open(a.pubkey_file).read())
    recs, problems = verify(a.source, pub, a.name)
    good = [r for _, r in recs if isinstance(r, dict)]
    flagged = [r["pg"] for r in good if any((r.get(k) or {}).get("ef") or (r.get(k) or {}).get("st") != "G"
                                            for k in ("begin", "end"))]
    summary = {"records": len(recs), "first_pg": good[0].get("pg") if good else None,
               "last_pg": good[-1].get("pg") if good else None,
               "energy_wh": sum(r.get("energy_wh", 0) for r in good),
               "flagged_pg": flagged, "ok": not problems,
               "problems": [{"where": w, "pg": pg, "problem": t} for w, pg, t in problems]}
    if a.json:
        print(json.dumps(summary, indent=1))
    else:
        for w, pg, t in problems:
            print("T%s (%s): %s" % (pg, w, t))
        print("%d records, pagination T%s..T%s, %d Wh, %s%s" % (
            summary["records"], summary["first_pg"], summary["last_pg"], summary["energy_wh"],
            "all signatures valid" if not problems else "%d problems" % len(problems),
            ", flagged (ST not G or EF set): %s" % flagged if flagged else ""))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
