# TLS on the HAN link as BSI TR-03116-3 chapter 5 ("TLS-Kommunikation im HAN") asks
# for it: TLS 1.2 (RFC 5246) only, the ECDHE-ECDSA suites with AES-128/256 in GCM or
# CBC mode (RFC 5289), and the Brainpool curves of 2.2 ("Domainparameter fuer
# Elliptische Kurven", RFC 7027) that SM-PKI certificates use.
# The gateway emulator (tools/han_emu.py, CPython's OpenSSL) speaks only that; the
# device is the firmware's HanClient on MicroPython:
#   - the frozen unix build (tools/build_frozen_unix.sh, whose mbedTLS config adds
#     brainpoolP256r1/P384r1) against a Brainpool PKI,
#   - the PyPI interpreter (its mbedTLS has no Brainpool) against a P-256 PKI.
# Gateways that TR-03116-3 does not allow (RSA only, TLS 1.0 only) are refused.
import os
import shutil
import socket
import ssl
import subprocess
import warnings

import pytest

from conftest import MICROPYTHON, ROOT
from test_han_mp import POST, Emu, cfg, run_mp

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl CLI")]

# the frozen 32-bit build: the path tools/build_frozen_unix.sh BITS=32 writes, or the
# interpreter named by DICAMM_FROZEN32_MICROPYTHON (as for tools/bench.py)
FROZEN = os.environ.get("DICAMM_FROZEN32_MICROPYTHON") or os.path.join(ROOT, "build", "frozen-unix32", "micropython")
needs_frozen = pytest.mark.skipif(not os.access(FROZEN, os.X_OK),
                                  reason="no frozen unix build at %s (make setup builds it; or "
                                         "MPY_DIR=... BITS=32 tools/build_frozen_unix.sh)" % FROZEN)

# TR-03116-3 chapter 5: the four suites, as OpenSSL (the emulator) and mbedTLS (the device) name them
SUITES = [("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"),
          ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"),
          ("ECDHE-ECDSA-AES128-SHA256", "TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA256"),
          ("ECDHE-ECDSA-AES256-SHA384", "TLS-ECDHE-ECDSA-WITH-AES-256-CBC-SHA384")]
# (interpreter, curve of the PKI)
DEVICES = [pytest.param(MICROPYTHON, "prime256v1", id="pypi-P256"),
           pytest.param(FROZEN, "brainpoolP256r1", id="frozen32-brainpoolP256r1", marks=needs_frozen)]
REFUSED = "gateway refused TLS: no TLS 1.2 ECDHE-ECDSA suite of BSI TR-03116-3 in common"


@pytest.fixture(scope="module")
def pkis(tmp_path_factory):
    # one PKI per curve, made on first use
    made = {}

    def get(curve):
        if curve not in made:
            d = str(tmp_path_factory.mktemp("pki-" + curve))
            subprocess.run(["sh", os.path.join(ROOT, "tools", "mkpki.sh"), d, curve], check=True, capture_output=True)
            made[curve] = d
        return made[curve]
    return get


def gateway(tmp_path, pki, mode="ok", suites=None):
    return Emu(str(tmp_path), pki, mode=mode, extra=["--suites", suites] if suites else [])


@pytest.mark.parametrize("mp,curve", DEVICES)
@pytest.mark.parametrize("openssl_name,mbedtls_name", SUITES)
def test_each_tr03116_suite_is_agreed_over_tls12(tmp_path, pkis, mp, curve, openssl_name, mbedtls_name):
    # TR-03116-3 ch. 5: the gateway offers one of the four suites; the device agrees on
    # it, over TLS 1.2, with both certificates on the PKI's curve, and the event arrives.
    pki = pkis(curve)
    emu = gateway(tmp_path, pki, suites=openssl_name)
    try:
        out = run_mp(POST, cfg(emu, pki, text="tls " + openssl_name), mp=mp)
        assert "ok" in out, out
        [stored] = emu.events()
        assert stored["uuid"] == out["uuid"] == out["ok"]["uuid"]
        assert stored["tls"] == "TLSv1.2" and stored["cipher"] == openssl_name, stored
        assert stored["client"] == "dicamm-device"  # mutual TLS: the device's certificate
    finally:
        emu.stop()


