#!/usr/bin/env python3
"""Time and heap of one ECDSA P-256 signature (dicamm.proto.p256) on MicroPython.

Runs a unix micropython (the 64-bit one of the venv, and a 32-bit build such as
build/frozen-unix32/micropython when given) on the signing of an OCMF-sized
payload: ms per signature (mean of 10), bytes allocated by one signature (GC
churn, not held), the smallest -X heapsize (KiB) in which the import of the
module and one signature succeed, and what of it the signature needs beyond the
import alone (sign_heap_kib). Printed as JSON; `make bench` takes it too.

  tools/sign_bench.py [--micropython PATH] [--micropython32 PATH]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_MP = os.path.join(ROOT, ".venv", "bin", "micropython")

_SCRIPT = """
import sys, gc, time
sys.path.insert(0, %r)
from dicamm.proto import p256
d = p256.private_from_seed(bytes(range(32)))
msg = b'{"FV":"1.4","GI":"DICAMM","PG":"T1","RD":[]}' * 14
gc.collect()
a0 = gc.mem_alloc()
sig = p256.sign(d, msg) if %d else None
churn = gc.mem_alloc() - a0
n = %d
t0 = time.ticks_us()
for _ in range(n):
    p256.sign(d, msg)
us = time.ticks_diff(time.ticks_us(), t0) // n if n else 0
print("RESULT", us, churn)
"""


def _run(mp, heap_kib, n, sign=True):
    script = _SCRIPT % (os.path.join(ROOT, "firmware"), 1 if sign else 0, n if sign else 0)
    r = subprocess.run([mp, "-X", "heapsize=%dk" % heap_kib, "-c", script], capture_output=True, text=True,
                       timeout=120)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT"):
            _, us, churn = line.split()
            return int(us), int(churn)
    return None


def _min_heap(mp, sign):
    lo, hi = 2, 256  # lo fails (or untested), hi passes
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _run(mp, mid, 1, sign) is not None:
            hi = mid
        else:
            lo = mid
    return hi


def measure(mp, n=10):
    got = _run(mp, 256, n)
    if got is None:
        return {"error": "signing failed on %s" % mp}
    with_sign, base = _min_heap(mp, True), _min_heap(mp, False)
    return {"sign_ms": round(got[0] / 1000, 2), "sign_alloc_bytes": got[1], "min_heap_kib": with_sign,
            "sign_heap_kib": with_sign - base}


def figures(mp=None, mp32=None):
    out = {"ecdsa_p256": measure(mp or DEFAULT_MP)}
    if mp32:
        out["ecdsa_p256_32bit"] = measure(mp32)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--micropython", default=DEFAULT_MP)
    ap.add_argument("--micropython32", default=os.environ.get("DICAMM_FROZEN32_MICROPYTHON"))
    a = ap.parse_args(argv)
    print(json.dumps(figures(a.micropython, a.micropython32), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
