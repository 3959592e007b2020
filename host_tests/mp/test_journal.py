# Journal: append, restart, torn tails at every byte, corruption, eviction, lazy
# reading across segments, flash-write accounting. Runs on MicroPython and CPython.
import os

from dicamm.drivers import fsutil
from dicamm.errors import StorageError
from dicamm.drivers.journal import Journal, StorageStats

_BASE = "/tmp/dicamm_tj_"


def _fresh(tag):
    d = _BASE + tag + "_" + "".join("%02x" % b for b in os.urandom(4))
    fsutil.makedirs(d)
    return d


def _rmtree(d):
    for fn in os.listdir(d):
        os.remove(d + "/" + fn)
    os.rmdir(d)


def _segfiles(d, name="j"):
    return sorted(fn for fn in os.listdir(d) if fn.startswith(name + "."))


def _payload(i):
    return b"rec-%05d|" % i + b"p" * (i % 23)


def _fill(d, n, max_bytes=100000, seg=100000, stats=None):
    j = Journal(d, "j", max_bytes, seg, stats)
    for i in range(1, n + 1):
        assert j.append(_payload(i)) == i
    j.close()
    return j


def test_append_and_read_back():
    d = _fresh("rb")
    try:
        j = Journal(d, "j", 10000, 2000)
        assert j.first_seq == 1 and j.next_seq == 1
        assert list(j.records()) == []
        for i in range(1, 31):
            assert j.append(_payload(i)) == i
        got = list(j.records())
        assert [s for s, _ in got] == list(range(1, 31))
        assert all(p == _payload(s) for s, p in got)
        assert j.last(3) == [(28, _payload(28)), (29, _payload(29)), (30, _payload(30))]
        assert j.find(17) == _payload(17)
        assert j.find(31) is None and j.find(0) is None
        assert j.append(b"") == 31 and j.find(31) == b""
        j.close()
    finally:
        _rmtree(d)


def test_restart_continues_sequence():
    d = _fresh("rs")
    try:
        _fill(d, 10)
        j = Journal(d, "j", 100000, 100000)
        assert (j.first_seq, j.next_seq, j.recovered_torn, j.corrupt) == (1, 11, 0, 0)
        assert j.append(b"after") == 11
        j.close()
        j = Journal(d, "j", 100000, 100000)
        assert j.next_seq == 12 and j.find(11) == b"after"
        assert [s for s, _ in j.records()] == list(range(1, 12))
        j.close()
    finally:
        _rmtree(d)


def test_torn_tail_at_every_byte_cut():
    d = _fresh("tt")
    try:
        _fill(d, 5)
        path = d + "/" + _segfiles(d)[0]
        whole = fsutil.read(path)
        reclen = 11 + len(_payload(5))
        for cut in range(1, reclen):
            with open(path, "wb") as f:
                f.write(whole[:len(whole) - cut])
            j = Journal(d, "j", 100000, 100000)
            assert j.recovered_torn == 1, cut
            assert j.corrupt == 0, cut
            assert [s for s, _ in j.records()] == [1, 2, 3, 4], cut
            assert j.next_seq == 5, cut
            j.close()
            assert fsutil.size(path) == len(whole) - reclen, cut
        # the journal goes on where the torn record was
        j = Journal(d, "j", 100000, 100000)
        assert j.recovered_torn == 0 and j.append(_payload(5)) == 5
        j.close()
        assert fsutil.read(path) == whole
    finally:
        _rmtree(d)


def test_recovery_cut_by_power_loss_is_redone():
    d = _fresh("rc")
    try:
        _fill(d, 4)
        path = d + "/" + _segfiles(d)[0]
        whole = fsutil.read(path)
        with open(path, "wb") as f:
            f.write(whole[:-3])
        with open(path + ".tmp", "wb") as f:   # half-done copy of a previous recovery
            f.write(whole[:10])
        j = Journal(d, "j", 100000, 100000)
        assert j.recovered_torn == 1 and [s for s, _ in j.records()] == [1, 2, 3]
        j.close()
        assert _segfiles(d) == [path.rsplit("/", 1)[1]]
    finally:
        _rmtree(d)


def test_bad_crc_in_last_record_is_dropped():
    d = _fresh("lc")
    try:
        _fill(d, 3)
        path = d + "/" + _segfiles(d)[0]
        b = bytearray(fsutil.read(path))
        b[-2] ^= 0x40
        with open(path, "wb") as f:
            f.write(b)
        j = Journal(d, "j", 100000, 100000)
        assert j.recovered_torn == 1 and j.next_seq == 3
        assert [s for s, _ in j.records()] == [1, 2]
        j.close()
    finally:
        _rmtree(d)


def test_corrupt_middle_record_is_reported_and_numbers_not_reused():
    d = _fresh("cm")
    try:
        _fill(d, 6)
        path = d + "/" + _segfiles(d)[0]
        b = bytearray(fsutil.read(path))
        off = 0
        for i in range(1, 3):                # skip records 1 and 2
            off += 11 + len(_payload(i))
        b[off + 9] ^= 0x01                   # a payload byte of record 3
        with open(path, "wb") as f:
            f.write(b)
        j = Journal(d, "j", 100000, 100000)
        assert j.corrupt == 1 and j.recovered_torn == 0
        assert j.corrupt_bytes == len(b) - off
        assert [s for s, _ in j.records()] == [1, 2]
        assert j.next_seq > 6                # 3..6 may have been handed out
        s = j.append(b"new")
        assert s > 6 and len(_segfiles(d)) == 2   # never appended behind damage
        assert [x for x, _ in j.records()] == [1, 2, s]
        j.close()
        j = Journal(d, "j", 100000, 100000)
        assert j.corrupt == 1 and j.next_seq == s + 1
        assert [x for x, _ in j.records()] == [1, 2, s]
        j.close()
    finally:
        _rmtree(d)


