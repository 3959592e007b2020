# Optional subsystems fail soft. MQTT, the HAN link, the network and the console
# groups are not needed to meter: one whose module or library is missing, or
# that raises while starting, is left off with a fault that names it and says
# what to do; metering, the load profile and relay control run on. A module
# that needs a library says how to get it in its ImportError (mqtt_client:
# "umqtt.simple missing - mpremote mip install umqtt.simple@1.8.0").


def missing_module(e):
    # "no module named 'a.b'" (MicroPython) / "No module named 'a'" -> "a.b", else None
    text = str(e.args[0]) if e.args else ""
    if text.lower().startswith("no module named"):
        parts = text.split("'")
        return parts[1] if len(parts) > 2 else text[16:].strip()
    return None


def describe(e):
    # The fault text for an exception raised while a subsystem started.
    if isinstance(e, ImportError):
        name = missing_module(e)
        if name is None:
            return str(e)  # the module's own words, with the fix
        if name.startswith("dicamm"):
            return "%s missing - deploy the firmware again (make deploy)" % name
        return "%s missing - the MicroPython image lacks it (docs/FLASHING.md)" % name
    return "could not start (%s: %s) - see 'log'; metering and control run on" % (type(e).__name__, e)


def start(app, name, fn):
    # Runs fn() (a subsystem's start); True when it started. Otherwise the
    # fault `name` tells why and the application goes on without it.
    try:
        fn()
        return True
    except Exception as e:  # a bug in an optional part must not stop metering
        try:
            app.fault(name, describe(e))
        except MemoryError:
            pass
        return False
