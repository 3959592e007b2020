# Device configuration: a schema as data, values checked on every change, saved
# atomically as root/config.json (only the values that differ from the default,
# so new firmware defaults apply). The previous good file is kept as
# config.json.bak and used when config.json cannot be read.
import json

from dicamm.drivers import fsutil
from dicamm.errors import ConfigError

# kind: "int", "float", "bool", "str", "list" (of host[:port] strings), "digits".
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
    "relay.nominal_w": ("int", 3000, 0, 50000, False),
    "relay.plausibility_share": ("float", 0.5, 0.0, 1.0, False),
    "relay.plausibility_s": ("int", 30, 5, 600, False),
    "relay.fault_retry_s": ("int", 900, 60, 86400, False),
    "relay.fault_retry_max_s": ("int", 14400, 60, 86400, False),
    "relay.manual_default_min": ("int", 60, 1, 10080, False),
    "relay.manual_max_min": ("int", 10080, 1, 10080, False),
    "relay.backend_ttl_s": ("int", 900, 10, 604800, False),
    "relay.dso_ttl_s": ("int", 7200, 10, 604800, False),
    "han.url": ("str", "", 0, 128, False),
    "han.ca": ("str", "", 0, 64, False),
    "han.cert": ("str", "", 0, 64, False),
    "han.key": ("str", "", 0, 64, False),
    "han.plain_http": ("bool", False, None, None, False),
    "han.timeout_ms": ("int", 5000, 500, 60000, False),
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
}

MASK = "***"
_REQUIRED = object()
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


