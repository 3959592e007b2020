# Transaction records modelled on OCMF charging-session records: a begin and an
# end reading of the MID meter, both TAF16 event UUIDs, meter serial and model,
# legal time with its status, a pagination counter rising by exactly 1, and
# energy_wh = end - begin. Records are chained (prev = SHA-256 of the previous
# record's canonical bytes) and sealed (mac = HMAC-SHA256 with the device key),
# so a deleted, altered or reordered record is found by tools/verify_tx.py.
#
# The canonical bytes are compact JSON with sorted keys, non-ASCII escaped, written
# here so that MicroPython and CPython produce identical bytes.
import hashlib
import io
import json
from binascii import hexlify

from dicamm import hmac256

VERSION = 1
ZERO = "0" * 64
# Reason codes of the readings (OCMF-like).
REASONS = {"B": "begin", "E": "end", "EP": "ended by power failure",
           "ER": "ended remotely", "EE": "aborted by error"}
_END_REASONS = ("E", "EP", "ER", "EE")
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


def load_or_create_key(path, nbytes=32):
    # The per-device key, created once at first start (os.urandom) and kept.
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) >= 16:
            return key
    except OSError:
        pass
    import os
    key = os.urandom(nbytes)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(key)
        f.flush()
    os.rename(tmp, path)
    return key


class Transactions:
    # The open transaction lives in an atomically written file next to the
    # journal, so that after a power cut recover() closes it with reason EP and
    # the last reading noted before the cut.
    def __init__(self, journal, key, cls_id, meter_serial="", meter_model="",
                 open_path=None, note_every_ms=900000):
        self.journal = journal
        self.key = key
        self.cls_id = cls_id
        self.meter_serial = meter_serial
        self.meter_model = meter_model
        self.open_path = open_path
        self.note_every_ms = note_every_ms
        self.open = None  # {"begin": reading, "last": [wh, time_ms, status]}
        self._last = None
        self._noted_ms = None
        for _, payload in journal.last(1):
            self._last = json.loads(payload)
        if open_path:
            try:
                with open(open_path) as f:
                    self.open = json.loads(f.read())
            except (OSError, ValueError):
                self.open = None
            # A power cut between writing the record and removing the open
            # file leaves a transaction that is already closed: drop it.
            if self.open is not None and self._last is not None \
                    and self._last.get("begin") == self.open.get("begin"):
                self.open = None
                self._save_open()

    def _save_open(self):
        if not self.open_path:
            return
        from dicamm import fsutil
        if self.open is None:
            fsutil.remove(self.open_path)
            return
        fsutil.write_atomic(self.open_path, canonical(self.open))

    def next_pg(self):
        return 1 if self._last is None else self._last["pg"] + 1

    def begin(self, reading_wh, time_ms, time_status, uuid=None):
        # A begin while one is open closes the old one first as aborted (EE).
        if self.open is not None:
            self.end(reading_wh, time_ms, time_status, None, "EE")
        self.open = {"begin": reading("B", reading_wh, time_ms, time_status, uuid),
                     "last": [int(reading_wh), int(time_ms), time_status]}
        self._noted_ms = time_ms
        self._save_open()
        return self.open

    def note(self, reading_wh, time_ms, time_status, force=False):
        # Remember the latest reading of an open transaction; written to flash at
        # most every note_every_ms (device time) to spare the flash.
        if self.open is None:
            return
        self.open["last"] = [int(reading_wh), int(time_ms), time_status]
        if force or self._noted_ms is None or time_ms - self._noted_ms >= self.note_every_ms:
            self._noted_ms = time_ms
            self._save_open()

    def end(self, reading_wh, time_ms, time_status, uuid=None, reason="E"):
        if reason not in _END_REASONS:
            raise ValueError("bad end reason %r" % reason)
        if self.open is None:
            return None
        rec = make(self._last, self.key, self.next_pg(), self.cls_id, self.meter_serial,
                   self.meter_model, self.open["begin"],
                   reading(reason, reading_wh, time_ms, time_status, uuid))
        self.journal.append(canonical(rec))
        self._last = rec
        self.open = None
        self._save_open()
        return rec

    def recover(self, uuid=None):
        # At start: an open transaction left by a power cut ends with EP at the
        # last known reading. Returns the record or None.
        if self.open is None:
            return None
        wh, t, st = self.open["last"]
        return self.end(wh, t, st, uuid, "EP")

    def list(self, last=10):
        return [json.loads(p) for _, p in self.journal.last(last)]
