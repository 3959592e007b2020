# The control box contact (drivers/contact.py): polarity, debounce in real ms,
# an input fault, and the unix port's file. Dual test.
import os

from dicamm.drivers.contact import Contact, FileContact, MissingInput, PinContact


class Raw:
    def __init__(self, v):
        self.v = v

    def closed(self):
        return self.v


class Pin:
    def __init__(self, v):
        self.v = v

    def value(self):
        return self.v


# (polarity, [(real ms, raw closed), ...], [expected read() after each])
CASES = [
    # normally open: closed = limit; a bounce shorter than 200 ms is ignored
    ("no", [(0, False), (100, True), (150, False), (180, True), (250, True), (379, True), (380, True),
            (500, False), (699, False), (700, False)],
     [False, False, False, False, False, False, True, True, True, False]),
    # normally closed: open = limit, so a broken wire limits
    ("nc", [(0, True), (10, False), (209, False), (210, False), (300, True), (510, True)],
     [False, False, False, True, True, False]),
    # the first reading counts at once (start-up): limited before anything switches on
    ("nc", [(0, False)], [True]),
    ("no", [(0, True)], [True]),
    # an input fault, debounced like any reading
    ("no", [(0, False), (10, None), (100, None), (210, None), (220, False), (420, False)],
     [False, False, False, None, None, False]),
]


def test_polarity_and_debounce():
    for polarity, samples, want in CASES:
        raw = Raw(None)
        c = Contact(raw, polarity, 200)
        got = []
        for t, v in samples:
            raw.v = v
            got.append(c.read(t))
        assert got == want, (polarity, samples, got)


def test_bounces_counted_and_wrapping_ticks():
    raw = Raw(False)
    c = Contact(raw, "no", 50)
    t0 = 0x3FFFFFF0     # near the ticks wrap of a port's ticks_ms: ticks_diff copes
    c.read(t0)
    for i, v in enumerate((True, False, True, False)):
        raw.v = v
        c.read(t0 + 10 * (i + 1))
    assert c.state is False and c.bounces >= 2


def test_pin_and_missing_inputs():
    assert PinContact(Pin(0), active_low=True).closed() is True
    assert PinContact(Pin(1), active_low=True).closed() is False
    assert PinContact(Pin(1)).closed() is True
    m = MissingInput("board x declares no dso_input")
    assert m.closed() is None and Contact(m, "nc", 10).read(0) is None
    try:
        Contact(Raw(True), "maybe", 10)
    except ValueError:
        pass
    else:
        raise AssertionError("bad polarity accepted")


def test_file_contact():
    path = "/tmp/dicamm_contact_%s" % "".join("%02x" % b for b in os.urandom(4))
    f = FileContact(path)
    assert f.closed() is None                  # no file: an input fault
    for text, want in (("1", True), ("0", False), ("1\n", True), ("", None), ("x", None), ("10", None)):
        with open(path, "w") as fh:
            fh.write(text)
        assert f.closed() is want, (text, f.closed())
    os.remove(path)
