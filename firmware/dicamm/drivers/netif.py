# The board's network interface (Wi-Fi or Ethernet from the board file) with
# the configured settings: status for the console and selftest, bring-up at
# start and a watcher that reconnects. On the unix port the host's network is
# used and these functions only report that.
import json

from dicamm.errors import CommandError
from dicamm.platform import UNIX


def _on_board(app):
    return not UNIX and app.board.get("chip") is not None


def _lan(net):
    # The board's Ethernet interface from its pin table (ESP32 internal MAC).
    import machine
    import network
    return network.LAN(mdc=machine.Pin(net["mdc"]), mdio=machine.Pin(net["mdio"]),
                       phy_type=getattr(network, net.get("phy", "PHY_LAN8720")), phy_addr=net.get("phy_addr", 0))


def net_info(app):
    # -> dict with "kind" and a one-line "summary" (status screen, net, selftest).
    cfg = app.config
    net = app.board.get("net") or {}
    d = {"kind": net.get("kind", "none"), "ssid": cfg.get("net.ssid"), "hostname": cfg.get("net.hostname")}
    if not _on_board(app):
        d["kind"] = "host"
        d["summary"] = "unix port: the host's network is used (configured: ssid %s, hostname %s - used on a board)" % (
            json.dumps(d["ssid"]), json.dumps(d["hostname"]))
        return d
    try:
        import network
        if d["kind"] == "wifi":
            w = network.WLAN(network.STA_IF)
            d["active"] = w.active()
            d["connected"] = w.isconnected()
            if d["connected"]:
                d["ip"], d["netmask"], d["gateway"], d["dns"] = w.ifconfig()
                try:
                    d["rssi"] = w.status("rssi")
                except Exception:
                    pass
            d["summary"] = "Wi-Fi %s: %s" % (d["ssid"] or "(no ssid set)", "connected, %s, %s dBm" % (
                d["ip"], d.get("rssi")) if d["connected"] else "NOT connected (status %s)" % w.status())
        elif d["kind"] == "ethernet":
            lan = _lan(net)
            d["active"] = lan.active()
            d["connected"] = lan.isconnected()
            if d["connected"]:
                d["ip"], d["netmask"], d["gateway"], d["dns"] = lan.ifconfig()
            d["summary"] = "Ethernet: %s" % ("connected, %s" % d["ip"] if d["connected"] else "no link or no address")
        else:
            d["summary"] = "this board has no network interface"
    except Exception as e:   # no network module, or the interface refuses
        d["error"] = "%s: %s" % (e.__class__.__name__, e)
        d["summary"] = "%s: %s" % (d["kind"], d["error"])
    return d


async def net_connect(app, timeout_ms=20000):
    # Bring the board's interface up with the configured settings; -> net_info.
    import time
    from dicamm.platform import asyncio
    if not _on_board(app):
        return net_info(app)
    import network
    cfg = app.config
    net = app.board.get("net") or {}
    if cfg.get("net.hostname"):
        try:
            network.hostname(cfg.get("net.hostname"))
        except (AttributeError, ValueError, OSError):
            pass
    if net.get("kind") == "wifi":
        if not cfg.get("net.ssid"):
            raise CommandError("set the Wi-Fi name first: net set ssid NAME")
        w = network.WLAN(network.STA_IF)
        w.active(True)
        if w.isconnected():
            w.disconnect()
        w.connect(cfg.get("net.ssid"), cfg.get("net.password"))
        iface = w
    elif net.get("kind") == "ethernet":
        iface = _lan(net)
        iface.active(True)
    else:
        raise CommandError("this board has no network interface")
    t0 = time.ticks_ms()
    while not iface.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
        await asyncio.sleep_ms(200)
    return net_info(app)




async def keep_up(app, check_ms=30000):
    # Bring the interface up at start and again whenever it drops; a fault
    # tells status and MQTT while it is down. Never raises.
    from dicamm.platform import asyncio
    while True:
        try:
            d = net_info(app)
            if not d.get("connected"):
                d = await net_connect(app)
            app.fault("net", None if d.get("connected") else d.get("summary"))
        except Exception as e:  # a missing ssid, a driver error: report and retry
            app.fault("net", "%s: %s" % (e.__class__.__name__, e))
        await asyncio.sleep_ms(check_ms)
