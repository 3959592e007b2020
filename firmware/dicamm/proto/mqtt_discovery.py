# Home Assistant MQTT discovery (mqtt.discovery): power, energy import and
# export, relay state and mode as entities with device classes and units.
import json


def messages(base, prefix, device_id):
    # -> (topic, payload) pairs, published retained by the link.
    uid = "dicamm_" + device_id
    dev = {"identifiers": [uid], "name": "DICAMM " + device_id, "manufacturer": "DICAMM"}
    try:
        from dicamm import VERSION
        dev["sw_version"] = VERSION
    except ImportError:
        pass
    meter = prefix + "meter"
    state = prefix + "state"
    ents = (("sensor", "power", "Power", meter, "{{ value_json.power_w }}",
             {"device_class": "power", "unit_of_measurement": "W", "state_class": "measurement"}),
            ("sensor", "energy_import", "Energy import", meter, "{{ value_json.import_wh }}",
             {"device_class": "energy", "unit_of_measurement": "Wh", "state_class": "total_increasing"}),
            ("sensor", "energy_export", "Energy export", meter, "{{ value_json.export_wh }}",
             {"device_class": "energy", "unit_of_measurement": "Wh", "state_class": "total_increasing"}),
            ("binary_sensor", "relay", "Relay", state, "{{ value_json.relay }}",
             {"device_class": "power", "payload_on": "on", "payload_off": "off"}),
            ("sensor", "mode", "Mode", state, "{{ value_json.mode }}", {"icon": "mdi:tune"}))
    for comp, key, label, topic, tpl, extra in ents:
        cfg = {"name": label, "unique_id": uid + "_" + key, "object_id": uid + "_" + key,
               "state_topic": topic, "value_template": tpl, "availability_topic": prefix + "status",
               "payload_available": "online", "payload_not_available": "offline", "device": dev}
        cfg.update(extra)
        yield ("%s/%s/%s/%s/config" % (base, comp, uid, key)).encode(), json.dumps(cfg).encode()
