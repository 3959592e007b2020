# Commands from the backend over MQTT (pure: bytes in, values out). A command
# arrives on <prefix>cmd/<name> as one JSON object with an "id"; parse() checks
# it completely before anything is executed, so a bad command changes nothing.
# ack() builds the reply published on <prefix>ack. docs/MQTT.md has the table.
import json

from micropython import const

from dicamm.errors import CommandError
from dicamm.proto.schedule import validate

MAX_BYTES = const(4096)  # a full schedule of 48 windows fits
_MAX_ID = const(64)
_MAX_TEXT = const(64)
_MAX_W = const(100000)          # 100 kW: far above any single flexible load
_MAX_TTL_S = const(604800)      # 7 days, as dicamm.services.commands
_MAX_MINUTES = const(10080)
_MAX_WINDOWS = const(48)

# Field kinds
_INT = const(0)
_STR = const(1)
_BOOL = const(2)
_ENUM = const(3)
_INT_OR_NULL = const(4)
_LIST = const(5)

# name -> ((field, kind, required, bounds), ...); bounds: (lo, hi) for ints,
# string lengths and list lengths, a tuple of allowed values for enums. The
# argument names are those of dicamm.services.commands.Commands.execute.
SPEC = {
    "relay": (("mode", _ENUM, True, ("on", "off", "auto")),
              ("minutes", _INT, False, (1, _MAX_MINUTES))),
    "setpoint": (("power_w", _INT, False, (0, _MAX_W)),
                 ("on", _BOOL, False, None),
                 ("ttl_s", _INT, False, (10, _MAX_TTL_S))),
    "schedule": (("windows", _LIST, True, (0, _MAX_WINDOWS)),),
    "dso": (("limit_w", _INT_OR_NULL, True, (0, _MAX_W)),
            ("ttl_s", _INT, False, (10, _MAX_TTL_S))),
    "event": (("text", _STR, True, (1, _MAX_TEXT)),),
    "config": (("key", _STR, True, (1, 40)),
               ("value", None, True, None)),
}

# Config keys the backend may change (the same set as
# dicamm.services.commands.CONFIG_WHITELIST), with kind and bounds. Network, credential
# and identity keys are never remote-writable: a wrong value there would cut
# the device off for good.
CONFIG_KEYS = {
    "mqtt.meter_period_s": (_INT, (1, 3600)),
    "mqtt.discovery": (_BOOL, None),
    "relay.min_on_s": (_INT, (0, 3600)),
    "relay.min_off_s": (_INT, (0, 3600)),
    "relay.max_cycles_per_h": (_INT, (1, 60)),
    "relay.nominal_w": (_INT, (0, _MAX_W)),
    "time.resync_s": (_INT, (60, 86400)),
}


def names():
    return sorted(SPEC)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check(field, kind, bounds, v):
    # None if v is acceptable, else the reason.
    if kind == _INT_OR_NULL:
        if v is None:
            return None
        kind = _INT
    if kind == _INT:
        if not _is_int(v):
            return "%s: must be an integer" % field
        if v < bounds[0] or v > bounds[1]:
            return "%s: %d out of range %d..%d" % (field, v, bounds[0], bounds[1])
    elif kind == _STR:
        if not isinstance(v, str):
            return "%s: must be a string" % field
        if len(v) < bounds[0] or len(v) > bounds[1]:
            return "%s: length must be %d..%d" % (field, bounds[0], bounds[1])
    elif kind == _LIST:
        if not isinstance(v, list):
            return "%s: must be a list" % field
        if len(v) > bounds[1]:
            return "%s: %d entries, at most %d" % (field, len(v), bounds[1])
    elif kind == _BOOL:
        if not isinstance(v, bool):
            return "%s: must be true or false" % field
    elif kind == _ENUM:
        if v not in bounds:
            return "%s: must be one of %s" % (field, "|".join(bounds))
    return None


def _cross(name, args):
    # Checks that span fields; None or the reason.
    if name == "setpoint":
        if ("on" in args) == ("power_w" in args):
            return "give either power_w or on"
    elif name == "schedule":
        try:
            validate(args["windows"], _MAX_WINDOWS)
        except CommandError as e:
            return str(e)
    elif name == "config":
        rule = CONFIG_KEYS.get(args["key"])
        if rule is None:
            return "key: %s may not be set remotely" % args["key"]
        return _check("value", rule[0], rule[1], args["value"])
    return None


def parse(name, payload):
    # (name, id, args, error): error is None for a valid command, else the
    # reason; id is None when it could not be read. args never holds "id".
    if isinstance(name, (bytes, bytearray)):
        try:
            name = bytes(name).decode()
        except UnicodeError:
            name = "?"
    if len(payload) > MAX_BYTES:
        return name, None, None, "too large: %d bytes, limit %d" % (len(payload), MAX_BYTES)
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeError, RuntimeError):  # RuntimeError: nesting too deep
        return name, None, None, "not JSON"
    if not isinstance(obj, dict):
        return name, None, None, "not a JSON object"
    cid = obj.get("id")
    if cid is None:
        return name, None, None, "id: missing"
    if not (_is_int(cid) or (isinstance(cid, str) and 0 < len(cid) <= _MAX_ID)):
        return name, None, None, "id: must be an integer or a string of 1..%d characters" % _MAX_ID
    spec = SPEC.get(name)
    if spec is None:
        return name, cid, None, "unknown command %r (known: %s)" % (name, ", ".join(names()))
    args = {}
    known = []
    for field, kind, required, bounds in spec:
        known.append(field)
        if field not in obj:
            if required:
                return name, cid, None, "%s: missing" % field
            continue
        v = obj[field]
        if kind is not None:
            err = _check(field, kind, bounds, v)
            if err:
                return name, cid, None, err
        args[field] = v
    for k in obj:
        if k != "id" and k not in known:
            return name, cid, None, "%s: unknown field" % k
    err = _cross(name, args)
    if err:
        return name, cid, None, err
    return name, cid, args, None


def ack(cid, ok, error=None, result=None, name=None):
    # The reply on <prefix>ack, as bytes.
    out = {"id": cid, "ok": bool(ok)}
    if name is not None:
        out["cmd"] = name
    if error is not None:
        out["error"] = str(error)
    if result is not None:
        out["result"] = result
    return json.dumps(out).encode()


def brief(result):
    # The controller's full status (every source's request, the switching
    # history) is too large for an ack: keep what the backend acts on.
    if isinstance(result, dict) and "sources" in result:
        out = {}
        for k in ("state", "wanted", "source", "deferred", "faults", "last_error"):
            if k in result:
                out[k] = result[k]
        return out
    return result


def run(execute, name, cid, args, log):
    # One parsed command through execute(name, args) -> (ack payload, ok). A
    # refusal (CommandError) and a bug alike end in a refused ack: a command
    # must never take the link down.
    try:
        return ack(cid, True, None, brief(execute(name, args)), name), True
    except CommandError as e:
        return ack(cid, False, str(e), None, name), False
    except Exception as e:
        log("command %s failed: %r" % (name, e))
        return ack(cid, False, "internal error: %s" % e, None, name), False
