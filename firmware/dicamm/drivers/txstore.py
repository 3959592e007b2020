# Transaction record storage: the per-device sealing key (created once, kept
# in a file) and the chain of records in a journal, with the open transaction
# in an atomically written file so that a power cut ends it with reason EP.
# The records themselves are built and checked in proto/txrecord.py.
import json

from dicamm.drivers import fsutil
from dicamm.proto.txrecord import END_REASONS, canonical, make, reading


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
        if reason not in END_REASONS:
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
