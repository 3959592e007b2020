# Append-only journal of self-checking records that survives a power cut at any
# instruction. Record on flash (little-endian):
#   magic 0xD5 | length u16 | seq u32 | payload | crc32 u32 (over header + payload)
# Records live in segment files "<name>.<first seq>" (zero-padded to 6 digits) in
# one directory. A full segment is never written again; eviction deletes whole
# oldest segments, so no file is ever rewritten except once at start-up, when a
# torn last record is cut off by copying the valid prefix to a .tmp and renaming
# it over (a cut during that copy leaves the original, and the next start redoes
# it). An empty segment file still names the next sequence number, so numbering
# continues across restarts and eviction.
import os
import struct
import binascii

from micropython import const

from dicamm.drivers import fsutil
from dicamm.errors import StorageError

_MAGIC = const(0xD5)
_HDR = const(7)           # magic, length, seq
_OVH = const(11)          # header + crc
_MAX_PAYLOAD = const(65535)
_CHUNK = const(128)       # scan / copy buffer: records are never loaded whole
_NOTICES = const(8)
_OK = const(0)
_TORN = const(1)
_CORRUPT = const(2)

try:
    _crc = binascii.crc32
except AttributeError:  # a port built without it: slow, but correct
    def _crc(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        return crc ^ 0xFFFFFFFF


class StorageStats:
    # Flash writes, for the bench and the wear estimate. One object may be shared
    # by all journals and by fsutil.write_atomic.
    def __init__(self):
        self.bytes_written = 0
        self.write_ops = 0
        self.files_created = 0
        self.files_removed = 0

    def as_dict(self):
        return {"bytes_written": self.bytes_written, "write_ops": self.write_ops,
                "files_created": self.files_created, "files_removed": self.files_removed}


class Journal:
    def __init__(self, dirpath, name, max_bytes, segment_bytes, stats=None):
        if segment_bytes < 64 or segment_bytes > max_bytes:
            raise StorageError("journal %s: need 64 <= segment_bytes <= max_bytes" % name)
        self.dir = dirpath
        self.name = name
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.stats = stats if stats is not None else StorageStats()
        self.next_seq = 1
        self.evicted = 0            # records (sequence numbers) evicted since start
        self.evicted_upto_seq = 0   # every seq <= this is gone
        self.recovered_torn = 0     # torn tails cut off at start
        self.corrupt = 0            # segments with a bad record before their end
        self.corrupt_bytes = 0      # bytes unreadable behind such a record
        self.notices = []           # last eviction notices (name, first, upto, bytes)
        self.on_evict = None        # optional callable(notice) for the app's log
        self._segs = []             # [first_seq, file size, readable end] oldest first
        self._total = 0
        self._file = None
        self._broken = False        # current segment must not be appended to
        self.read_buf = None  # see records()
        self._hdr = bytearray(_HDR)
        self._tail = bytearray(4)
        self._buf = bytearray(_CHUNK)
        try:
            self._open()
        except OSError as e:
            raise StorageError("journal %s: cannot open %s: %s" % (name, dirpath, e))

    # -- start-up ------------------------------------------------------------
    def _path(self, first):
        return "%s/%s.%06d" % (self.dir, self.name, first)

    def _open(self):
        fsutil.makedirs(self.dir)
        pre = self.name + "."
        firsts = []
        for fn in os.listdir(self.dir):
            if not fn.startswith(pre):
                continue
            tail = fn[len(pre):]
            if tail.endswith(fsutil.TMP):
                fsutil.remove(self.dir + "/" + fn)   # an unfinished recovery copy
            elif tail.isdigit():
                firsts.append(int(tail))
        firsts.sort()
        last = len(firsts) - 1
        for i, first in enumerate(firsts):
            path = self._path(first)
            size = fsutil.size(path)
            end, nxt, status = self._scan(path, size, first)
            if status == _TORN:
                self._truncate(path, end)
                self.recovered_torn += 1
                size = end
            elif status == _CORRUPT:
                self.corrupt += 1
                self.corrupt_bytes += size - end
                if i == last:
                    # Records behind the damage are unreadable but may have been
                    # handed out: never reuse their numbers, never append behind.
                    nxt += (size - end) // _OVH + 1
                    self._broken = True
            if size == 0 and i != last:
                fsutil.remove(path)
                self.stats.files_removed += 1
                continue
            self._segs.append([first, size, end])
            self._total += size
            self.next_seq = max(self.next_seq, nxt, first)
        self.evicted_upto_seq = self.first_seq - 1

    def _scan(self, path, size, seq):
        # Verify every record of one segment: (readable end, next seq, status).
        hdr = self._hdr
        pos = 0
        with open(path, "rb") as f:
            while pos < size:
                if size - pos < _OVH or f.readinto(hdr) != _HDR:
                    return pos, seq, _TORN
                magic, n, s = struct.unpack_from("<BHI", hdr)
                if magic != _MAGIC:
                    return pos, seq, _CORRUPT
                if pos + _OVH + n > size:
                    return pos, seq, _TORN
                good = self._check(f, n, _crc(hdr))
                if not good or s != seq:
                    # A bad record that ends the file is a write cut short.
                    return pos, seq, (_TORN if pos + _OVH + n == size and s == seq else _CORRUPT)
                pos += _OVH + n
                seq += 1
        return pos, seq, _OK

    def _check(self, f, n, crc):
        # Read n payload bytes in chunks, then the stored CRC; True if it matches.
        mv = memoryview(self._buf)
        while n:
            k = f.readinto(mv[:min(n, _CHUNK)])
            if not k:
                return False
            crc = _crc(mv[:k], crc)
            n -= k
        if f.readinto(self._tail) != 4:
            return False
        return struct.unpack_from("<I", self._tail)[0] == crc

    def _truncate(self, path, end):
        tmp = path + fsutil.TMP
        mv = memoryview(self._buf)
        try:
            with open(path, "rb") as src:
                with open(tmp, "wb") as dst:
                    left = end
                    while left:
                        k = src.readinto(mv[:min(left, _CHUNK)])
                        if not k:
                            raise OSError(5)
                        dst.write(mv[:k])
                        left -= k
                    dst.flush()
            os.rename(tmp, path)
        except OSError as e:
            fsutil.remove(tmp)
            raise StorageError("journal %s: cannot recover %s: %s" % (self.name, path, e))
        st = self.stats
        st.bytes_written += end
        st.write_ops += 1
        st.files_created += 1

    # -- writing ---------------------------------------------------------------
    def append(self, payload):
        # Write one record; durable when this returns. Returns its sequence number.
        # payload: bytes, or a list of bytes that make the record (a big one in
        # pieces, no block of its size in the heap).
        parts = payload if isinstance(payload, list) else (payload,)
        n = 0
        for p in parts:
            n += len(p)
        if n > _MAX_PAYLOAD or n + _OVH > self.max_bytes:
            raise StorageError("journal %s: record of %d bytes too large" % (self.name, n))
        rec = n + _OVH
        segs = self._segs
        if not segs or self._broken or (segs[-1][1] and segs[-1][1] + rec > self.segment_bytes):
            self._roll()
        self._evict(rec)
        cur = segs[-1]
        seq = self.next_seq
        hdr = self._hdr
        struct.pack_into("<BHI", hdr, 0, _MAGIC, n, seq)
        crc = _crc(hdr)
        for p in parts:
            crc = _crc(p, crc)
        struct.pack_into("<I", self._tail, 0, crc)
        try:
            f = self._file
            if f is None:
                f = self._file = open(self._path(cur[0]), "ab")
            f.write(hdr)
            for p in parts:
                f.write(p)
            f.write(self._tail)
            f.flush()   # littlefs commits the file on sync; POSIX: in the kernel
        except OSError as e:
            # The segment may now end in a partial record: start the next append
            # in a new segment; the next start-up cuts the torn tail off.
            self.close()
            self._broken = True
            self.next_seq = seq + 1     # burn the number: the next segment gets a new name
            sz = fsutil.size(self._path(cur[0]))
            if sz > cur[1]:
                self._total += sz - cur[1]
                cur[1] = sz
            raise StorageError("journal %s: append failed: %s" % (self.name, e))
        cur[1] += rec
        cur[2] = cur[1]
        self._total += rec
        self.next_seq = seq + 1
        st = self.stats
        st.bytes_written += rec
        st.write_ops += 1
        return seq

    def _roll(self):
        # Start a new segment named after the next sequence number.
        self.close()
        segs = self._segs
        if segs and segs[-1][0] == self.next_seq and not self._broken:
            return
        first = self.next_seq
        try:
            self._file = open(self._path(first), "ab")
        except OSError as e:
            raise StorageError("journal %s: cannot create segment: %s" % (self.name, e))
        self.stats.files_created += 1
        segs.append([first, 0, 0])
        self._broken = False

    def _evict(self, need):
        segs = self._segs
        while len(segs) > 1 and self._total + need > self.max_bytes:
            first, size, _ = segs.pop(0)
            upto = segs[0][0] - 1
            fsutil.remove(self._path(first))
            self.stats.files_removed += 1
            self._total -= size
            lo = max(first, self.evicted_upto_seq + 1)
            if upto >= lo:
                self.evicted += upto - lo + 1
            self.evicted_upto_seq = max(self.evicted_upto_seq, upto)
            notice = (self.name, first, upto, size)
            if len(self.notices) >= _NOTICES:
                self.notices.pop(0)
            self.notices.append(notice)
            if self.on_evict:
                self.on_evict(notice)

    def close(self):
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    # -- reading ---------------------------------------------------------------
    @property
    def first_seq(self):
        return self._segs[0][0] if self._segs else self.next_seq

    @property
    def total_bytes(self):
        return self._total

    def _seg_after(self, first):
        for s in self._segs:
            if s[0] > first:
                return s
        return None

    def records(self, from_seq=0):
        # Lazily yield (seq, payload) for seq >= from_seq, one record in RAM at a
        # time. Records appended meanwhile are yielded too; a segment evicted
        # meanwhile is skipped (its records are gone). With a read_buf (a
        # bytearray its owner gave, for records of ~1 KB) a record that fits is
        # read into it and yielded as a memoryview, valid until the next one:
        # no block of its size in a fragmented heap. last() and find() copy.
        rb = self.read_buf
        hdr = bytearray(_HDR)
        tail = bytearray(4)
        seg = None
        for s in self._segs:
            if s[0] <= from_seq or seg is None:
                seg = s
        while seg is not None:
            first = seg[0]
            pos = 0
            f = None
            try:
                f = open(self._path(first), "rb")
                retried = False
                while pos < seg[2] and self._segs and self._segs[0][0] <= first:
                    if f.readinto(hdr) != _HDR:
                        if retried:   # data we were told is committed is not there
                            break
                        # littlefs: a handle opened before an append may not see it
                        f.close()
                        f = open(self._path(first), "rb")
                        f.seek(pos)
                        retried = True
                        continue
                    magic, n, s = struct.unpack_from("<BHI", hdr)
                    if magic != _MAGIC:
                        break
                    if s < from_seq:
                        f.seek(n + 4, 1)
                    else:
                        if rb is not None and n <= len(rb):
                            payload = memoryview(rb)[:n]
                            if f.readinto(payload) != n:
                                break
                        else:
                            payload = f.read(n)
                        if f.readinto(tail) != 4 or len(payload) != n:
                            break
                        if struct.unpack_from("<I", tail)[0] != _crc(payload, _crc(hdr)):
                            break
                        yield s, payload
                    pos += n + _OVH
                    retried = False
            except OSError:
                pass    # segment evicted before we could open it
            finally:
                if f is not None:
                    f.close()
            seg = self._seg_after(first)

    def last(self, n):
        # The newest n records as a list of (seq, payload), oldest first.
        g = self.records(max(self.next_seq - n, 0))
        try:
            return [(s, bytes(p)) for s, p in g]
        finally:
            g.close()

    def find(self, seq):
        # Payload of record `seq`, or None if evicted, lost or not written yet.
        g = self.records(seq)
        try:
            for s, p in g:
                return bytes(p) if s == seq else None
            return None
        finally:
            g.close()

    def info(self):
        return {"name": self.name, "first_seq": self.first_seq, "next_seq": self.next_seq,
                "segments": len(self._segs), "bytes": self._total, "max_bytes": self.max_bytes,
                "evicted": self.evicted, "evicted_upto_seq": self.evicted_upto_seq,
                "recovered_torn": self.recovered_torn, "corrupt": self.corrupt,
                "corrupt_bytes": self.corrupt_bytes}


def open_in(folder, name, max_bytes, stats=None, log=None):
    # The journal `name` in folder (made if missing), segments of at most 8 KB.
    fsutil.makedirs(folder)
    j = Journal(folder, name, max_bytes, min(8192, max_bytes // 4), stats)
    if j.recovered_torn and log is not None:
        log("%s journal: dropped a torn last record after power loss" % name)
    return j
