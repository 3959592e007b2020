# MQTT command parsing and ack payloads: tables of good and bad commands.
import json

from dicamm.proto import mqtt_cmd

T0 = 1750000000  # Unix seconds (schedule windows are in s)
W1 = '{"id":"w1","start":%d,"end":%d,"power_w":3000}' % (T0, T0 + 3600)
W2 = '{"id":"w2","start":%d,"end":%d,"on":true}' % (T0 + 7200, T0 + 9000)

GOOD = [
    ("relay", b'{"id":"a1","mode":"on"}', {"mode": "on"}),
    ("relay", b'{"id":7,"mode":"auto","minutes":15}', {"mode": "auto", "minutes": 15}),
    ("setpoint", b'{"id":"s","power_w":2000}', {"power_w": 2000}),
    ("setpoint", b'{"id":"s","on":false,"ttl_s":60}', {"on": False, "ttl_s": 60}),
    ("schedule", ('{"id":"w","windows":[%s,%s]}' % (W1, W2)).encode(),
     {"windows": [{"id": "w1", "start": T0, "end": T0 + 3600, "power_w": 3000},
                  {"id": "w2", "start": T0 + 7200, "end": T0 + 9000, "on": True}]}),
    ("schedule", b'{"id":"c","windows":[]}', {"windows": []}),
    ("event", b'{"id":"e","text":"start 13k"}', {"text": "start 13k"}),
    ("config", b'{"id":"k","key":"mqtt.meter_period_s","value":30}',
     {"key": "mqtt.meter_period_s", "value": 30}),
    ("config", b'{"id":"k","key":"mqtt.discovery","value":true}', {"key": "mqtt.discovery", "value": True}),
    (b"relay", b' {"mode":"off", "id":"bytes-name"} ', {"mode": "off"}),
    ("update", b'{"id":"u","url":"https://r.example/0.2.0/manifest.json"}',
     {"url": "https://r.example/0.2.0/manifest.json"}),
    ("update", b'{"id":"u","url":"https://r.example/0.1.0/manifest.json","downgrade":true}',
     {"url": "https://r.example/0.1.0/manifest.json", "downgrade": True}),
]

