# What a backend operator needs to know of a device (docs/MQTT.md, topics
# `identity` and `health`; the console's `status` shows the same): pure, values
# in, the payload dicts out. services/device_info.py gathers the values.
#   identity: who the device is and what it measures with (retained; changes
#             only with a meter exchange, a firmware update or a new key);
#   health:   how it is doing now (periodic).
from micropython import const

# machine.reset_cause() values by the names the ports give them (looked up on
# the machine module passed in: the numbers differ between ports)
_RESETS = (("PWRON_RESET", "power_on"), ("HARD_RESET", "hard"), ("WDT_RESET", "watchdog"),
           ("DEEPSLEEP_RESET", "deep_sleep"), ("SOFT_RESET", "soft"))
_OCMF_SA = "ECDSA-secp256r1-SHA256"   # OCMF 1.4 signature algorithm of the tx records
_RSSI_MIN = const(-127)                 # dBm below which a Wi-Fi driver's value is no measurement


def reset_name(cause, machine=None):
    # cause: machine.reset_cause() (None: not known, e.g. on the unix port).
    if cause is None:
        return None
    for attr, name in _RESETS:
        if machine is not None and getattr(machine, attr, None) == cause:
            return name
    return "code %d" % cause


def meter_part(ident):
    # ident: Metering.identity {"vendor", "model", "serial", "firmware"} or None.
    if not ident:
        return None
    return {"vendor": ident.get("vendor"), "model": ident.get("model"), "serial": ident.get("serial"),
            "firmware": ident.get("firmware")}


def identity(device_id, cls_id, firmware, board, meter_ident, ocmf_key_hex):
    return {"device_id": device_id, "cls_id": cls_id or None, "firmware": firmware, "board": board,
            "meter": meter_part(meter_ident),
            "ocmf_key": {"SA": _OCMF_SA, "key": ocmf_key_hex} if ocmf_key_hex else None}


def net_part(info):
    # info: drivers/netif.net_info() -> {"kind": "wifi", "connected": true,
    # "rssi_dbm": -61} | {"kind": "ethernet", "link": true} | {"kind": "host"|"none"}.
    if not info:
        return None
    kind = info.get("kind")
    d = {"kind": kind}
    if kind == "wifi":
        d["connected"] = bool(info.get("connected"))
        r = info.get("rssi")
        d["rssi_dbm"] = r if isinstance(r, int) and r > _RSSI_MIN and d["connected"] else None
    elif kind == "ethernet":
        d["link"] = bool(info.get("connected"))
    if info.get("error"):
        d["error"] = info["error"]
    return d


def health(uptime_s, reset, crashes, net, heap_free, time_status, error_ms, time_ms, extra=None):
    # error_ms: legal time's uncertainty while S (else None); extra: more
    # fields where the port has them (idf_heap_free on an ESP32).
    d = {"uptime_s": uptime_s, "reset_cause": reset, "crashes": crashes, "net": net, "heap_free": heap_free,
         "time_status": time_status, "error_ms": error_ms if time_status == "S" else None, "time_ms": time_ms}
    if extra:
        d.update(extra)
    return d
