# The console's terminal: character mode on a unix tty (so that Ctrl-C arrives
# as a byte and aborts a command instead of killing the firmware) and Ctrl-C as
# an ordinary byte on a board while a command runs. Kept apart from the
# dispatcher in cli.py; the platform checks come from dicamm.platform.
from micropython import const

from dicamm.platform import LINUX, UNIX

# Linux termios bits (MicroPython's termios module exports few names).
_LFLAG_OFF = const(0o100073)   # ISIG ICANON ECHO ECHOE ECHOK IEXTEN
_IFLAG_OFF = const(0o3740)     # ISTRIP INLCR IGNCR ICRNL IXON
_VMIN = const(6)
_VTIME = const(5)


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
