"""A private mosquitto for tests and the bench, plus a tiny MQTT 3.1.1 client.

Never touches the system broker: each Broker runs its own mosquitto on a free
loopback port with a generated config in a temporary directory (optionally a
password file made with mosquitto_passwd, and a TLS listener whose CA, server
and client certificates are made with the openssl CLI).

    python tools/broker.py                       # start, print every message under dicamm/#
    python tools/broker.py --user dev --password pw --tls
    python tools/broker.py pub --port P dicamm/ID/cmd/relay '{"id":"1","state":"on"}'
    python tools/broker.py sub --port P 'dicamm/#'
"""
import argparse
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


class _PortTaken(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    """CA key and self-signed certificate (EC P-256): returns (cert_path, key_path)."""
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key, cwd=d)
    _openssl("req", "-x509", "-new", "-key", key, "-sha256", "-days", "3650", "-subj", "/CN=" + name,
             "-out", crt, cwd=d)
    return crt, key


def make_cert(d, name, ca, cn, san=None, client=False):
    """Key and certificate for cn signed by ca=(crt, key): returns (cert_path, key_path)."""
    key, csr, crt = (os.path.join(d, name + x) for x in (".key", ".csr", ".crt"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n")
        f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
        if san:
            f.write("subjectAltName=%s\n" % san)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key, cwd=d)
    _openssl("req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr, cwd=d)
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-sha256",
             "-days", "825", "-extfile", ext, "-out", crt, cwd=d)
    return crt, key


def pem_to_der(path):
    with open(path, "rb") as f:
        return ssl.PEM_cert_to_DER_cert(f.read().decode())


class Broker:
    """mosquitto on 127.0.0.1:port (and tls_port with tls=True).

    persistence: sessions and queued QoS 1 messages survive stop()/start(), so a
    subscriber with clean_session=False misses nothing across a broker restart.
    users: {name: password} -> a password file and no anonymous access.
    require_client_cert: the TLS listener asks for a client certificate.
    """

    def __init__(self, port=None, users=None, tls=False, require_client_cert=False, workdir=None,
                 max_packet=None, persistence=False):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._own_ports = port is None
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.users = users
        self.require_client_cert = require_client_cert
        self.max_packet = max_packet
        self.persistence = persistence
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="dicamm-broker-")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.ca = self.server_cert = self.client_cert = self.other_ca = None
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        self.log = os.path.join(self.dir, "mosquitto.log")
        self._write_files()

    def _write_files(self):
        lines = ["persistence %s" % ("true" if self.persistence else "false"),
                 "persistence_location %s/" % self.dir, "per_listener_settings false",
                 "log_dest file " + self.log, "log_type error", "log_type warning",
                 "log_type notice", "log_type information", "connection_messages true",
                 "listener %d %s" % (self.port, self.host)]
        if self.max_packet:
            lines.insert(0, "max_packet_size %d" % self.max_packet)
        if self.users:
            pw = os.path.join(self.dir, "passwd")
            open(pw, "w").close()
            for user, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", pw, user, password], check=True, capture_output=True)
            os.chmod(pw, 0o600)
            lines += ["allow_anonymous false", "password_file " + pw]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            self.ca = make_ca(self.dir, "ca")
            self.other_ca = make_ca(self.dir, "other-ca")
            self.server_cert = make_cert(self.dir, "server", self.ca, "localhost",
                                         san="DNS:localhost,IP:127.0.0.1")
            self.client_cert = make_cert(self.dir, "client", self.ca, "dicamm-client", client=True)
            lines += ["listener %d %s" % (self.tls_port, self.host),
                      "cafile " + self.ca[0], "certfile " + self.server_cert[0],
                      "keyfile " + self.server_cert[1],
                      "require_certificate %s" % ("true" if self.require_client_cert else "false")]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # else mosquitto drops to a user that cannot read self.dir
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=10):
        for attempt in range(3):
            try:
                return self._start(timeout)
            except _PortTaken:
                # free_port() released the port and another emulator of the rig
                # took it before mosquitto bound it: new ports, same files.
                self._relisten()
        return self._start(timeout)

    def _relisten(self):
        with open(self.conf) as f:
            text = f.read()
        old = [self.port] + ([self.tls_port] if self.tls_port else [])
        self.port = free_port()
        if self.tls_port:
            self.tls_port = free_port()
        new = [self.port] + ([self.tls_port] if self.tls_port else [])
        for a, b in zip(old, new):
            text = text.replace("listener %d " % a, "listener %d " % b)
        with open(self.conf, "w") as f:
            f.write(text)
        open(self.log, "w").close()  # the next start's log only

    def _start(self, timeout):
        if self.proc is not None:
            return self
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                self.proc = None
                if self._own_ports and "Address already in use" in err + self.log_text():
                    raise _PortTaken()
                raise RuntimeError("mosquitto exited: %s %s" % (err, self.log_text()))
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not listen on %d" % self.port)

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        self.proc = None

    def close(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# -- a small MQTT 3.1.1 client (CPython, raw socket, QoS 0/1) ----------------

def _mqtt_str(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("!H", len(b)) + b


def _packet(first, body):
    n = len(body)
    out = bytearray([first])
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + body


class Message:
    __slots__ = ("topic", "payload", "qos", "retain", "dup", "t")

    def __init__(self, topic, payload, qos, retain, dup):
        self.topic, self.payload, self.qos, self.retain, self.dup = topic, payload, qos, retain, dup
        self.t = time.monotonic()

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        return "Message(%r, %r, qos=%d, retain=%s)" % (self.topic, self.payload[:80], self.qos, self.retain)


class Client:
    """Connects, subscribes, and collects messages on a thread; publish() for commands."""

    def __init__(self, port, host="127.0.0.1", client_id="host-test", user=None, password=None,
                 keepalive=30, ssl_context=None, server_hostname=None, clean_session=True):
        self.messages = []
        self._cond = threading.Condition()
        self._pid = 0
        self._acks = set()
        self._closed = False
        raw = socket.create_connection((host, port), 5)
        self.sock = ssl_context.wrap_socket(raw, server_hostname=server_hostname or host) if ssl_context else raw
        flags = 0x02 if clean_session else 0
        payload = _mqtt_str(client_id)
        if user is not None:
            flags |= 0x80
            payload += _mqtt_str(user)
            if password is not None:
                flags |= 0x40
                payload += _mqtt_str(password)
        body = _mqtt_str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
        self.sock.sendall(_packet(0x10, body))
        first, body = self._read_packet()
        if first != 0x20 or len(body) != 2:
            raise ConnectionError("no CONNACK")
        self.return_code = body[1]
        if self.return_code:
            self.sock.close()
            raise ConnectionRefusedError("CONNACK return code %d" % self.return_code)
        self.sock.settimeout(None)
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def _read_packet(self):
        first = self._read_exact(1)[0]
        n = shift = 0
        while True:
            b = self._read_exact(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return first, self._read_exact(n) if n else b""

    def _reader(self):
        try:
            while not self._closed:
                first, body = self._read_packet()
                kind = first & 0xF0
                if kind == 0x30:
                    qos = (first >> 1) & 3
                    tl = struct.unpack("!H", body[:2])[0]
                    topic = body[2:2 + tl].decode()
                    i = 2 + tl
                    if qos:
                        pid = body[i:i + 2]
                        i += 2
                        self.sock.sendall(b"\x40\x02" + pid)
                    msg = Message(topic, body[i:], qos, bool(first & 1), bool(first & 8))
                    with self._cond:
                        self.messages.append(msg)
                        self._cond.notify_all()
                elif kind in (0x40, 0x90):
                    with self._cond:
                        self._acks.add(struct.unpack("!H", body[:2])[0])
                        self._cond.notify_all()
        except (OSError, ConnectionError, ValueError):
            pass

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    def _wait_ack(self, pid, timeout):
        with self._cond:
            if not self._cond.wait_for(lambda: pid in self._acks, timeout):
                raise TimeoutError("no ack for packet %d" % pid)
            self._acks.discard(pid)

    def subscribe(self, topic, qos=1, timeout=5):
        pid = self._next_pid()
        self.sock.sendall(_packet(0x82, struct.pack("!H", pid) + _mqtt_str(topic) + bytes([qos])))
        self._wait_ack(pid, timeout)
        return self

    def publish(self, topic, payload, qos=0, retain=False, timeout=5):
        if isinstance(payload, str):
            payload = payload.encode()
        body = _mqtt_str(topic)
        pid = None
        if qos:
            pid = self._next_pid()
            body += struct.pack("!H", pid)
        self.sock.sendall(_packet(0x30 | (qos << 1) | (1 if retain else 0), body + payload))
        if pid:
            self._wait_ack(pid, timeout)

    def wait_for(self, pred, timeout=10):
        """The first collected message for which pred(msg) is true, or TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching message in %.1f s; got %d messages" % (timeout, len(self.messages)))
                self._cond.wait(left)

    def wait_count(self, pred, n, timeout=10):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [m for m in self.messages if pred(m)]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%d of %d messages in %.1f s" % (len(got), n, timeout))
                self._cond.wait(left)

    def topics(self, suffix):
        with self._cond:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def ping(self):
        self.sock.sendall(b"\xc0\x00")

    def close(self):
        self._closed = True
        try:
            self.sock.sendall(b"\xe0\x00")
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _print_messages(client, stop):
    seen = 0
    while not stop.is_set():
        with client._cond:
            client._cond.wait(0.5)
            new = client.messages[seen:]
            seen = len(client.messages)
        for m in new:
            flag = " (retained)" if m.retain else ""
            print("%s %s%s %s" % (time.strftime("%H:%M:%S"), m.topic, flag,
                                  m.payload.decode(errors="replace")), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="serve", choices=("serve", "sub", "pub"))
    ap.add_argument("args", nargs="*", help="sub: TOPIC; pub: TOPIC PAYLOAD")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--tls", action="store_true", help="serve: add a TLS listener (certs in the work dir)")
    ap.add_argument("--watch", default="dicamm/#", help="serve: topic filter to print")
    a = ap.parse_args(argv)
    if a.mode == "pub":
        c = Client(a.port, user=a.user, password=a.password, client_id="dicamm-pub-%d" % os.getpid())
        c.publish(a.args[0], a.args[1], qos=1)
        c.close()
        return 0
    if a.mode == "sub":
        c = Client(a.port, user=a.user, password=a.password, client_id="dicamm-sub-%d" % os.getpid())
        c.subscribe(a.args[0] if a.args else a.watch)
        stop = threading.Event()
        try:
            _print_messages(c, stop)
        except KeyboardInterrupt:
            pass
        c.close()
        return 0
    users = {a.user: a.password} if a.user else None
    b = Broker(a.port, users=users, tls=a.tls).start()
    print("mosquitto on %s:%d%s (config %s)" % (b.host, b.port, " TLS %d" % b.tls_port if b.tls else "", b.conf),
          flush=True)
    if b.tls:
        print("CA certificate: %s" % b.ca[0], flush=True)
    c = Client(b.port, user=a.user, password=a.password, client_id="dicamm-watch").subscribe(a.watch)
    stop = threading.Event()
    try:
        _print_messages(c, stop)
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
