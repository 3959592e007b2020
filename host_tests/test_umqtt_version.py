# One umqtt.simple: the one of the pinned MicroPython source's micropython-lib
# (tools/micropython.lock), in build/lib for the tests and `make deploy`, at the same
# version for mip, and frozen by the manifest. The MQTT adapter checks what it meets
# at import and refuses another umqtt.simple with the fix in its words.
import os
import re
import subprocess

import pytest

from conftest import FIRMWARE, MICROPYTHON, ROOT

import build_mpy

SRC = os.path.join(ROOT, "build", "micropython", "lib", "micropython-lib", "micropython", "umqtt.simple")
PINNED = os.path.join(SRC, "umqtt", "simple.py")
needs_source = pytest.mark.skipif(not os.path.isfile(PINNED), reason="no pinned source in build/micropython (make setup)")


def pinned_text():
    with open(PINNED) as f:
        return f.read()


@needs_source
def test_the_adapter_is_written_for_the_pinned_version():
    with open(os.path.join(SRC, "manifest.py")) as f:
        version = re.search(r'version="([^"]+)"', f.read()).group(1)
    assert version == build_mpy.umqtt_version(), \
        "the pinned micropython-lib has umqtt.simple %s: check dicamm/drivers/mqtt_client.py against it, " \
        "then set UMQTT_SIMPLE" % version
    with open(os.path.join(ROOT, "build", "lib", "umqtt", "simple.py")) as f:
        assert f.read() == pinned_text(), "build/lib/umqtt is not the pinned one: run make setup"


def test_build_inputs_name_one_umqtt():
    # no other pin of umqtt.simple (the PyPI 1.3.4 of tools/mplib.lock is gone)
    assert not os.path.exists(os.path.join(ROOT, "tools", "mplib.lock"))
    assert not os.path.exists(os.path.join(ROOT, "tools", "fetch_mplib.py"))
    with open(os.path.join(ROOT, "Makefile")) as f:
        assert "mplib" not in f.read()
    with open(os.path.join(ROOT, "tools", "manifest_firmware.py")) as f:
        assert 'require("umqtt.simple")' in f.read()  # from $(MPY_DIR)/lib/micropython-lib, the pinned one


# Other versions, made from the pinned text: one without what 1.8.0 added, and one
# whose wait_msg() returns None for a PUBLISH it handled, as PyPI's 1.3.4 of 2017 did.
def older(text):
    return text.replace("_send_subunsub", "_send_sub").replace("_encode_len", "_enc_len")


def returns_none_for_publish(text):
    end = "        elif op & 6 == 4:\n            assert 0\n"
    assert text.count(end + "        return op\n") == 1
    return text.replace(end + "        return op\n", end)


VARIANTS = [pytest.param(older, "older than 1.8.0", id="older"),
            pytest.param(returns_none_for_publish, "wait_msg() answers [None, None, 64, None]", id="pypi-1.3.4-wait_msg")]


def _import_adapter(lib):
    return subprocess.run([MICROPYTHON, "-c", "import dicamm.drivers.mqtt_client as m; print('ok', m.UMQTT_SIMPLE)"],
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, MICROPYPATH=":".join([".frozen", lib, FIRMWARE])))


@needs_source
def test_the_adapter_takes_the_pinned_umqtt():
    r = _import_adapter(os.path.join(ROOT, "build", "lib"))
    assert r.returncode == 0 and r.stdout.strip() == "ok 1.8.0", r.stderr


@needs_source
@pytest.mark.parametrize("change, what", VARIANTS)
def test_the_adapter_refuses_another_umqtt(tmp_path, change, what):
    os.makedirs(tmp_path / "umqtt")
    (tmp_path / "umqtt" / "simple.py").write_text(change(pinned_text()))
    r = _import_adapter(str(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "ImportError: umqtt.simple %s" % what in out, out
    assert "this firmware needs 1.8.0 - mpremote mip install umqtt.simple@1.8.0" in out


@needs_source
@pytest.mark.parametrize("change, what", VARIANTS + [pytest.param(None, None, id="pinned")])
def test_check_on_cpython(change, what):
    # the same check in this process, on modules made from the text
    import sys
    import types
    lib = os.path.join(ROOT, "build", "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
    from dicamm.drivers import mqtt_client
    mod = types.ModuleType("umqtt_variant")
    exec(compile(change(pinned_text()) if change else pinned_text(), "simple.py", "exec"), mod.__dict__)
    got = mqtt_client.check(mod)
    assert (got is None) if what is None else got.startswith(what.split(" answers")[0]), got
