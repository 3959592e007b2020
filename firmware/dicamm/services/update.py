# The firmware update's download (issue 19, item 2): a signed release is fetched
# and checked into the staging area while metering, the load profile, relay
# control and the outbox run on. One update at a time; every refusal and every
# failure leaves the running firmware, the config, the journals and the
# certificates as they were, and says why in `state`.
#
# Steps: manifest.json and manifest.sig from the release URL (the manifest's
# folder holds files/<path>); proto/release.check (signature, board, version);
# the free flash (every file's size plus update.keep_free_kib stays free for the
# journals); each file downloaded chunk by chunk into update/stage/<path>,
# its size and SHA-256 checked as the bytes arrive (drivers/http_fetch, a
# deadline per chunk); last, the manifest and its signature beside them and the
# state "staged". A stage without manifest.json is an unfinished download: an
# update of the same release (pending.json, the same signed bytes) resumes it,
# keeping each file whose size and SHA-256 check again; any other removes it.
# A cut in the cellar's power or link costs one file, not the whole download.
# Then the switch (item 3): the stage becomes the folder code/<version> (one rename), the boot record names it on trial (one atomic
# write, proto/slots.py) and the device restarts into it; services/confirm.py
# confirms it or goes back.
import os

from dicamm.errors import DicammError, UpdateError
from dicamm.platform import asyncio
from dicamm.drivers import codeslot, fsutil, http_fetch
from dicamm.proto import release, slots

STAGE = "update/stage"
_PENDING = "pending.json"   # the manifest of the release the stage's files belong to
_SIG_MAX = 80          # a DER P-256 signature is at most 72 bytes

_updater = []          # the one Updater of the running app


def updater(app):
    if not _updater:
        _updater.append(Updater(app))
    return _updater[0]


def current_state():
    # The update's state for MQTT's `update` topic, None before any update was asked for.
    return dict(_updater[0].state) if _updater else None


def free_bytes(path):
    st = os.statvfs(path)
    return st[0] * st[4]   # f_bsize * f_bavail (littlefs and the unix port report f_frsize == f_bsize)


