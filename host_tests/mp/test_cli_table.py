# micropython-only: the console's static command table (dicamm/console/table.py TABLE)
# matches the command groups it loads on demand, and the lazily loaded groups
# and meter profiles leave the heap again after use.
import gc
import sys

from dicamm.console import cli, table

GROUPS = ("cli_core", "cli_control", "cli_taf16", "cli_service", "cli_mqtt", "cli_mem")


class _Out:
    def __init__(self):
        self.text = []

    def write(self, s):
        self.text.append(s)


def _rows():
    rows = []
    for line in table.TABLE.split("\n")[1:]:
        name, g, text = line.split("\t")
        rows.append((name, table.GROUPS[int(g)], text))
    return rows


def test_table_matches_every_group():
    assert table.GROUPS == GROUPS
    want = []
    for g in GROUPS:
        mod = __import__("dicamm.console." + g, None, None, ("COMMANDS",))
        for name in sorted(mod.COMMANDS):
            want.append((name, g, mod.COMMANDS[name][1].split("\n")[0]))
    assert _rows() == want, (_rows(), want)
    for g in GROUPS:
        sys.modules.pop("dicamm.console." + g, None)


def test_lookup_loads_group_and_aliases_resolve():
    con = cli.Console(None, out=_Out())
    sys.modules.pop("dicamm.console.cli_taf16", None)
    name, cmd = con.lookup("ev")
    assert name == "event" and cmd is not None and callable(cmd[0])
    assert "dicamm.console.cli_taf16" in sys.modules
    name, cmd = con.lookup("n")
    assert name == "net" and cmd is not None
    assert con.lookup("nosuchcommand") == ("nosuchcommand", None)
    assert con.lookup("even") == ("even", None)   # a prefix is not a command
    names = [n for n, _ in con.commands()]
    assert names == [r[0] for r in _rows()]


def test_big_groups_dropped_after_use():
    con = cli.Console(None, out=_Out())
    con.lookup("selftest")
    assert "dicamm.console.cli_service" in sys.modules
    gc.collect()
    con.drop_big()
    assert "dicamm.console.cli_service" not in sys.modules
    import dicamm.console
    assert not hasattr(dicamm.console, "cli_service")


def test_write_json_pieces_equal_dumps():
    import json
    import io
    obj = {"a": [1, 2, {"b": "x\u00a7"}], "c": None, "d": True, "e": 1.5}
    s = io.StringIO()
    con = cli.Console(None, out=s)
    con.write_json(obj)
    assert s.getvalue() == json.dumps(obj) + "\n"
    o = _Out()   # not a stream: one string
    cli.Console(None, out=o).write_json(obj)
    assert "".join(o.text) == json.dumps(obj) + "\n"


def test_profile_table_not_kept():
    from dicamm.proto import profiles
    p = profiles.get("sdm630")
    assert p["name"] == "sdm630"
    assert "dicamm.proto.profile_table" not in sys.modules
    assert "sdm120" in profiles.names() and "dicamm.proto.profile_table" not in sys.modules
    assert profiles.get("SDM120")["baud"] == 2400
