# mqtt_streams.json_parts: a message with a long record goes out in parts, none
# of them big, that join to the JSON of the whole. Dual test (MicroPython, CPython).
import json

from dicamm.services.mqtt_streams import json_parts

RECORD = b'OCMF|{"FV":"1.0","GI":"DICAMM","RD":[{"TM":"2026-11-29T01:00:00,000+0000 S","RV":"1000.123"}]}|' \
         b'{"SA":"ECDSA-secp256r1-SHA256","SD":"' + b"3045" * 60 + b'"}'


def test_a_long_record_in_small_escaped_parts():
    d = {"seq": 7, "pg": 3, "meter_serial": "2026001", "ocmf": RECORD}
    parts = json_parts(d)
    assert isinstance(parts, list) and len(parts) > 3
    assert max(len(p) for p in parts) <= 2 * 128 + 16
    got = json.loads(b"".join(parts))
    assert got["ocmf"] == RECORD.decode() and got["seq"] == 7 and got["pg"] == 3 and len(got) == 4


def test_small_messages_in_one_piece():
    d = {"seq": 1, "import_wh": 5, "text": "short"}
    assert json.loads(json_parts(d)) == d
    assert json.loads(b"".join(json_parts({"ocmf": RECORD}))) == {"ocmf": RECORD.decode()}


def test_field_parts_one_per_field_and_bytes_as_text():
    # field_parts (identity, state, health and records with a long value): one
    # part per field, a bytes value of any length as escaped text.
    from dicamm.services.mqtt_streams import field_parts
    d = {"device_id": "d1", "meter": {"serial": "2026001", "model": "SDM630"}, "short": b'a"b', "n": None}
    parts = field_parts(d)
    assert len(parts) == len(d) + 3  # the bytes value: its head, one slice, its closing quote
    assert json.loads(b"".join(parts)) == {"device_id": "d1", "meter": d["meter"], "short": 'a"b', "n": None}
    assert field_parts({}) == [b"{}"]
