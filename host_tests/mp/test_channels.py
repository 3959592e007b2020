# micropython-only (the real Controller and Console: time.ticks_*, asyncio.sleep_ms)
# The console and MQTT agree: every command that both may issue, at and just
# beyond each bound its declaration (proto/cmdspec.py) gives, and every config
# key of the schema (proto/schema.py), go through both channels - the console
# as typed lines into a real Console, MQTT as payloads through mqtt_cmd.parse
# and run - down to a real Controller and Config. Both must accept exactly
# what the declared bounds allow, and the bounds of the commands must be those
# of the settings they share.
import json
import os

import asyncio

from dicamm.console import cli
from dicamm.drivers.config import Config
from dicamm.proto import cmdspec, mqtt_cmd, schema
from dicamm.services.commands import Commands
from dicamm.services.control import Controller

T0 = 1750000000  # Unix s


class _Out:
    def __init__(self):
        self.lines = []

    def write(self, s):
        self.lines.append(s)


class _Clock:
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        return self.t

    def real_ms_for(self, ms):
        return ms


class _Output:
    on = False

    def set(self, on):
        self.on = on

    def feedback(self):
        return None


class _App:
    # What Console and Commands use of the application; the parts are real.
    def __init__(self, root):
        self.clock = _Clock()
        self.config = Config(root)
        self.controller = Controller(_Output(), self.clock, lambda: T0 * 1000 + self.clock.t, self.config)
        self.outbox = True
        self.events = []
        self.commands = Commands(self)

    def raise_event(self, text, source):
        self.events.append((text, source))
        return {"uuid": "u%d" % len(self.events)}

    def info(self, msg):
        pass

    def boundary_gate(self):
        return None


def _root():
    d = "/tmp/dicamm_ch_" + "".join("%02x" % b for b in os.urandom(4))
    os.mkdir(d)
    return d


def _rmtree(d):
    for n in os.listdir(d):
        os.remove(d + "/" + n)
    os.rmdir(d)


def _console(app, line):
    # -> (accepted, output): accepted when the console printed no error.
    out = _Out()
    con = cli.Console(app, out=out)
    asyncio.run(con.handle(line))
    text = "".join(out.lines)
    return not any(ln.startswith("error:") for ln in text.split("\n")), text


def _mqtt(app, name, obj):
    obj = dict(obj)
    obj["id"] = "t"
    n, cid, args, err = mqtt_cmd.parse(name, json.dumps(obj).encode())
    if err is not None:
        return False, err
    ack, ok = mqtt_cmd.run(app.commands.execute, n, cid, args, lambda m: None)
    return ok, ack


def _window(i):
    return {"id": "w%d" % i, "start": T0 + 7200 * (i + 1), "end": T0 + 7200 * (i + 1) + 900, "on": True}


# How the console spells each command of both channels: args -> line.
def _line_relay(a):
    return "relay %s %s" % (a["mode"], a.get("minutes", ""))


def _line_setpoint(a):
    v = ("on" if a["on"] else "off") if "on" in a else str(a["power_w"])
    return "setpoint %s %s" % (v, a.get("ttl_s", ""))


def _line_dso(a):
    return "dso %s %s" % ("off" if a["limit_w"] is None else a["limit_w"], a.get("ttl_s", ""))


def _line_schedule(a):
    return "schedule set '%s'" % json.dumps(a["windows"])


def _line_event(a):
    return 'event "%s"' % a["text"]


CONSOLE = {"relay": _line_relay, "setpoint": _line_setpoint, "dso": _line_dso,
           "schedule": _line_schedule, "event": _line_event,
           "update": lambda a: "update install %s" % a["url"]}
# a valid call of each, to which one field at a time is set to a probe value
BASE = {"relay": {"mode": "on"}, "setpoint": {"power_w": 2000}, "dso": {"limit_w": 8000},
        "schedule": {"windows": []}, "event": {"text": "probe"},
        "update": {"url": "https://releases.invalid/manifest.json"}}


def _probes(kind, bounds):
    # (value, allowed) at and just beyond the declared bounds
    lo, hi = bounds
    if kind in ("int", "int|null"):
        return [(lo - 1, False), (lo, True), (hi, True), (hi + 1, False)]
    if kind == "str":
        return [("x" * max(lo - 1, 0), lo == 0), ("x" * lo, True), ("x" * hi, True), ("x" * (hi + 1), False)]
    if kind == "list":
        return [([_window(i) for i in range(hi)], True), ([_window(i) for i in range(hi + 1)], False)]
    return []


