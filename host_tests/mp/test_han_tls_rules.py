# The HAN's TLS rules in dicamm.proto.han_wire: which sessions count (BSI TR-03116-3
# chapter 5, "TLS-Kommunikation im HAN": TLS 1.2 with ECDHE-ECDSA and AES-128/256 in
# GCM or CBC mode, RFC 5289) and how a refused handshake is put into words.
# Dual test: runs on MicroPython and CPython.
from dicamm.errors import LinkError
from dicamm.proto.han_wire import HAN_SUITES, check_session, tls_message

# (suite, version as mbedTLS reports them, accepted)
SESSIONS = [
    ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "TLSv1.2", True),
    ("TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384", "TLSv1.2", True),
    ("TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA256", "TLSv1.2", True),
    ("TLS-ECDHE-ECDSA-WITH-AES-256-CBC-SHA384", "TLSv1.2", True),
    ("TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA", "TLSv1.2", False),  # SHA-1 MAC
    ("TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256", "TLSv1.2", False),  # RSA certificate
    ("TLS-RSA-WITH-AES-128-GCM-SHA256", "TLSv1.2", False),  # no forward secrecy
    ("TLS-PSK-WITH-AES-128-GCM-SHA256", "TLSv1.2", False),
    ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "TLSv1.3", False),
    ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "TLSv1.1", False),
    ("TLS1-3-AES-128-GCM-SHA256", "TLSv1.3", False),
]

# (exception, start of the message): mbedTLS's codes as MicroPython raises them
MESSAGES = [
    (OSError(-0x7780, "MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE"),
     "gateway refused TLS: no TLS 1.2 ECDHE-ECDSA suite of BSI TR-03116-3 in common"),
    (OSError(-0x6E80, "MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION"),
     "gateway refused TLS: no TLS 1.2 ECDHE-ECDSA suite of BSI TR-03116-3 in common"),
    (OSError(-0x6E00, "MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE"),
     "gateway refused TLS: no TLS 1.2 ECDHE-ECDSA suite of BSI TR-03116-3 in common"),
    (ValueError("\nThe certificate validity has expired\n"),
     "gateway certificate not trusted (The certificate validity has expired)"),
    (OSError(-0x2700, "MBEDTLS_ERR_X509_CERT_VERIFY_FAILED"), "gateway certificate not trusted"),
    (OSError(32), "TLS connection closed by gateway (errno 32; device certificate refused?)"),
    (OSError(-0x7280, "MBEDTLS_ERR_SSL_CONN_EOF"), "TLS error ("),
]


def test_only_tls12_with_the_tr03116_suites_counts():
    for suite, version, ok in SESSIONS:
        try:
            check_session((suite, version))
            accepted = True
        except LinkError as e:
            accepted = False
            assert "not TLS 1.2 with a TR-03116-3 suite" in str(e), str(e)
            assert suite in str(e) and version in str(e), str(e)
        assert accepted == ok, (suite, version)


def test_the_suite_list_is_exactly_the_four_ecdhe_ecdsa_aes_suites():
    assert len(HAN_SUITES) == 4 and len(set(HAN_SUITES)) == 4
    for s in HAN_SUITES:
        assert s.startswith("TLS-ECDHE-ECDSA-WITH-AES-"), s
        assert s.endswith("-GCM-SHA256") or s.endswith("-CBC-SHA256") or s.endswith("-SHA384"), s


def test_handshake_failures_in_words():
    for exc, want in MESSAGES:
        got = tls_message(exc)
        assert got.startswith(want), (exc, got)
        if isinstance(exc, OSError) and len(exc.args) > 1:
            assert exc.args[1] in got, (exc, got)  # mbedTLS's own name stays in the message
