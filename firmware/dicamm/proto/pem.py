# PEM -> DER for MicroPython's TLS (which takes DER), and a minimal DER reader
# for the CLI `cert` command: subject CN, issuer CN, notAfter. Not a validator.
from binascii import a2b_base64


def is_pem(data):
    return b"-----BEGIN " in data


def to_der(data):
    # Returns the DER bytes of the first PEM block; DER input is returned as is.
    if isinstance(data, str):
        data = data.encode()
    if not is_pem(data):
        return bytes(data)
    start = data.index(b"-----BEGIN ")
    start = data.index(b"\n", start) + 1
    end = data.index(b"-----END ", start)
    body = b"".join(line.strip() for line in data[start:end].split(b"\n")
                    if line.strip() and b":" not in line)
    return a2b_base64(body)


def _tlv(d, i):
    # (tag, start of value, end of value) of the TLV at offset i.
    tag = d[i]
    n = d[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = 0
        for _ in range(k):
            n = (n << 8) | d[i]
            i += 1
    if i + n > len(d):
        raise ValueError("DER truncated")
    return tag, i, i + n


def _children(d, start, end):
    out = []
    i = start
    while i < end:
        t, s, e = _tlv(d, i)
        out.append((t, s, e))
        i = e
    return out


_OID_CN = b"\x55\x04\x03"


def _cn(d, start, end):
    # Name = SEQUENCE OF SET OF SEQUENCE {OID, value}
    for _, s, e in _children(d, start, end):
        for _, s2, e2 in _children(d, s, e):
            parts = _children(d, s2, e2)
            if len(parts) == 2 and d[parts[0][1]:parts[0][2]] == _OID_CN:
                return bytes(d[parts[1][1]:parts[1][2]]).decode()
    return None


def _time(d, tag, s, e):
    # UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ -> "YYYY-MM-DDTHH:MM:SSZ"
    t = bytes(d[s:e]).decode()
    if tag == 0x17:
        y = int(t[0:2])
        t = ("19" if y >= 50 else "20") + t
    return "%s-%s-%sT%s:%s:%sZ" % (t[0:4], t[4:6], t[6:8], t[8:10], t[10:12], t[12:14])


def cert_info(der):
    # {"subject": CN, "issuer": CN, "not_before", "not_after"} of an X.509 certificate.
    d = memoryview(der)
    try:
        _, s, e = _tlv(d, 0)
        _, s, e = _tlv(d, s)  # tbsCertificate
        f = _children(d, s, e)
        k = 1 if f[0][0] == 0xA0 else 0  # optional [0] version
        issuer = f[k + 2]
        validity = _children(d, f[k + 3][1], f[k + 3][2])
        subject = f[k + 4]
        return {"subject": _cn(d, subject[1], subject[2]),
                "issuer": _cn(d, issuer[1], issuer[2]),
                "not_before": _time(d, validity[0][0], validity[0][1], validity[0][2]),
                "not_after": _time(d, validity[1][0], validity[1][1], validity[1][2])}
    except (IndexError, ValueError) as ex:
        raise ValueError("not an X.509 certificate: %s" % ex)
