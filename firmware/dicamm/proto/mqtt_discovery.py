# Home Assistant MQTT discovery (mqtt.discovery): one device with the meter's
# measurements, the relay, the mode, the grid operator's (§14a) limit and the
# time status, in the schema Home Assistant 2026.4 reads (docs: "MQTT Discovery"):
#   - `default_entity_id` ("sensor.dicamm_<id>_power"), not `object_id` (deprecated
#     in 2025.10, ignored since 2026.4);
#   - an `origin` block, a device with manufacturer, model, serial and firmware;
#   - `expire_after` on measured values, so a dead meter shows "unavailable" and
#     not its last value as current;
#   - the relay as a `switch` (and the backend's request as a `select`) only
#     where the backend's MQTT channel may command it (cmdspec: `relay` via
#     "m"), else as a `binary_sensor` (and the installer's mode as a sensor).
#     What the switch sends is a backend-priority request (cmdspec.PRIORITY):
#     the grid operator, safety, the installer and a schedule outrank it, so
#     the switch shows the relay as it is, not as asked.
# Pure: dicts in, (topic, payload) bytes out; the link publishes them retained.
import json

from micropython import const

_EXPIRE_MIN_S = const(60)
_EXPIRE_PERIODS = const(3)  # meter messages that may be missed before values expire


def slug(text):
    # Home Assistant's entity id part: lower-case letters, digits and "_"
    out = ""
    for c in text.lower():
        out += c if ("a" <= c <= "z" or "0" <= c <= "9") else "_"
    return out.strip("_") or "x"


def expire_after_s(meter_period_s):
    return max(_EXPIRE_MIN_S, _EXPIRE_PERIODS * int(meter_period_s))


def messages(base, prefix, ident, meter_period_s=10, commands=()):
    # ident: {"device_id", "serial", "model", "sw_version", "support_url" (optional),
    # "configuration_url" (optional)}; commands: the MQTT commands the backend may send.
    device_id = ident["device_id"]
    uid = "dicamm_" + device_id  # unique ids and topics as before: entities keep their history
    eid = "dicamm_" + slug(device_id)
    dev = {"identifiers": [uid], "name": "DICAMM " + device_id, "manufacturer": "DICAMM",
           "model": ident.get("model") or "DICAMM", "serial_number": ident.get("serial") or device_id,
           "sw_version": ident.get("sw_version") or "?"}
    if ident.get("configuration_url"):
        dev["configuration_url"] = ident["configuration_url"]
    origin = {"name": "dicamm-firmware", "sw_version": dev["sw_version"]}
    if ident.get("support_url"):
        origin["support_url"] = ident["support_url"]
    meter = prefix + "meter"
    state = prefix + "state"
    expire = {"expire_after": expire_after_s(meter_period_s)}
    switchable = "relay" in commands
    ents = [
        ("sensor", "power", "Power", meter, "{{ value_json.power_w }}",
         {"device_class": "power", "unit_of_measurement": "W", "state_class": "measurement"}, expire),
        ("sensor", "energy_import", "Energy import", meter, "{{ value_json.import_wh }}",
         {"device_class": "energy", "unit_of_measurement": "Wh", "state_class": "total_increasing"}, expire),
        ("sensor", "energy_export", "Energy export", meter, "{{ value_json.export_wh }}",
         {"device_class": "energy", "unit_of_measurement": "Wh", "state_class": "total_increasing"}, expire),
        ("sensor", "grid_limit", "Grid operator limit", state, "{{ value_json.limit_w }}",
         {"device_class": "power", "unit_of_measurement": "W", "state_class": "measurement",
          "icon": "mdi:transmission-tower"}, None),
        ("sensor", "time_status", "Time status", state, "{{ value_json.time_status }}",
         {"device_class": "enum", "options": ["S", "I", "U"], "icon": "mdi:clock-check"}, None),
    ]
    if switchable:
        # a backend-priority request (cmd/relay); the select shows it and returns it to auto
        cmd = {"command_topic": prefix + "cmd/relay",
               "command_template": '{"id":"ha-{{ (now().timestamp() * 1000) | int }}","mode":"{{ value }}"}'}
        sw = {"payload_on": "on", "payload_off": "off", "state_on": "on", "state_off": "off"}
        sw.update(cmd)
        ents.append(("switch", "relay", "Relay", state, "{{ value_json.relay }}", sw, None))
        sel = {"options": ["auto", "on", "off"], "icon": "mdi:tune"}
        sel.update(cmd)
        ents.append(("select", "mode", "Backend request", state, "{{ value_json.backend }}", sel, None))
    else:
        ents.append(("binary_sensor", "relay", "Relay", state, "{{ value_json.relay }}",
                     {"device_class": "power", "payload_on": "on", "payload_off": "off"}, None))
        ents.append(("sensor", "mode", "Mode", state, "{{ value_json.mode }}", {"icon": "mdi:tune"}, None))
    for comp, key, label, topic, tpl, extra, more in ents:
        cfg = {"name": label, "unique_id": uid + "_" + key, "default_entity_id": "%s.%s_%s" % (comp, eid, key),
               "state_topic": topic, "value_template": tpl, "availability_topic": prefix + "status",
               "payload_available": "online", "payload_not_available": "offline",
               "device": dev, "origin": origin}
        cfg.update(extra)
        if more:
            cfg.update(more)
        yield ("%s/%s/%s/%s/config" % (base, comp, uid, key)).encode(), json.dumps(cfg).encode()


def retired(base, device_id, commands=()):
    # Topics of this device's entities that the other relay form used: published
    # empty (retained) so Home Assistant removes them when the form changes.
    uid = "dicamm_" + device_id
    if "relay" in commands:
        pairs = (("binary_sensor", "relay"), ("sensor", "mode"))
    else:
        pairs = (("switch", "relay"), ("select", "mode"))
    for comp, key in pairs:
        yield ("%s/%s/%s/%s/config" % (base, comp, uid, key)).encode(), b""


def for_link(get, prefix, device_id, sw_version, commands):
    # Everything the link publishes, from its config getter get(key, default):
    # the entities, then the retired form of the relay's.
    base = get("mqtt.discovery_prefix", "homeassistant")
    ident = {"device_id": device_id, "serial": get("cls_id", "") or device_id, "sw_version": sw_version}
    for m in messages(base, prefix, ident, get("mqtt.meter_period_s", 10), commands):
        yield m
    for m in retired(base, device_id, commands):
        yield m
