# Configuration: defaults, typed set/get/unset with good and bad values, masking,
# export/import round trip, corrupt file fallback. Runs on MicroPython and CPython.
import json
import os

from dicamm.drivers import config, fsutil
from dicamm.drivers.config import Config, SCHEMA
from dicamm.errors import ConfigError


def _fresh():
    d = "/tmp/dicamm_tc_" + "".join("%02x" % b for b in os.urandom(4))
    fsutil.makedirs(d)
    return d


def _rmtree(d):
    for fn in os.listdir(d):
        os.remove(d + "/" + fn)
    os.rmdir(d)


def _refused(c, key, value):
    try:
        c.set(key, value)
    except ConfigError as e:
        assert key in str(e) or "unknown" in str(e), str(e)
        return str(e)
    raise AssertionError("%s=%r accepted" % (key, value))


# key, accepted (input, stored), refused inputs
CASES = (
    ("meter.address", (("17", 17), (247, 247), (" 1 ", 1)), ("0", "248", "x", 1.5, True, "")),
    ("meter.baud", (("2400", 2400), (115200, 115200)), ("2401", "300", 9600.0)),
    ("meter.parity", (("E", "E"), ("o", "O"), ("N", "N")), ("X", "even", 1)),
    ("meter.timeout_ms", (("100", 100), (10000, 10000)), ("99", "10001")),
    ("time.drift_ppm", (("12", 12), (3, 3), ("500", 500)), ("501", "0", "-5", "abc", "1.5", False)),
    ("relay.plausibility_share", (("0.25", 0.25), (1, 1.0)), ("1.01", "-0.1")),
    ("relay.power_up", (("last", "last"), ("ON", "on")), ("maybe", "")),
    ("han.plain_http", (("true", True), ("0", False), (True, True), ("Off", False)), ("2", "maybe", 1)),
    ("mqtt.port", (("8883", 8883),), ("0", "65536", "-1")),
    ("mqtt.prefix", (("site/a", "site/a"), ("", "")), ("x" * 49, 5)),
    ("time.servers", (("a.example, b.example:123", ["a.example", "b.example:123"]),
                      (["10.0.0.1:123"], ["10.0.0.1:123"]), ("", [])),
     ("h:0", "h:99999", "bad host", "a,b,c,d,e", [1], "x:y")),
    ("service.pin", (("1234", "1234"), ("", ""), ("12345678", "12345678")), ("12a4", "123", "123456789", 1234)),
    ("cls_id", (("CLS-0042", "CLS-0042"),), ("x" * 65,)),
)


def test_defaults():
    d = _fresh()
    try:
        c = Config(d)
        assert c.source == "defaults" and c.problems == [] and c.error is None
        for k in SCHEMA:
            assert c.get(k) == SCHEMA[k][1], k
            assert c.is_default(k)
            config.check(k, SCHEMA[k][1])      # every default passes its own check
        assert c.get("meter.baud") == 9600 and c["meter.parity"] == "N"
        assert c.get("time.servers")[0].startswith("ptbtime1")
        try:
            c.get("no.such")
            assert False
        except ConfigError:
            pass
    finally:
        _rmtree(d)


def test_set_get_unset_per_type():
    d = _fresh()
    try:
        c = Config(d)
        for key, good, bad in CASES:
            for given, stored in good:
                assert c.set(key, given) == stored, (key, given)
                assert c.get(key) == stored, (key, given)
                assert type(c.get(key)) is type(stored), (key, given)
            before = c.get(key)
            for b in bad:
                _refused(c, key, b)
                assert c.get(key) == before, (key, b)
            assert c.unset(key) == SCHEMA[key][1] and c.is_default(key)
        msg = _refused(c, "meter.address", "300")
        assert "1..247" in msg
        msg = _refused(c, "meter.baud", "1000")
        assert "9600" in msg
        _refused(c, "no.such.key", "1")
        c.get("time.servers").append("x")      # a copy: the default stays intact
        assert len(c.get("time.servers")) == 4
    finally:
        _rmtree(d)


def test_masking_and_describe():
    d = _fresh()
    try:
        c = Config(d)
        assert c.as_dict()["mqtt.password"] == ""     # empty: nothing to hide
        c.set("mqtt.password", "s3cret")
        c.set("net.password", "wifi-pass")
        c.set("service.pin", "4711")
        m = c.as_dict()
        assert m["mqtt.password"] == m["net.password"] == m["service.pin"] == "***"
        assert c.as_dict(masked=False)["mqtt.password"] == "s3cret"
        assert "s3cret" not in c.export_json() and "4711" not in c.export_json()
        assert config.is_secret("mqtt.password") and not config.is_secret("mqtt.user")
        assert "meter.baud" in config.keys("meter.") and "mqtt.host" not in config.keys("meter.")
        assert config.keys() == sorted(SCHEMA)
        s = config.describe("meter.address")
        assert "int" in s and "1..247" in s
        assert "(secret)" in config.describe("net.password")
        for k in SCHEMA:
            assert config.describe(k).startswith(k + " ")
    finally:
        _rmtree(d)


