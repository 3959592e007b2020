# docs/MQTT.md lists what proto/cmdspec.py and proto/schema.py declare: every
# command MQTT may issue with each field and its bounds, and every config key
# MQTT may set with its range (a limit changed in the one source fails here
# until the documentation follows).
import os

from conftest import ROOT

from dicamm.proto import cmdspec, schema


def _doc():
    with open(os.path.join(ROOT, "docs", "MQTT.md")) as f:
        return f.read()


def _row(doc, name):
    for line in doc.split("\n"):
        if line.startswith("| `%s` |" % name):
            return line
    return None


def test_every_mqtt_command_and_its_bounds_documented():
    doc = _doc()
    doc = doc[doc.index("## Commands"):doc.index("### Ack")]
    for e in cmdspec.COMMANDS:
        if "m" not in e[4]:
            continue
        row = _row(doc, e[0])
        assert row is not None, "docs/MQTT.md: no row for cmd/%s" % e[0]
        for field, kind, required, bounds in e[6]:
            assert "`%s`" % field in row, (e[0], field, row)
            if kind in ("int", "int|null", "str"):
                assert "`%s` %d-%d" % (field, bounds[0], bounds[1]) in row, (e[0], field, bounds, row)
            elif kind == "list":
                assert "max %d" % bounds[1] in row, (e[0], field, bounds, row)
            elif kind == "enum":
                assert "/".join("`%s`" % v for v in bounds) in row, (e[0], field, bounds, row)


def test_every_remote_key_and_its_range_documented():
    doc = _doc()
    start = doc.index("Config keys MQTT may set")
    text = " ".join(doc[start:doc.index("### Ack", start)].split())
    for key in schema.REMOTE:
        assert "`%s`" % key in text, key
        kind, default, lo, hi, secret = schema.SCHEMA[key]
        if kind == "int":
            after = text[text.index("`%s`" % key):]
            assert after.split("(", 1)[1].split(")", 1)[0] == "%d-%d" % (lo, hi), (key, lo, hi, after[:80])
