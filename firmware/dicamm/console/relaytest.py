# `relay test`: switch the element on as the installer, watch the metered power
# rise, switch it off again (after the minimum on time), watch it fall, and
# report PASS or FAIL - the check an installer makes after wiring the relay.
# Waits are in real ms (they watch the wire), stretched by the protection times
# converted from device time.
from dicamm.platform import asyncio

import time

_POWER_WAIT_MS = 15000
_SWITCH_WAIT_MS = 5000


async def _wait_power(m, pred, real_ms):
    start = time.ticks_ms()
    last = None
    while time.ticks_diff(time.ticks_ms(), start) < real_ms:
        try:
            r, _, _ = await m.read_now()
            last = r["power_w"]
            if pred(last):
                return True, last
        except Exception:
            pass
        await asyncio.sleep_ms(200)
    return False, last


async def _wait_state(c, want, real_ms):
    # -> the controller status once the output is in the wanted state, or the
    # last status at the deadline (or as soon as something else rules it).
    start = time.ticks_ms()
    st = c.status()
    while time.ticks_diff(time.ticks_ms(), start) < real_ms:
        st = c.status()
        if st.get("state") == want:
            return st
        if want == "on" and st.get("source") != "installer" and st.get("wanted") != "on":
            return st  # outranked (grid operator, safety): no use waiting
        await asyncio.sleep_ms(50)
    return st


def _report(con, args, res):
    if args.json:
        import json
        con.write(json.dumps(res))
        return
    con.write("relay test %s: %s" % (res["result"], res["detail"]))


async def run(con, args):
    app = con.app
    c = app.controller
    m = app.metering
    if m is None:
        con.write("relay test needs the meter: configure it first")
        return
    nominal = app.config.get("relay.nominal_w")
    share = app.config.get("relay.plausibility_share")
    thr = nominal * share
    clock = app.clock
    before = m.reading["power_w"] if m.reading else 0
    res = {"before_w": before, "threshold_w": int(thr), "on_w": None, "off_w": None,
           "rise_ok": False, "fall_ok": False}
    app.commands.execute("relay", {"mode": "on", "minutes": 5})
    try:
        st = await _wait_state(c, "on", _SWITCH_WAIT_MS)
        if st.get("state") != "on":
            res["result"] = "FAIL" if st.get("source") == "safety" else "NOT RUN"
            res["detail"] = "cannot switch on now: %s (ruled by %s%s)" % (
                st.get("deferred") or "outranked", st.get("source"),
                "; faults %s" % ", ".join(st["faults"]) if st.get("faults") else "")
            _report(con, args, res)
            return
        ok_on, p_on = await _wait_power(m, lambda p: p - before >= thr, _POWER_WAIT_MS)
        res["on_w"], res["rise_ok"] = p_on, ok_on
        app.commands.execute("relay", {"mode": "off", "minutes": 1})
        # the minimum on time may hold the relay on a while (device time)
        await _wait_state(c, "off", _SWITCH_WAIT_MS + clock.real_ms_for(c.settings["min_on_s"] * 1000))
        ok_off, p_off = await _wait_power(m, lambda p: p - before < thr, _POWER_WAIT_MS)
        res["off_w"], res["fall_ok"] = p_off, ok_off
    finally:
        app.commands.execute("relay", {"mode": "auto"})
    res["result"] = "PASS" if res["rise_ok"] and res["fall_ok"] else "FAIL"
    res["detail"] = "before %s W, on %s W (%s), off %s W (%s)" % (
        before, res["on_w"], "rise ok" if res["rise_ok"] else
        "NO POWER RISE of %d W - element, wiring or thermostat" % thr,
        res["off_w"], "fall ok" if res["fall_ok"] else "POWER STAYS - relay welded?")
    _report(con, args, res)
