# The device's settings and limits as data, in one place (pure: values in,
# typed values or ConfigError out). drivers/config.py keeps the values and the
# file; proto/cmdspec.py takes the bounds of command arguments from here, so
# the console, MQTT and the config cannot disagree on a limit.
import json

from dicamm.errors import ConfigError

# Bounds (lo, hi) of quantities that commands and settings share.
POWER_W = (0, 100000)      # a load's power or setpoint: 100 kW, far above any single flexible load
DSO_W = (0, 100000)        # a §14a limit as the grid operator asks it (a lower one than the minimum is raised)
LEGAL_MIN_W = 4200         # §14a EnWG, BNetzA BK6-22-300: no controllable consumer is limited below 4.2 kW
STAGES = (1, 3)            # relays of a staged output
TTL_S = (10, 604800)       # how long a backend or grid operator request lives: 10 s .. a week
MINUTES = (1, 10080)       # an installer override: a minute .. a week
TEXT = (1, 64)             # a TAF16 event text
WINDOWS = (0, 48)          # schedule windows

# kind: "int", "float", "bool", "str", "list" (of host[:port] strings), "digits", "hex" (bytes as hex),
# "watts" (a list of rising powers in W, each within POWER_W).
# lo/hi: range for int/float, length for str/digits, count for list; a tuple in
# `hi` means "one of these values". secret: never shown, never exported masked.
# key: (kind, default, lo, hi, secret)
SCHEMA = {
    "device_id": ("str", "", 0, 64, False),
    "cls_id": ("str", "", 0, 64, False),
    "meter.port": ("str", "", 0, 64, False),
    "meter.model": ("str", "", 0, 32, False),
    "meter.address": ("int", 1, 1, 247, False),
    "meter.baud": ("int", 9600, None, (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200), False),
    "meter.parity": ("str", "N", None, ("N", "E", "O"), False),
    "meter.stopbits": ("int", 1, None, (1, 2), False),
    "meter.timeout_ms": ("int", 1000, 100, 10000, False),
    "meter.retries": ("int", 2, 0, 5, False),
    "meter.poll_s": ("int", 1, 1, 900, False),
    "time.servers": ("list", ["ptbtime1.ptb.de", "ptbtime2.ptb.de", "ptbtime3.ptb.de", "ptbtime4.ptb.de"], 0, 4, False),
    "time.gateway": ("str", "", 0, 64, False),
    "time.resync_s": ("int", 3600, 16, 86400, False),
    "time.retry_s": ("int", 60, 15, 3600, False),
    "time.max_drift_ms": ("int", 1000, 10, 60000, False),
    "time.drift_ppm": ("int", 50, 1, 500, False),
    "time.samples": ("int", 4, 1, 4, False),
    "time.timeout_ms": ("int", 1000, 100, 10000, False),
    "time.sample_gap_ms": ("int", 2000, 2000, 10000, False),
    "time.max_delay_ms": ("int", 1000, 10, 10000, False),
    "relay.min_on_s": ("int", 120, 0, 3600, False),
    "relay.min_off_s": ("int", 120, 0, 3600, False),
    "relay.max_cycles_per_h": ("int", 6, 1, 60, False),
    "relay.power_up": ("str", "off", None, ("off", "on", "last"), False),
    "relay.nominal_w": ("int", 3000, POWER_W[0], POWER_W[1], False),
    "relay.plausibility_share": ("float", 0.5, 0.0, 1.0, False),
    "relay.plausibility_s": ("int", 30, 5, 600, False),
    "relay.fault_retry_s": ("int", 900, 60, 86400, False),
    "relay.fault_retry_max_s": ("int", 14400, 60, 86400, False),
    "relay.manual_default_min": ("int", 60, MINUTES[0], MINUTES[1], False),
    "relay.manual_max_min": ("int", 10080, MINUTES[0], MINUTES[1], False),
    "relay.backend_ttl_s": ("int", 900, TTL_S[0], TTL_S[1], False),
    "relay.dso_ttl_s": ("int", 7200, TTL_S[0], TTL_S[1], False),
    "relay.stages_w": ("watts", [], 0, STAGES[1], False),
    "dso.controllable": ("bool", True, None, None, False),
    "dso.min_w": ("int", LEGAL_MIN_W, LEGAL_MIN_W, POWER_W[1], False),
    "dso.contact": ("str", "off", None, ("off", "no", "nc"), False),
    "dso.contact_w": ("int", LEGAL_MIN_W, DSO_W[0], DSO_W[1], False),
    "dso.debounce_ms": ("int", 200, 10, 10000, False),
    "dso.failsafe_w": ("int", LEGAL_MIN_W, DSO_W[0], DSO_W[1], False),
    "dso.failsafe_s": ("int", 7200, 60, 86400, False),
    "dso.heartbeat_s": ("int", 0, 0, 3600, False),
    "han.url": ("str", "", 0, 128, False),
    "han.ca": ("str", "", 0, 64, False),
    "han.cert": ("str", "", 0, 64, False),
    "han.key": ("str", "", 0, 64, False),
    "han.plain_http": ("bool", False, None, None, False),
    "han.timeout_ms": ("int", 10000, 500, 60000, False),
    "han.server_hostname": ("str", "", 0, 64, False),
    "han.idle_s": ("int", 60, 0, 600, False),
    "mqtt.host": ("str", "", 0, 64, False),
    "mqtt.port": ("int", 1883, 1, 65535, False),
    "mqtt.user": ("str", "", 0, 64, False),
    "mqtt.password": ("str", "", 0, 64, True),
    "mqtt.tls": ("bool", False, None, None, False),
    "mqtt.ca": ("str", "", 0, 64, False),
    "mqtt.cert": ("str", "", 0, 64, False),
    "mqtt.key": ("str", "", 0, 64, False),
    "mqtt.prefix": ("str", "", 0, 48, False),
    "mqtt.client_id": ("str", "", 0, 64, False),
    "mqtt.server_hostname": ("str", "", 0, 64, False),
    "mqtt.timeout_ms": ("int", 3000, 200, 30000, False),
    "mqtt.backoff_s": ("int", 1, 1, 600, False),
    "mqtt.backoff_max_s": ("int", 300, 1, 3600, False),
    "mqtt.discovery_prefix": ("str", "homeassistant", 1, 48, False),
    "mqtt.meter_period_s": ("int", 10, 1, 3600, False),
    "mqtt.health_period_s": ("int", 300, 10, 86400, False),
    "mqtt.keepalive_s": ("int", 60, 10, 3600, False),
    "mqtt.discovery": ("bool", False, None, None, False),
    "net.ssid": ("str", "", 0, 32, False),
    "net.password": ("str", "", 0, 64, True),
    "net.hostname": ("str", "", 0, 32, False),
    "service.pin": ("digits", "", 0, 8, True),
    "storage.qh_max_bytes": ("int", 65536, 4096, 1048576, False),
    "storage.events_max_bytes": ("int", 32768, 4096, 1048576, False),
    "storage.outbox_max_bytes": ("int", 32768, 4096, 1048576, False),
    "storage.segment_bytes": ("int", 4096, 512, 65536, False),
    "log.level": ("str", "info", None, ("debug", "info", "warn", "error"), False),
    # the release public key (hex of DER SubjectPublicKeyInfo, tools/release.py pubkey): set at commissioning
    "update.pubkey": ("hex", "", 0, 182, False),
    "update.ca": ("str", "", 0, 64, False),            # the CA that signed the release server's certificate
    "update.plain_http": ("bool", False, None, None, False),   # bench only, as han.plain_http
    "update.timeout_ms": ("int", 10000, 1000, 60000, False),   # per connect, head and chunk
    "update.keep_free_kib": ("int", 64, 0, 1 << 30, False),    # flash that stays free for the journals
    "update.confirm_s": ("int", 60, 10, 3600, False),          # a new version healthy this long is kept
}

