# Which module implements a console command, and the loading and dropping of
# those modules. The commands themselves are declared in proto/cmdspec.py
# (loaded for the lookup and dropped again); a group (dicamm/console/<group>.py,
# with cmd_<name>) is imported when one of its commands is typed, and the
# modules in DROP leave the heap again after the command (only cli_core, the
# frequent commands, and cli_mem, the heap sampler, stay).
import gc

from dicamm.proto import unload

PACKAGE = "dicamm.console"
# the groups cmdspec may name (host_tests/mp/test_cmdspec.py checks it)
GROUPS = ("cli_core", "cli_admin", "cli_control", "cli_taf16", "cli_service", "cli_mqtt", "cli_mem", "cli_update")
DROP = ("cli_admin", "cli_service", "cli_control", "cli_taf16", "cli_mqtt", "cli_update",
        "wizard", "selftest", "scan", "relaytest")
# Loaded once at start (app.py): cli_core and cli_mem stay; the others leave
# again, but their names (qstrs, never freed) are interned while the heap is
# still in one piece.
PRELOAD = ("cli_core", "cli_mem", "cli_control", "cli_taf16", "cli_mqtt", "cli_admin")


def find(word):
    # -> the cmdspec entry of the console command that `word` names (name or
    # alias), or None. The declarations leave the heap again at once.
    from dicamm.proto import cmdspec
    e = cmdspec.find(word, "c")
    cmdspec.drop()
    return e if e is not None and e[2] is not None else None


def rows():
    # [(name, first help line)] of every console command, in the order `help` lists them.
    from dicamm.proto import cmdspec
    out = [(e[0], e[7].split("\n")[0]) for e in cmdspec.COMMANDS if "c" in e[4] and e[2] is not None]
    cmdspec.drop()
    return out


def drop_big():
    # Big, rarely used command modules leave the heap after their command.
    # -> True when one was dropped.
    gone = False
    for m in DROP:
        if unload(PACKAGE + "." + m):
            gone = True
    return gone


def preload(log, fault=None):
    # Imports PRELOAD now, so that cli_core's code lies in one piece at the
    # bottom of the heap instead of in the holes left between the objects of a
    # running day (a fragmented heap fails big allocations first).
    # Returns [(group, ImportError)] of the groups that could not be loaded;
    # with fault, they are also the "console" fault (the other groups answer).
    missing = []
    for name in PRELOAD:
        try:
            __import__(PACKAGE + "." + name)
        except ImportError as e:
            log("console group %s missing: %s" % (name, e))
            missing.append((name, e))
        drop_big()
    find("status")   # the declarations (loaded for every line) intern their names now too
    from dicamm.proto import cmdcheck  # noqa: F401 (and the one check, for the first command)
    unload("dicamm.proto.cmdcheck")
    gc.collect()
    if missing and fault is not None:
        from dicamm.services.failsoft import describe
        fault("console", "group %s" % "; ".join("%s: %s" % (n, describe(e)) for n, e in missing))
    return missing
