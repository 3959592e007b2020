"""Run the firmware on the MicroPython unix port as a child process and talk
to its console like a test script would. Used by the integration tests, the
bench simulation and the benchmark."""
import json
import os
import queue
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # repo root
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MAIN = os.path.join(ROOT, "firmware", "main.py")
# The heap of the firmware run from source (firmware/main.py) on the 64-bit
# interpreter, as the tests and `make sim` run it: about twice the smallest heap
# in which a day passes in that form (400 KiB, `make bench`, heap_min_kib_py).
# At 512 KiB a console group compiled from source late in a day of commands
# found no hole of the ~3 KiB its compiler needs among 170 KiB free in pieces
# ("not enough memory to load 'config' now", test_e2e_mqtt, 1 of about 12 CI
# runs). The board's own memory is guarded elsewhere: frozen into the 32-bit
# build in 96 KiB (host_tests/test_frozen32_day.py).
PY_HEAP = "768k"


class Firmware:
    def __init__(self, root_dir, config=None, clock=None, heap=PY_HEAP, board="unix"):
        self.root_dir = str(root_dir)
        os.makedirs(self.root_dir, exist_ok=True)
        if config is not None:
            with open(os.path.join(self.root_dir, "config.json"), "w") as f:
                json.dump(config, f)
        self.clock = clock
        self.heap = heap
        self.board = board
        self.proc = None
        self.lines = queue.Queue()
        self.stderr = []
        self.transcript = []

    def start(self):
        argv = [MICROPYTHON, "-X", "heapsize=%s" % self.heap, MAIN, "--board", self.board, "--root", self.root_dir]
        if self.clock is not None:
            argv += self.clock.args()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     bufsize=0)
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        return self

    def _pump(self, stream, q):
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            self.transcript.append(line)
            q.put(line)
        q.put(None)

    def _pump_err(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self.stderr.append(raw.decode(errors="replace"))

    def send(self, line):
        data = line if isinstance(line, bytes) else (line + "\n").encode()
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def drain(self):
        while True:
            try:
                self.lines.get_nowait()
            except queue.Empty:
                return

    def command(self, line, timeout=20):
        """Send a command; return its output lines (up to an echo marker)."""
        self.drain()
        marker = "end-of-output-%d" % time.monotonic_ns()
        self.send(line)
        self.send("echo " + marker)
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer to %r; got %r; stderr %s" % (line, out, "".join(self.stderr[-20:])))
            try:
                got = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if got is None:
                raise RuntimeError("firmware exited: %s" % "".join(self.stderr[-30:]))
            if got.endswith(marker):
                return out
            out.append(got)

    def json(self, line, timeout=20):
        out = self.command(line, timeout)
        for got in out:
            s = got[got.find("{"):] if "{" in got else ""
            try:
                return json.loads(s)
            except ValueError:
                continue
        raise AssertionError("no JSON answer to %r: %r" % (line, [g[:300] for g in out[-5:]]))

    def wait_for(self, line, pred, timeout=30, interval=0.2):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.json(line)
            if pred(last):
                return last
            time.sleep(interval)
        raise AssertionError("timed out waiting on %r; last answer %r" % (line, last))

    def wait_ready(self, timeout=60):
        """Wait until the console answers `status --json` (the firmware is up); return that answer."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("firmware not up after %d s; stderr %s" % (timeout, "".join(self.stderr[-20:])))
            try:
                return self.json("status --json", timeout=min(left, 10))
            except (TimeoutError, AssertionError):
                continue

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
