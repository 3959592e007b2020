# Transaction record storage: the device's ECDSA P-256 signing key (made once
# from os.urandom at commissioning, kept in a file), the signed OCMF records
# in a journal (one OCMF string per record), and the open transaction in an
# atomically written file, so that after a power cut recover() ends it (TX P)
# at the last reading noted before the cut, with that reading's own time.
# The records themselves are built in proto/ocmf.py and signed by proto/p256.py.
import hashlib
import json

from micropython import const

from dicamm.drivers import fsutil
from dicamm.proto import ocmf

_READ_BUF = const(1536)  # a record is ~1 KB (2 RD) to ~1.4 KB (4 RD): read into this, made once at start


def load_or_create_key(path):
    # The private key (int). The file holds a 32-byte seed; a missing or short
    # file gets a new one (os.urandom), written atomically. A seed left by the
    # HMAC firmware becomes the ECDSA key unchanged.
    from dicamm.proto import p256
    try:
        with open(path, "rb") as f:
            seed = f.read()
        if len(seed) >= 32:
            return p256.private_from_seed(seed[:32])
    except OSError:
        pass
    import os
    seed = os.urandom(32)
    fsutil.write_atomic(path, seed)
    return p256.private_from_seed(seed)


def decode(seq, payload):
    # A journal record for MQTT and tools: its summary and the OCMF record as
    # bytes (the MQTT link writes it out in escaped slices: no second copy of
    # a 1 KB record in the heap; list() makes it a str).
    d = ocmf.summary(payload)
    d["ocmf"] = payload if isinstance(payload, memoryview) else bytes(payload)
    return d


def reading(time_ms, time_status, import_wh, export_wh=None, st="G", ef=""):
    return {"t": int(time_ms), "s": time_status, "i": int(import_wh),
            "x": None if export_wh is None else int(export_wh), "st": st, "ef": ef}


def _upgrade(old, pg):
    # The open transaction as the HMAC firmware wrote it ({"begin": {reading_wh,
    # time_ms, time_status, uuid}, "last": [wh, ms, status]}), or None.
    try:
        b, last = old["begin"], old["last"]
        rd = reading(b["time_ms"], b["time_status"], b["reading_wh"])
        return {"pg": pg, "meter": {"vendor": "", "model": "", "serial": "UNREAD", "firmware": ""},
                "ident": list(ocmf.identification(b.get("uuid"))), "begin": rd,
                "last": reading(last[1], last[2], last[0]), "uuid": b.get("uuid")}
    except (KeyError, TypeError, IndexError, ValueError):
        return None


