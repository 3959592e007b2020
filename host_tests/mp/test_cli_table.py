# micropython-only: the console finds a command through its declaration
# (proto/cmdspec.py), loads the command's group for it, and the declarations,
# the lazily loaded groups and the meter profiles leave the heap again after use.
import gc
import sys

from dicamm.console import cli, table


class _Out:
    def __init__(self):
        self.text = []

    def write(self, s):
        self.text.append(s)


def test_lookup_loads_group_and_aliases_resolve():
    con = cli.Console(None, out=_Out())
    sys.modules.pop("dicamm.console.cli_taf16", None)
    name, cmd = con.lookup("ev")
    assert name == "event" and cmd is not None and callable(cmd[0]) and cmd[1][0] == "event"
    assert "dicamm.console.cli_taf16" in sys.modules
    assert "dicamm.proto.cmdspec" not in sys.modules   # the declarations are dropped again
    name, cmd = con.lookup("n")
    assert name == "net" and cmd is not None
    name, cmd = con.lookup("factory-reset")
    assert cmd[0].__name__ == "cmd_factory_reset"
    assert con.lookup("nosuchcommand") == ("nosuchcommand", None)
    assert con.lookup("even") == ("even", None)   # a prefix is not a command
    names = [n for n, _ in con.commands()]
    from dicamm.proto import cmdspec
    assert names == [e[0] for e in cmdspec.COMMANDS if "c" in e[4]]
    assert names.index("config") < names.index("mem") and len(set(names)) == len(names)
    table.drop_big()


def test_big_groups_dropped_after_use():
    con = cli.Console(None, out=_Out())
    con.lookup("selftest")
    assert "dicamm.console.cli_service" in sys.modules
    gc.collect()
    con.drop_big()
    assert "dicamm.console.cli_service" not in sys.modules
    import dicamm.console
    assert not hasattr(dicamm.console, "cli_service")


def test_declarations_leave_the_heap():
    # Loading the declarations for one lookup and dropping them gives the
    # heap back: what stays is at most the entry the caller keeps.
    con = cli.Console(None, out=_Out())
    con.lookup("status")   # cli_core loaded once
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(5):
        name, cmd = con.lookup("st")
    cmd = None
    gc.collect()
    assert gc.mem_alloc() - before < 512, gc.mem_alloc() - before
    assert "dicamm.proto.cmdspec" not in sys.modules


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
