# Transaction records modelled on OCMF charging-session records: a begin and an
# end reading of the MID meter, both TAF16 event UUIDs, meter serial and model,
# legal time with its status, a pagination counter rising by exactly 1, and
# energy_wh = end - begin. Records are chained (prev = SHA-256 of the previous
# record's canonical bytes) and sealed (mac = HMAC-SHA256 with the device key),
# so a deleted, altered or reordered record is found by tools/verify_tx.py.
#
# The canonical bytes are compact JSON with sorted keys, non-ASCII escaped, written
# here so that MicroPython and CPython produce identical bytes. Pure: the
# storage of the chain (key file, journal, open transaction) is drivers/txstore.py.
import hashlib
import io
from binascii import hexlify

from dicamm.proto import hmac256

VERSION = 1
ZERO = "0" * 64
# Reason codes of the readings (OCMF-like).
REASONS = {"B": "begin", "E": "end", "EP": "ended by power failure",
           "ER": "ended remotely", "EE": "aborted by error"}
END_REASONS = ("E", "EP", "ER", "EE")
_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _str(s, put):
    # Whole when nothing needs escaping (the usual case).
    for c in s:
        if c in _ESC or not (" " <= c < "\x7f"):
            break
    else:
        put('"')
        put(s)
        put('"')
        return
    put('"')
    for c in s:
        o = ord(c)
        if c in _ESC:
            put(_ESC[c])
        elif o < 0x20 or 0x7F <= o < 0x10000:
            put("\\u%04x" % o)
        elif o >= 0x10000:
            o -= 0x10000
            put("\\u%04x\\u%04x" % (0xD800 + (o >> 10), 0xDC00 + (o & 0x3FF)))
        else:
            put(c)
    put('"')


def _enc(v, put):
    # The canonical text of v, handed to put() in small pieces: hashing and
    # sealing consume them as they come, no record is built in RAM for them
    # (a list of pieces needed a block of 2-4 KiB, which a fragmented heap
    # could not give at the stop event).
    if v is None:
        put("null")
    elif v is True:
        put("true")
    elif v is False:
        put("false")
    elif isinstance(v, int):
        put(str(v))
    elif isinstance(v, str):
        _str(v, put)
    elif isinstance(v, dict):
        put("{")
        first = True
        for k in sorted(v):
            if not first:
                put(",")
            first = False
            _str(k, put)
            put(":")
            _enc(v[k], put)
        put("}")
    elif isinstance(v, (list, tuple)):
        put("[")
        for i in range(len(v)):
            if i:
                put(",")
            _enc(v[i], put)
        put("]")
    else:
        # floats differ between single- and double-precision ports: not allowed.
        raise ValueError("canonical JSON: unsupported %s" % type(v))


def _feed(obj, h):
    _enc(obj, lambda s: h.update(s.encode()))
    return h.digest()


def canonical(obj):
    buf = io.BytesIO()
    _enc(obj, lambda s: buf.write(s.encode()))
    return buf.getvalue()


def record_hash(rec):
    return hexlify(_feed(rec, hashlib.sha256())).decode()


def seal(rec, key):
    # mac over the canonical bytes of the record without its mac field.
    body = {}
    for k in rec:
        if k != "mac":
            body[k] = rec[k]
    return hexlify(_feed(body, hmac256.HMAC(key))).decode()


def reading(reason, reading_wh, time_ms, time_status, uuid=None):
    if reason not in REASONS:
        raise ValueError("bad reason %r" % reason)
    return {"reason": reason, "reading_wh": int(reading_wh), "time_ms": int(time_ms),
            "time_status": time_status, "uuid": uuid}


def make(prev, key, pg, cls_id, meter_serial, meter_model, begin, end):
    # prev: the previous record (dict) or None for the first one.
    rec = {"v": VERSION, "pg": pg, "cls_id": cls_id, "meter_serial": meter_serial,
           "meter_model": meter_model, "begin": begin, "end": end,
           "energy_wh": end["reading_wh"] - begin["reading_wh"],
           "prev": ZERO if prev is None else record_hash(prev)}
    rec["mac"] = seal(rec, key)
    return rec


def verify(records, key):
    # records: [(where, record dict or None if unreadable)]. Returns a list of
    # problems [(where, pg, text)]; empty when the chain is whole.
    problems = []
    prev = None
    for where, rec in records:
        if not isinstance(rec, dict):
            problems.append((where, None, "unreadable record"))
            prev = None
            continue
        pg = rec.get("pg")
        if not hmac256.equal(seal(rec, key).encode(), str(rec.get("mac", "")).encode()):
            problems.append((where, pg, "altered: mac does not match"))
        try:
            if rec["energy_wh"] != rec["end"]["reading_wh"] - rec["begin"]["reading_wh"]:
                problems.append((where, pg, "energy is not end - begin"))
        except (KeyError, TypeError):
            problems.append((where, pg, "missing readings"))
        if prev is not None:
            ppg = prev.get("pg")
            if isinstance(pg, int) and isinstance(ppg, int) and pg != ppg + 1:
                if pg > ppg + 1:
                    problems.append((where, pg, "deleted: pagination jumps from %d to %d" % (ppg, pg)))
                else:
                    problems.append((where, pg, "reordered: pagination %d after %d" % (pg, ppg)))
            if rec.get("prev") != record_hash(prev):
                problems.append((where, pg, "chain broken: prev does not match record %s" % ppg))
        elif rec.get("prev") == ZERO and pg != 1:
            problems.append((where, pg, "first record of chain has pagination %s" % pg))
        prev = rec
    return problems
