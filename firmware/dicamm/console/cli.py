# The installer's console: reads lines from the serial console (stdin on the
# unix port) without blocking the other tasks, splits them, checks the service
# PIN for commands that change things, and dispatches to the command groups in
# cli_*.py. Every read-only command takes --json and then prints exactly one
# JSON object on one line. A bad line gets a one-line error; nothing crashes.
# Long commands run as their own task: Ctrl-C aborts them, and dialogs (the
# setup wizard) take their answers with `await console.ask(prompt)`.
import gc
import json
import sys
import time

from micropython import const

from dicamm.console import cli_editor, table
from dicamm.console.cli_editor import INTR, Args, LineEditor, split
from dicamm.errors import DicammError, UsageError
from dicamm.platform import UNIX, asyncio

_QUEUE_CHARS = const(4096)   # lines waiting for the console (a pasted block)
_BURST = const(256)          # bytes read before the other tasks get a turn
_PIN_TRIES = const(3)
_PIN_LOCK_MS = const(30000)
_UNLOCK_MS = const(600000)
# Real ms a command may hold the loop: a few on the bench host; on a board a
# longer one costs the quarter-hour read only a fraction of its 9 s.
_CMD_BLOCKS_MS = const(50)


class Console:
    def __init__(self, app, stream_in=None, out=None):
        self.app = app
        self.inp = stream_in or sys.stdin
        self.out = out or sys.stdout
        self._bad_pins = 0
        self._pin_locked_until = None
        self._unlocked_until = None
        self.prompt = False   # print "dicamm> " (interactive console: board, or a tty)
        self.busy = None      # the running long command's task (scan, setup)
        self.editor = LineEditor()
        self._queue = []      # finished lines not yet used (typed ahead, or pasted)
        self._queued = 0      # their characters, bounded by _QUEUE_CHARS
        self._want = False    # a dialog waits in ask()
        self._poll = None
        self._read = None
        self._tty_saved = None
        self.lines = 0
        self.errors = 0

    def lookup(self, word):
        # -> (name, (fn, entry)) or (word, None): entry is the command's
        # declaration (proto/cmdspec.py); its group module is imported now.
        e = table.find(word)
        if e is None:
            return word, None
        mod = table.PACKAGE + "." + e[2]
        try:
            __import__(mod)
        except ImportError as ex:
            raise UsageError("command group %s missing: %s" % (mod, ex))
        except MemoryError:
            gc.collect()
            raise UsageError("not enough memory to load '%s' now: try again" % e[0])
        return e[0], (getattr(sys.modules[mod], "cmd_" + e[0].replace("-", "_")), e)

    def commands(self):
        # [(name, first help line)] of every command, in the order `help` lists them.
        return table.rows()

    def drop_big(self):
        return table.drop_big()

    def write(self, text):
        self.out.write(text)
        self.out.write("\n")

    def _echo(self, b):
        w = getattr(self.out, "buffer", None)
        if w is not None:
            w.write(b)
        else:
            self.out.write(b.decode())

    def write_json(self, obj):
        # One JSON object on one line, written to the console in pieces
        # (json.dump on the stream) instead of one big string on the heap.
        try:
            json.dump(obj, self.out)
        except OSError:   # not a stream (an object with write() only)
            self.out.write(json.dumps(obj))
        self.out.write("\n")

    def emit(self, args, obj, human=None):
        # One JSON object on one line with --json, else the human text.
        if args.json or human is None:
            self.write_json(obj)
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
        # device time: a lockout is a rule of the device (and runs fast on the bench clock)
        return self.app.clock.ticks_ms()

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
            self.app.info("console: wrong service PIN (%d in a row)" % self._bad_pins)
            raise UsageError("wrong PIN")
        self._bad_pins = 0
        self._pin_locked_until = None
        return True

    def unlock(self, pin):
        self.check_pin(pin)
        self._unlocked_until = time.ticks_add(self._now(), _UNLOCK_MS)

    def lock(self):
        self._unlocked_until = None

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
        try:
            name, cmd = self.lookup(words[0])
        except UsageError as e:
            self.error(str(e))
            return
        if cmd is None:
            self.error("unknown command '%s' (try 'help')" % words[0][:32])
            return
        try:
            await self._dispatch(name, cmd, words)
        finally:
            self.drop_big()
            gc.collect()   # what the command built goes before the next one

    async def _dispatch(self, name, cmd, words):
        fn, e = cmd
        pin = e[3]
        args = None
        try:
            args = Args(words[1:], e[5] + ("pin", "last"))
            if pin == "*" or pin and args.pos and args.pos[0] in pin.split():
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

    # -- input -----------------------------------------------------------
    def _setup_io(self):
        try:
            import select
            p = select.poll()
            p.register(self.inp, select.POLLIN)
            self._poll = p
        except (ImportError, OSError, TypeError, AttributeError):
            self._poll = None
        self._read = self.inp.buffer.read if hasattr(self.inp, "buffer") else self.inp.read
        self.prompt, self._tty_saved = cli_editor.interactive(self.inp)
        if self.prompt:
            self.editor.echo = self._echo

    def restore_tty(self):
        cli_editor.restore(self._tty_saved)
        self._tty_saved = None

    def _byte(self):
        # The next console byte, None when none is waiting, -1 at end of input.
        if self._poll is None or not self._poll.poll(0):
            return None
        try:
            b = self._read(1)
        except OSError:   # the terminal went away (pty closed)
            return -1
        if not b:
            return -1
        return b[0] if isinstance(b, (bytes, bytearray)) else ord(b)

    def _enqueue(self, item):
        n = len(item) if isinstance(item, str) else 16
        if self._queued + n > _QUEUE_CHARS:
            self.error("input too fast: a line was dropped")
            return
        self._queue.append(item)
        self._queued += n

    def _dequeue(self):
        item = self._queue.pop(0)
        self._queued -= len(item) if isinstance(item, str) else 16
        return item

    def _pump(self):
        # Reads what is waiting (at most _BURST bytes, then the other tasks get
        # a turn). Finished lines go to the queue. -> "intr" on Ctrl-C, "eof" at
        # end of input, None otherwise.
        for _ in range(_BURST):
            c = self._byte()
            if c is None:
                return None
            if c < 0:
                return "eof"
            r = self.editor.feed(c)
            if r is None:
                continue
            if r is INTR:
                self._queue = []
                self._queued = 0
                return "intr"
            self._enqueue(r)
        return None

    async def ask(self, prompt, default=None, secret=False):
        # The next line typed at the console, for a dialog that runs as a
        # command (setup, factory-reset, cert load). Enter gives `default`
        # (when one is given). Ctrl-C cancels the dialog's task.
        shown = ""
        if default not in (None, ""):
            shown = " [%s]" % ("***" if secret else default)
        while True:
            self.out.write("%s%s: " % (prompt, shown))
            self._want = True
            self.editor.mask = secret
            try:
                while not self._queue:
                    await asyncio.sleep_ms(10)
            finally:
                self._want = False
                self.editor.mask = False
            a = self._dequeue()
            if isinstance(a, Exception):
                self.error(str(a))
                continue
            a = a.strip()
            if not a and default is not None:
                return default
            return a

    async def _run_abortable(self, coro):
        # Long commands (a bus scan, the wizard) run as their own task;
        # meanwhile the console keeps reading: Ctrl-C cancels, lines wait in
        # the queue (ask() takes them, else they run after the command).
        failed = []

        async def guarded():   # the error goes to _dispatch, not to asyncio's "Task exception wasn't retrieved"
            try:
                await coro
            except Exception as e:
                failed.append(e)
        task = asyncio.create_task(guarded())
        self.busy = task
        cli_editor.ctrl_c_as_byte(True)
        try:
            while not task.done():
                if self._pump() == "intr":
                    task.cancel()
                await asyncio.sleep_ms(10)
            try:
                await task
            except asyncio.CancelledError:
                self.write("aborted")
            if failed:
                raise failed[0]
        finally:
            cli_editor.ctrl_c_as_byte(False)
            self.busy = None

    def _show_prompt(self):
        if self.prompt:
            self.out.write("dicamm> ")

    async def run(self):
        self._setup_io()
        if self.prompt:
            self.write("DICAMM console: 'help' lists the commands, 'setup' commissions the device.")
            self._show_prompt()
        try:
            while True:
                if not self._queue:
                    st = self._pump()
                    if st == "eof":   # end of input: the firmware runs on without a console
                        while True:
                            await asyncio.sleep_ms(3600000)
                    if st == "intr":
                        self._show_prompt()
                    if not self._queue:
                        await asyncio.sleep_ms(10 if not self.editor.partial() else 5)
                    continue
                item = self._dequeue()
                if isinstance(item, Exception):
                    self.error(str(item))
                elif item:
                    gate = self.app.boundary_gate()
                    if gate is not None:  # a command (status, JSON, gc) is not let run across a boundary
                        await gate.wait_clear(_CMD_BLOCKS_MS)
                    try:
                        await self.handle(item)
                    except MemoryError as e:   # the console lives on
                        gc.collect()
                        self.error("not enough memory for '%s' now" % item[:32])
                        if UNIX:
                            sys.print_exception(e, sys.stderr)
                self._show_prompt()
                await asyncio.sleep_ms(0)  # let the other tasks run between lines
        finally:
            self.restore_tty()