def check(key, value):
    # Parse (text from the CLI) or check (a JSON value) one value; returns the
    # typed value or raises ConfigError saying what is allowed.
    if key not in SCHEMA:
        raise ConfigError("unknown key %s" % key)
    kind, default, lo, hi, secret = SCHEMA[key]
    text = isinstance(value, str)
    try:
        if kind == "int":
            if text:
                value = int(value.strip())
            elif isinstance(value, bool) or not isinstance(value, int):
                raise ValueError
        elif kind == "float":
            if text:
                value = float(value.strip())
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError
            value = float(value)
        elif kind == "bool":
            if text:
                t = value.strip().lower()
                if t not in _TRUE and t not in _FALSE:
                    raise ValueError
                value = t in _TRUE
            elif not isinstance(value, bool):
                raise ValueError
        elif kind == "list":
            if text:
                value = [v for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError
            value = [_host_port(key, v) for v in value]
        elif not text:
            raise ValueError
        elif kind == "digits" and value and not value.isdigit():
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
    elif kind == "list":
        if not lo <= len(value) <= hi:
            raise ConfigError("%s: %d entries, allowed %d..%d" % (key, len(value), lo, hi))
    elif kind in ("str", "digits"):
        if not lo <= len(value) <= hi:
            raise ConfigError("%s: length %d, allowed %d..%d" % (key, len(value), lo, hi))
        if kind == "digits" and value and len(value) < 4:
            raise ConfigError("%s: use 4..%d digits (or empty to disable)" % (key, hi))
    return value


def _flatten(obj, prefix, out):
    # {"meter": {"baud": 9600}} and {"meter.baud": 9600} mean the same.
    for k, v in obj.items():
        k = prefix + k
        if isinstance(v, dict):
            _flatten(v, k + ".", out)
        else:
            out[k] = v
    return out


class Config:
    def __init__(self, root):
        self.path = fsutil.join(root, "config.json")
        self.bak = self.path + ".bak"
        self._values = {}      # only values that differ from the default
        self.unknown = {}      # keys found in the file that this firmware does not know
        self.problems = []     # what went wrong while loading (for the log and `config`)
        self.error = None      # ConfigError if config.json itself was unreadable
        self.source = "defaults"
        self.load()

    def load(self):
        fsutil.discard_tmp(self.path)
        fsutil.discard_tmp(self.bak)
        self._values = {}
        self.unknown = {}
        self.problems = []
        self.error = None
        self.source = "defaults"
        data = fsutil.read(self.path)
        if data is None:
            return
        obj = self._parse(data)
        if obj is None:
            self.error = ConfigError("%s is corrupt" % self.path)
            self.problems.append(str(self.error))
            obj = self._parse(fsutil.read(self.bak) or b"")
            if obj is None:
                self.problems.append("no usable backup, using defaults")
                return
            self.problems.append("using backup %s" % self.bak)
            self.source = "backup"
        else:
            self.source = "file"
        for k, v in _flatten(obj, "", {}).items():
            if k not in SCHEMA:
                self.unknown[k] = v
                self.problems.append("unknown key %s kept" % k)
                continue
            try:
                v = check(k, v)
            except ConfigError as e:
                self.problems.append("%s, default used" % e)
                continue
            if v != SCHEMA[k][1]:
                self._values[k] = v

    @staticmethod
    def _parse(data):
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeError):
            return None
        return obj if isinstance(obj, dict) else None

    def get(self, key, default=_REQUIRED):
        # Unknown key: `default` if one is given, else ConfigError.
        if key not in SCHEMA:
            if default is not _REQUIRED:
                return default
            raise ConfigError("unknown key %s" % key)
        v = self._values.get(key, SCHEMA[key][1])
        return list(v) if isinstance(v, list) else v   # the default must stay intact

    def __getitem__(self, key):
        return self.get(key)

    def set(self, key, value):
        # value: text from the CLI or a typed JSON value. Not saved until save().
        value = check(key, value)
        if value == SCHEMA[key][1]:
            self._values.pop(key, None)
        else:
            self._values[key] = value
        return value

    def unset(self, key):
        # Back to the default.
        if key not in SCHEMA:
            raise ConfigError("unknown key %s" % key)
        self._values.pop(key, None)
        return SCHEMA[key][1]

    def is_default(self, key):
        return key not in self._values

    def as_dict(self, masked=True):
        out = {}
        for k in SCHEMA:
            v = self.get(k)
            out[k] = MASK if masked and SCHEMA[k][4] and v else v
        return out

    def export_json(self, masked=True, all_keys=False):
        # The values that differ from the default (or all). Masked secrets are
        # skipped by import_json, so a masked export can be re-imported safely.
        d = self.as_dict(masked) if all_keys else {
            k: (MASK if masked and SCHEMA[k][4] and v else v) for k, v in self._values.items()}
        return json.dumps(d)

    def import_json(self, text, replace=False):
        # Check every key first; apply only if all are good. replace=True resets
        # keys not in `text` to their defaults. Returns the keys that changed.
        try:
            obj = json.loads(text)
        except ValueError:
            raise ConfigError("import: not valid JSON")
        if not isinstance(obj, dict):
            raise ConfigError("import: expected a JSON object")
        new = dict(self._values) if not replace else {}
        if replace:   # keep secrets that a masked export left out
            for k in self._values:
                if SCHEMA[k][4]:
                    new[k] = self._values[k]
        errors = []
        for k, v in _flatten(obj, "", {}).items():
            if SCHEMA.get(k, (0, 0, 0, 0, False))[4] and v == MASK:
                continue
            try:
                v = check(k, v)
            except ConfigError as e:
                errors.append(str(e))
                continue
            if v == SCHEMA[k][1]:
                new.pop(k, None)
            else:
                new[k] = v
        if errors:
            raise ConfigError("import refused: " + "; ".join(errors))
        changed = [k for k in SCHEMA if new.get(k, SCHEMA[k][1]) != self.get(k)]
        self._values = new
        return sorted(changed)

    def save(self, stats=None):
        # Keep the current good file as the backup, then replace it atomically.
        old = fsutil.read(self.path)
        if old is not None and self._parse(old) is not None:
            fsutil.write_atomic(self.bak, old, stats)
        d = dict(self._values)
        for k, v in self.unknown.items():
            d[k] = v
        fsutil.write_atomic(self.path, json.dumps(d), stats)
        self.error = None
        self.source = "file"