def test_eviction_oldest_first_with_counts():
    d = _fresh("ev")
    try:
        seen = []
        st = StorageStats()
        j = Journal(d, "j", 1000, 250, st)
        j.on_evict = seen.append
        for i in range(1, 201):
            j.append(b"%08d" % i + b"e" * 22)     # 41 bytes on flash per record
            assert j.total_bytes <= 1000
        # 6 records per segment; segments start at 1, 7, 13, ...
        assert j.evicted == j.first_seq - 1 == j.evicted_upto_seq
        assert j.first_seq > 150
        assert j.notices == seen[-8:]
        assert seen[0] == ("j", 1, 6, 246)
        assert all(seen[k][2] + 1 == seen[k + 1][1] for k in range(len(seen) - 1))
        assert st.files_removed == len(seen)
        assert [s for s, _ in j.records()] == list(range(j.first_seq, 201))
        assert j.find(1) is None
        assert len(_segfiles(d)) == len(j._segs) <= 4
        j.close()
        j = Journal(d, "j", 1000, 250)
        assert j.evicted_upto_seq == j.first_seq - 1 and j.next_seq == 201
        j.close()
    finally:
        _rmtree(d)


def test_records_lazy_across_segments():
    d = _fresh("lz")
    try:
        j = Journal(d, "j", 100000, 200)
        for i in range(1, 41):
            j.append(_payload(i))
        assert len(_segfiles(d)) > 4
        g = j.records(13)
        assert next(g) == (13, _payload(13))
        assert next(g)[0] == 14
        j.append(b"late")                          # appended while iterating
        rest = [s for s, _ in g]
        assert rest == list(range(15, 42))
        assert [s for s, _ in j.records(39)] == [39, 40, 41]
        assert list(j.records(100)) == []
        j.close()
    finally:
        _rmtree(d)


def test_eviction_while_iterating_skips_gone_segments():
    d = _fresh("ei")
    try:
        j = Journal(d, "j", 600, 200)
        for i in range(1, 11):
            j.append(b"%04d" % i + b"z" * 26)   # 41 bytes
        g = j.records()
        first = next(g)[0]
        for i in range(11, 40):
            j.append(b"%04d" % i + b"z" * 26)
        rest = [s for s, _ in g]
        assert rest == sorted(rest) and rest[-1] == 39
        assert rest[0] >= j.first_seq and first < rest[0]
        j.close()
    finally:
        _rmtree(d)


def test_stats_and_quarter_hour_day():
    d = _fresh("st")
    try:
        st = StorageStats()
        j = Journal(d, "qh", 65536, 4096, st)
        payload = b"{\"t\":1735689600000,\"s\":\"S\",\"imp\":1234567,\"exp\":12,\"p\":2345,\"q\":96,\"x\":\"abcdefgh\"}"
        for i in range(96):
            j.append(payload)
        j.close()
        rec = len(payload) + 11
        assert st.bytes_written == 96 * rec
        assert st.write_ops == 96
        assert st.files_created == len(_segfiles(d, "qh")) == (96 * rec + 4095) // 4096
        assert st.files_removed == 0
        print("96 quarter-hour records of %d B payload: %d B written, %d write ops, %d files"
              % (len(payload), st.bytes_written, st.write_ops, st.files_created))
    finally:
        _rmtree(d)


def test_empty_segment_pins_next_seq_and_tmp_removed():
    d = _fresh("es")
    try:
        _fill(d, 3)
        with open(d + "/j.000004", "wb"):
            pass                                  # created at roll-over, then power cut
        with open(d + "/j.000001.tmp", "wb") as f:
            f.write(b"junk")
        j = Journal(d, "j", 100000, 100000)
        assert j.next_seq == 4 and j.append(b"x") == 4
        assert _segfiles(d) == ["j.000001", "j.000004"]
        j.close()
    finally:
        _rmtree(d)


def test_bad_arguments():
    d = _fresh("ba")
    try:
        for mb, sb in ((1000, 10), (100, 200)):
            try:
                Journal(d, "j", mb, sb)
                assert False
            except StorageError:
                pass
        j = Journal(d, "j", 200, 100)
        try:
            j.append(b"x" * 300)
            assert False
        except StorageError:
            pass
        assert j.append(b"y" * 150) == 1       # a record may exceed one segment
        j.close()
    finally:
        _rmtree(d)


def test_fsutil_atomic_write_and_helpers():
    d = _fresh("fs")
    try:
        sub = fsutil.join(d, "a", "b")
        assert sub == d + "/a/b" and fsutil.join("x/", "y") == "x/y" and fsutil.join("", "y") == "y"
        fsutil.makedirs(sub)
        fsutil.makedirs(sub)                      # exists already: fine
        p = fsutil.join(sub, "f.json")
        assert fsutil.read(p) is None and not fsutil.exists(p) and fsutil.size(p) == -1
        st = StorageStats()
        fsutil.write_atomic(p, "one", st)
        fsutil.write_atomic(p, b"two!", st)
        assert fsutil.read(p) == b"two!" and fsutil.size(p) == 4
        assert (st.bytes_written, st.write_ops) == (7, 2)
        with open(p + ".tmp", "wb") as f:          # a replacement cut short
            f.write(b"thr")
        assert fsutil.read(p) == b"two!"
        assert fsutil.discard_tmp(p) and not fsutil.exists(p + ".tmp")
        assert os.listdir(sub) == ["f.json"]
        os.remove(p)
        os.rmdir(sub)
        os.rmdir(d + "/a")
    finally:
        _rmtree(d)
