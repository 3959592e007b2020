# The console's line editor: bytes from the serial console in, finished lines
# out, with backspace, Ctrl-U, Ctrl-C, escape sequences skipped and a bounded
# line buffer allocated once. Kept apart from the dispatcher in cli.py.
from micropython import const

from dicamm.errors import UsageError

_MAX_LINE = const(512)


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
