# umqtt.simple (micropython-lib, unmodified) made fit for an asyncio device:
# the socket wrapper gives its "blocking" reads a deadline and keeps the times
# of the last traffic (keepalive) and the RETAIN flag of the packet being read;
# the client subclass splits connect() so the link can await the TCP connect
# and the CONNACK, and publish() returns the packet id instead of waiting for
# the PUBACK (the link matches PUBACKs itself).
import socket
import struct
import time

from dicamm.errors import LinkError

# The umqtt.simple this adapter is written for: the one of the pinned micropython-lib
# (tools/micropython.lock; a test holds the two together), which `make deploy`, mip
# and the frozen manifest install. The subclass uses the client's fields and its
# wait_msg(); check() below tries what it relies on, and the import fails on another.
UMQTT_SIMPLE = "1.8.0"
_FIX = "mpremote mip install umqtt.simple@" + UMQTT_SIMPLE

try:
    import umqtt.simple as _umqtt
except ImportError:  # the fault says how to get it (services/failsoft.py)
    raise ImportError("umqtt.simple missing - " + _FIX)
from umqtt.simple import MQTTClient, MQTTException

_IN_PROGRESS = (115, 119, 36)  # EINPROGRESS: Linux, lwIP (ESP32), BSD


class _Script:
    # A socket that plays back bytes and keeps what is written (for check()).
    def __init__(self, data):
        self.d = data
        self.out = b""

    def read(self, n):
        d = self.d[:n]
        self.d = self.d[n:]
        return d if d else None

    def write(self, buf, n=None):
        self.out += bytes(buf[:n] if n is not None else buf)

    def setblocking(self, flag):
        pass


def check(mod):
    # What this adapter relies on in the umqtt.simple module mod, tried on a
    # scripted socket: None when all is there, else what differs. 1.8.0 added
    # _encode_len and _send_subunsub; since 2022 wait_msg() returns the op of a
    # PUBLISH it handled (PyPI's 1.3.4 of 2017 returns None, which the link would
    # take for a packet whose body is still to read).
    cls = getattr(mod, "MQTTClient", None)
    if not hasattr(mod, "_encode_len") or not hasattr(cls, "_send_subunsub"):
        return "older than %s (no _encode_len, _send_subunsub)" % UMQTT_SIMPLE
    got = []
    c = cls(b"id", "host", 1883, b"u", b"p", 60)
    c.set_callback(lambda t, m: got.append((bytes(t), bytes(m))))
    c.set_last_will(b"w", b"m", True, 1)
    for f in ("client_id", "server", "port", "user", "pswd", "keepalive", "ssl", "ssl_params",
              "lw_topic", "lw_msg", "lw_qos", "lw_retain", "pid", "sock", "cb"):
        if not hasattr(c, f):
            return "no MQTTClient.%s" % f
    # PINGRESP (consumed), a QoS 1 PUBLISH (to the callback, PUBACK sent, its op
    # returned), a PUBACK (op returned, body left), then nothing (None)
    c.sock = _Script(b"\xd0\x00\x32\x07\x00\x01t\x00\x07ms\x40\x02\x00\x07")
    ops = [c.wait_msg(), c.check_msg(), c.check_msg()]
    rest = c.sock.d
    c.sock.d = b""
    ops.append(c.check_msg())
    if ops != [None, 0x32, 0x40, None] or got != [(b"t", b"ms")] or c.sock.out != b"\x40\x02\x00\x07" \
            or rest != b"\x02\x00\x07":
        return "wait_msg() answers %r, not [None, 50, 64, None]" % (ops,)
    return None


_why = check(_umqtt)
if _why:
    raise ImportError("umqtt.simple %s: this firmware needs %s - %s" % (_why, UMQTT_SIMPLE, _FIX))
del _why