def test_every_command_at_its_bounds_agrees_on_both_channels():
    root = _root()
    try:
        app = _App(root)
        walked = []
        for e in cmdspec.COMMANDS:
            if not e[6] or e[0] == "config":
                continue
            assert e[0] in CONSOLE, "%s: no console spelling in this test" % e[0]
            mqtt = "m" in e[4]
            refusal = cmdspec.refusal(e[0], "m")
            assert mqtt or refusal, "%s: fields but no MQTT form and no reason why" % e[0]
            for field, kind, required, bounds in e[6]:
                if bounds is None or kind == "enum":
                    continue
                for v, allowed in _probes(kind, bounds):
                    a = dict(BASE[e[0]])
                    a[field] = v
                    c_ok, c_out = _console(app, CONSOLE[e[0]](a))
                    m_ok, m_out = _mqtt(app, e[0], a)
                    what = (e[0], field, v if not isinstance(v, (str, list)) else len(v))
                    assert c_ok == allowed, (what, "console", c_out)
                    if mqtt:
                        assert m_ok == allowed, (what, "mqtt", m_out)
                    else:   # refused whatever the value, with the declared reason
                        assert not m_ok and m_out == refusal, (what, "mqtt", m_out)
                    walked.append(what)
        assert len(walked) >= 20, walked
    finally:
        _rmtree(root)


def _key_probes(key):
    kind, default, lo, hi, secret = schema.SCHEMA[key]
    if isinstance(hi, tuple):
        return [(hi[-1], str(hi[-1]), True), ("nope", "nope", False)]
    if kind == "int":
        return [(lo - 1, str(lo - 1), False), (lo, str(lo), True), (hi, str(hi), True), (hi + 1, str(hi + 1), False)]
    if kind == "float":
        return [(lo, str(lo), True), (hi + 1.0, str(hi + 1.0), False)]
    if kind == "bool":
        return [(True, "true", True), (False, "false", True)]
    if kind == "list":
        return [(["a"] * hi, ",".join(["a"] * hi), True), (["a"] * (hi + 1), ",".join(["a"] * (hi + 1)), False)]
    if kind == "watts":
        good = [1000, 2000, 3000][:hi]
        return [(good, ",".join(str(w) for w in good), True),
                ([1000] * (hi + 1), ",".join(["1000"] * (hi + 1)), False), ([2000, 1000], "2000,1000", False)]
    if kind == "digits":
        return [("1" * hi, "1" * hi, True), ("1" * (hi + 1), "1" * (hi + 1), False)]
    if kind == "hex":
        return [("Ab" * (hi // 2), "Ab" * (hi // 2), True), ("ab" * (hi // 2) + "a", "ab" * (hi // 2) + "a", False),
                ("zz", "zz", False), ("abc", "abc", False)]
    return [("x" * hi, "x" * hi, hi > 0), ("x" * (hi + 1), "x" * (hi + 1), False)]


def test_every_config_key_agrees_on_both_channels():
    root = _root()
    try:
        app = _App(root)
        for key in schema.keys():
            for value, text, allowed in _key_probes(key):
                c_ok, c_out = _console(app, "config set %s %s" % (key, text))
                app.config.unset(key)   # (service.pin would lock the next lines)
                m_ok, m_out = _mqtt(app, "config", {"key": key, "value": value})
                app.config.unset(key)
                assert c_ok == allowed, (key, text, "console", c_out)
                if key in schema.REMOTE:
                    assert m_ok == allowed, (key, value, "mqtt", m_out)
                else:
                    assert not m_ok and "may not be set remotely" in str(m_out), (key, m_out)
    finally:
        _rmtree(root)


def test_command_bounds_are_those_of_the_settings():
    # A command's limit and the setting of the same quantity come from one place.
    def bounds(name, field):
        for f in cmdspec.find(name, "c")[6]:
            if f[0] == field:
                return f[3]

    def rng(key):
        return schema.SCHEMA[key][2], schema.SCHEMA[key][3]
    assert bounds("setpoint", "ttl_s") == rng("relay.backend_ttl_s")
    assert bounds("dso", "ttl_s") == rng("relay.dso_ttl_s")
    assert bounds("relay", "minutes") == rng("relay.manual_max_min") == rng("relay.manual_default_min")
    assert bounds("setpoint", "power_w") == rng("relay.nominal_w")
    assert bounds("dso", "limit_w") == schema.DSO_W
    assert bounds("schedule", "windows")[1] == schema.WINDOWS[1]


def test_declarations_are_complete():
    from dicamm.console import table
    seen = set()
    for e in cmdspec.COMMANDS:
        name, aliases, group, pin, via, options, fields, text = e
        for w in [name] + aliases.split():
            assert w not in seen, "%s named twice" % w
            seen.add(w)
        assert via in ("c", "cm"), name
        assert group is None or group in table.GROUPS, (name, group)
        assert pin in (None, "*") or all(w for w in pin.split()), name
        assert isinstance(options, tuple) and isinstance(fields, tuple), name
        assert len(text.split("\n")[0]) > 10, name
        if "m" in via:
            assert callable(getattr(Commands, "do_" + name, None)), "%s: no Commands.do_%s" % (name, name)
            assert fields and pin is not None, name   # what MQTT may issue changes something
        if group is not None:
            mod = __import__("dicamm.console." + group, None, None, ("x",))
            assert callable(getattr(mod, "cmd_" + name.replace("-", "_"), None)), "%s: no %s.cmd_%s" % (name, group, name)
    assert mqtt_cmd.names() == sorted(e[0] for e in cmdspec.COMMANDS if "m" in e[4])
    from dicamm.console.certs import CERT_KEYS
    assert all(k in cmdspec.find("cert")[7] for k in CERT_KEYS)   # the help names every certificate
    table.drop_big()
