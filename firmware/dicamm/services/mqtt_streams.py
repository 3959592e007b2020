# Store-and-forward of the journals over MQTT (the link is dicamm.services.mqtt_link):
# per stream the next seq the broker has not acknowledged (the cursor, saved
# on flash now and then) and the next seq to send on this connection. After a
# reconnect sending starts again from the cursor, so a record is sent at least
# once; "seq" in every message lets the backend drop the duplicates. Records
# evicted from flash before they were acknowledged are counted as lost.
import json
import time

from micropython import const

# "event/gateway" carries the gateway's record of each acknowledged TAF16 event.
STREAMS = ("qh", "event", "event/gateway", "tx")
_BURST = const(4)             # journal records per stream per turn
_SAVE_EVERY = const(32)       # cursor saved after this many acknowledged records...
_SAVE_AFTER_MS = const(600000)  # ...or this long after the first unsaved one
_SLICE = const(128)           # bytes of a long record escaped at a time (json_parts)


def json_parts(d):
    # d as JSON: one piece, or with a long bytes value (the OCMF record of a
    # transaction) the parts of field_parts, so that no part needs a big block
    # of a fragmented heap (a 1 KB record as one JSON string was 2 KB, twice:
    # the text and its encoding).
    for k in d:
        v = d[k]
        if isinstance(v, (bytes, memoryview)) and len(v) > _SLICE:
            return field_parts(d)
    return json.dumps(d).encode()


def field_parts(d):
    # d as JSON in parts that MqttClient.publish writes one after the other:
    # one per top-level field, a bytes value (text) as escaped slices of
    # _SLICE. No part is much bigger than the largest field that is not bytes.
    parts = []
    sep = b"{"
    for k in d:
        v = d[k]
        head = sep + json.dumps(k).encode() + b":"
        if isinstance(v, (bytes, memoryview)):
            parts.append(head + b"\"")
            v = memoryview(v)
            for i in range(0, len(v), _SLICE):
                parts.append(json.dumps(bytes(v[i:i + _SLICE]).decode())[1:-1].encode())
            parts.append(b"\"")
        else:
            parts.append(head + json.dumps(v).encode())
        sep = b","
    parts.append(b"}" if parts else b"{}")
    return parts


def gateway_record(seq, payload):
    # An acks-journal entry {"n": event seq, "r": gateway record} as the
    # backend reads it: which event, its UUID, and the gateway's record.
    import json
    a = json.loads(payload)
    r = a.get("r") or {}
    return {"seq": seq, "event_seq": a.get("n"), "uuid": r.get("uuid"), "record": r}


def with_seq(seq, payload):
    # The journal payload with "seq" first, so that the backend can drop QoS 1
    # duplicates and resends after a reboot.
    p = bytes(payload)
    if p[:1] == b"{":
        rest = p[1:].lstrip()
        head = ('{"seq":%d' % seq).encode()
        return head + (rest if rest[:1] == b"}" else b"," + rest)
    return ('{"seq":%d,"hex":"%s"}' % (seq, "".join("%02x" % b for b in p))).encode()


class Streams:
    # sources: {"qh"|"event"|"event/gateway"|"tx": journal (records(from_seq),
    # first_seq, next_seq), "decode": {stream: fn(seq, payload) -> dict},
    # "cursor_path": file for the cursors}; log: fn(text).
    def __init__(self, sources, log):
        self.items = [(n, sources[n]) for n in STREAMS if sources.get(n) is not None]
        dec = sources.get("decode") or {}
        self._decode = [dec.get(n) for n, _ in self.items]
        n = len(self.items)
        self.acked = [0] * n   # next seq the broker has not acknowledged
        self.sent = [0] * n    # next seq to send on this connection
        self.lost = [0] * n    # evicted from flash before they were acknowledged
        self._path = sources.get("cursor_path")
        self._log = log
        self._unsaved = 0
        self._unsaved_ms = 0
        self._load()

    def _load(self):
        saved = {}
        if self._path:
            try:
                with open(self._path, "rb") as f:
                    saved = json.loads(f.read())
            except (OSError, ValueError):
                saved = {}
        for i, (name, j) in enumerate(self.items):
            c = saved.get(name)
            if not isinstance(c, int) or c > j.next_seq:
                c = j.first_seq  # no cursor yet, or a new journal: send all it holds
            self.acked[i] = c

    def save(self, force=False):
        if not self._path or not self._unsaved:
            return
        if not force and self._unsaved < _SAVE_EVERY and \
                time.ticks_diff(time.ticks_ms(), self._unsaved_ms) < _SAVE_AFTER_MS:
            return
        data = {}
        for i, (name, _) in enumerate(self.items):
            data[name] = self.acked[i]
        from dicamm.drivers.fsutil import write_atomic
        try:
            write_atomic(self._path, json.dumps(data))
        except Exception as e:  # a full or broken flash must not drop the link
            self._unsaved_ms = time.ticks_ms()
            self._log("cursor not saved: %s" % e)
            return
        self._unsaved = 0

    def restart(self):
        # A new connection: send again from the last acknowledged record.
        for i in range(len(self.items)):
            self.sent[i] = self.acked[i]

    def acknowledged(self, i, seq):
        # The broker acknowledged record seq of stream i (in order).
        if seq >= self.acked[i]:
            self.acked[i] = seq + 1
            if not self._unsaved:
                self._unsaved_ms = time.ticks_ms()
            self._unsaved += 1

    def backlog(self):
        out = {}
        for i, (name, j) in enumerate(self.items):
            out[name] = max(0, j.next_seq - max(self.acked[i], j.first_seq))
        return out

    def lost_counts(self):
        out = {}
        for i, (name, _) in enumerate(self.items):
            out[name] = self.lost[i]
        return out

    def pump(self, send, room_left):
        # Journal records in order, from the first one not yet sent on this
        # connection: send(name, i, seq, message) for each while room_left()
        # (the in-flight window) allows. True if more is waiting.
        more = False
        for i, (name, j) in enumerate(self.items):
            if self.sent[i] < j.first_seq:
                gone = j.first_seq - self.sent[i]
                if self.acked[i] < j.first_seq:
                    self.lost[i] += j.first_seq - self.acked[i]
                    self.acked[i] = j.first_seq
                    self._log("%s: %d records evicted before they were sent" % (name, gone))
                self.sent[i] = j.first_seq
            if self.sent[i] >= j.next_seq:
                continue
            room = min(_BURST, room_left())
            if room <= 0:
                return False
            it = j.records(self.sent[i])
            try:
                for seq, payload in it:
                    if seq < self.sent[i]:
                        continue
                    send(name, i, seq, self._message(i, seq, payload))
                    self.sent[i] = seq + 1
                    room -= 1
                    if room <= 0:
                        break
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
            if self.sent[i] < j.next_seq:
                more = True
        return more

    def _message(self, i, seq, payload):
        # The message for one journal record: the stream's decoder (if any)
        # turns it into a dict, sent with "seq"; else the payload with "seq" put in.
        fn = self._decode[i]
        if fn is not None:
            try:
                d = fn(seq, payload)
                d["seq"] = seq
                return json_parts(d)
            except Exception as e:  # an undecodable record still goes out
                self._log("%s seq %d not decoded: %s" % (self.items[i][0], seq, e))
        return with_seq(seq, payload)
