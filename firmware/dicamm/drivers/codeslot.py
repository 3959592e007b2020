# The boot record on the filesystem (the rules are proto/slots.py): which code
# folder starts, read and written by main.py before the application's modules
# are imported, and by services/update.py for the switch, the confirmation and
# the rollback. The record is replaced in one atomic write (fsutil.write_atomic);
# a torn or unreadable record starts lib/ as deployed.
import json

from dicamm.drivers import fsutil
from dicamm.proto import slots


def record_path(root):
    return fsutil.under_root(root, slots.RECORD)


def read(root):
    raw = fsutil.read(record_path(root))
    try:
        rec = json.loads(raw) if raw else None
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def write(root, rec):
    p = record_path(root)
    fsutil.makedirs(p.rsplit("/", 1)[0])
    fsutil.write_atomic(p, json.dumps(rec))


def lib_of(root, folder):
    # The module folder of a code folder ("code/0.2.0" -> <root>/code/0.2.0/lib).
    return fsutil.under_root(root, folder + "/lib")


def choose(root):
    # -> (the module folder to put first on sys.path, or None for lib/ as
    # deployed; True when that code runs on trial). Counts a trial start.
    fsutil.discard_tmp(record_path(root))
    rec = read(root)
    new, folder = slots.at_start(rec)
    if new is not None:
        write(root, new)
        rec = new
    if folder and not fsutil.exists(lib_of(root, folder)):
        # the folder is gone (a factory reset, a hand-made copy): the deployed code
        write(root, slots.rollback(rec, "code folder %s missing" % folder))
        return None, False
    return (lib_of(root, folder) if folder else None), bool(rec and rec.get("trial"))


def crashed(root, why):
    # A start on trial raised: the previous version starts next time.
    rec = read(root)
    if rec and rec.get("trial"):
        write(root, slots.rollback(rec, why))
        return True
    return False