class Transactions:
    # gateway: (GI, GS, GV) of this device; decimals: kWh places of RV (the
    # meter's resolution, profiles.kwh_decimals).
    def __init__(self, journal, key, gateway, open_path=None, note_every_ms=900000, decimals=3):
        self.journal = journal
        if getattr(journal, "read_buf", 0) is None:
            journal.read_buf = bytearray(_READ_BUF)  # records read where they lie (journal.records)
        self.key = key
        self._pub = None  # made when first asked: one scalar product
        self.gateway = gateway
        self.decimals = decimals
        self.open_path = open_path
        self.note_every_ms = note_every_ms
        self.open = None  # {"meter", "ident", "begin", "last"}
        self._last_pg = 0
        self._noted_ms = None
        for _, payload in journal.last(1):
            try:
                self._last_pg = ocmf.summary(payload)["pg"]
            except (ValueError, KeyError):
                try:  # a record of the HMAC firmware: OCMF carries on its count
                    self._last_pg = int(json.loads(payload)["pg"])
                except (ValueError, KeyError, TypeError):
                    pass
        if open_path:
            try:
                with open(open_path) as f:
                    self.open = json.loads(f.read())
            except (OSError, ValueError):
                self.open = None
            if self.open is not None and "pg" not in self.open:
                self.open = _upgrade(self.open, self.next_pg())
            # A power cut between writing the record and removing the open
            # file leaves a transaction that is already closed: drop it.
            if self.open is not None and self.open.get("pg") is not None \
                    and self.open["pg"] <= self._last_pg:
                self.open = None
                self._save_open()

    @property
    def pub(self):
        if self._pub is None:
            from dicamm.proto import p256
            self._pub = p256.public_key(self.key)
        return self._pub

    def public_key_hex(self):
        # DER SubjectPublicKeyInfo in hex: what pyocmf and the
        # Transparenzsoftware take as the key.
        from binascii import hexlify
        from dicamm.proto import p256
        return hexlify(p256.pub_der(self.pub)).decode()

    def _save_open(self):
        if not self.open_path:
            return
        if self.open is None:
            fsutil.remove(self.open_path)
            return
        o = self.open
        fsutil.write_atomic(self.open_path, lambda f: json.dump(o, f))  # no copy of its text in the heap

    def next_pg(self):
        return self._last_pg + 1

    def begin(self, rd, meter, ident, uuid=None):
        # rd: reading(); meter: identity dict (vendor, model, serial, firmware);
        # ident: ocmf.identification(); uuid: the start event's. A begin while
        # one is open ends the old one first: with its decided end if it has
        # one (not signed yet), else aborted (A) at its last reading.
        if self.open is not None:
            if not self.finish():
                self.end(self.open["last"], "A", uuid)
        self.open = {"pg": self.next_pg(), "meter": meter, "ident": list(ident), "begin": rd, "last": rd,
                     "uuid": uuid}
        self._noted_ms = rd["t"]
        self._save_open()
        return self.open

    def note(self, rd, force=False):
        # The latest reading of an open transaction; written to flash at most
        # every note_every_ms (device time) to spare the flash.
        if self.open is None or "end" in self.open:
            return
        self.open["last"] = rd
        if force or self._noted_ms is None or rd["t"] - self._noted_ms >= self.note_every_ms:
            self._noted_ms = rd["t"]
            self._save_open()

    def _payload(self, rd, reason, uuid):
        # The payload section as a list of short bytes and their SHA-256: a
        # record of ~1 KB is signed and stored without a block of its size.
        o = self.open
        parts = ocmf.payload_parts(o["pg"], self.gateway, o["meter"], o["ident"], o["begin"], rd, reason,
                                   self.decimals, (o.get("uuid"), uuid))
        h = hashlib.sha256()
        for i in range(len(parts)):
            parts[i] = parts[i].encode()
            h.update(parts[i])
        return parts, h.digest()

    def _store(self, body, sig):
        # -> the record's pg. Appended in its parts: the ~1 KB OCMF string is
        # never made in RAM (the journal's reader joins it where it is needed).
        self.journal.append([b"OCMF|"] + body + [b"|", ocmf.signature(sig[0], sig[1]).encode()])
        pg = self._last_pg = self.open["pg"]
        self.open = None
        self._save_open()
        return pg

    def end(self, rd, reason="E", uuid=None):
        # Signs and stores the record; returns its pg (None when no
        # transaction is open); uuid: the stop event's. Signing takes one
        # scalar product (ms on unix).
        if self.open is None:
            return None
        from dicamm.proto import p256  # loaded at the first signature, not at start
        body, h = self._payload(rd, reason, uuid)
        for v in p256.signing(self.key, None, h):
            if v is not None:
                return self._store(body, v)

    def close(self, rd, reason="E", uuid=None):
        # The end decided at the edge, signed by finish() now or later:
        # reading, reason and the stop event's UUID go to flash now in one
        # atomic write (no signature on the event loop at the edge), so that a
        # power cut before the record is stored ends it with this end, not P.
        # Returns the transaction's pg (None when none is open).
        # The end reading is the last one (note() leaves it from now on): the
        # file grows by reason and UUID only (a 96 KiB heap has no room to spare).
        if self.open is None:
            return None
        self.open["last"] = rd
        self.open["end"] = [reason, uuid]
        self._save_open()
        return self.open["pg"]

    def ending(self):
        # The decided end (reason, uuid) waiting for its signature, or None.
        return self.open.get("end") if self.open is not None else None

    def finish(self):
        # Signs and stores a decided end now; its pg, or None when none waits.
        e = self.ending()
        return self.end(self.open["last"], e[0], e[1]) if e else None

    def last_record(self):
        # The newest stored OCMF string (tests, the console's export).
        got = self.journal.last(1)
        return bytes(got[0][1]).decode() if got else None

    async def end_async(self, rd, reason, pause, uuid=None):
        # As end(), but awaits pause() between the steps of the signature
        # (about 1/16 of it each), so that a slow port keeps running its other
        # tasks; pause is e.g. `lambda: asyncio.sleep_ms(0)`. Returns the
        # record's pg (the record is in the journal; no string of it is made).
        if self.open is None:
            return None
        from dicamm.proto import p256
        body, h = self._payload(rd, reason, uuid)
        open_pg = self.open["pg"]
        sig = None
        for v in p256.signing(self.key, None, h):
            if v is None:
                await pause()
            else:
                sig = v
        if self.open is None or self.open["pg"] != open_pg:
            return None  # ended meanwhile by someone else
        return self._store(body, sig)

    def meter_exchanged(self, uuid=None):
        # The meter's serial changed under an open transaction: it ends
        # aborted (A) at the old meter's last reading, marked ST "X"
        # (exchanged) and EF "E" (energy not usable). Returns the record.
        if self.open is None:
            return None
        if self.ending():
            return self.finish()  # it had ended before the exchange was seen
        rd = dict(self.open["last"])
        rd["st"], rd["ef"] = "X", "E"
        return self.end(rd, "A", uuid)

    def recover(self, uuid=None):
        # At start: an open transaction left by a power cut ends with P at the
        # last reading noted, with that reading's own time; one whose end was
        # decided before the cut ends with that end. Returns the record's pg.
        if self.open is None:
            return None
        return self.finish() or self.end(self.open["last"], "P", uuid)

    def list(self, last=10):
        return list(self.rows(last, True))

    def rows(self, last=10, with_ocmf=False):
        # The newest `last` records decoded one at a time, oldest first: a
        # reader that writes each before taking the next holds one record in
        # the heap, not `last` of them (20 are some 40 KB on 32 bits).
        j = self.journal
        g = j.records(max(j.next_seq - last, 0))
        try:
            for seq, p in g:
                try:
                    d = ocmf.summary(p)
                    if with_ocmf:
                        d["ocmf"] = bytes(p).decode()
                except (ValueError, KeyError):
                    d = {"seq": seq, "error": "unreadable record"}
                p = None
                yield d
        finally:
            g.close()