# (name, payload, id expected in the refusal, words the reason must contain)
BAD = [
    ("update", b'{"id":"u","url":"https://r.example/0.2.0/"}', "u", "url: the https URL of a release's manifest.json"),
    ("update", b'{"id":"u","url":"ftp://r.example/manifest.json"}', "u", "url: the https URL"),
    ("update", b'{"id":"u","url":7}', "u", "url: the https URL"),
    ("update", b'{"id":"u","url":"https://r.example/manifest.json","downgrade":"yes"}', "u",
     "downgrade: must be true or false"),
    ("relay", b"on", None, "not JSON"),
    ("relay", b"\xff\xfe", None, "not JSON"),
    ("relay", b"", None, "not JSON"),
    ("relay", b"[1,2]", None, "not a JSON object"),
    ("relay", b'{"mode":"on"}', None, "id: missing"),
    ("relay", b'{"id":"","mode":"on"}', None, "id:"),
    ("relay", b'{"id":1.5,"mode":"on"}', None, "id:"),
    ("relay", b'{"id":{"a":1},"mode":"on"}', None, "id:"),
    ("relay", ('{"id":"x","mode":"on","pad":"%s"}' % ("p" * 4100)).encode(), None, "too large"),
    ("reboot", b'{"id":"r"}', "r", "unknown command"),
    ("relay/x", b'{"id":"r","mode":"on"}', "r", "unknown command"),
    ("relay", b'{"id":"r"}', "r", "mode: missing"),
    ("relay", b'{"id":"r","mode":"toggle"}', "r", "mode: must be one of"),
    ("relay", b'{"id":"r","mode":1}', "r", "mode: must be one of"),
    ("relay", b'{"id":"r","mode":"on","minutes":0}', "r", "out of range"),
    ("relay", b'{"id":"r","mode":"on","minutes":"60"}', "r", "must be an integer"),
    ("relay", b'{"id":"r","mode":"on","colour":"red"}', "r", "colour: unknown field"),
    ("setpoint", b'{"id":"p","power_w":-1}', "p", "out of range"),
    ("setpoint", b'{"id":"p","power_w":2000.5}', "p", "must be an integer"),
    ("setpoint", b'{"id":"p","power_w":true}', "p", "must be an integer"),
    ("setpoint", b'{"id":"p","power_w":100001}', "p", "out of range"),
    ("setpoint", b'{"id":"p"}', "p", "either power_w or on"),
    ("setpoint", b'{"id":"p","power_w":5,"on":true}', "p", "either power_w or on"),
    ("setpoint", b'{"id":"p","on":"yes"}', "p", "true or false"),
    ("setpoint", b'{"id":"p","on":true,"ttl_s":5}', "p", "out of range"),
    ("schedule", b'{"id":"w"}', "w", "windows: missing"),
    ("schedule", b'{"id":"w","windows":{}}', "w", "must be a list"),
    ("schedule", ('{"id":"w","windows":[%s]}' % ",".join(['{"id":"x","start":1,"end":2,"on":true}'] * 49)).encode(), "w", "at most 48"),
    ("schedule", ('{"id":"w","windows":[%s,%s]}' % (W1, W1)).encode(), "w", "not unique"),
    ("schedule", ('{"id":"w","windows":[{"id":"a","start":%d,"end":%d,"on":true}]}' % (T0, T0)).encode(),
     "w", "end must be after start"),
    ("schedule", b'{"id":"w","windows":[{"id":"a","start":1,"end":5}]}', "w", "either on or power_w"),
    # §14a EnWG: the grid operator's limit is never the backend's to set or lift,
    # however well formed
    ("dso", b'{"id":"d","limit_w":4200}', "d", "the backend can neither set nor lift it"),
    ("dso", b'{"id":"d","limit_w":null}', "d", "refused: the 14a EnWG limit is the grid operator's"),
    ("dso", b'{"id":"d"}', "d", "the backend can neither set nor lift it"),
    ("config", b'{"id":"k","key":"dso.min_w","value":4200}', "k", "may not be set remotely"),
    ("config", b'{"id":"k","key":"dso.controllable","value":false}', "k", "may not be set remotely"),
    ("config", b'{"id":"k","key":"relay.nominal_w","value":0}', "k", "may not be set remotely"),
    ("config", b'{"id":"k","key":"relay.stages_w","value":[2000]}', "k", "may not be set remotely"),
    ("event", b'{"id":"e","text":""}', "e", "length"),
    ("event", ('{"id":"e","text":"%s"}' % ("t" * 65)).encode(), "e", "length"),
    ("event", b'{"id":"e","text":7}', "e", "must be a string"),
    ("config", b'{"id":"k","key":"mqtt.host","value":"evil"}', "k", "may not be set remotely"),
    ("config", b'{"id":"k","key":"device_id","value":"x"}', "k", "may not be set remotely"),
    ("config", b'{"id":"k","key":"mqtt.meter_period_s","value":0}', "k", "out of range"),
    ("config", b'{"id":"k","key":"mqtt.discovery","value":1}', "k", "not a valid bool"),
    ("config", b'{"id":"k","key":"mqtt.meter_period_s","value":"30"}', "k", "not a valid int"),
    ("config", b'{"id":"k","key":"time.resync_s","value":15}', "k", "out of range 16..86400"),
    ("relay", b'{"id":"r","mode":"on","minutes":null}', "r", "must be an integer"),
    ("r", b'{"id":"r","mode":"on"}', "r", "unknown command"),
    ("config", b'{"id":"k","value":1}', "k", "key: missing"),
]


def test_good_commands_parse():
    for name, payload, args in GOOD:
        n, cid, a, err = mqtt_cmd.parse(name, payload)
        assert err is None, (name, payload[:80], err)
        assert n == (name.decode() if isinstance(name, bytes) else name)
        assert cid is not None and a == args, (name, a)
        assert "id" not in a


def test_bad_commands_refused_with_reason():
    for name, payload, cid, words in BAD:
        n, got_id, a, err = mqtt_cmd.parse(name, payload)
        assert err is not None and a is None, (name, payload[:80])
        assert words in err, (name, payload[:80], err)
        assert got_id == cid, (name, payload[:80], got_id)


def test_every_command_has_a_good_case():
    covered = set()
    for name, _, _ in GOOD:
        covered.add(name.decode() if isinstance(name, bytes) else name)
    assert covered == set(mqtt_cmd.names())


def test_remote_keys_leave_identity_and_network_to_the_installer():
    from dicamm.proto.schema import REMOTE, SCHEMA
    for key in REMOTE:
        assert key in SCHEMA, key
        assert not key.startswith(("net.", "han.", "meter.", "service.", "mqtt.host", "mqtt.user", "mqtt.password",
                                   "mqtt.ca", "mqtt.cert", "mqtt.key", "mqtt.prefix")), key
        assert key not in ("device_id", "cls_id"), key
        # what decides which §14a limits bind stays with the installer
        assert not key.startswith("dso.") and key not in ("relay.nominal_w", "relay.stages_w"), key


def test_ack_payloads():
    ok = json.loads(mqtt_cmd.ack("a1", True, result={"state": "on"}, name="relay"))
    assert ok == {"id": "a1", "ok": True, "cmd": "relay", "result": {"state": "on"}}
    bad = json.loads(mqtt_cmd.ack(None, False, "not JSON"))
    assert bad == {"id": None, "ok": False, "error": "not JSON"}
    assert isinstance(mqtt_cmd.ack(3, False, "x"), bytes)
