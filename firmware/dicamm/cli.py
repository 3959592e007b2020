# The installer's console: reads lines from the serial console (stdin on the
# unix port) without blocking the other tasks, splits them, checks the service
# PIN for commands that change things, and dispatches to the command groups in
# cli_*.py. Every read-only command takes --json and then prints exactly one
# JSON object on one line. A bad line gets a one-line error; nothing crashes.
import json
import sys
import time

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

from micropython import const

from dicamm.errors import DicammError

_MAX_LINE = const(512)
_PIN_TRIES = const(3)
_PIN_LOCK_MS = const(30000)
_UNLOCK_MS = const(600000)


def split(line):
    # Words separated by blanks; "double" or 'single' quotes keep blanks.
    out = []
    cur = None
    quote = None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
            else:
                cur += ch
        elif ch in "\"'":
            quote = ch
            cur = cur or ""
        elif ch in " \t":
            if cur is not None:
                out.append(cur)
                cur = None
        else:
            cur = (cur or "") + ch
    if quote:
        raise UsageError("unclosed quote")
    if cur is not None:
        out.append(cur)
    return out


class UsageError(DicammError):
    pass


class Args:
    # Parsed words: positional words and --flags (with --key value for the
    # options a command declares).
    def __init__(self, words, options=()):
        self.pos = []
        self.flags = {}
        i = 0
        while i < len(words):
            w = words[i]
            if w.startswith("--") and len(w) > 2:
                name = w[2:]
                if name in options:
                    if i + 1 >= len(words):
                        raise UsageError("--%s needs a value" % name)
                    self.flags[name] = words[i + 1]
                    i += 1
                else:
                    self.flags[name] = True
            else:
                self.pos.append(w)
            i += 1
        self.json = bool(self.flags.get("json"))

    def int_flag(self, name, default, lo=0, hi=1000000):
        v = self.flags.get(name)
        if v is None:
            return default
        try:
            n = int(v)
        except ValueError:
            raise UsageError("--%s wants a number" % name)
        if not lo <= n <= hi:
            raise UsageError("--%s must be %d..%d" % (name, lo, hi))
        return n


