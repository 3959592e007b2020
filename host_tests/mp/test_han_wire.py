# The HAN wire format in dicamm.proto.han_wire (docs/HAN.md): the trigger's body
# with its time status, the request's persistence header, where an answer ends on a
# kept connection and whether the gateway keeps it (HTTP/1.1, RFC 9112 9.3 and 6.3).
# Dual test: runs on MicroPython and CPython.
import json

from dicamm.errors import LinkError
from dicamm.proto.han_wire import answer_size, body, parse_answer, persistence, request

U = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"
EV = {"uuid": U, "cls_id": "CLS-1", "text": "start by schedule", "timestamp": 1700000000}

# (event fields beyond EV, time_status and error_ms in the body)
BODIES = [
    ({"time_status": "S", "error_ms": 12}, "S", 12),
    ({"time_status": "S"}, "S", None),                  # an event journalled before error_ms existed
    ({"time_status": "I", "error_ms": 12}, "I", None),  # an uncertainty only while S
    ({"time_status": "U", "error_ms": 5}, "U", None),
    ({}, "U", None),                                    # no status known: U, never looks legal
    ({"time_status": None}, "U", None),
]


def test_body_carries_time_status_and_error():
    for extra, st, err in BODIES:
        ev = dict(EV)
        ev.update(extra)
        b = json.loads(body(ev))
        assert b == {"uuid": U, "cls_id": "CLS-1", "text": "start by schedule", "timestamp": 1700000000,
                     "time_status": st, "error_ms": err}, (extra, b)


def test_request_asks_for_keep_alive_or_close():
    ev = dict(EV, time_status="S", error_ms=3)
    for keep, word in ((True, b"Connection: keep-alive\r\n"), (False, b"Connection: close\r\n")):
        r = request("gw", 8443, "/taf16", ev, keep)
        head, _, b = r.partition(b"\r\n\r\n")
        assert r.startswith(b"POST /taf16 HTTP/1.1\r\nHost: gw:8443\r\n"), r
        assert word in head + b"\r\n", r
        assert b"Content-Length: %d\r\n" % len(b) in head + b"\r\n", r
        assert json.loads(b)["time_status"] == "S"


REC = b'{"uuid": "%s", "seq": 4, "reading_wh": 7, "time": 1700000001, "meter_id": "m"}' % U.encode()


def _answer(headers, payload=REC, version=b"HTTP/1.1"):
    return version + b" 201 Created\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + payload


CL = b"Content-Length: %d" % len(REC)
# (raw answer, answer_size, persistence): size -1 = until the close; persistence
# -1 = the gateway closes, 0 = kept (no timeout said), N = kept N idle seconds
ANSWERS = [
    (_answer([CL]), len(_answer([CL])), 0),                                   # HTTP/1.1 default: persistent
    (_answer([CL, b"Connection: keep-alive", b"Keep-Alive: timeout=5, max=100"]), None, 5),
    (_answer([CL, b"connection: Close"]), None, -1),                          # header names and tokens: any case
    (_answer([CL, b"Connection: keep-alive"], version=b"HTTP/1.0"), None, -1),  # 1.0: not persistent here
    (_answer([]), -1, -1),                                                    # no length: ends with the close
    (_answer([CL, b"Keep-Alive: timeout=x"]), None, 0),
]


def test_answer_size_and_persistence():
    for raw, size, keep in ANSWERS:
        if size is not None:
            assert answer_size(raw) == size, (raw, answer_size(raw))
        assert persistence(raw) == keep, (raw, persistence(raw))
        rec = parse_answer(raw, U)
        assert rec["seq"] == 4


def test_answer_size_while_incomplete():
    raw = _answer([CL])
    i = raw.index(b"\r\n\r\n")
    for cut in (0, 5, i, i + 3):
        assert answer_size(raw[:cut]) is None, cut
    # the head is there: the size is known before the body has come
    assert answer_size(raw[:i + 4]) == len(raw)
    assert answer_size(raw + b"HTTP/1.1 200") == len(raw)  # never counts bytes beyond it
    try:
        answer_size(b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n")
        raise AssertionError("bad length accepted")
    except LinkError as e:
        assert "Content-Length" in str(e)


def test_cut_answer_is_not_an_ack():
    raw = _answer([CL])
    try:
        parse_answer(raw[:-3], U)
        raise AssertionError("cut answer accepted")
    except LinkError as e:
        assert "cut short" in str(e)
