# The bench and the fault campaign in their short forms (tools/bench.py --quick,
# tools/campaign.py --hours): the figures are measured, not made up, and the
# campaign loses and duplicates nothing under bus faults, outages and kills.
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
sys.path.insert(0, os.path.join(ROOT, "tools"))

needs_broker = pytest.mark.skipif(not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")),
                                  reason="mosquitto is not installed")


def _run(args, timeout):
    p = subprocess.run([PY] + args, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, "no JSON from %s (exit %s):\n%s\n%s" % (args[0], p.returncode, p.stdout[-2000:], p.stderr[-3000:])
    return p.returncode, json.loads(lines[-1]), p.stderr


@needs_broker
def test_bench_quick(tmp_path):
    rc, r, err = _run(["tools/bench.py", "--quick", "--workdir", str(tmp_path / "bench")], 240)
    # the day ran: 2 device hours = 8 quarter hours with wire timing
    assert r["day_hours"] == 2.0 and r["qh_values"] >= 6, r
    assert r["qh_delay_ms_p50"] is not None and 0 <= r["qh_delay_ms_p50"] <= r["qh_delay_ms_max"]
    # a window switched the element: its start and stop reached the gateway
    assert r["events_measured"] >= 2 and r["event_latency_ms_p50"] > 0, r
    assert r["transactions"] >= 1
    assert r["flash_bytes_per_day"] > 0 and r["flash_writes_per_day"] > 0
    assert 0 < r["boot_to_first_reading_ms"] < 60000
    assert 16 < r["heap_peak_kib"] < 512
    # the wire agrees with the firmware's plan for the meter under test
    m = r["modbus_measured"]
    assert m["profile"] == "sdm630" and m["polls_on_wire"] > 0
    assert m["tx_per_poll"] == r["modbus_tx_per_poll"]["sdm630"]
    assert m["bytes_per_poll"] == r["modbus_bytes_per_poll"]["sdm630"]
    for name, tx in r["modbus_tx_per_poll"].items():
        assert r["modbus_least_tx_per_poll"][name] <= tx
    # the heap search ran days at several heap sizes
    runs = r["heap_search"]["mpy"]["runs"]
    assert runs and all(x["heap_kib"] > 0 for x in runs)
    if r.get("heap_min_kib") is not None:
        assert any(x["passes"] and x["heap_kib"] == r["heap_min_kib"] for x in runs)


@needs_broker
def test_campaign_short(tmp_path):
    rc, r, err = _run(["tools/campaign.py", "--hours", "3", "--kills", "5", "--speed", "720",
                       "--workdir", str(tmp_path / "camp"), "--seed", "7"], 240)
    assert r["kills"] == 5
    assert r["bus_faults_injected"] > 0 and r["bus_transactions"] > r["bus_faults_injected"]
    assert r["han_outages"] >= 1 and r["broker_outages"] >= 1 and r["sntp_episodes"] >= 1
    assert r["records"]["quarter_hours"] >= 10 and r["records"]["events"] >= 1
    assert r["lost"] == 0 and r["duplicated"] == 0, r
    assert r["events"]["in_order"] and r["events"]["lost"] == 0
    assert r["qh"]["from_corrupt_frames"] == 0 and r["events"]["from_corrupt_frames"] == 0
    assert r["transactions"]["chain_ok"] and r["transactions"]["from_corrupt_frames"] == 0
    assert not r["relay"]["violations"]
    assert r["problems"] == [] and r["ok"] and rc == 0, err[-2000:]
