# The device's identity and health (proto/device_info.py builds them) from the
# running application: for the MQTT topics `identity` and `health` and for the
# console's `status`, so both say the same.
from dicamm.platform import UNIX
from dicamm.proto import device_info as info


def identity(app):
    from dicamm import VERSION
    cfg = app.config
    m = app.metering
    tx = app.transactions
    # the OCMF key: one scalar product the first time (then kept by txstore);
    # the link asks first while connecting, a step that may hold the loop
    key = tx.public_key_hex() if tx is not None else None
    return info.identity(cfg.get("device_id") or "dicamm", cfg.get("cls_id"), VERSION, app.board.get("name"),
                         m.identity if m is not None else None, key)


def _reset():
    from dicamm.drivers import startup
    machine = None
    if not UNIX:
        import machine
    return info.reset_name(startup.reset_cause, machine), startup.crashes


def _heap():
    import gc
    extra = None
    try:
        import esp32  # the IDF heap holds the TLS sessions and the network stack
        caps = esp32.idf_heap_info(esp32.HEAP_DATA)
        extra = {"idf_heap_free": sum(c[1] for c in caps), "idf_heap_largest": max(c[2] for c in caps)}
    except (ImportError, AttributeError, ValueError):
        pass
    return gc.mem_free(), extra


def health(app):
    from dicamm.drivers.netif import net_info
    tk = app.timekeeper
    now, st = tk.stamp()
    reset, crashes = _reset()
    try:
        net = info.net_part(net_info(app))
    except Exception as e:  # a network driver that refuses: say so, never fail the message
        net = {"kind": None, "error": "%s: %s" % (e.__class__.__name__, e)}
    free, extra = _heap()
    return info.health(app.uptime_s(), reset, crashes, net, free, st, tk.error_bound_ms(), now, extra)


def update_state():
    # The firmware update's progress (MQTT `update`): the update module is
    # loaded only once an update was asked for; before that nothing is sent.
    import sys
    m = sys.modules.get("dicamm.services.update")
    return m.current_state() if m is not None else None


def sources(app):
    # For the MQTT link's sources.
    return {"identity": lambda: identity(app), "health": lambda: health(app), "update": update_state}