@needs_frozen
def test_brainpool_p384_pki_on_the_frozen_build(tmp_path, pkis):
    # TR-03116-3 2.2: brainpoolP384r1 too (certificates and ECDHE), with the 256-bit suite.
    pki = pkis("brainpoolP384r1")
    emu = gateway(tmp_path, pki, suites="ECDHE-ECDSA-AES256-GCM-SHA384")
    try:
        out = run_mp(POST, cfg(emu, pki), mp=FROZEN)
        assert "ok" in out, out
        [stored] = emu.events()
        assert (stored["tls"], stored["cipher"]) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"), stored
    finally:
        emu.stop()


def _handshake(port, pki, mode):
    # A client without the device's restrictions: proves the refused gateway is up and
    # serves its suite, so the device's refusal is the device's own policy.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(pki, "ca.pem"))
    ctx.load_cert_chain(os.path.join(pki, "device.pem"), os.path.join(pki, "device.key.pem"))
    with open(os.path.join(pki, "curve")) as f:
        ctx.set_ecdh_curve(f.read().strip())  # the gateway's ECDHE curve, as the device offers it
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # OpenSSL 3.0 has no Brainpool groups in TLS 1.3
    if mode == "tls1.0":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.version(), s.cipher()[0]


@pytest.mark.parametrize("mp,curve", DEVICES)
@pytest.mark.parametrize("mode,agreed_by_others", [("rsa-only", ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")),
                                                   ("tls1.0", ("TLSv1", "ECDHE-ECDSA-AES128-SHA"))])
def test_gateway_outside_tr03116_is_refused(tmp_path, pkis, mp, curve, mode, agreed_by_others):
    # TR-03116-3 ch. 5 allows neither an RSA certificate and suite nor TLS 1.0: the
    # device breaks off with an error that says so, and sends nothing.
    pki = pkis(curve)
    emu = gateway(tmp_path, pki, mode=mode)
    try:
        assert _handshake(emu.port, pki, mode) == agreed_by_others
        out = run_mp(POST, cfg(emu, pki), mp=mp)
        assert "err" in out, out
        assert out["err"].startswith(REFUSED), out
        assert emu.events() == []
    finally:
        emu.stop()


def test_pypi_interpreter_names_the_missing_brainpool(tmp_path, pkis):
    # The PyPI interpreter's mbedTLS has no Brainpool: an SM-PKI certificate cannot even
    # be loaded, and the error says what is missing (not "certificate not trusted").
    pki = pkis("brainpoolP256r1")
    emu = gateway(tmp_path, pki)
    try:
        out = run_mp(POST, cfg(emu, pki), mp=MICROPYTHON)
        assert "err" in out, out
        assert out["err"].startswith("HAN certificates not usable") and "Brainpool" in out["err"], out
        assert emu.events() == []
    finally:
        emu.stop()


SUITE_LIST = r'''
import sys
sys.path.insert(0, %(fw)r)
import json, tls
from dicamm.proto.han_wire import HAN_SUITES
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
have = ctx.get_ciphers()
ctx.set_ciphers(HAN_SUITES)
print(json.dumps({"missing": [s for s in HAN_SUITES if s not in have], "tls13": [s for s in have if "TLS1-3" in s]}))
'''


@pytest.mark.parametrize("mp", [pytest.param(MICROPYTHON, id="pypi"), pytest.param(FROZEN, id="frozen32", marks=needs_frozen)])
def test_interpreter_has_the_suites_and_no_tls13(tmp_path, mp):
    # set_ciphers takes the four names; no TLS 1.3 suite is built in, so the suite list
    # pins TLS 1.2 (mbedTLS 3 has no TLS 1.0/1.1 at all).
    out = run_mp(SUITE_LIST, {"tmp": str(tmp_path)}, mp=mp)
    assert out == {"missing": [], "tls13": []}, out
