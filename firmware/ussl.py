# The old `ussl` API on top of MicroPython's ssl.SSLContext (mbedTLS), for
# the MQTT adapter's connect (dicamm/drivers/mqtt_client.py, umqtt.simple's API).
# Certificates and keys are DER bytes, as in the old module. With a CA
# (cadata) the server certificate is verified; without one a caller must ask
# for CERT_NONE explicitly.
import ssl

CERT_NONE = ssl.CERT_NONE
CERT_OPTIONAL = ssl.CERT_OPTIONAL
CERT_REQUIRED = ssl.CERT_REQUIRED


def context(server_side=False, key=None, cert=None, cert_reqs=None, cadata=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    if cert_reqs is None:
        cert_reqs = CERT_REQUIRED if cadata else CERT_NONE
    if cadata:
        ctx.load_verify_locations(cadata=cadata)
    elif cert_reqs == CERT_REQUIRED:
        raise ValueError("CERT_REQUIRED needs cadata (the CA certificate)")
    ctx.verify_mode = cert_reqs
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def wrap_socket(sock, server_side=False, key=None, cert=None, cert_reqs=None, cadata=None,
                server_hostname=None, do_handshake=True):
    ctx = context(server_side, key, cert, cert_reqs, cadata)
    return ctx.wrap_socket(sock, server_side=server_side, do_handshake_on_connect=do_handshake,
                           server_hostname=server_hostname)
