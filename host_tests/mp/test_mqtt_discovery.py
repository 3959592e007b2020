# Home Assistant MQTT discovery payloads against the rules of Home Assistant's
# "MQTT" integration documentation (discovery, sensor, binary sensor, switch, select)
# and developer docs, as of Home Assistant Core 2026.4. Each rule names where it
# comes from. Dual test: runs on MicroPython and CPython.
import json

from dicamm.proto import mqtt_discovery as D

PREFIX = "dicamm/dev-1/"
IDENT = {"device_id": "dev-1", "serial": "CLS-0001", "sw_version": "0.1.0"}
COMPONENTS = ("sensor", "binary_sensor", "switch", "select")
# sensor device classes and the units HA accepts for them (HA sensor docs, 2026.4)
UNITS = {"power": ("W", "kW", "MW", "GW", "TW", "mW", "BTU/h"), "energy": ("Wh", "kWh", "MWh", "GWh", "TWh", "MJ", "GJ", "J", "cal", "kcal", "Mcal", "Gcal", "mWh")}
STATE_CLASSES = {"power": ("measurement",), "energy": ("total", "total_increasing")}


def _entity_slug_ok(s):
    # HA entity ids: "<domain>.<object id>", object id of lower-case letters, digits, "_"
    return s and all("a" <= c <= "z" or "0" <= c <= "9" or c == "_" for c in s) and not s.startswith("_")


def _topic_id_ok(s):
    # discovery topic: <prefix>/<component>/[<node_id>/]<object_id>/config with
    # node_id and object_id of [a-zA-Z0-9_-] (HA MQTT discovery, "Discovery topic")
    return s and all(c.isalpha() or c.isdigit() or c in "_-" for c in s)


def check(msgs, commands):
    seen_uids = set()
    for topic, payload in msgs:
        topic = topic.decode()
        parts = topic.split("/")
        assert len(parts) == 5 and parts[0] == "homeassistant" and parts[4] == "config", topic
        comp, node, obj = parts[1], parts[2], parts[3]
        assert comp in COMPONENTS and _topic_id_ok(node) and _topic_id_ok(obj), topic
        if not payload:
            continue  # an empty retained config removes an entity (HA discovery, "Removing")
        c = json.loads(payload)
        # object_id: deprecated in 2025.10, not honoured since 2026.4 -> default_entity_id
        assert "object_id" not in c, c
        dom, _, oid = c["default_entity_id"].partition(".")
        assert dom == comp and _entity_slug_ok(oid), c["default_entity_id"]
        # unique_id: required for the entity registry, unique per integration
        assert c["unique_id"] and c["unique_id"] not in seen_uids, c["unique_id"]
        seen_uids.add(c["unique_id"])
        # device: identifiers (or connections) required for a device entry; entity
        # names must not start with the device name (2023.8 naming rules)
        d = c["device"]
        assert d["identifiers"] and d["name"] and d["manufacturer"] and d["model"], d
        assert d["serial_number"] == "CLS-0001" and d["sw_version"] == "0.1.0", d
        assert not c["name"].startswith(d["name"]), (c["name"], d["name"])
        if "configuration_url" in d:
            assert d["configuration_url"].startswith(("http://", "https://", "homeassistant://")), d
        # origin: name required, sw_version / support_url optional (2023.9)
        assert c["origin"]["name"] and c["origin"]["sw_version"] == "0.1.0", c["origin"]
        # availability
        assert c["availability_topic"] == PREFIX + "status"
        assert c["payload_available"] == "online" and c["payload_not_available"] == "offline"
        assert c["state_topic"].startswith(PREFIX) and c["value_template"].startswith("{{")
        cls = c.get("device_class")
        if comp == "sensor":
            if cls in UNITS:
                assert c["unit_of_measurement"] in UNITS[cls], c
                assert c["state_class"] in STATE_CLASSES[cls], c
            elif cls == "enum":
                # enum sensors: options required, no unit and no state class
                assert c["options"] and "unit_of_measurement" not in c and "state_class" not in c, c
            if c["state_topic"] == PREFIX + "meter":
                # measured values expire when the meter falls silent
                assert isinstance(c["expire_after"], int) and c["expire_after"] > 0, c
        if comp in ("switch", "select"):
            # commandable entities need a command topic, and only where MQTT may command
            assert "relay" in commands
            assert c["command_topic"] == PREFIX + "cmd/relay", c
            body = c["command_template"]
            assert '"id":' in body and '"mode":"{{ value }}"' in body, body
        if comp == "switch":
            assert (c["payload_on"], c["payload_off"], c["state_on"], c["state_off"]) == ("on", "off", "on", "off")
        if comp == "select":
            assert c["options"] == ["auto", "on", "off"]
        if comp == "binary_sensor":
            assert "relay" not in commands and c["payload_on"] == "on" and c["payload_off"] == "off"
    return seen_uids


def _entities(msgs):
    out = {}
    for t, p in msgs:
        parts = t.decode().split("/")
        out[(parts[1], parts[3])] = json.loads(p) if p else None
    return out


def test_switchable_relay_payloads_pass_the_rules():
    cmds = ("relay", "setpoint", "dso")
    msgs = list(D.messages("homeassistant", PREFIX, IDENT, 10, cmds))
    uids = check(msgs, cmds)
    e = _entities(msgs)
    assert set(e) == {("sensor", "power"), ("sensor", "energy_import"), ("sensor", "energy_export"),
                      ("sensor", "grid_limit"), ("sensor", "time_status"), ("switch", "relay"), ("select", "mode")}
    assert len(uids) == 7
    assert e[("sensor", "power")]["default_entity_id"] == "sensor.dicamm_dev_1_power"
    assert e[("sensor", "power")]["expire_after"] == 60
    assert e[("sensor", "grid_limit")]["value_template"] == "{{ value_json.limit_w }}"


def test_read_only_relay_is_a_binary_sensor():
    cmds = ("setpoint", "dso")
    msgs = list(D.messages("homeassistant", PREFIX, IDENT, 120, cmds))
    check(msgs, cmds)
    e = _entities(msgs)
    assert ("binary_sensor", "relay") in e and ("switch", "relay") not in e and ("sensor", "mode") in e
    assert e[("sensor", "energy_import")]["expire_after"] == 360  # three meter periods


def test_for_link_retires_the_other_relay_form():
    cfg = {"mqtt.discovery_prefix": "homeassistant", "cls_id": "CLS-0001", "mqtt.meter_period_s": 10}
    msgs = list(D.for_link(lambda k, d=None: cfg.get(k, d), PREFIX, "dev-1", "0.1.0", ("relay",)))
    check(msgs, ("relay",))
    e = _entities(msgs)
    assert e[("binary_sensor", "relay")] is None and e[("sensor", "mode")] is None
    assert e[("switch", "relay")]["name"] == "Relay"


def test_slug_table():
    for text, want in (("dev-1", "dev_1"), ("DICAMM.Bench 2", "dicamm_bench_2"), ("--", "x"), ("abc_9", "abc_9")):
        assert D.slug(text) == want, (text, D.slug(text))