# Keys the backend may change over MQTT. Network, credentials, certificates,
# identity and the meter wiring stay with the installer: a wrong value there
# would cut the device off for good. Of the keys that change control, only those
# the controller applies at once (relay protection) are here: the load's power
# and stages decide which §14a limits bind, and dso.* is the grid operator's.
REMOTE = ("mqtt.discovery", "mqtt.meter_period_s", "relay.max_cycles_per_h", "relay.min_off_s",
          "relay.min_on_s", "time.resync_s")

MASK = "***"
_TRUE = ("1", "true", "on", "yes")
_FALSE = ("0", "false", "off", "no")


def keys(prefix=""):
    return sorted(k for k in SCHEMA if k.startswith(prefix))


def is_secret(key):
    return key in SCHEMA and SCHEMA[key][4]


def describe(key):
    # One line for `help config` and the MQTT key list: "meter.baud int one of ...".
    if key not in SCHEMA:
        raise ConfigError("unknown key %s" % key)
    kind, default, lo, hi, secret = SCHEMA[key]
    if isinstance(hi, tuple):
        rng = "one of " + ",".join(str(v) for v in hi)
    elif kind in ("int", "float"):
        rng = "%s..%s" % (lo, hi)
    elif kind == "bool":
        rng = "true/false"
    elif kind == "list":
        rng = "up to %d host[:port], comma separated" % hi
    elif kind == "watts":
        rng = "up to %d rising powers in W, comma separated" % hi
    else:
        rng = "%d..%d chars" % (lo, hi)
    d = MASK if secret and default else json.dumps(default)
    return "%s %s %s default %s%s" % (key, kind, rng, d, " (secret)" if secret else "")


