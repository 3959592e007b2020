# The console's built-in commands as data, and the loading and dropping of the
# modules that implement them. Every command is a line
# "\nNAME\tGROUP\tfirst help line" of one string (GROUP: index in GROUPS), in
# the order `help` lists them. A group (dicamm/console/cli_*.py) is imported
# when one of its commands is typed; the modules in DROP leave the heap again
# after the command (only cli_core, the frequent commands, and cli_mem, the heap
# sampler, stay). host_tests/mp/test_cli_table.py checks the table against the
# groups' COMMANDS.
import gc
import sys

PACKAGE = "dicamm.console"
GROUPS = ("cli_core", "cli_control", "cli_taf16", "cli_service", "cli_mqtt", "cli_mem")
DROP = ("cli_admin", "cli_service", "cli_control", "cli_taf16", "cli_mqtt",
        "wizard", "selftest", "scan", "relaytest")
# Loaded once at start (app.py): cli_core and cli_mem stay; the others leave
# again, but their names (qstrs, never freed) are interned while the heap is
# still in one piece.
PRELOAD = ("cli_core", "cli_mem", "cli_control", "cli_taf16", "cli_mqtt", "cli_admin")
TABLE = (
    "\nconfig\t0\tconfig show [PREFIX] | set KEY VALUE | unset KEY | export | import JSON (secrets masked)"
    "\necho\t0\techo TEXT: print TEXT (marks the end of output for scripts)"
    "\nhelp\t0\tlist commands; 'help COMMAND' for one [--json]"
    "\nlock\t0\tlock: end an 'unlock' before the 10 minutes are over"
    "\nlog\t0\trecent log lines [--last N] [--json]"
    "\nmeter\t0\tmeter read [now] [--bus] | list | set MODEL ADDR [BAUD [PARITY]] | scan"
    "\nqh\t0\tquarter-hour load profile: qh [--last N] [--json] | qh export [--last N|--all] (CSV)"
    "\nstatus\t0\tone screen: meter, bus, time, relay, gateway, MQTT, network, storage, faults [--json]"
    "\ntime\t0\ttime | time set UNIX|ISO-UTC (status I) | time sync [--json]"
    "\nunlock\t0\tunlock PIN: allow changes for 10 minutes when a service PIN is set"
    "\ndso\t1\tdso LIMIT_W [TTL_S] | dso off: the grid operator's §14a limit (bench)"
    "\nrelay\t1\trelay [--json] | relay on|off|auto [MINUTES] (installer) | relay test"
    "\nschedule\t1\tschedule [--json] | schedule set JSON | schedule clear"
    "\nsetpoint\t1\tsetpoint POWER_W|on|off [TTL_S]: a backend request (bench)"
    '\nevent\t2\tevent "TEXT": trigger a TAF16 metering record at the gateway now'
    "\nevents\t2\tTAF16 events and their acknowledgement [--last N] [--json]"
    "\ntx\t2\ttransaction records (OCMF) [--last N] [--json] | tx key | tx export [--last N]"
    "\ncert\t3\tcertificates: cert [--json] shows subject, issuer, expiry | cert load NAME"
    "\nfactory-reset\t3\terase configuration, records, certificates and keys (asks for 'yes')"
    "\nnet\t3\tnetwork status and settings: net [--json] | net set ssid|password|hostname VALUE | net connect"
    "\nreboot\t3\trestart the device (the unix port exits)"
    "\nselftest\t3\tcheck meter, time, relay, gateway (TLS), broker, storage: PASS/FAIL with reasons [--json]"
    "\nsetup\t3\tcommissioning wizard: meter, network, time, CLS-ID, gateway, certificates, backend"
    "\nmqtt\t4\tMQTT link: connected, broker, backlog per stream, last error [--json]"
    "\nmem\t5\theap use now and its high-water mark [--json | --map]")


def group(name):
    # -> the full module name of the group that has command `name`, or None.
    i = TABLE.find("\n%s\t" % name)
    if i < 0:
        return None
    return PACKAGE + "." + GROUPS[int(TABLE[i + len(name) + 2])]


def rows():
    # [(name, first help line)] of every built-in command, in table order.
    out = []
    for line in TABLE.split("\n")[1:]:
        w = line.split("\t")
        out.append((w[0], w[2]))
    return out


def unload(mod):
    # A module out of sys.modules and off its package. -> True when it was loaded.
    if mod not in sys.modules:
        return False
    del sys.modules[mod]
    pkg, _, leaf = mod.rpartition(".")
    try:
        delattr(sys.modules[pkg], leaf)
    except (AttributeError, KeyError, TypeError):
        pass
    return True


def drop_big():
    # Big, rarely used command modules leave the heap after their command.
    # -> True when one was dropped.
    gone = False
    for m in DROP:
        if unload(PACKAGE + "." + m):
            gone = True
    return gone


def preload(log):
    # Imports PRELOAD now, so that cli_core's code lies in one piece at the
    # bottom of the heap instead of in the holes left between the objects of a
    # running day (a fragmented heap fails big allocations first).
    for name in PRELOAD:
        try:
            __import__(PACKAGE + "." + name)
        except ImportError as e:
            log("console group %s missing: %s" % (name, e))
        drop_big()
    gc.collect()
