# The one check of a command's arguments against its declaration in
# proto/cmdspec.py, run by both channels before anything changes: the console
# (services/commands.execute) and MQTT (mqtt_cmd.parse). Pure: an entry and a
# dict in, the checked arguments or the reason out. Loaded for a command and
# dropped again with cmdspec (it is not needed to find a console command).
from dicamm.errors import CommandError, ConfigError
from dicamm.proto import schema


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _field(field, kind, bounds, v):
    # None if v is acceptable, else the reason.
    if kind == "int|null":
        if v is None:
            return None
        kind = "int"
    if kind == "int":
        if not _is_int(v):
            return "%s: must be an integer" % field
        if v < bounds[0] or v > bounds[1]:
            return "%s: %d out of range %d..%d" % (field, v, bounds[0], bounds[1])
    elif kind == "str":
        if not isinstance(v, str):
            return "%s: must be a string" % field
        if len(v) < bounds[0] or len(v) > bounds[1]:
            return "%s: length must be %d..%d" % (field, bounds[0], bounds[1])
    elif kind == "list":
        if not isinstance(v, list):
            return "%s: must be a list" % field
        if len(v) > bounds[1]:
            return "%s: %d entries, at most %d" % (field, len(v), bounds[1])
    elif kind == "bool":
        if not isinstance(v, bool):
            return "%s: must be true or false" % field
    elif kind == "enum":
        if v not in bounds:
            return "%s: must be one of %s" % (field, "|".join(bounds))
    return None


def _rule(name, args):
    # The checks that span fields, or look into the schema; None or the reason.
    if name == "setpoint":
        if ("on" in args) == ("power_w" in args):
            return "give either power_w or on"
    elif name == "schedule":
        from dicamm.proto.schedule import validate
        try:
            validate(args["windows"], schema.WINDOWS[1])
        except CommandError as e:
            return str(e)
    elif name == "update":
        url = args["url"]
        if not isinstance(url, str) or len(url) > 200 or not url.endswith("/manifest.json") or \
                not (url.startswith("https://") or url.startswith("http://")):
            return "url: the https URL of a release's manifest.json (at most 200 characters)"
    elif name == "config":
        key = args["key"]
        if key not in schema.REMOTE:
            return "key: %s may not be set remotely" % key
        try:
            schema.check(key, args["value"], True)
        except ConfigError as e:
            return str(e)
    return None


def check(e, obj):
    # (args, None) for the arguments obj (a dict; "id" aside, keys other than
    # the declared fields are refused) of entry e, or (None, the reason).
    if not isinstance(obj, dict):
        return None, "arguments must be a JSON object"
    args = {}
    known = ["id"]
    for field, kind, required, bounds in e[6]:
        known.append(field)
        if field not in obj:
            if required:
                return None, "%s: missing" % field
            continue
        v = obj[field]
        if kind is not None:
            err = _field(field, kind, bounds, v)
            if err:
                return None, err
        args[field] = v
    for k in obj:
        if k not in known:
            return None, "%s: unknown field" % k
    err = _rule(e[0], args)
    return (None, err) if err else (args, None)


def checked(name, obj, via="m"):
    # (args, None) or (None, the reason) for command `name` of channel `via`
    # ("m" MQTT: cmd/<name>; "c" the console), or (None, None) when the channel
    # has no such command. Leaves the heap as found.
    from dicamm.proto import cmdspec, unload
    e = cmdspec.find(name, via)
    why = cmdspec.refusal(name, via) if e is None else None
    cmdspec.drop()
    if e is None:
        return None, why
    r = check(e, obj)
    unload("dicamm.proto.cmdcheck")
    return r
