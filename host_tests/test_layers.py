# The tree shows the architecture (docs/ARCHITECTURE.md), and this test keeps it
# so: every import of every firmware module, at the top and inside functions,
# read with ast (the console's groups, imported by name from console/table.py,
# count as imports of table.py).
#   - dicamm/proto (pure): no machine, socket, ssl, os, time, asyncio, select,
#     network, termios; from the firmware only dicamm.proto.*, dicamm.errors and
#     dicamm itself (VERSION).
#   - dicamm/drivers: nothing from services or the console.
#   - no import closes a cycle.
#   - no firmware module over 400 lines.
import ast
import glob
import os

import pytest

from conftest import FIRMWARE

PURE = "dicamm.proto"
PURE_BANNED = ("machine", "network", "socket", "usocket", "ssl", "ussl", "os", "uos", "time", "utime",
               "asyncio", "uasyncio", "select", "termios")
PURE_ALLOWED = ("dicamm", "dicamm.errors")
MAX_LINES = 400


def module_files():
    # {dotted module name: path} for firmware/*.py and the dicamm package.
    out = {}
    for p in glob.glob(os.path.join(FIRMWARE, "**", "*.py"), recursive=True):
        rel = os.path.relpath(p, FIRMWARE)[:-3].replace(os.sep, ".")
        if rel.endswith(".__init__"):
            rel = rel[:-len(".__init__")]
        out[rel] = p
    return out


def _console_table(tree):
    # The module names console/table.py imports with __import__(PACKAGE + "." + name).
    names = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                names[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    pkg = names["PACKAGE"]
    return ["%s.%s" % (pkg, n) for key in ("GROUPS", "DROP", "PRELOAD") for n in names[key]]


def imports_of(path, known, name=None):
    # [(imported module, line)]: `from dicamm.x import y` is dicamm.x.y when
    # that is a module, else dicamm.x.
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.append((a.name, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "%s:%d: relative import" % (path, node.lineno)
            for a in node.names:
                sub = "%s.%s" % (node.module, a.name)
                out.append((sub if sub in known else node.module, node.lineno))
    if name == "dicamm.console.table":
        out += [(m, 0) for m in _console_table(tree)]
    return out


def graph():
    files = module_files()
    return files, {m: imports_of(p, files, m) for m, p in files.items()}


def layer(mod):
    parts = mod.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "dicamm" else None


def layer_problems(edges):
    problems = []
    for mod, imps in sorted(edges.items()):
        for imp, line in imps:
            where = "%s:%d imports %s" % (mod, line, imp)
            top = imp.split(".")[0]
            if mod.startswith(PURE + "."):
                if top in PURE_BANNED:
                    problems.append("%s (pure layer: no I/O, clock or asyncio)" % where)
                elif top == "dicamm" and not imp.startswith(PURE + ".") and imp not in PURE_ALLOWED + (PURE,):
                    problems.append("%s (pure layer: only dicamm.proto, dicamm.errors)" % where)
            if layer(mod) == "drivers" and layer(imp) in ("services", "console"):
                problems.append("%s (drivers: nothing from services or the console)" % where)
    return problems


def cycles(edges):
    # Every import cycle among firmware modules, each as [a, b, ..., a].
    found = []
    state = {}
    stack = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for imp, _ in edges.get(m, ()):
            if imp not in edges:
                continue
            if state.get(imp) == 1:
                found.append(stack[stack.index(imp):] + [imp])
            elif imp not in state:
                visit(imp)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return found


def test_every_module_belongs_to_a_layer():
    files = module_files()
    for mod in files:
        if mod.startswith("dicamm."):
            assert layer(mod) in ("proto", "drivers", "services", "console") or \
                mod in ("dicamm.errors", "dicamm.platform", "dicamm.proto", "dicamm.drivers",
                        "dicamm.services", "dicamm.console"), "%s: not in a layer's package" % mod


def test_pure_layer_and_drivers_keep_to_their_imports():
    _, edges = graph()
    problems = layer_problems(edges)
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    _, edges = graph()
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_module_over_400_lines():
    long = []
    for mod, p in sorted(module_files().items()):
        with open(p) as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            long.append("%s: %d lines" % (mod, n))
    assert not long, "split these modules:\n" + "\n".join(long)


@pytest.mark.parametrize("mod, extra, want", [
    ("dicamm.proto.crc16", ("time", 3), "pure layer: no I/O"),
    ("dicamm.proto.rtu", ("dicamm.drivers.fsutil", 3), "only dicamm.proto"),
    ("dicamm.drivers.meter", ("dicamm.services.metering", 3), "drivers: nothing from services"),
])
def test_checks_catch_a_bad_import(mod, extra, want):
    # The checks themselves: one wrong import added to the real graph.
    _, edges = graph()
    edges[mod] = list(edges[mod]) + [extra]
    assert any(want in p for p in layer_problems(edges))


def test_cycle_check_catches_a_cycle():
    _, edges = graph()
    edges["dicamm.console.cli_editor"] = list(edges["dicamm.console.cli_editor"]) + [("dicamm.console.cli", 9)]
    assert ["dicamm.console.cli", "dicamm.console.cli_editor", "dicamm.console.cli"] in cycles(edges)
