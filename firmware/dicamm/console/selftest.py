# `selftest`: the installer's proof that the device works, one check per part:
# meter reachable and plausible, time synchronised, relay without faults,
# gateway reachable over TLS (a real handshake to han.url), broker reachable
# (CONNACK, or the running link's state), storage healthy. Every check returns
# PASS, FAIL or SKIP with the reason; none raises and each has a deadline.
# Loaded only when used (cli_service, setup wizard).
import json
import os

from dicamm.platform import asyncio

from micropython import const

from dicamm.errors import DicammError, LinkError

_CHECK_MS = const(15000)
_MIN_FREE = const(32768)
_MAX_POWER_W = const(250000)


def _res(name, status, detail):
    return {"check": name, "result": status, "detail": detail}


async def check_meter(app):
    cfg = app.config
    m = app.metering
    if m is not None:
        r, t, st = await m.read_now()
    elif cfg.get("meter.model"):
        from dicamm.console import scan
        r = await scan.try_meter(app, cfg.get("meter.model"), cfg.get("meter.address"),
                                 cfg.get("meter.baud"), cfg.get("meter.parity"))
    else:
        return _res("meter", "FAIL", "not configured: 'setup' or 'meter set MODEL ADDRESS BAUD'")
    p, imp, exp = r["power_w"], r["import_wh"], r["export_wh"]
    where = "%s @%s" % (r.get("model"), r.get("address"))
    if abs(p) > _MAX_POWER_W or imp < 0 or exp < 0:
        return _res("meter", "FAIL", "%s answers but values are implausible (%s W, %s Wh): wrong model?" % (where, p, imp))
    v = r.get("voltage_v")
    if v is not None and not 80 <= v <= 300:
        return _res("meter", "FAIL", "%s: voltage %.0f V implausible: check the meter's mains wiring or model" % (where, v))
    return _res("meter", "PASS", "%s: %d W, import %d Wh, export %d Wh%s" % (
        where, p, imp, exp, "" if v is None else ", %.0f V" % v))


async def check_time(app):
    tk = app.timekeeper
    d = tk.info() if tk.status() == "S" else await tk.sync_now()
    if d["status"] == "S":
        return _res("time", "PASS", "synchronised with %s, offset %s ms%s" % (
            d.get("source"), d.get("offset_ms"), " (one source only)" if d.get("single_source") else ""))
    return _res("time", "FAIL", "status %s: %s" % (d["status"], d.get("last_error") or "no time source answered") +
                "; check time.gateway / time.servers and the network")


async def check_relay(app):
    c = app.controller
    if c is None:
        return _res("relay", "FAIL", "no relay output")
    st = c.status()
    faults = st.get("faults") or {}
    if faults:
        k = sorted(faults)[0]
        return _res("relay", "FAIL", "%s fault: %s" % (k, faults[k].get("detail") if isinstance(faults[k], dict) else faults[k]))
    fb = c.output.feedback()
    if fb is None:
        how = "no feedback contact: use 'relay test' to prove the element draws power"
    else:
        how = "feedback contact agrees"
    return _res("relay", "PASS", "%s, ruled by %s; %s" % (st.get("state"), st.get("source"), how))


async def _http_probe(host, port, ctx, sni, path):
    # Connect (TLS when ctx), send a harmless GET and read the status line.
    if ctx is None:
        r, w = await asyncio.open_connection(host, port)
    else:
        r, w = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=sni)
    try:
        w.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (path, host, port)).encode())
        await w.drain()
        return await r.readline()
    finally:
        try:
            w.close()
        except Exception:
            pass


async def check_gateway(app):
    cfg = app.config
    url = cfg.get("han.url")
    if not url or not cfg.get("cls_id"):
        return _res("gateway", "FAIL", "not configured: set han.url and cls_id ('setup')")
    from dicamm.drivers.han_client import HanClient, tls_message
    han = HanClient.from_config(cfg, app.file_path)
    ctx = None if han.scheme == "http" else han.context()
    try:
        line = await asyncio.wait_for_ms(_http_probe(han.host, han.port, ctx, han.server_hostname, han.path),
                                         cfg.get("han.timeout_ms"))
    except asyncio.TimeoutError:
        return _res("gateway", "FAIL", "no answer from %s:%d in %d ms" % (han.host, han.port, cfg.get("han.timeout_ms")))
    except ValueError as e:
        return _res("gateway", "FAIL", tls_message(e))
    except OSError as e:
        if ctx is not None and e.args and isinstance(e.args[0], int) and e.args[0] < 0:
            return _res("gateway", "FAIL", tls_message(e))
        return _res("gateway", "FAIL", "cannot connect to %s:%d (%s)" % (han.host, han.port, e))
    if not line.startswith(b"HTTP/"):
        return _res("gateway", "FAIL", "TLS connection closed by the gateway: device certificate refused?"
                    if ctx is not None else "no HTTP answer")
    return _res("gateway", "PASS", "%s:%d %s, answered %s" % (
        han.host, han.port, "TLS handshake with both certificates ok" if ctx is not None else "plain HTTP (bench only)",
        line.decode().strip()[:24]))


def _mqtt_str(s):
    b = s.encode()
    return bytes((len(b) >> 8, len(b) & 255)) + b


_CONNACK = {1: "protocol version refused", 2: "client id refused", 3: "broker unavailable",
            4: "bad user name or password", 5: "not authorised"}