class Updater:
    def __init__(self, app):
        from dicamm import VERSION
        self.app = app
        self.cfg = app.config
        self.path = app.path          # a name on the device -> its path
        self.board = app.board.get("name") or "unix"
        self.info = app.info
        self.current = VERSION
        self.state = {"state": "idle", "version": None, "bytes": 0, "total": 0, "file": None, "error": None}
        self._task = None

    def running(self):
        return self.state["state"] in ("download", "check")

    def start(self, url, allow_downgrade=False):
        # Begins an update in the background; UpdateError at once if one runs.
        if self.running():
            raise UpdateError("busy: an update is running (%s)" % self.state["state"])
        self.state = {"state": "check", "version": None, "bytes": 0, "total": 0, "file": None, "error": None,
                      "url": url}
        self._task = asyncio.create_task(self._run(url, allow_downgrade))

    def boot_record(self):
        return codeslot.read(self.app.root)

    async def _run(self, url, allow_downgrade):
        try:
            m = await self.install(url, allow_downgrade)
            self.switch(m["version"])
            await asyncio.sleep_ms(200)   # the console's last lines go out first
            from dicamm.services.confirm import restart
            restart(self.app)
        except (DicammError, OSError, ValueError) as e:
            self._fail(str(e) or e.__class__.__name__)
        except Exception as e:  # a bug must not leave the state "download" for ever
            self._fail("internal error: %s: %s" % (e.__class__.__name__, e))

    def _fail(self, why):
        self.state["state"] = "failed"
        self.state["error"] = why
        self.info("update failed: %s" % why)

    def _ctx(self):
        import tls
        ca = self.cfg.get("update.ca")
        if not ca:
            raise UpdateError("update.ca is not set: the release server cannot be verified")
        from dicamm.drivers.tls_stream import read_der
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(read_der(self.path(ca)))
        ctx.verify_mode = tls.CERT_REQUIRED
        return ctx

    async def _get(self, url, sink, max_bytes, ctx):
        return await http_fetch.get(url, sink, ctx, bool(self.cfg.get("update.plain_http")),
                                    int(self.cfg.get("update.timeout_ms")), max_bytes)

    async def _small(self, url, max_bytes, ctx):
        parts = []
        await self._get(url, parts.append, max_bytes, ctx)
        return b"".join(parts)

    async def install(self, url, allow_downgrade=False):
        st = self.state
        pub = release.public_key(self.cfg.get("update.pubkey") or "")
        base = url[:-len("manifest.json")]
        ctx = None if url.startswith("http:") else self._ctx()
        data = await self._small(url, release.MAX_MANIFEST_BYTES, ctx)
        sig = await self._small(base + "manifest.sig", _SIG_MAX, ctx)
        m = release.check(data, sig, pub, self.board, self.current, allow_downgrade)
        st["version"], st["total"] = m["version"], release.total_bytes(m)
        stage = self.path(STAGE)
        pending = stage + "/" + _PENDING
        if fsutil.read(pending) != data:   # another release's files, or none: start afresh
            fsutil.rmtree(stage)
            fsutil.makedirs(stage)
            fsutil.write_atomic(pending, data)
        todo = [e for e in m["files"] if not _complete(stage, e)]
        st["bytes"] = st["total"] - sum(e["size"] for e in todo)   # resumed: what a cut left, checked again
        keep = int(self.cfg.get("update.keep_free_kib"))
        free = free_bytes(stage)
        if free < st["total"] - st["bytes"] + 1024 * keep:
            fsutil.rmtree(stage)
            raise UpdateError("not enough flash: the release needs %d bytes and %d KiB stay free, %d are free"
                              % (st["total"], keep, free))
        st["state"] = "download"
        self.info("update %s: %d files, %d bytes%s" % (m["version"], len(m["files"]), st["total"],
                                                      ", resumed at %d" % st["bytes"] if st["bytes"] else ""))
        for e in todo:
            await self._file(base, stage, e, ctx)
        fsutil.write_atomic(stage + "/manifest.sig", sig)
        fsutil.write_atomic(stage + "/manifest.json", data)   # the stage is complete
        fsutil.remove(pending)
        st["state"], st["file"] = "staged", None
        self.info("update %s staged" % m["version"])
        return m

    def switch(self, version):
        # The staged release becomes code/<version> and starts on trial after the restart.
        folder = "code/" + version
        dest = self.path(folder)
        fsutil.rmtree(dest)   # an unfinished earlier switch to this version (never the running one)
        fsutil.makedirs(self.path("code"))
        os.rename(self.path(STAGE), dest)
        codeslot.write(self.app.root, slots.switch_to(self.boot_record(), folder, version))
        self.state["state"] = "restarting"
        self.info("update %s installed in %s: restarting into it on trial" % (version, folder))

    async def _file(self, base, stage, e, ctx):
        # One file into the stage; a file that fails its check, or whose download
        # breaks off, is removed (the files before it stay for a resumed update).
        self.state["file"] = e["path"]
        dest = stage + "/" + e["path"]
        if "/" in e["path"]:
            fsutil.makedirs(dest.rsplit("/", 1)[0])
        check = release.FileCheck(e)
        st = self.state
        try:
            with open(dest, "wb") as f:
                def sink(chunk):
                    check.feed(chunk)
                    f.write(chunk)
                    st["bytes"] += len(chunk)
                await self._get(base + "files/" + e["path"], sink, e["size"], ctx)
            check.finish()
        except BaseException:
            fsutil.remove(dest)
            raise


def _complete(stage, e):
    # True when the stage holds the file of entry e, its size and SHA-256 as signed.
    path = stage + "/" + e["path"]
    if fsutil.size(path) != e["size"]:
        return False
    check = release.FileCheck(e)
    buf = bytearray(512)
    try:
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                check.feed(memoryview(buf)[:n])
        check.finish()
        return True
    except (UpdateError, OSError):
        return False
