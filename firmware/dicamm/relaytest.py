# `relay test`: switch the element on as the installer, watch the metered power
# rise, switch it off again, and report - the check an installer makes after
# wiring the relay.
try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

import time


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


async def run(con, args):
    app = con.app
    c = app.controller
    m = app.metering
    if m is None:
        con.write("relay test needs the meter: configure it first")
        return
    nominal = app.config.get("relay.nominal_w")
    share = app.config.get("relay.plausibility_share")
    before = m.reading["power_w"] if m.reading else 0
    app.commands.execute("relay", {"mode": "on", "minutes": 5})
    start = time.ticks_ms()
    st = c.status()
    while st.get("state") != "on" and not st.get("deferred") and time.ticks_diff(time.ticks_ms(), start) < 3000:
        await asyncio.sleep_ms(50)
        st = c.status()
    if st.get("state") != "on":
        con.write("relay test: switching on is deferred: %s" % (st.get("deferred") or st.get("source")))
        app.commands.execute("relay", {"mode": "auto"})
        return
    ok_on, p_on = await _wait_power(m, lambda p: p - before >= nominal * share, 15000)
    app.commands.execute("relay", {"mode": "off", "minutes": 1})
    ok_off, p_off = await _wait_power(m, lambda p: p - before < nominal * share, 15000)
    app.commands.execute("relay", {"mode": "auto"})
    res = {"on_w": p_on, "off_w": p_off, "before_w": before, "rise_ok": ok_on, "fall_ok": ok_off}
    if args.json:
        import json
        con.write(json.dumps(res))
    else:
        con.write("relay test: before %s W, on %s W (%s), off %s W (%s)" % (
            before, p_on, "PASS" if ok_on else "FAIL: no power rise - element, wiring or thermostat",
            p_off, "PASS" if ok_off else "FAIL: power stays - relay welded?"))
