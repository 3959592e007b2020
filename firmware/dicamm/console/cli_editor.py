# The console's input, kept apart from the dispatcher in cli.py: the terminal's
# mode (character mode on a unix tty, so that Ctrl-C arrives as a byte and
# aborts a command instead of killing the firmware; Ctrl-C as a byte on a board
# while a command runs), the line editor (bytes in, finished lines out, with
# backspace, Ctrl-U, Ctrl-C, escape sequences skipped and a bounded line buffer
# allocated once) and the words of a line (split, Args). One module, not three:
# every module costs the console heap for good.
from micropython import const

from dicamm.errors import UsageError
from dicamm.platform import LINUX, UNIX

_MAX_LINE = const(512)
# Linux termios bits (MicroPython's termios module exports few names).
_LFLAG_OFF = const(0o100073)   # ISIG ICANON ECHO ECHOE ECHOK IEXTEN
_IFLAG_OFF = const(0o3740)     # ISTRIP INLCR IGNCR ICRNL IXON
_VMIN = const(6)
_VTIME = const(5)


def split(line):
    # Words separated by blanks; "double" or 'single' quotes keep blanks.
    # Works on the bytes: iterating a str makes a one-character str per
    # character, interned for good (a new qstr pool wants a big free block).
    out = []
    cur = None
    quote = 0
    for c in line.encode():
        if quote:
            if c == quote:
                quote = 0
            else:
                cur.append(c)
        elif c == 34 or c == 39:   # " '
            quote = c
            if cur is None:
                cur = bytearray()
        elif c == 32 or c == 9:    # blank, tab
            if cur is not None:
                out.append(bytes(cur).decode())
                cur = None
        else:
            if cur is None:
                cur = bytearray()
            cur.append(c)
    if quote:
        raise UsageError("unclosed quote")
    if cur is not None:
        out.append(bytes(cur).decode())
    return out


class LineEditor:
    # Console bytes in, finished lines out. Backspace edits, escape sequences
    # (arrow keys) are skipped, an over-long line is refused whole, CR LF counts
    # once. feed(c) -> None while typing, a str when Enter ends a line, a
    # UsageError for a line that cannot be used, or INTR for Ctrl-C.
    def __init__(self, echo=None):
        self.buf = bytearray(_MAX_LINE)
        self.n = 0
        self.overflow = False
        self.esc = 0
        self.last = 0
        self.echo = echo     # callable(bytes) when the console echoes, else None
        self.mask = False    # echo '*' (passwords)

    def partial(self):
        return self.n

    def drop(self):
        self.n = 0
        self.overflow = False
        self.esc = 0

    def feed(self, c):
        last = self.last
        self.last = c
        if self.esc and c in (3, 10, 13):
            self.esc = 0   # a broken sequence must not swallow the line end
        if self.esc:
            # ESC [ ... final byte 0x40-0x7E; ESC O x; ESC x
            if self.esc == 1:
                self.esc = 2 if c in (0x5B, 0x4F) else 0
            elif 0x40 <= c <= 0x7E:
                self.esc = 0
            return None
        if c == 27:
            self.esc = 1
            return None
        if c in (10, 13):
            if c == 10 and last == 13:
                return None
            if self.echo:
                self.echo(b"\n")
            n = self.n
            over = self.overflow
            self.drop()
            if over:
                return UsageError("line too long (max %d characters): ignored" % _MAX_LINE)
            try:
                return bytes(self.buf[:n]).decode()
            except UnicodeError:
                return UsageError("line is not text: ignored")
        if c == 3:
            self.drop()
            if self.echo:
                self.echo(b"^C\n")
            return INTR
        if c in (8, 127):
            if self.n and not self.overflow:
                self.n -= 1
                if self.echo:
                    self.echo(b"\b \b")
            return None
        if c == 21:  # Ctrl-U: kill the line
            if self.echo and self.n:
                self.echo(b"\b \b" * self.n)
            self.drop()
            return None
        if c < 32 and c != 9:
            return None   # other control characters: ignored
        if self.n < _MAX_LINE:
            self.buf[self.n] = c
            self.n += 1
            if self.echo:
                self.echo(b"*" if self.mask else bytes((c,)))
        elif not self.overflow:
            self.overflow = True
            if self.echo:
                self.echo(b"\a")
        return None


INTR = UsageError("interrupted")


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


# -- the terminal ------------------------------------------------------------
def interactive(stream):
    # -> (a person types here, saved tty settings or None). The board's USB
    # serial is a person with a terminal; on Linux a tty is switched to
    # character mode, a pipe gives lines as they come.
    if not UNIX:
        return True, None
    if LINUX:
        saved = raw(stream)
        return saved is not None, saved
    return False, None


def raw(stream):
    # stdin is a terminal (a person, or a test on a pty): character mode
    # without the tty's echo and signals. Output keeps its LF -> CR LF
    # mapping. -> the settings to restore, or None when not a terminal.
    try:
        import termios
        fd = stream.fileno()
        a = termios.tcgetattr(fd)
        saved = (fd, [a[0], a[1], a[2], a[3], a[4], a[5], list(a[6])])
        a[0] &= ~_IFLAG_OFF
        a[3] &= ~_LFLAG_OFF
        a[6][_VMIN] = 1
        a[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, a)
        return saved
    except Exception:
        return None


def restore(saved):
    # Give the terminal back as it was (before the process exits).
    if saved is not None:
        try:
            import termios
            termios.tcsetattr(saved[0], termios.TCSANOW, saved[1])
        except Exception:
            pass


def ctrl_c_as_byte(on):
    # On a board Ctrl-C normally raises KeyboardInterrupt (mpremote uses it
    # to stop the firmware). While a command runs it must abort just that
    # command, so it becomes an ordinary byte for that time.
    if not UNIX:
        try:
            import micropython
            micropython.kbd_intr(-1 if on else 3)
        except (ImportError, AttributeError):
            pass
