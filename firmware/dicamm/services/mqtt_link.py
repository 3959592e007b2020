# MQTT link to the flexibility backend (docs/MQTT.md): status, the telemetry
# of mqtt_telemetry.py (state, meter, identity, health), commands on
# <prefix>cmd/<name> with an ack each, and store-and-forward of the qh, event
# and tx journals from the last record the broker acknowledged (QoS 1 PUBACK).
#
# Built on micropython-lib umqtt.simple (unmodified). Its blocking parts are
# replaced in a subclass: connecting is split so that the link awaits the TCP
# connect and the CONNACK (a hung or unreachable broker costs the loop
# nothing; only a TLS handshake blocks, for at most mqtt.timeout_ms), and
# publish() never waits for PUBACK (the link matches PUBACKs when check_msg()
# reports them). The socket is wrapped so that umqtt's "blocking" mode means
# "with a deadline": a broker that stalls costs at most mqtt.timeout_ms, then
# the link is dropped and retried with exponential backoff and jitter. Every
# link fault ends in one place (run -> _drop), so metering and control never
# wait on the network. Connecting and each turn of publishing wait on the load
# profile's boundary gate: a handshake or a burst never delays the qh reading.
import time

from micropython import const

from dicamm.drivers.mqtt_client import Client, describe, tls_params
from dicamm.errors import ConfigError, LinkError
from dicamm.platform import asyncio, rand16
from dicamm.proto import mqtt_cmd
from dicamm.services.mqtt_streams import STREAMS, Streams
from dicamm.services.mqtt_telemetry import TOPICS, Telemetry

_WINDOW = const(8)            # QoS 1 messages in flight
_POLL_MS = const(50)          # idle poll period for check_msg
_MAX_READS = const(16)        # packets handled per turn
_STABLE_MS = const(30000)     # a link up this long resets the backoff
_TURN_BLOCKS_MS = const(100)  # real ms a turn (a burst, a command) may hold the loop, at most
_RECENT = const(8)            # commands remembered for duplicate ids
_MAX_ACKS = const(8)

_IO_POLL_MS = const(10)

def _b(s):
    return s.encode() if isinstance(s, str) else s


