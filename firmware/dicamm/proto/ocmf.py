# OCMF 1.4 transaction records (Open Charge Metering Format, S.A.F.E. e.V.):
#   OCMF|{payload}|{"SA":"ECDSA-secp256r1-SHA256","SD":"<hex DER>"}
# One signed record per transaction with its begin and end readings ("MR",
# multiple readings, in the spec's OCPP best practice): import (OBIS
# 01-00:01.08.00*FF, the register the S.A.F.E. Transparenzsoftware bills) and
# export (01-00:02.08.00*FF), each with TX B and then E/L/R/A/P.
#
# A reading is a dict: t (legal Unix ms of the reading itself), s (time status
# U/I/S/R), i/x (import/export Wh), st (meter status, spec table 10), ef
# (error flags: "E" energy, "t" time, spec table 7). The payload text is
# written here key by key, so that MicroPython and CPython give the same
# bytes; the signature covers exactly those bytes. Pure: signing is p256,
# storage drivers/txstore.py.
import json

from micropython import const

from dicamm.proto import localtime, p256

_WINDOW = const(128)  # bytes of a record searched at a time (_find)

FV = "1.4"
SA = "ECDSA-secp256r1-SHA256"
OBIS_IMPORT = "01-00:01.08.00*FF"
OBIS_EXPORT = "01-00:02.08.00*FF"
BEGIN = "B"
# end reasons, spec table 7: E end, L local, R remote, A abort (error),
# P power failure
END_REASONS = ("E", "L", "R", "A", "P")
METER_STATUS = ("N", "G", "T", "D", "R", "M", "X", "I", "O", "S", "E", "F")
TIME_STATUS = ("U", "I", "S", "R")


def text(v):
    # A string field: printable ASCII only, and never the section separator
    # "|" (forbidden inside sections) nor a quote or backslash, so the JSON
    # needs no escapes and reads the same everywhere.
    out = []
    for c in str(v):
        out.append(c if " " <= c <= "~" and c not in '|"\\' else "_")
    return "".join(out)


