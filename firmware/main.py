# DICAMM entry point. On a board, boot.py has run and board.py holds the pins;
# on the unix port: micropython firmware/main.py --board unix --root DIR
#   [--speed S --start-ms T0 --epoch-ms E [--slow SLOW[:LEAD_MS:TAIL_MS]]]
#   (simulated clock for the bench; --slow: slow motion around each quarter hour).
import sys


def _unix_options(argv):
    opts = {"board": "unix", "root": ".", "speed": 1, "start_ms": None, "epoch_ms": None}
    i = 1
    while i < len(argv):
        key = argv[i]
        if not key.startswith("--") or i + 1 >= len(argv):
            raise SystemExit("usage: main.py --board NAME --root DIR [--speed S --start-ms MS --epoch-ms MS]")
        name = key[2:].replace("-", "_")
        val = argv[i + 1]
        if name in ("speed", "start_ms", "epoch_ms"):
            val = int(val)
        elif name == "slow":
            from dicamm.proto.simtime import parse_slow
            val = parse_slow(val)
        opts[name] = val
        i += 2
    return opts


def _code(root):
    # Which code starts (drivers/codeslot.py, issue 19): an installed update's folder
    # goes first on sys.path, and the modules imported so far (this deployed code's)
    # leave sys.modules so that the application's come from there. Returns the
    # codeslot module of the deployed code (kept: it must outlive a broken update)
    # and whether the code runs on trial.
    from dicamm.drivers import codeslot
    lib, trial = codeslot.choose(root)
    if lib:
        for k in [k for k in sys.modules if k == "dicamm" or k.startswith("dicamm.")]:
            del sys.modules[k]
        sys.path.insert(0, lib)
    return codeslot, trial


def main():
    from dicamm.platform import UNIX
    if UNIX:
        here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
        repo = here + "/.."
        for p in (repo + "/build/lib", here):
            if p not in sys.path:
                sys.path.insert(0, p)
        opts = _unix_options(sys.argv)
        sys.path.insert(0, repo + "/boards")
        board = __import__(opts["board"]).BOARD
        sys.path.pop(0)
    else:
        from dicamm.drivers import startup
        if startup.safe_mode:
            # boot.py decided: button held, three crashes in a row, or asked for.
            print("DICAMM safe mode (%s): application not started. REPL is free; "
                  "from dicamm.drivers import startup; startup.leave_safe_mode() to start normally." % startup.safe_mode)
            return
        from board import BOARD as board
        opts = {"board": board["name"], "root": "", "speed": 1, "start_ms": None, "epoch_ms": None}
    codeslot, trial = _code(opts["root"])
    try:
        from dicamm.services import app
        app.run(board, opts)
    except Exception as e:
        if trial and codeslot.crashed(opts["root"], "crashed at start: %r" % e):
            print("DICAMM: the update on trial failed (%r); the previous version starts next time" % e)
            if not UNIX:
                import machine
                machine.reset()
        raise


main()
