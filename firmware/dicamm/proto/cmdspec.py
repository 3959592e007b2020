# Every command of the console and of MQTT, declared once (pure data). Loaded
# for a command and dropped again after it (drop()): console/table.py finds a
# console command here, mqtt_cmd.parse and commands.execute check a command's
# arguments against its entry with proto/cmdcheck.py.
#
# An entry: (name, aliases, group, pin, via, options, fields, help)
#   aliases  other words for the command ("" if none)
#   group    the console module dicamm/console/<group>.py with cmd_<name>
#            ("-" in the name is "_"); None for a command that has no console form
#   pin      None: never changes anything; "*": always changes; else the first
#            words that make it change something ("set unset import")
#   via      the channels that may issue it: "c" the console (the installer, at
#            the device), "m" MQTT (the flexibility backend, topic cmd/<name>);
#            REFUSED below says why a channel may not
#   A switching request ranks by its channel (PRIORITY): the console's relay
#   command is the installer's, MQTT's the backend's, never the installer's.
#   options  the --flags that take a value, besides --pin and --last
#   fields   the arguments of services/commands.Commands.do_<name> as
#            (field, kind, required, bounds): kinds "int", "int|null", "bool",
#            "str" (bounds: length), "list" (bounds: entries), "enum" (bounds:
#            the values), None (checked by a rule below); bounds come from
#            proto/schema.py, the one source of limits.
#   help     the first line is what `help` lists, the rest `help NAME` adds
# Adding a command: one entry here and one function (docs/ARCHITECTURE.md).
from dicamm.proto.schema import DSO_W, MINUTES, POWER_W, TEXT, TTL_S, WINDOWS