class _Sock:
    # umqtt.simple calls setblocking(False) for one byte, then setblocking(True)
    # for the rest of the packet. Here True means "with a deadline". Also keeps
    # the times of the last byte in and out (keepalive) and the first byte of the
    # packet being read (its RETAIN flag).
    def __init__(self, raw, stream, timeout_ms):
        self.raw = raw
        self.s = stream
        self.timeout = timeout_ms / 1000
        self.rx_ms = self.tx_ms = time.ticks_ms()
        self.idle = False
        self.first = 0
        self._last1 = 0
        self._blocking = True
        raw.settimeout(self.timeout)

    def setblocking(self, flag):
        if flag:
            self.raw.settimeout(self.timeout)
            self.first = self._last1
        else:
            self.raw.setblocking(False)
        self._blocking = flag

    def read(self, n):
        d = self.s.read(n)
        if d is None:
            if self._blocking:
                raise LinkError("timeout reading from the broker")
            self.idle = True
            return None
        if d:
            self.rx_ms = time.ticks_ms()
            if n == 1:
                self._last1 = d[0]
        return d

    def write(self, buf, n=None):
        if n is not None and n < len(buf):
            buf = memoryview(buf)[:n]
        k = self.s.write(buf)
        if k is not None and k < len(buf):
            raise LinkError("short write to the broker")
        self.tx_ms = time.ticks_ms()
        return k

    def close(self):
        for s in (self.s, self.raw):
            try:
                s.close()
            except OSError:
                pass


def _mqtt_str(s):
    return struct.pack("!H", len(s)) + s


class Client(MQTTClient):
    def __init__(self, client_id, server, port, user, password, keepalive, ssl, ssl_params, timeout_ms):
        MQTTClient.__init__(self, client_id, server, port, user, password, keepalive, ssl, ssl_params)
        self.timeout_ms = timeout_ms
        self._hdr = bytearray(256)

    # umqtt.simple's connect() in three steps, so that the link can await the
    # slow parts (TCP connect, CONNACK) instead of blocking the loop on them:
    # open() starts a non-blocking TCP connect; start() (once the socket is
    # writable) does the TLS handshake (blocking, with the deadline) and sends
    # CONNECT; finish() (once data is there) reads the CONNACK.
    def open(self):
        addr = socket.getaddrinfo(self.server, self.port)[0][-1]
        raw = socket.socket()
        self.raw = raw
        raw.setblocking(False)
        try:
            raw.connect(addr)
        except OSError as e:
            if e.args[0] not in _IN_PROGRESS:
                raw.close()
                raise
        return raw

    def start(self, clean_session=True):
        raw = self.raw
        try:
            raw.settimeout(self.timeout_ms / 1000)
            stream = raw
            if self.ssl:
                import ussl
                stream = ussl.wrap_socket(raw, **self.ssl_params)
        except Exception:
            raw.close()
            raise
        self.sock = _Sock(raw, stream, self.timeout_ms)
        self.pid = 0
        flags = clean_session << 1
        pl = _mqtt_str(self.client_id)
        if self.lw_topic:
            flags |= 0x04 | self.lw_qos << 3 | self.lw_retain << 5
            pl += _mqtt_str(self.lw_topic) + _mqtt_str(self.lw_msg)
        if self.user is not None:
            flags |= 0x80
            pl += _mqtt_str(self.user)
            if self.pswd is not None:
                flags |= 0x40
                pl += _mqtt_str(self.pswd)
        body = b"\x00\x04MQTT\x04" + bytes((flags,)) + struct.pack("!H", self.keepalive) + pl
        n = self._fixed_header(0x10, len(body))
        self.sock.write(self._hdr, n)
        self.sock.write(body)

    def finish(self):
        resp = self.sock.read(4)
        if len(resp) != 4 or resp[0] != 0x20 or resp[1] != 2:
            raise LinkError("no CONNACK from the broker")
        if resp[3]:
            raise MQTTException(resp[3])
        return resp[2] & 1

    def subscribe_nowait(self, topic, qos):
        # SUBSCRIBE without waiting for the SUBACK (the link's reader skips it).
        self.pid = self.pid % 65535 + 1
        body = struct.pack("!H", self.pid) + _mqtt_str(topic) + bytes((qos,))
        n = self._fixed_header(0x82, len(body))
        self.sock.write(self._hdr, n)
        self.sock.write(body)

    def skip(self):
        # The body of a packet whose first byte check_msg() returned and the
        # link does not expect (SUBACK, UNSUBACK): its length, then the bytes.
        n = sh = 0
        while True:
            b = self.sock.read(1)[0]
            n |= (b & 0x7F) << sh
            if not b & 0x80:
                break
            sh += 7
        if n:
            self.sock.read(n)

    def _fixed_header(self, first, size):
        h = self._hdr
        h[0] = first
        i = 1
        while size > 0x7F:
            h[i] = (size & 0x7F) | 0x80
            size >>= 7
            i += 1
        h[i] = size
        return i + 1

    def publish(self, topic, msg, retain=False, qos=0):
        # Returns the packet id (QoS 1) without waiting for the PUBACK.
        sz = 2 + len(topic) + len(msg) + (2 if qos else 0)
        i = self._fixed_header(0x30 | qos << 1 | retain, sz)
        h = self._hdr
        if i + 4 + len(topic) > len(h):
            raise LinkError("topic too long")
        struct.pack_into("!H", h, i, len(topic))
        i += 2
        h[i:i + len(topic)] = topic
        i += len(topic)
        pid = 0
        if qos:
            self.pid = self.pid % 65535 + 1
            pid = self.pid
            struct.pack_into("!H", h, i, pid)
            i += 2
        self.sock.write(h, i)
        self.sock.write(msg)
        return pid


