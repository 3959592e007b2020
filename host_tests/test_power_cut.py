# Power cut at random instructions: a MicroPython writer appends numbered records
# as fast as it can and is killed with SIGKILL at random moments; after each cut
# the journal is reopened under MicroPython and checked. Every record whose
# append() returned (the writer printed "committed N") must be there exactly
# once, in order, without gaps, and numbering must go on from there.
import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import FIRMWARE, MICROPYTHON

pytestmark = pytest.mark.slow  # runs the firmware or emulators as processes

_CUTS = 25
_MAX_BYTES = 6000
_SEG_BYTES = 1000

WRITER = r"""
import sys
sys.path.insert(0, %(fw)r)
from dicamm.drivers.journal import Journal
j = Journal(%(dir)r, "pc", %(mb)d, %(sb)d)
print("start %%d" %% j.next_seq)
while True:
    n = j.next_seq
    s = j.append(b"v%%d|" %% n + b"." * (n %% 40))
    print("committed %%d" %% s)
"""

CHECKER = r"""
import sys, json
sys.path.insert(0, %(fw)r)
from dicamm.drivers.journal import Journal
j = Journal(%(dir)r, "pc", %(mb)d, %(sb)d)
seqs = []
bad = []
for s, p in j.records():
    if p != b"v%%d|" %% s + b"." * (s %% 40):
        bad.append(s)
    seqs.append(s)
info = j.info()
info["bad"] = bad
info["n"] = len(seqs)
info["lo"] = seqs[0] if seqs else None
info["hi"] = seqs[-1] if seqs else None
info["gaps"] = [seqs[i] for i in range(1, len(seqs)) if seqs[i] != seqs[i - 1] + 1]
print(json.dumps(info))
"""


def _run_writer(script, early, delay):
    # early: cut at a random moment after spawn (may hit start-up recovery);
    # else: wait until the journal is open, then cut while appending.
    # bufsize=0: readline() must not read ahead of what communicate() collects
    p = subprocess.Popen([MICROPYTHON, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    first = b""
    if not early:
        first = p.stdout.readline()
    time.sleep(delay)
    os.kill(p.pid, signal.SIGKILL)
    out, err = p.communicate()
    assert p.returncode == -signal.SIGKILL, err
    lines = (first + out).decode(errors="replace").split("\n")
    start = int(lines[0].split()[1]) if lines and lines[0].startswith("start ") else None
    committed = [int(x.split()[1]) for x in lines if x.startswith("committed ") and x.split()[1].isdigit()]
    return start, committed


def test_power_cut_at_random_moments(tmp_path):
    rnd = random.Random(int(os.environ.get("POWER_CUT_SEED", "20250611")))
    d = str(tmp_path / "journal")
    args = {"fw": FIRMWARE, "dir": d, "mb": _MAX_BYTES, "sb": _SEG_BYTES}
    writer = tmp_path / "writer.py"
    writer.write_text(WRITER % args)
    checker = tmp_path / "checker.py"
    checker.write_text(CHECKER % args)

    last_hi = 0          # highest seq seen on flash after the previous cut
    torn = 0
    total_committed = 0
    cuts_with_commits = 0
    for cut in range(_CUTS):
        early = cut % 4 == 0
        start, committed = _run_writer(str(writer), early, rnd.uniform(0.0, 0.05 if early else 0.3))
        if start is not None:
            # numbering goes on after the last record that reached flash
            assert start == last_hi + 1, (cut, start, last_hi)
        if committed:
            cuts_with_commits += 1
            total_committed += len(committed)
            assert committed == list(range(committed[0], committed[-1] + 1)), cut
            assert committed[0] == last_hi + 1, (cut, committed[0], last_hi)
        r = subprocess.run([MICROPYTHON, str(checker)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        info = json.loads(r.stdout.strip().splitlines()[-1])
        assert info["bad"] == [] and info["gaps"] == [], (cut, info)
        assert info["corrupt"] == 0, (cut, info)
        torn += info["recovered_torn"]
        if info["n"] == 0:      # cut before the very first append reached flash
            assert last_hi == 0 and not committed and info["next_seq"] == 1, (cut, info)
            continue
        assert info["lo"] == info["first_seq"] and info["hi"] == info["next_seq"] - 1, (cut, info)
        if committed:
            # every committed record is there (unless evicted by size), and at
            # most one more: the append that returned just before the kill
            assert info["hi"] in (committed[-1], committed[-1] + 1), (cut, committed[-1], info)
        else:
            assert info["hi"] in (last_hi, last_hi + 1), (cut, info)
        assert info["bytes"] <= _MAX_BYTES
        if info["hi"] > 400:
            # eviction took whole oldest segments only, and no more than needed
            assert info["bytes"] >= _MAX_BYTES - _SEG_BYTES - 60, (cut, info)
        last_hi = info["hi"]
    assert cuts_with_commits >= _CUTS * 3 // 4 - 2
    print("power cut: %d cuts, %d committed appends, %d torn tails recovered, last seq %d"
          % (_CUTS, total_committed, torn, last_hi))
