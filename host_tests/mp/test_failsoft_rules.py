# services/failsoft: the fault text of an optional part that did not start, on
# MicroPython and CPython (whose ImportError words differ in case).
from dicamm.services import failsoft


class _App:
    def __init__(self):
        self.faults = {}

    def fault(self, name, text=None):
        self.faults[name] = text


def test_missing_module_names():
    for text, name in (("no module named 'umqtt'", "umqtt"), ("No module named 'umqtt.simple'", "umqtt.simple"),
                       ("umqtt.simple missing - mpremote mip install umqtt.simple@1.8.0", None)):
        assert failsoft.missing_module(ImportError(text)) == name, text


def test_describe():
    cases = (
        # a module that names its own fix keeps its words
        (ImportError("umqtt.simple missing - mpremote mip install umqtt.simple@1.8.0"),
         "umqtt.simple missing - mpremote mip install umqtt.simple@1.8.0"),
        (ImportError("no module named 'dicamm.drivers.han_client'"),
         "dicamm.drivers.han_client missing - deploy the firmware again (make deploy)"),
        (ImportError("no module named 'network'"),
         "network missing - the MicroPython image lacks it (docs/FLASHING.md)"),
        (ValueError("mqtt.prefix too long"),
         "could not start (ValueError: mqtt.prefix too long) - see 'log'; metering and control run on"),
    )
    for e, want in cases:
        assert failsoft.describe(e) == want, (failsoft.describe(e), want)


def test_start_sets_the_fault_and_goes_on():
    app = _App()

    def boom():
        import dicamm_no_such_module  # noqa: F401

    assert failsoft.start(app, "mqtt", boom) is False
    assert app.faults["mqtt"] == "dicamm_no_such_module missing - deploy the firmware again (make deploy)"
    ran = []
    assert failsoft.start(app, "taf16", lambda: ran.append(1)) is True
    assert ran == [1] and "taf16" not in app.faults