_CONNACK = {1: "unacceptable protocol version", 2: "client id rejected", 3: "server unavailable",
            4: "bad user name or password", 5: "not authorized"}


def describe(e, host, port, tls):
    # Any fault on the link (refused CONNACK, socket, TLS) -> one sentence.
    if isinstance(e, MQTTException):
        code = e.args[0] if e.args else 0
        return "broker refused the connection: %s (%d)" % (_CONNACK.get(code, "code"), code)
    if isinstance(e, LinkError):
        return str(e)
    if isinstance(e, OSError) and e.args and e.args[0] == -1:
        return "the broker closed the connection"
    if isinstance(e, OSError) and e.args and e.args[0] in (103, 104, 111, 113):
        return "%s:%d: connection %s" % (host, port, {103: "aborted", 104: "reset by the broker",
                                                      111: "refused", 113: "no route to host"}[e.args[0]])
    text = " ".join(str(e).split())  # mbedTLS messages come with newlines
    if isinstance(e, ValueError) and tls:
        text = "TLS: " + text  # certificate not trusted, wrong host name, bad key
    return "%s:%d: %s" % (host, port, text or type(e).__name__)


def tls_params(get, read_file, host):
    # ssl.wrap_socket arguments from the mqtt.ca/cert/key settings (files on the
    # device, PEM or DER). get(key, default): the setting; read_file(path) ->
    # bytes or None (None: open the path here).
    def der(key):
        path = get(key)
        if not path:
            return None
        if read_file is not None:
            data = read_file(path)
        else:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                data = None
        if not data:
            raise LinkError("%s: cannot read %s" % (key, path))
        from dicamm.proto.pem import to_der
        return to_der(data)

    ca = der("mqtt.ca")
    if ca is None:
        raise LinkError("mqtt.tls needs mqtt.ca (the broker's CA certificate)")
    p = {"cadata": ca, "server_hostname": get("mqtt.server_hostname", host)}
    cert = der("mqtt.cert")
    if cert is not None:
        p["cert"] = cert
        p["key"] = der("mqtt.key")
    return p