def test_save_load_and_export_import_round_trip():
    d = _fresh()
    try:
        c = Config(d)
        c.set("meter.address", "5")
        c.set("mqtt.password", "pw")
        c.set("time.drift_ppm", "15")
        c.set("mqtt.discovery", "yes")
        c.save()
        c2 = Config(d)
        assert c2.source == "file" and c2.problems == []
        assert c2.as_dict(False) == c.as_dict(False)
        # full round trip with secrets
        text = c.export_json(masked=False)
        c3 = Config(_fresh_sub(d, "a"))
        changed = c3.import_json(text)
        assert changed == sorted(["meter.address", "mqtt.password", "time.drift_ppm", "mqtt.discovery"])
        assert c3.as_dict(False) == c.as_dict(False)
        # a masked export re-imported keeps the secret already set
        c.set("meter.address", "9")
        assert c.import_json(c.export_json(masked=True, all_keys=True)) == []
        assert c.get("mqtt.password") == "pw"
        # nested form, replace mode
        c.import_json(json.dumps({"meter": {"baud": 19200}}), replace=True)
        assert c.get("meter.baud") == 19200 and c.get("meter.address") == 1
        assert c.get("mqtt.password") == "pw"
    finally:
        for sub in ("a",):
            p = d + "/" + sub
            if fsutil.exists(p):
                _rmtree(p)
        _rmtree(d)


def _fresh_sub(d, name):
    p = d + "/" + name
    fsutil.makedirs(p)
    return p


def test_import_is_all_or_nothing():
    d = _fresh()
    try:
        c = Config(d)
        c.set("meter.address", 3)
        for bad in ('{"meter.address": 7, "meter.baud": 1}', '{"meter.address": 7, "x.y": 1}',
                    "[1]", "{not json"):
            try:
                c.import_json(bad)
                assert False, bad
            except ConfigError:
                pass
            assert c.get("meter.address") == 3 and c.get("meter.baud") == 9600
    finally:
        _rmtree(d)


def test_corrupt_file_falls_back_to_backup():
    d = _fresh()
    try:
        c = Config(d)
        c.set("meter.address", "11")
        c.save()
        c.set("meter.address", "12")
        c.save()                           # .bak now holds address 11
        with open(d + "/config.json", "wb") as f:
            f.write(b'{"meter.address": 12, "mete')
        c2 = Config(d)
        assert c2.source == "backup" and isinstance(c2.error, ConfigError)
        assert c2.get("meter.address") == 11 and c2.problems
        c2.save()                          # a corrupt file is never made the backup
        assert json.loads(fsutil.read(d + "/config.json.bak"))["meter.address"] == 11
        os.remove(d + "/config.json.bak")
        with open(d + "/config.json", "wb") as f:
            f.write(b"\xff\x00garbage")
        c3 = Config(d)
        assert c3.source == "defaults" and c3.get("meter.address") == 1 and c3.error
    finally:
        _rmtree(d)


def test_unknown_and_bad_values_in_file_are_reported_and_tmp_ignored():
    d = _fresh()
    try:
        with open(d + "/config.json", "w") as f:
            f.write('{"meter.address": 999, "future.key": "x", "meter": {"baud": 2400}}')
        with open(d + "/config.json.tmp", "w") as f:
            f.write("{half")
        c = Config(d)
        assert c.source == "file"
        assert c.get("meter.address") == 1 and c.get("meter.baud") == 2400
        assert c.unknown == {"future.key": "x"}
        assert len(c.problems) == 2
        assert not fsutil.exists(d + "/config.json.tmp")
        c.save()                            # unknown keys survive a save
        assert Config(d).unknown == {"future.key": "x"}
    finally:
        _rmtree(d)


def test_get_with_default_for_unknown_keys():
    d = _fresh()
    try:
        c = Config(d)
        assert c.get("relay.not_a_key", 7) == 7 and c.get("no.such", None) is None
        assert c.get("relay.min_on_s", 1) == SCHEMA["relay.min_on_s"][1]   # schema wins
    finally:
        _rmtree(d)
