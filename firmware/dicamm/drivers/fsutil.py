# Small file-system helpers that work on littlefs (board), the unix port and
# CPython (host tests). MicroPython has no os.path and no fsync: a file's data is
# committed by flush/close, and rename over an existing file is atomic on
# littlefs and POSIX. So a whole file is replaced by writing `path.tmp`, closing
# it and renaming it over `path`; a power cut leaves either the old or the new
# file, never a mix. A leftover `.tmp` is a write that never finished: ignore it.
import os

from dicamm.errors import StorageError

TMP = ".tmp"


def join(*parts):
    out = ""
    for p in parts:
        if not p:
            continue
        if p[0] == "/" or not out:
            out = p
        elif out[-1] == "/":
            out += p
        else:
            out += "/" + p
    return out


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def size(path):
    # File size in bytes, or -1 if it does not exist.
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def makedirs(path):
    cur = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part if (not cur or cur[-1] == "/") else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            if not exists(cur):
                raise StorageError("cannot create directory %s" % cur)


def remove(path):
    # Remove if present; True when a file was removed.
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def rmtree(path):
    # A folder and everything in it, or a file; nothing if absent.
    try:
        names = os.listdir(path)
    except OSError:
        remove(path)
        return
    for n in names:
        rmtree(path + "/" + n)
    try:
        os.rmdir(path)
    except OSError:
        pass


def discard_tmp(path):
    # Start-up: drop the half-written replacement of `path`, if any.
    return remove(path + TMP)


def read(path):
    # Whole file as bytes, or None if it does not exist. For small files only.
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def write_atomic(path, data, stats=None):
    # Replace `path` with `data` (bytes or str) so that a power cut at any
    # instruction leaves either the complete old or the complete new file.
    # data may be a function that writes the text into the open file (f): a
    # JSON document dumped into it is never a string in the heap (in 96 KiB a
    # 500-byte block may not be there).
    if isinstance(data, str):
        data = data.encode()
    tmp = path + TMP
    try:
        with open(tmp, "w" if callable(data) else "wb") as f:
            if callable(data):
                data(f)
                n = f.tell()
            else:
                f.write(data)
                n = len(data)
            f.flush()
        try:
            os.rename(tmp, path)
        except OSError:
            # File systems that refuse rename over an existing file (FAT):
            # the window without `path` is covered by callers keeping a backup.
            remove(path)
            os.rename(tmp, path)
    except OSError as e:
        remove(tmp)
        raise StorageError("cannot write %s: %s" % (path, e))
    if stats is not None:
        stats.bytes_written += n
        stats.write_ops += 1
        stats.files_created += 1


def under_root(root, name):
    # A path from the config on the device's filesystem, whose root is `root`
    # ("" on a board, the --root folder on the unix port); relative names are
    # taken from the root.
    if not name:
        return name
    if root and name.startswith("/") and not name.startswith(root + "/"):
        return root + name
    return name if name.startswith("/") else (root + "/" + name if root else "/" + name)


def store(path):
    # (save(bytes), load() -> bytes or None) of one file, saved atomically.
    return (lambda b: write_atomic(path, b)), (lambda: read(path))
