"""The console as a person meets it: the firmware on the MicroPython unix port
with stdin/stdout on a pty (os.openpty), driven by typing lines and reading
the prompt. PtyFirmware is shared by the other test_cli_*.py files.

Here: the prompt and echo, help for every command and alias, line editing,
and typed-ahead lines while a long command runs."""
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import MICROPYTHON, ROOT
from fwproc import PY_HEAP

MAIN = os.path.join(ROOT, "firmware", "main.py")
PROMPT = "dicamm> "

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="MicroPython unix port not installed")]


class PtyFirmware:
    """The firmware with its console on a pty; output collected by a thread
    (so the firmware never blocks on a full pty), searched with expect()."""

    def __init__(self, root, clock=None, heap=PY_HEAP):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.clock = clock
        self.heap = heap
        self.buf = ""
        self.pos = 0
        self.cond = threading.Condition()
        self.proc = None
        self.master = None
        self.closed = False
        self.stderr = b""

    def start(self):
        master, slave = os.openpty()
        argv = [MICROPYTHON, "-X", "heapsize=%s" % self.heap, MAIN, "--board", "unix", "--root", self.root]
        if self.clock is not None:
            argv += self.clock.args()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=subprocess.PIPE, close_fds=True)
        os.close(slave)
        self.master = master
        threading.Thread(target=self._reader, daemon=True).start()
        threading.Thread(target=self._err, daemon=True).start()
        self.expect(PROMPT, timeout=60)
        return self

    def _reader(self):
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.buf += data.decode("utf-8", errors="replace").replace("\r\n", "\n")
                self.cond.notify_all()

    def _err(self):
        self.stderr = self.proc.stderr.read()

    # -- typing ----------------------------------------------------------------
    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        for i in range(0, len(data), 512):   # a terminal sends at its own pace
            os.write(self.master, data[i:i + 512])
            if len(data) > 512:
                time.sleep(0.005)

    def type(self, line):
        """Type a line and press Enter (a terminal sends CR)."""
        self.write(line + "\r")

    def ctrl_c(self):
        self.write(b"\x03")

    # -- reading ------------------------------------------------------------------
    def expect(self, pattern, timeout=30):
        """Wait for `pattern` (a plain string or a compiled regex) after the
        last match; returns the text up to and including it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if isinstance(pattern, str):
                    i = self.buf.find(pattern, self.pos)
                    end = i + len(pattern) if i >= 0 else -1
                else:
                    m = pattern.search(self.buf, self.pos)
                    end = m.end() if m else -1
                if end >= 0:
                    out = self.buf[self.pos:end]
                    self.pos = end
                    return out
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError("waited for %r; got %r; stderr %r" % (
                        pattern, self.buf[self.pos:][-3000:], self.stderr[-2000:]))
                self.cond.wait(min(left, 0.5))

    def command(self, line, timeout=30):
        """Type a command, wait for the next prompt; -> the output lines
        (without the echoed command line)."""
        self.type(line)
        out = self.expect(PROMPT, timeout)
        lines = out[:-len(PROMPT)].split("\n")
        return [ln for ln in lines[1:] if ln.strip()]

    def json(self, line, timeout=30):
        for ln in self.command(line, timeout):
            if ln.startswith("{"):
                return json.loads(ln)
        raise AssertionError("no JSON answer to %r" % line)

    def polls(self):
        d = self.json("status --json")
        return d.get("bus", {}).get("polls", 0)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout=20):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.master is not None:
            try:
                os.close(self.master)
            except OSError:
                pass
            self.master = None


@pytest.fixture
def fw(tmp_path):
    f = PtyFirmware(tmp_path / "device").start()
    yield f
    f.stop()


def test_prompt_echo_and_help_for_every_command(fw):
    fw.type("help --json")
    out = fw.expect(PROMPT)
    assert out.startswith("help --json\n"), out        # the console echoes what is typed
    d = json.loads(out.split("\n")[1])
    names = d["commands"]
    for want in ("status", "meter", "config", "log", "unlock", "net", "cert", "selftest", "setup", "reboot",
                 "factory-reset", "relay", "time", "qh"):
        assert want in names
    for name in names:
        lines = fw.command("help " + name)
        assert lines and lines[0].startswith(name + ": ") and len(lines[0]) > len(name) + 10, (name, lines)
    for alias, target in d["aliases"].items():
        lines = fw.command("help " + alias)
        assert lines[0].startswith(target + ": "), (alias, lines)
    # help config lists every key with its type and range
    lines = fw.command("help config")
    assert any(ln.strip().startswith("meter.baud int one of") for ln in lines)
    assert any("service.pin digits" in ln and "(secret)" in ln for ln in lines)


def test_line_editing(fw):
    # backspace, an arrow key (escape sequence) and Ctrl-U are edited away
    fw.write(b"ecxo\x08\x08ho one\x1b[A two\r")
    out = fw.expect(PROMPT)
    assert "\none two\n" in out, out
    fw.write(b"rubbish\x15echo three\r")
    assert "\nthree\n" in fw.expect(PROMPT)
    # Ctrl-C drops a half-typed line and gives a fresh prompt
    fw.write(b"factory-re\x03")
    fw.expect("^C\n" + PROMPT)
    assert fw.command("echo four") == ["four"]
    # CR LF counts as one line end: one prompt per line
    fw.write(b"echo five\r\n")
    out = fw.expect(PROMPT)
    assert "five" in out
    assert fw.command("echo six") == ["six"]


def test_aliases_and_read_only_json(fw):
    assert fw.json("st --json")["firmware"]
    d = fw.json("net --json")
    assert d["kind"] == "host" and "unix port" in d["summary"]
    d = fw.json("cert --json")
    assert [r["key"] for r in d["certs"]] == ["han.ca", "han.cert", "han.key", "mqtt.ca", "mqtt.cert", "mqtt.key"]
    assert all(r["state"] == "not set" for r in d["certs"])
    d = fw.json("selftest --json")
    checks = {r["check"]: r for r in d["checks"]}
    assert d["ok"] is False
    assert checks["meter"]["result"] == "FAIL" and "not configured" in checks["meter"]["detail"]
    assert checks["storage"]["result"] == "PASS"
    assert fw.json("config show meter --json")["meter.baud"] == 9600


def test_factory_reset_asks_and_reboot_exits(fw, tmp_path):
    fw.command("config set cls_id CLS-KEEP-1")
    fw.type("factory-reset")   # the question is answered on the next line
    fw.expect("type yes to erase everything: ")
    fw.type("no")
    fw.expect("factory reset cancelled\n" + PROMPT)
    assert json.load(open(tmp_path / "device" / "config.json"))["cls_id"] == "CLS-KEEP-1"
    fw.type("factory-reset")
    fw.expect("type yes to erase everything: ")
    fw.type("yes")
    fw.expect("the firmware exits now")
    assert fw.wait_exit() == 0
    assert not os.path.exists(tmp_path / "device" / "config.json")
    assert not os.path.exists(tmp_path / "device" / "data")