class Console:
    def __init__(self, app, stream_in=None, out=None):
        self.app = app
        self.inp = stream_in or sys.stdin
        self.out = out or sys.stdout
        self.groups = []      # modules with COMMANDS = {name: (fn, help, changes)}
        self.aliases = {"?": "help", "st": "status", "m": "meter", "t": "time", "r": "relay",
                        "cfg": "config", "ev": "event", "sched": "schedule"}
        self._bad_pins = 0
        self._pin_locked_until = None
        self._unlocked_until = None
        self.prompt = False
        self.busy = None      # the running long command's task (scan)
        self._pending = b""
        self._poll = None
        self._read = None
        self.lines = 0
        self.errors = 0

    def add(self, module):
        self.groups.append(module)

    def lookup(self, name):
        name = self.aliases.get(name, name)
        for g in self.groups:
            c = g.COMMANDS.get(name)
            if c:
                return name, c
        return name, None

    def write(self, text):
        self.out.write(text)
        self.out.write("\n")

    def emit(self, args, obj, human=None):
        # One JSON object on one line with --json, else the human text.
        if args.json or human is None:
            self.write(json.dumps(obj))
        elif callable(human):
            human(obj)
        else:
            self.write(human)

    def error(self, msg, args=None):
        self.errors += 1
        if args is not None and args.json:
            self.write(json.dumps({"error": msg}))
        else:
            self.write("error: " + msg)

    # -- service PIN -----------------------------------------------------
    def _now(self):
        return time.ticks_ms()

    def check_pin(self, given):
        pin = self.app.config.get("service.pin")
        if not pin:
            return True
        now = self._now()
        if self._unlocked_until is not None and time.ticks_diff(self._unlocked_until, now) > 0:
            return True
        if self._pin_locked_until is not None and time.ticks_diff(self._pin_locked_until, now) > 0:
            raise UsageError("too many wrong PINs: locked for %d s" % (time.ticks_diff(self._pin_locked_until, now) // 1000 + 1))
        if given is None:
            raise UsageError("this command needs the service PIN: add --pin PIN or run 'unlock PIN'")
        if str(given) != str(pin):
            self._bad_pins += 1
            if self._bad_pins >= _PIN_TRIES:
                self._pin_locked_until = time.ticks_add(now, _PIN_LOCK_MS * (self._bad_pins - _PIN_TRIES + 1))
            raise UsageError("wrong PIN")
        self._bad_pins = 0
        self._pin_locked_until = None
        return True

    def unlock(self, pin):
        self.check_pin(pin)
        self._unlocked_until = time.ticks_add(self._now(), _UNLOCK_MS)

    # -- dispatch --------------------------------------------------------
    async def handle(self, line):
        self.lines += 1
        try:
            words = split(line)
        except UsageError as e:
            self.error(str(e))
            return
        if not words:
            return
        name, cmd = self.lookup(words[0])
        if cmd is None:
            self.error("unknown command '%s' (try 'help')" % words[0][:32])
            return
        fn, _help, changes, options = cmd[0], cmd[1], cmd[2], cmd[3] if len(cmd) > 3 else ()
        args = None
        try:
            args = Args(words[1:], options + ("pin", "last"))
            if changes and changes(args):
                self.check_pin(args.flags.get("pin"))
            r = fn(self, args)
            if r is not None and hasattr(r, "send"):  # a coroutine: run it,
                await self._run_abortable(r)           # Ctrl-C aborts it
        except DicammError as e:
            self.error(str(e), args)
        except (ValueError, TypeError, KeyError, IndexError, OSError) as e:
            self.error("%s: %s" % (e.__class__.__name__, e), args)
        except Exception as e:  # a bug must not take the console down
            self.error("internal error in '%s': %s: %s" % (name, e.__class__.__name__, e), args)
            self.app.info("console: %r while running %s" % (e, name))

    def _readable(self):
        try:
            import select
            p = select.poll()
            p.register(self.inp, select.POLLIN)
            return p
        except (ImportError, OSError, TypeError):
            return None

    async def _run_abortable(self, coro):
        # Long commands (a bus scan) run as their own task; meanwhile the
        # console keeps reading: Ctrl-C cancels, other input waits its turn.
        task = asyncio.create_task(coro)
        self.busy = task
        try:
            while not task.done():
                while self._poll is not None and self._poll.poll(0):
                    b = self._read(1)
                    if not b:
                        break
                    if b[0] == 3:
                        task.cancel()
                    else:
                        self._pending += b
                await asyncio.sleep_ms(20)
            try:
                await task
            except asyncio.CancelledError:
                self.write("aborted")
        finally:
            self.busy = None

    def _byte(self):
        if self._pending:
            c = self._pending[0]
            self._pending = self._pending[1:]
            return c
        if self._poll is None or not self._poll.poll(0):
            return None
        b = self._read(1)
        if not b:
            return -1
        return b[0] if isinstance(b, (bytes, bytearray)) else ord(b)

    async def run(self):
        self._poll = self._readable()
        self._read = self.inp.buffer.read if hasattr(self.inp, "buffer") else self.inp.read
        buf = bytearray(_MAX_LINE)
        n = 0
        overflow = False
        while True:
            c = self._byte()
            if c is None:
                await asyncio.sleep_ms(10)
                continue
            if c < 0:  # end of input: keep the firmware running without a console
                while True:
                    await asyncio.sleep_ms(3600000)
            if c in (10, 13):
                if overflow:
                    self.error("line too long (max %d characters): ignored" % _MAX_LINE)
                elif n:
                    try:
                        line = bytes(buf[:n]).decode()
                    except UnicodeError:
                        line = None
                        self.error("line is not text: ignored")
                    if line is not None:
                        await self.handle(line)
                n = 0
                overflow = False
                if self.prompt:
                    self.out.write("dicamm> ")
                await asyncio.sleep_ms(0)  # let the other tasks run between lines
            elif c == 3:   # Ctrl-C drops the half-typed line
                n = 0
                overflow = False
            elif c in (8, 127):
                n = max(0, n - 1)
            elif n < _MAX_LINE:
                if c >= 32 or c == 9:
                    buf[n] = c
                    n += 1
            else:
                overflow = True