async def _connack(host, port, ctx, cid, user, password):
    if ctx is None:
        r, w = await asyncio.open_connection(host, port)
    else:
        r, w = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    try:
        flags = 0x02
        pl = _mqtt_str(cid)
        if user:
            flags |= 0x80
            pl += _mqtt_str(user)
            if password:
                flags |= 0x40
                pl += _mqtt_str(password)
        var = b"\x00\x04MQTT\x04" + bytes((flags, 0, 10))
        n = len(var) + len(pl)
        w.write(bytes((0x10, n)) + var + pl if n < 128 else bytes((0x10, (n & 127) | 128, n >> 7)) + var + pl)
        await w.drain()
        a = await r.read(4)
        try:
            w.write(b"\xe0\x00")   # DISCONNECT
            await w.drain()
        except Exception:
            pass
        return a
    finally:
        try:
            w.close()
        except Exception:
            pass


async def check_broker(app):
    cfg = app.config
    host = cfg.get("mqtt.host")
    if not host:
        return _res("broker", "SKIP", "no backend configured (mqtt.host)")
    port = cfg.get("mqtt.port")
    link = app.mqtt
    if link is not None and link.connected:
        return _res("broker", "PASS", "MQTT link connected to %s:%d" % (host, port))
    ctx = None
    if cfg.get("mqtt.tls"):
        import ssl
        from dicamm.proto import pem
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca = cfg.get("mqtt.ca")
        if ca:
            with open(app.file_path(ca), "rb") as f:
                ctx.load_verify_locations(cadata=pem.to_der(f.read()))
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.get("mqtt.cert") and cfg.get("mqtt.key"):
            with open(app.file_path(cfg.get("mqtt.cert")), "rb") as f:
                c = pem.to_der(f.read())
            with open(app.file_path(cfg.get("mqtt.key")), "rb") as f:
                k = pem.to_der(f.read())
            ctx.load_cert_chain(c, k)
    cid = (cfg.get("device_id") or "dicamm") + "-selftest"
    try:
        a = await asyncio.wait_for_ms(_connack(host, port, ctx, cid, cfg.get("mqtt.user"), cfg.get("mqtt.password")),
                                      5000)
    except asyncio.TimeoutError:
        return _res("broker", "FAIL", "no CONNACK from %s:%d in 5 s" % (host, port))
    except (OSError, ValueError) as e:
        return _res("broker", "FAIL", "cannot connect to %s:%d (%s)" % (host, port, e))
    if len(a) < 4 or a[0] != 0x20:
        return _res("broker", "FAIL", "%s:%d is not an MQTT broker (or closed the connection)" % (host, port))
    if a[3]:
        return _res("broker", "FAIL", "broker %s:%d refused: %s" % (host, port, _CONNACK.get(a[3], "code %d" % a[3])))
    extra = ""
    if link is not None and link.last_error:
        extra = "; the MQTT link itself is not connected yet: %s" % link.last_error
    return _res("broker", "PASS", "%s:%d accepted CONNECT%s" % (host, port, extra))


async def check_storage(app):
    from dicamm.drivers import fsutil
    bad = []
    for name, j in app.journals.items():
        try:
            j.last(1)
        except Exception as e:
            bad.append("%s journal unreadable (%s)" % (name, e))
    probe = app.path("selftest.probe")
    try:
        fsutil.write_atomic(probe, b"dicamm")
        if fsutil.read(probe) != b"dicamm":
            bad.append("a written file reads back wrong")
    except DicammError as e:
        bad.append(str(e))
    fsutil.remove(probe)
    free = None
    try:
        st = os.statvfs(app.root or "/")
        free = (st[1] or st[0]) * st[4]
        if free < _MIN_FREE:
            bad.append("only %d kB free" % (free // 1024))
    except (OSError, AttributeError):
        pass
    if app.config.problems:
        bad.append("config: " + "; ".join(app.config.problems))
    if bad:
        return _res("storage", "FAIL", "; ".join(bad))
    return _res("storage", "PASS", "%d journals readable%s" % (
        len(app.journals), "" if free is None else ", %d kB free" % (free // 1024)))


CHECKS = (("meter", check_meter), ("time", check_time), ("relay", check_relay),
          ("gateway", check_gateway), ("broker", check_broker), ("storage", check_storage))


async def run_checks(app, only=None):
    out = []
    for name, fn in CHECKS:
        if only and name not in only:
            continue
        try:
            r = await asyncio.wait_for_ms(fn(app), _CHECK_MS)
        except asyncio.TimeoutError:
            r = _res(name, "FAIL", "no result in %d s" % (_CHECK_MS // 1000))
        except (DicammError, LinkError, OSError, ValueError) as e:
            r = _res(name, "FAIL", "%s" % (e,))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            r = _res(name, "FAIL", "%s: %s" % (e.__class__.__name__, e))
        out.append(r)
    return out


async def run(con, args):
    rows = await run_checks(con.app, args.pos or None)
    ok = all(r["result"] != "FAIL" for r in rows)
    if args.json:
        con.write(json.dumps({"ok": ok, "checks": rows}))
        return ok
    for r in rows:
        con.write("%-4s %-8s %s" % (r["result"], r["check"], r["detail"]))
    con.write("selftest %s" % ("PASSED" if ok else "FAILED: see the FAIL lines (docs/INSTALLER.md says what to do)"))
    return ok
