# The payloads of the MQTT identity and health topics (dicamm.proto.device_info,
# docs/MQTT.md): tables of inputs and the dicts they give.
# Dual test: runs on MicroPython and CPython.
from dicamm.proto.device_info import health, identity, net_part, reset_name


class FakeMachine:
    # the ESP32 port's values of machine.reset_cause()
    PWRON_RESET = 1
    HARD_RESET = 2
    WDT_RESET = 3
    DEEPSLEEP_RESET = 4
    SOFT_RESET = 5


RESETS = [(1, "power_on"), (2, "hard"), (3, "watchdog"), (4, "deep_sleep"), (5, "soft"), (9, "code 9"),
          (None, None)]


def test_reset_cause_by_the_port_s_names():
    for cause, name in RESETS:
        assert reset_name(cause, FakeMachine) == name, (cause, name)
    assert reset_name(3) == "code 3"  # no machine module: the number, never a guess


NETS = [
    ({"kind": "wifi", "connected": True, "rssi": -61, "ip": "10.0.0.5"}, {"kind": "wifi", "connected": True, "rssi_dbm": -61}),
    ({"kind": "wifi", "connected": False}, {"kind": "wifi", "connected": False, "rssi_dbm": None}),
    ({"kind": "wifi", "connected": True, "rssi": -128}, {"kind": "wifi", "connected": True, "rssi_dbm": None}),
    ({"kind": "ethernet", "connected": True, "ip": "10.0.0.6"}, {"kind": "ethernet", "link": True}),
    ({"kind": "ethernet", "connected": False}, {"kind": "ethernet", "link": False}),
    ({"kind": "host", "summary": "unix port"}, {"kind": "host"}),
    ({"kind": "wifi", "error": "OSError: 5"}, {"kind": "wifi", "connected": False, "rssi_dbm": None, "error": "OSError: 5"}),
    (None, None),
]


def test_network_part():
    for info, want in NETS:
        assert net_part(info) == want, (info, net_part(info))


def test_identity():
    meter = {"vendor": "Eastron", "model": "SDM630-Modbus", "serial": "2026001", "firmware": "1.2", "extra": 1}
    d = identity("dicamm-1", "CLS-1", "0.1.0", "esp32_devkitc", meter, "3059abcd")
    assert d == {"device_id": "dicamm-1", "cls_id": "CLS-1", "firmware": "0.1.0", "board": "esp32_devkitc",
                 "meter": {"vendor": "Eastron", "model": "SDM630-Modbus", "serial": "2026001", "firmware": "1.2"},
                 "ocmf_key": {"SA": "ECDSA-secp256r1-SHA256", "key": "3059abcd"}}, d
    d = identity("dicamm-1", "", "0.1.0", "unix", None, None)
    assert d["cls_id"] is None and d["meter"] is None and d["ocmf_key"] is None, d


def test_health_error_only_while_synchronised():
    for st, err, want in (("S", 12, 12), ("I", 12, None), ("U", None, None)):
        d = health(61, "power_on", 0, {"kind": "host"}, 50000, st, err, 1700000000000)
        assert d == {"uptime_s": 61, "reset_cause": "power_on", "crashes": 0, "net": {"kind": "host"},
                     "heap_free": 50000, "time_status": st, "error_ms": want, "time_ms": 1700000000000}, d
    d = health(1, None, 2, None, 1, "U", None, 0, {"idf_heap_free": 90000})
    assert d["idf_heap_free"] == 90000 and d["crashes"] == 2