COMMANDS = (
    ("config", "cfg", "cli_admin", "set unset import", "cm", (), (
        ("key", "str", True, (1, 40)), ("value", None, True, None)),
     "config show [PREFIX] | set KEY VALUE | unset KEY | export | import JSON (secrets masked)\n"
     "set/unset/import need the service PIN; over MQTT {key, value} for the keys marked remote;\n"
     "the keys with type and range:"),
    ("echo", "", "cli_core", None, "c", (), (),
     "echo TEXT: print TEXT (marks the end of output for scripts)"),
    ("help", "?", "cli_admin", None, "c", (), (),
     "list commands; 'help COMMAND' for one [--json]"),
    ("lock", "", "cli_admin", None, "c", (), (),
     "lock: end an 'unlock' before the 10 minutes are over"),
    ("log", "", "cli_core", None, "c", (), (),
     "recent log lines [--last N] [--json]"),
    ("meter", "m", "cli_core", "set scan", "c", ("from", "to", "bauds", "parities"), (),
     "meter read [now] [--bus] | list | set MODEL ADDR [BAUD [PARITY]] | scan\n"
     "meter read [now] [--bus] [--json]: the last reading ('now' reads the meter at once)\n"
     "meter list [--json]: the meter models (profiles) this firmware knows\n"
     "meter set MODEL ADDRESS [BAUD [PARITY]]: save the meter settings (PIN; takes effect after 'reboot')\n"
     "meter scan [--from A] [--to B] [--bauds 9600,2400] [--parities N,E] [--json]: find meters on the\n"
     "  bus (PIN); metering goes on between probes; Ctrl-C aborts"),
    ("qh", "", "cli_core", None, "c", (), (),
     "quarter-hour load profile: qh [--last N] [--json] | qh export [--last N|--all] (CSV)"),
    ("status", "st", "cli_core", None, "c", (), (),
     "one screen: meter, bus, time, relay, gateway, MQTT, network, storage, faults [--json]"),
    ("time", "t", "cli_admin", "set", "c", (), (),
     "time | time set UNIX|ISO-UTC (status I) | time sync [--json]"),
    ("unlock", "", "cli_admin", None, "c", (), (),
     "unlock PIN: allow changes for 10 minutes when a service PIN is set\n"
     "three wrong PINs lock the console for 30 s, each further one for longer"),
    ("dso", "", "cli_control", "*", "c", (), (
        ("limit_w", "int|null", True, DSO_W), ("ttl_s", "int", False, TTL_S)),
     "dso LIMIT_W [TTL_S] | dso off: the grid operator's §14a limit (bench; in the field it comes\n"
     "from the control box contact, dso.contact); a limit below dso.min_w (4200 W) is raised to it"),
    ("relay", "r", "cli_control", "on off auto test", "cm", (), (
        ("mode", "enum", True, ("on", "off", "auto")), ("minutes", "int", False, MINUTES)),
     "relay [--json] | relay on|off|auto [MINUTES] (installer) | relay test\n"
     "over MQTT a backend request: on/off for MINUTES (default relay.backend_ttl_s), auto releases it"),
    ("schedule", "sched", "cli_control", "set clear", "cm", (), (
        ("windows", "list", True, WINDOWS),),
     "schedule [--json] | schedule set JSON | schedule clear"),
    ("setpoint", "", "cli_control", "*", "cm", (), (
        ("power_w", "int", False, POWER_W), ("on", "bool", False, None), ("ttl_s", "int", False, TTL_S)),
     "setpoint POWER_W|on|off [TTL_S]: a backend request (bench)"),
    ("event", "ev", "cli_taf16", "*", "cm", (), (
        ("text", "str", True, TEXT),),
     'event "TEXT": trigger a TAF16 metering record at the gateway now'),
    ("events", "", "cli_taf16", None, "c", (), (),
     "TAF16 events and their acknowledgement [--last N] [--json]"),
    ("tx", "", "cli_taf16", None, "c", (), (),
     "transaction records (OCMF) [--last N] [--json] | tx key | tx export [--last N]"),
    ("cert", "certs", "cli_service", "load", "c", (), (),
     "certificates: cert [--json] shows subject, issuer, expiry | cert load NAME\n"
     "cert load NAME: paste a PEM block line by line (ends at -----END); stored as DER in certs/\n"
     "NAME: han.ca, han.cert, han.key, mqtt.ca, mqtt.cert, mqtt.key (ca, cert, key are short for han.*)"),
    ("factory-reset", "", "cli_service", "*", "c", (), (),
     "erase configuration, records, certificates and keys (asks for 'yes')"),
    ("net", "n", "cli_service", "set connect", "c", (), (),
     "network status and settings: net [--json] | net set ssid|password|hostname VALUE | net connect\n"
     "on the unix port the host's network is used; the settings apply on a board\n"
     "net connect (board): join the Wi-Fi / bring up Ethernet with the saved settings"),
    ("reboot", "restart", "cli_service", "*", "c", (), (),
     "restart the device (the unix port exits)"),
    ("selftest", "test", "cli_service", None, "c", (), (),
     "check meter, time, relay, gateway (TLS), broker, storage: PASS/FAIL with reasons [--json]\n"
     "selftest [CHECK ...] runs only the named checks (meter time relay gateway broker storage)"),
    ("setup", "wizard commission", "cli_service", "*", "c", (), (),
     "commissioning wizard: meter, network, time, CLS-ID, gateway, certificates, backend\n"
     "Enter keeps the value in [brackets], 'back' goes one step back, 'quit' leaves without saving;\n"
     "each step is checked live; the wizard saves the configuration and ends with selftest"),
    ("mqtt", "", "cli_mqtt", None, "c", (), (),
     "MQTT link: connected, broker, backlog per stream, last error [--json]"),
    ("update", "", "cli_update", "install", "cm", (), (
        ("url", None, True, None), ("downgrade", "bool", False, None)),
     "firmware update from a signed release: update [--json] | update install URL [--downgrade]\n"
     "update install URL: the release's manifest.json (https; the server's CA in update.ca);\n"
     "  checked against update.pubkey, this board and this version (older only with --downgrade),\n"
     "  downloaded into update/stage while metering runs on; 'update' shows state, bytes, error"),
    ("mem", "", "cli_mem", None, "c", (), (),
     "heap use now and its high-water mark [--json | --map]"),
)


# Commands a channel may not issue, and why (the ack and the console say it).
REFUSED = (
    ("dso", "m", "refused: the 14a EnWG limit is the grid operator's, from the control box "
                 "(dso.contact); the backend can neither set nor lift it"),
)

# The arbiter source of a channel's switching request (relay).
PRIORITY = {"c": "installer", "m": "backend"}


def refusal(name, via):
    # Why channel `via` may not issue command `name`, or None.
    for n, v, why in REFUSED:
        if n == name and v == via:
            return why
    return None


def find(word, via="c"):
    # The entry of the command that `word` names (its name, or on the console
    # an alias) and that channel `via` ("c" or "m") may issue, or None.
    for e in COMMANDS:
        if via in e[4] and (e[0] == word or via == "c" and word in e[1].split()):
            return e
    return None


def names(via="c"):
    return [e[0] for e in COMMANDS if via in e[4]]


def aliases():
    # {alias: command name}
    out = {}
    for e in COMMANDS:
        for a in e[1].split():
            out[a] = e[0]
    return out


def drop():
    # Out of the module cache again; what a caller keeps (one entry) stays.
    from dicamm.proto import unload
    unload("dicamm.proto.cmdspec")
