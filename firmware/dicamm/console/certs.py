# Certificates and keys on the device: what each certificate setting points at
# (cert_rows, for `cert` and selftest), and a pasted PEM block read from the
# console and stored as DER (`cert load`, the setup wizard).
import json

from dicamm.drivers import fsutil
from dicamm.errors import UsageError
from dicamm.proto import pem

CERT_KEYS = ("han.ca", "han.cert", "han.key", "mqtt.ca", "mqtt.cert", "mqtt.key")
_PEM_MAX = 8192


def cert_rows(app):
    # One row per certificate/key setting: where, and what is in the file.
    rows = []
    now_ms, st = app.timekeeper.stamp()
    from dicamm.proto import localtime
    now_iso = localtime.iso_utc(now_ms) if st != "U" else None
    for key in CERT_KEYS:
        path = app.config.get(key)
        row = {"key": key, "path": path}
        rows.append(row)
        if not path:
            row["state"] = "not set"
            continue
        data = fsutil.read(app.file_path(path))
        if data is None:
            row["state"] = "MISSING file"
            continue
        try:
            der = pem.to_der(data)
        except Exception:
            row["state"] = "BAD: not PEM or DER"
            continue
        if key.endswith(".key"):
            row["state"] = "private key, %d bytes" % len(der) if der[:1] == b"\x30" else "BAD: not a DER key"
            continue
        try:
            info = pem.cert_info(der)
        except ValueError as e:
            row["state"] = "BAD: %s" % e
            continue
        row.update(info)
        if now_iso is not None and info["not_after"] < now_iso:
            row["state"] = "EXPIRED"
        elif now_iso is not None and info["not_before"] > now_iso:
            row["state"] = "NOT YET VALID"
        else:
            row["state"] = "ok" if now_iso is not None else "ok (time unknown: expiry not checked)"
    return rows


async def read_pem(con, first=None):
    # Lines of a pasted PEM block up to "-----END ...-----" -> text.
    lines = []
    line = first
    total = 0
    while True:
        if line is None:
            line = await con.ask("")
        line = line.strip()
        if lines or line.startswith("-----BEGIN"):
            lines.append(line)
            total += len(line) + 1
            if total > _PEM_MAX:
                raise UsageError("PEM block longer than %d characters" % _PEM_MAX)
            if line.startswith("-----END"):
                return "\n".join(lines) + "\n"
        elif line in ("quit", "abort"):
            raise UsageError("no PEM block given")
        line = None


def store_pem(app, key, text):
    # PEM text -> DER, checked, stored atomically as certs/KEY.der; sets the
    # config key (not saved). -> (path, description).
    try:
        der = pem.to_der(text)
    except Exception:
        raise UsageError("not a PEM block (base64 between BEGIN and END lines)")
    if key.endswith(".key"):
        if der[:1] != b"\x30" or "PRIVATE KEY" not in text:
            raise UsageError("%s wants a PRIVATE KEY block" % key)
        what = "private key, %d bytes" % len(der)
    else:
        try:
            info = pem.cert_info(der)
        except ValueError as e:
            raise UsageError(str(e))
        what = "subject %s, issuer %s, valid to %s" % (json.dumps(info["subject"]), json.dumps(info["issuer"]),
                                                       info["not_after"][:10])
    fsutil.makedirs(app.path("certs"))
    rel = "certs/%s.der" % key
    fsutil.write_atomic(app.path(rel), der)
    app.config.set(key, rel)
    return rel, what
