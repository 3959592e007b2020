#!/usr/bin/env python3
"""Latency of one TAF16 post over mutual TLS: on a new connection and on a kept one.

Runs a unix micropython (the 64-bit one of the venv, and a 32-bit build such as
build/frozen-unix32/micropython when given) with the firmware's HanClient against
the gateway emulator (tools/han_emu.py, a test PKI from tools/mkpki.sh) on this
host: N posts with han.idle_s 0 (a TCP connect and a mutual-TLS handshake each)
and N posts over one kept connection (HTTP/1.1 keep-alive; the first of them opens
it and is not counted). Real ms per post (call to acknowledgement) as p50 and max,
and the connections opened. Printed as JSON; `make bench` takes it too. The host's
CPU is far faster than an ESP32's, so the difference there is larger.

  tools/han_bench.py [--micropython PATH] [--micropython32 PATH] [--n 20] [--curve prime256v1]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_MP = os.path.join(ROOT, ".venv", "bin", "micropython")

_SCRIPT = r"""
import sys, json, time, asyncio
sys.path.insert(0, %(fw)r)
from dicamm.drivers.han_client import HanClient
cfg = json.load(open(sys.argv[1]))
async def series(idle_s, n, tag):
    c = dict(cfg)
    c["han.idle_s"] = idle_s
    han = HanClient.from_config(c)
    ms = []
    for i in range(n):
        ev = {"uuid": "%%08x-0000-4000-8000-%%012d" %% (tag, i), "text": "bench %%d" %% i,
              "timestamp": 1700000000 + i, "time_status": "S", "error_ms": 5}
        t0 = time.ticks_us()
        await han.post_event(ev)
        ms.append(time.ticks_diff(time.ticks_us(), t0) / 1000)
    han.close()
    return ms, han.status()
async def main():
    n = cfg["n"]
    new, st_new = await series(0, n, 1)
    kept, st_kept = await series(60, n + 1, 2)
    print("RESULT " + json.dumps({"new": new, "kept": kept[1:], "st_new": st_new, "st_kept": st_kept}))
asyncio.run(main())
"""


def _pct(v, p):
    v = sorted(v)
    return round(v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))], 2)


def measure(mp, pki, port, n, workdir):
    script = os.path.join(workdir, "han_bench_%d.py" % os.getpid())
    conf = script[:-3] + ".json"
    with open(script, "w") as f:
        f.write(_SCRIPT % {"fw": os.path.join(ROOT, "firmware")})
    with open(conf, "w") as f:
        json.dump({"n": n, "cls_id": "CLS-BENCH", "han.url": "https://127.0.0.1:%d/taf16" % port,
                   "han.ca": os.path.join(pki, "ca.pem"), "han.cert": os.path.join(pki, "device.pem"),
                   "han.key": os.path.join(pki, "device.key.pem"), "han.timeout_ms": 10000}, f)
    r = subprocess.run([mp, script, conf], capture_output=True, text=True, timeout=300)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            d = json.loads(line[7:])
            return {"posts": n, "new_ms_p50": _pct(d["new"], 50), "new_ms_max": _pct(d["new"], 100),
                    "kept_ms_p50": _pct(d["kept"], 50), "kept_ms_max": _pct(d["kept"], 100),
                    "connects_new": d["st_new"]["connects"], "connects_kept": d["st_kept"]["connects"],
                    "reused": d["st_kept"]["reused"]}
    return {"error": "HAN bench failed on %s: %s" % (mp, (r.stdout + r.stderr)[-300:])}


def figures(mp=None, mp32=None, n=20, curve="prime256v1"):
    with tempfile.TemporaryDirectory(prefix="han_bench") as d:
        pki = os.path.join(d, "pki")
        os.makedirs(pki)
        subprocess.run(["sh", os.path.join(HERE, "mkpki.sh"), pki, curve], check=True, capture_output=True)
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "han_emu.py"), "--port", "0", "--pki", pki,
                              "--store", os.path.join(d, "store.jsonl"), "--conn", "keep", "--quiet"],
                             stdout=subprocess.PIPE, text=True)
        try:
            port = json.loads(p.stdout.readline())["port"]
            out = {"han_post": measure(mp or DEFAULT_MP, pki, port, n, d)}
            if mp32:
                out["han_post_32bit"] = measure(mp32, pki, port, n, d)
        finally:
            p.terminate()
            p.wait(10)
    out["han_post_note"] = ("real ms per TAF16 post on this host, mutual TLS (%s): a new connection each "
                            "(TCP + handshake) and a kept one (HTTP/1.1 keep-alive)" % curve)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--micropython", default=DEFAULT_MP)
    ap.add_argument("--micropython32", default=os.environ.get("DICAMM_FROZEN32_MICROPYTHON"))
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--curve", default="prime256v1")
    a = ap.parse_args(argv)
    print(json.dumps(figures(a.micropython, a.micropython32, a.n, a.curve), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
