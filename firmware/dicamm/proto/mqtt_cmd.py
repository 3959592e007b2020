# Commands from the backend over MQTT (pure: bytes in, values out). A command
# arrives on <prefix>cmd/<name> as one JSON object with an "id"; parse() checks
# it completely before anything is executed, so a bad command changes nothing.
# ack() builds the reply published on <prefix>ack. The commands, their fields
# and limits are declared in proto/cmdspec.py; docs/MQTT.md has the table.
import json

from micropython import const

from dicamm.errors import CommandError

MAX_BYTES = const(4096)  # a full schedule of 48 windows fits
_MAX_ID = const(64)


def names():
    # The commands MQTT may issue (proto/cmdspec.py, via "m").
    from dicamm.proto import cmdspec
    out = cmdspec.names("m")
    cmdspec.drop()
    return sorted(out)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


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
    from dicamm.proto.cmdcheck import checked   # the one check, as for the console
    args, err = checked(name, obj, "m")
    if args is None and err is None:
        return name, cid, None, "unknown command %r (known: %s)" % (name, ", ".join(names()))
    return name, cid, args, err


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
        for k in ("state", "wanted", "source", "deferred", "faults", "last_error", "limit", "allowed_w", "stage"):
            if k in result:
                out[k] = result[k]
        return out
    return result


def run(execute, name, cid, args, log):
    # One parsed command through execute(name, args, "m") -> (ack payload, ok).
    # A refusal (CommandError) and a bug alike end in a refused ack: a command
    # must never take the link down.
    try:
        return ack(cid, True, None, brief(execute(name, args, "m")), name), True
    except CommandError as e:
        return ack(cid, False, str(e), None, name), False
    except Exception as e:
        log("command %s failed: %r" % (name, e))
        return ack(cid, False, "internal error: %s" % e, None, name), False