def tm(unix_ms, status):
    # "2026-12-02T13:22:04,000+0100 S": local legal time (CET/CEST) with
    # milliseconds, the UTC offset and the time status (spec table 7, 19).
    y, m, d, hh, mi, ss, ms, off = localtime.local_fields(int(unix_ms))
    return "%04d-%02d-%02dT%02d:%02d:%02d,%03d+%02d%02d %s" % (
        y, m, d, hh, mi, ss, ms, off // 3600000, off // 60000 % 60, status)


def parse_tm(s):
    # (unix_ms, status) from a TM string; ValueError when it is not one.
    try:
        body, st = s.split(" ")
        y, mo, d = int(body[0:4]), int(body[5:7]), int(body[8:10])
        hh, mi, ss, ms = int(body[11:13]), int(body[14:16]), int(body[17:19]), int(body[20:23])
        sign = -1 if body[23] == "-" else 1
        off = sign * (int(body[24:26]) * 60 + int(body[26:28])) * 60000
        if len(body) != 28 or body[10] != "T" or body[19] != "," or body[23] not in "+-":
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError("bad TM %r" % (s,))
    return localtime.unix_from_civil(y, mo, d, hh, mi, ss) * 1000 + ms - off, st


def kwh(wh, decimals):
    # Wh (int) as a kWh number with `decimals` places (0..3), rounded half up:
    # the resolution the meter's register really has.
    if wh < 0:
        raise ValueError("negative energy")
    q = 10 ** (3 - decimals)
    v = (wh + q // 2) // q
    if not decimals:
        return "%d" % v
    return "%d.%0*d" % (v // 10 ** decimals, decimals, v % 10 ** decimals)


def identification(uuid, request=None):
    # IS/IL/IT/ID: a transaction started by a backend or grid-operator request
    # carries that request's id as a centrally generated ID, trusted by the
    # backend (spec tables 4, 11, 17); otherwise the start event's UUID,
    # generated locally, without a user assignment.
    if request:
        return (True, "TRUSTED", "CENTRAL", text(request))
    return (False, "NONE", "LOCAL", text(uuid or ""))


def _reading(put, r, tx, obis, wh, decimals):
    if r.get("st", "G") not in METER_STATUS or r["s"] not in TIME_STATUS:
        raise ValueError("bad reading status")
    put('{"TM":"%s","TX":"%s","RV":%s,"RI":"%s","RU":"kWh","RT":"AC","EF":"%s","ST":"%s"}' % (
        tm(r["t"], r["s"]), tx, kwh(wh, decimals), obis, text(r.get("ef", "")), r.get("st", "G")))


def payload(pg, gateway, meter, ident, begin, end, reason, decimals=3, uuids=None):
    # The payload section (str); payload_parts() gives it in pieces.
    return "".join(payload_parts(pg, gateway, meter, ident, begin, end, reason, decimals, uuids))


def payload_parts(pg, gateway, meter, ident, begin, end, reason, decimals=3, uuids=None):
    # The payload section as a list of short str that join to it: signed and
    # stored piece by piece, it never needs one big block of the heap. gateway: (GI, GS, GV); meter: dict with
    # vendor, model, serial, firmware; ident: identification(); begin/end:
    # readings (see the header); reason: one of END_REASONS; uuids: the TAF16
    # events of begin and end, kept (signed) in the vendor extension keys XB
    # and XE (top-level names starting with X are free for vendors).
    if reason not in END_REASONS:
        raise ValueError("bad end reason %r" % (reason,))
    if not meter.get("serial"):
        raise ValueError("MS (meter serial) is mandatory")
    parts = []
    put = parts.append
    put('{"FV":"%s","GI":"%s","GS":"%s","GV":"%s","PG":"T%d"' % (
        FV, text(gateway[0]), text(gateway[1]), text(gateway[2]), int(pg)))
    for k, f in (("MV", "vendor"), ("MM", "model"), ("MS", "serial"), ("MF", "firmware")):
        if meter.get(f):
            put(',"%s":"%s"' % (k, text(meter[f])))
    put(',"IS":%s,"IL":"%s","IF":[],"IT":"%s","ID":"%s",' % (
        "true" if ident[0] else "false", ident[1], ident[2], text(ident[3])))
    for k, u in zip(("XB", "XE"), uuids or ()):
        if u:
            put('"%s":"%s",' % (k, text(u)))
    put('"RD":[')
    _reading(put, begin, BEGIN, OBIS_IMPORT, begin["i"], decimals)
    put(",")
    _reading(put, end, reason, OBIS_IMPORT, end["i"], decimals)
    if begin.get("x") is not None and end.get("x") is not None:
        put(",")
        _reading(put, begin, BEGIN, OBIS_EXPORT, begin["x"], decimals)
        put(",")
        _reading(put, end, reason, OBIS_EXPORT, end["x"], decimals)
    put("]}")
    return parts


def envelope(payload_text, r, s):
    return "OCMF|%s|%s" % (payload_text, signature(r, s))


def signature(r, s):
    # The signature section of the record.
    from binascii import hexlify
    return '{"SA":"%s","SD":"%s"}' % (SA, hexlify(p256.sig_der(r, s)).decode().upper())


def split(record):
    # (payload text, signature dict) of an OCMF string; ValueError if not one.
    if isinstance(record, (bytes, bytearray, memoryview)):
        record = bytes(record).decode()
    parts = record.strip().split("|")
    if len(parts) != 3 or parts[0] != "OCMF":
        raise ValueError("not OCMF|payload|signature")
    return parts[1], json.loads(parts[2])


def signature_ok(record, pub):
    # True when the record's ECDSA signature is valid under the public key
    # pub (x, y): the payload's exact bytes, SA as this firmware writes it.
    from binascii import unhexlify
    try:
        body, sig = split(record)
        if sig.get("SA", SA) != SA or sig.get("SE", "hex") != "hex":
            return False
        r, s = p256.sig_from_der(unhexlify(sig["SD"]))
    except (ValueError, KeyError, TypeError):
        return False
    return p256.verify(pub, body.encode(), r, s)


def _find(mv, sub, start=0):
    # Index of sub in the bytes-like mv from start, or -1: searched in windows
    # of _WINDOW bytes, so that a record of 1 KB is never copied whole.
    i, end, w = start, len(mv), _WINDOW
    while i < end:
        k = bytes(mv[i:min(end, i + w + len(sub) - 1)]).find(sub)
        if k >= 0:
            return i + k
        i += w
    return -1


def _sections(record):
    # (payload, signature) of an OCMF record as memoryviews into it (str,
    # bytes, or the memoryview a journal read it into: no copy of the record).
    mv = memoryview(record.encode() if isinstance(record, str) else record)
    k = _find(mv, b"|", 5)
    if bytes(mv[:5]) != b"OCMF|" or k < 0 or _find(mv, b"|", k + 1) >= 0:
        raise ValueError("not OCMF|payload|signature")
    return mv[5:k], mv[k + 1:]


def _loads(mv):
    try:
        return json.loads(mv)          # MicroPython parses a memoryview as it is
    except TypeError:
        return json.loads(bytes(mv))   # CPython wants bytes


def _rv_wh(body):
    # Every RV of the payload as Wh, in order, from the text itself: a float
    # on an ESP32 has 24 bits, too few for a kWh register with 3 decimals.
    # body: bytes-like or str.
    mv = memoryview(body.encode() if isinstance(body, str) else body)
    out = []
    i = _find(mv, b'"RV":')
    while i >= 0:
        piece = bytes(mv[i + 5:i + 5 + 24]).decode()
        n = 0
        while n < len(piece) and piece[n] in "0123456789.":
            n += 1
        i = _find(mv, b'"RV":', i + 5)
        a, _, b = piece[:n].partition(".")
        if not a.isdigit() or (b and not b.isdigit()) or len(b) > 3:
            raise ValueError("bad RV %r" % piece[:n])
        out.append(int(a) * 1000 + int((b + "000")[:3]))
    return out


def summary(record):
    # A dict for people and tools (console `tx`, MQTT, verify_tx): pg, meter
    # serial, begin/end {reading_wh, export_wh, time_ms, time_status, st, ef,
    # reason}, energy_wh, id. ValueError when the record is not OCMF. record:
    # str or bytes-like; parsed where it lies (a journal's read buffer).
    body, _ = _sections(record)
    p = _loads(body)
    pg = p.get("PG", "")
    out = {"pg": int(pg[1:]) if pg[:1] == "T" and pg[1:].isdigit() else pg, "meter_serial": p.get("MS"),
           "meter_model": p.get("MM"), "id": p.get("ID")}
    rvs = _rv_wh(body)
    rds = p.get("RD", ())
    if len(rvs) != len(rds):
        raise ValueError("RV count does not match RD")
    for n, rd in enumerate(rds):
        side = "begin" if rd.get("TX") == BEGIN else "end"
        d = out.setdefault(side, {})
        t, st = parse_tm(rd["TM"])
        d.update({"time_ms": t, "time_status": st, "st": rd.get("ST"), "ef": rd.get("EF", "")})
        if side == "end":
            d["reason"] = rd.get("TX")
        d["reading_wh" if rd.get("RI") == OBIS_IMPORT else "export_wh"] = rvs[n]
    b, e = out.get("begin"), out.get("end")
    for k, d in (("XB", b), ("XE", e)):
        if d is not None and p.get(k):
            d["uuid"] = p[k]
    if b and e:
        out["energy_wh"] = e["reading_wh"] - b["reading_wh"]
    return out