def _host_port(key, v):
    v = v.strip()
    host, _, port = v.partition(":")
    if not host or " " in host or "/" in host:
        raise ConfigError("%s: bad host %r" % (key, v))
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError("%s: bad port in %r" % (key, v))
    return v


def check(key, value, typed=False):
    # Parse (text from the console) or check (a JSON value) one value; returns
    # the typed value or raises ConfigError saying what is allowed. typed: a
    # JSON value from MQTT, where "30" is not the integer 30.
    if key not in SCHEMA:
        raise ConfigError("unknown key %s" % key)
    kind, default, lo, hi, secret = SCHEMA[key]
    text = isinstance(value, str)
    parse = text and not typed
    try:
        if kind == "int":
            if parse:
                value = int(value.strip())
            elif isinstance(value, bool) or not isinstance(value, int):
                raise ValueError
        elif kind == "float":
            if parse:
                value = float(value.strip())
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError
            value = float(value)
        elif kind == "bool":
            if parse:
                t = value.strip().lower()
                if t not in _TRUE and t not in _FALSE:
                    raise ValueError
                value = t in _TRUE
            elif not isinstance(value, bool):
                raise ValueError
        elif kind == "list":
            if parse:
                value = [v for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError
            value = [_host_port(key, v) for v in value]
        elif kind == "watts":
            if parse:
                value = [int(v.strip()) for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                      for v in value):
                raise ValueError
        elif not text:
            raise ValueError
        elif kind == "digits" and value and not value.isdigit():
            raise ValueError
        elif kind == "hex":
            value = value.lower()
            if len(value) % 2 or any(c not in "0123456789abcdef" for c in value):
                raise ValueError
    except ValueError:
        raise ConfigError("%s: %r is not a valid %s" % (key, value, kind))
    if isinstance(hi, tuple):
        if value not in hi and text:
            for v in hi:   # N/e/o, OFF, ...
                if str(v).lower() == str(value).lower():
                    value = v
        if value not in hi:
            raise ConfigError("%s: %r not allowed, use one of %s" % (key, value, ",".join(str(v) for v in hi)))
    elif kind in ("int", "float"):
        if not lo <= value <= hi:
            raise ConfigError("%s: %s out of range %s..%s" % (key, value, lo, hi))
    elif kind in ("list", "watts"):
        if not lo <= len(value) <= hi:
            raise ConfigError("%s: %d entries, allowed %d..%d" % (key, len(value), lo, hi))
        if kind == "watts":
            last = 0
            for v in value:
                if not last < v <= POWER_W[1]:
                    raise ConfigError("%s: powers must rise, each 1..%d W" % (key, POWER_W[1]))
                last = v
    elif kind in ("str", "digits", "hex"):
        if not lo <= len(value) <= hi:
            raise ConfigError("%s: length %d, allowed %d..%d" % (key, len(value), lo, hi))
        if kind == "digits" and value and len(value) < 4:
            raise ConfigError("%s: use 4..%d digits (or empty to disable)" % (key, hi))
    return value
