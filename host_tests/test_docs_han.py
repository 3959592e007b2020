# docs/HAN.md's configuration table states what dicamm/proto/schema.py declares
# (the one source of defaults and limits): every han.* key and cls_id has a row,
# and its default and range are the schema's (a changed limit fails here until the
# documentation follows).
import json
import os

from conftest import ROOT

from dicamm.proto import schema


def _rows():
    with open(os.path.join(ROOT, "docs", "HAN.md")) as f:
        doc = f.read()
    doc = doc[doc.index("## Configuration"):doc.index("## Outbox")]
    rows = {}
    for line in doc.split("\n"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[0] != "`key`":
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def _range(key):
    kind, default, lo, hi, secret = schema.SCHEMA[key]
    if kind == "int":
        return "%d-%d" % (lo, hi)
    if kind == "bool":
        return "true/false"
    return "%d-%d chars" % (lo, hi)


def test_every_han_key_has_a_row():
    rows = _rows()
    want = set(schema.keys("han.")) | {"cls_id"}
    assert set(rows) == want, (sorted(want - set(rows)), sorted(set(rows) - want))


def test_documented_defaults_and_ranges_are_the_schema_s():
    for key, (default, rng, meaning) in _rows().items():
        assert json.loads(default.strip("`")) == schema.SCHEMA[key][1], (key, default, schema.SCHEMA[key])
        assert rng == _range(key), (key, rng, _range(key))
        assert meaning, key


def test_timeout_in_the_prose_is_the_schema_s():
    # the transport section names the deadline's default too
    with open(os.path.join(ROOT, "docs", "HAN.md")) as f:
        doc = " ".join(f.read().split())
    assert "`han.timeout_ms` (real milliseconds, default %d" % schema.SCHEMA["han.timeout_ms"][1] in doc
    assert "`han.idle_s` > 0 (default %d)" % schema.SCHEMA["han.idle_s"][1] in doc