class MqttLink:
    # sources: {"qh"|"event"|"event/gateway"|"tx": journal (records(from_seq), first_seq, next_seq),
    #           "decode": {stream: fn(seq, payload) -> dict} (optional),
    #           "state": fn() -> dict, "reading": fn() -> dict or None,
    #           "stamp": fn() -> (unix_ms, status) (optional),
    #           "identity", "health": fn() -> dict (optional, services/device_info.py),
    #           "cursor_path": file for the per-stream cursors (optional),
    #           "read_file": fn(path) -> bytes or None (optional, for certificates),
    #           "log": fn(text) (optional)}
    def __init__(self, config, device_id, commands, sources, clock, gate=None):
        self.cfg = config
        self.gate = gate  # boundary_gate.BoundaryGate or None
        self.device_id = device_id
        self.commands = commands
        self.src = sources
        self.clock = clock
        self.host = self._get("mqtt.host")
        self.tls = bool(self._get("mqtt.tls", False))
        port = self._get("mqtt.port")
        if port is None or (self.tls and self._is_default("mqtt.port")):
            port = 8883 if self.tls else 1883
        self.port = int(port)
        prefix = self._get("mqtt.prefix") or "dicamm/%s/" % device_id
        if not prefix.endswith("/"):
            prefix += "/"
        self.prefix = prefix
        self._cmd_prefix = prefix + "cmd/"
        if len(self._cmd_prefix) > 100:  # umqtt.simple's subscribe has a one-byte length
            raise LinkError("mqtt.prefix too long")
        self._topic = {}
        for t in TOPICS + STREAMS:
            self._topic[t] = (prefix + t).encode()
        self.streams = Streams(sources, self._log)
        self._client = None
        self._inflight = []    # [pid, stream index or -1, seq, acked]
        self._acks = []        # ack payloads waiting to be published
        self._recent = []      # [(name, id), ack payload] of executed commands
        self.telemetry = Telemetry(self.publish, self._get, sources, clock)
        self._up_ms = time.ticks_ms()
        self._next_try = time.ticks_ms()
        self._cb_sock = None
        self._running = False
        self.connected = False
        self.last_error = None if self.host else "mqtt.host not set"
        self.connects = 0
        self.failures = 0
        self.last_drop = None
        self._streak = 0
        self.published = 0
        self.commands_ok = 0
        self.commands_refused = 0
        self.retained_ignored = 0

    # -- configuration ------------------------------------------------------
    def _get(self, key, default=None):
        try:
            v = self.cfg.get(key)
        except (KeyError, ValueError, ConfigError):  # optional keys the schema may not list
            v = None
        return default if v is None or v == "" else v  # "": not set (the schema's empty default)

    def _is_default(self, key):
        fn = getattr(self.cfg, "is_default", None)
        return fn(key) if fn is not None else self._get(key) is None

    def _ssl_params(self):
        return tls_params(self._get, self.src.get("read_file"), self.host)

    # -- status ---------------------------------------------------------------
    def status(self):
        wait = 0 if self.connected else max(0, time.ticks_diff(self._next_try, time.ticks_ms()))
        return {"connected": self.connected, "broker": "%s:%d" % (self.host, self.port), "tls": self.tls,
                "prefix": self.prefix, "last_error": self.last_error, "last_drop": self.last_drop,
                "connects": self.connects,
                "reconnects": max(0, self.connects - 1), "failures": self.failures,
                "retry_in_s": wait // 1000, "backlog": self.streams.backlog(), "lost": self.streams.lost_counts(),
                "inflight": len(self._inflight), "published": self.published,
                "commands": self.commands_ok, "refused": self.commands_refused}

    def _log(self, text):
        fn = self.src.get("log")
        if fn is not None:
            fn("mqtt: " + text)

    # -- the task ---------------------------------------------------------------
    async def run(self):
        self._running = True
        while self._running:
            if self.gate is not None:
                # a TLS handshake (connect: the gate's longest lead) or a turn
                # of publishing holds the loop: the quarter-hour reading first
                await self.gate.wait_clear(None if self._client is None else _TURN_BLOCKS_MS)
            if self._client is None:
                if self.host and time.ticks_diff(time.ticks_ms(), self._next_try) >= 0:
                    await self._try_connect()
                await asyncio.sleep_ms(100 if self._client is None else 0)
                continue
            busy = False
            try:
                busy = self._service()
            except Exception as e:  # every link fault ends here
                self._drop(e)
            await asyncio.sleep_ms(0 if busy else _POLL_MS)

    def stop(self):
        # Clean shutdown: "offline", DISCONNECT (no last will), cursors saved.
        self._running = False
        c = self._client
        if c is not None:
            try:
                c.publish(self._topic["status"], b"offline", True, 0)
                c.disconnect()
            except Exception:
                pass
            self._close()
        self.streams.save(True)

    async def _wait_io(self, raw, out, timeout_ms):
        # Await a socket writable (out) or readable without blocking the loop.
        import select
        ev = select.POLLOUT if out else select.POLLIN
        p = select.poll()
        p.register(raw, ev)
        t0 = time.ticks_ms()
        while True:
            r = p.poll(0)
            if r:
                flags = r[0][1]
                if out and flags & (select.POLLERR | select.POLLHUP):
                    raise LinkError("%s:%d: connection refused (ECONNREFUSED)" % (self.host, self.port))
                return
            if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
                raise LinkError("%s:%d: no answer in %d ms (%s)" % (
                    self.host, self.port, timeout_ms, "connect" if out else "CONNACK"))
            await asyncio.sleep_ms(_IO_POLL_MS)

    async def _try_connect(self):
        c = Client(_b(self._get("mqtt.client_id") or "dicamm-" + self.device_id), self.host, self.port,
                    _b(self._get("mqtt.user")), _b(self._get("mqtt.password")),
                    int(self._get("mqtt.keepalive_s", 60)), self.tls, None, int(self._get("mqtt.timeout_ms", 3000)))
        try:
            if self.tls:
                c.ssl_params = self._ssl_params()
            c.set_callback(self._on_message)
            c.set_last_will(self._topic["status"], b"offline", True, 1)
            timeout = c.timeout_ms
            raw = c.open()
            await self._wait_io(raw, True, timeout)
            if self.gate is not None:  # the TCP connect may have taken us into the quiet time
                await self.gate.wait_clear()
            c.start()
            await self._wait_io(raw, False, timeout)
            c.finish()
            self._cb_sock = c.sock
            c.subscribe_nowait((self._cmd_prefix + "#").encode(), 1)
        except Exception as e:
            for s in (c.sock, getattr(c, "raw", None)):
                try:
                    s.close()
                except Exception:
                    pass
            self._fail(self._describe(e))
            return
        self._client = c
        self.connected = True
        self.connects += 1
        self._up_ms = time.ticks_ms()
        self._inflight = []
        self.streams.restart()
        self.last_error = None
        self._log("connected to %s:%d" % (self.host, self.port))
        try:
            self._send(self._topic["status"], b"online", True)
            self.telemetry.connected(self._discovery if self._get("mqtt.discovery", False) else None)
        except Exception as e:
            self._drop(e)

    def _describe(self, e):
        return describe(e, self.host, self.port, self.tls)

    def _fail(self, text):
        self.last_error = text
        self.failures += 1
        self._streak += 1
        base = int(self._get("mqtt.backoff_s", 2)) * 1000
        top = int(self._get("mqtt.backoff_max_s", 300)) * 1000
        delay = base << min(self._streak - 1, 12)
        if delay > top:
            delay = top
        delay = delay // 2 + ((delay // 2) * rand16() >> 16)  # jitter: 50..100 %
        self._next_try = time.ticks_add(time.ticks_ms(), delay)
        self._log("%s; retry in %d s" % (text, delay // 1000))

    def _close(self):
        c = self._client
        self._client = None
        self.connected = False
        self._inflight = []
        if c is not None and c.sock is not None:
            c.sock.close()

    def _drop(self, e):
        self._close()
        self._fail("link lost: " + self._describe(e))
        self.last_drop = self.last_error  # kept after the reconnect: why the link was lost
        try:
            self.streams.save(True)
        except Exception:
            pass

    # -- one turn of the connected link ---------------------------------------
    def _service(self):
        now = time.ticks_ms()
        self._read()
        self._keepalive(now)
        while self._acks:
            self._send(self._topic["ack"], self._acks.pop(0), False)
        self.telemetry.turn(now)
        busy = self._pump()
        self.streams.save()
        if self._streak and time.ticks_diff(now, self._up_ms) > _STABLE_MS:
            self._streak = 0
        return busy

    def _read(self):
        c = self._client
        s = c.sock
        for _ in range(_MAX_READS):
            if len(self._acks) >= _MAX_ACKS:
                return  # answer these first; the rest waits in the socket
            s.idle = False
            op = c.check_msg()
            if s.idle:
                return
            if op is None or self._client is None or op & 0xF0 == 0x30:
                continue  # nothing, or a PUBLISH that check_msg handed to _on_message
            if op == 0x40:  # PUBACK
                b = s.read(3)
                if len(b) != 3 or b[0] != 2:
                    raise LinkError("bad PUBACK")
                self._puback(b[1] << 8 | b[2])
            else:  # SUBACK, UNSUBACK...: not expected now
                c.skip()

    def _keepalive(self, now):
        ka = int(self._get("mqtt.keepalive_s", 60)) * 1000
        s = self._client.sock
        if time.ticks_diff(now, s.rx_ms) > ka + ka // 2:
            raise LinkError("no answer from the broker for %d s" % (ka * 3 // 2000))
        if time.ticks_diff(now, s.tx_ms) > ka // 2 or \
                (time.ticks_diff(now, s.rx_ms) > ka // 2 and time.ticks_diff(now, s.tx_ms) > ka // 8):
            self._client.ping()

    def _send(self, topic, payload, retain, stream=-1, seq=0):
        pid = self._client.publish(topic, payload, retain, 1)
        self._inflight.append([pid, stream, seq, False])
        self.published += 1

    def _puback(self, pid):
        # In-flight messages are acknowledged in any order; a journal record
        # counts as delivered once everything sent before it is acknowledged too.
        q = self._inflight
        for e in q:
            if e[0] == pid:
                e[3] = True
                break
        while q and q[0][3]:
            e = q.pop(0)
            if e[1] >= 0:
                self.streams.acknowledged(e[1], e[2])

    def _pump(self):
        # At most _WINDOW unacknowledged messages. True if more is waiting.
        more = self.streams.pump(self._send_record, lambda: _WINDOW - len(self._inflight))
        return more and len(self._inflight) < _WINDOW

    def _send_record(self, name, i, seq, message):
        self._send(self._topic[name], message, False, i, seq)

    def publish(self, name, payload, retain, qos=1):
        # A message on one of the link's own topics (TOPICS); QoS 1 counts in flight.
        if qos:
            self._send(self._topic[name], payload, retain)
        else:
            self._client.publish(self._topic[name], payload, retain, 0)
            self.published += 1

    # -- commands --------------------------------------------------------------
    def _on_message(self, topic, msg):
        s = self._cb_sock
        if s is not None and s.first & 0x01:
            # A retained message under cmd/ would replay at every connect.
            self.retained_ignored += 1
            return
        t = bytes(topic)
        p = self._cmd_prefix.encode()
        if not t.startswith(p):
            return
        name, cid, args, err = mqtt_cmd.parse(t[len(p):], msg)
        if err is None:
            for key, ack in self._recent:
                if key == (name, cid):  # a QoS 1 redelivery or a retry: same answer, once
                    self._queue_ack(ack)
                    return
            ack, ok = mqtt_cmd.run(self.commands.execute, name, cid, args, self._log)
            if ok:
                self.commands_ok += 1
            else:
                self.commands_refused += 1
            self._recent.append([(name, cid), ack])
            if len(self._recent) > _RECENT:
                self._recent.pop(0)
        else:
            ack = mqtt_cmd.ack(cid, False, err, None, name)
            self.commands_refused += 1
        self._queue_ack(ack)

    def _queue_ack(self, ack):
        self._acks.append(ack)
        if len(self._acks) > _MAX_ACKS:
            self._acks.pop(0)

    # -- Home Assistant discovery -------------------------------------------

    def _discovery(self):
        from dicamm import VERSION
        from dicamm.proto.mqtt_discovery import for_link
        for topic, payload in for_link(self._get, self.prefix, self.device_id, VERSION, mqtt_cmd.names()):
            self._send(topic, payload, True)
