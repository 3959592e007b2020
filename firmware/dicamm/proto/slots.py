# Which code the device starts (issue 19, item 3): the boot record's rules, pure.
#
# A board that runs .mpy files keeps the code `make deploy` installed in lib/ and
# each installed update in its own folder code/<version>/ (lib/ inside it). The
# boot record update/boot.json says which one starts:
#   {"active": "code/0.2.0", "version": "0.2.0", "previous": "", "previous_version": null,
#    "trial": true, "boots": 1, "last": {"event": "rolled back", "version": "0.3.0", "why": "..."}}
# active "" is lib/ as deployed. The switch to a new version is one atomic write
# of this record (drivers/fsutil.write_atomic: rename over the old one) after
# its folder is complete, so a power cut leaves the old or the new version,
# never a mix. A new version starts on trial: every start counts (boots), and
# the version has to prove itself (services/update.Confirmer) before MAX_BOOTS
# starts, else the next start goes back to `previous`; so does a start that
# raises (main.py) or a failed health check.
MAX_BOOTS = 3
RECORD = "update/boot.json"


def switch_to(record, folder, version):
    # The record that starts `folder` on trial next; the running one stays `previous`.
    old = record or {}
    rec = dict(old)
    rec.update({"active": folder, "previous": old.get("active", ""), "previous_version": old.get("version"),
                "version": version, "trial": True, "boots": 0})
    return rec


def rollback(record, why):
    # The record that starts the previous version again, saying why.
    rec = dict(record)
    rec["last"] = {"event": "rolled back", "version": rec.get("version"), "why": why}
    rec.update({"active": rec.get("previous", ""), "previous": "", "version": rec.get("previous_version"),
                "previous_version": None, "trial": False, "boots": 0})
    return rec


def confirm(record):
    rec = dict(record)
    rec["last"] = {"event": "confirmed", "version": rec.get("version"), "why": None}
    rec.update({"trial": False, "boots": 0})
    return rec


def at_start(record):
    # -> (the record to write before this start, or None to leave it, the folder to start).
    if not record or not record.get("active"):
        return None, ""
    if record.get("trial"):
        if record.get("boots", 0) >= MAX_BOOTS:
            rec = rollback(record, "not confirmed within %d starts" % MAX_BOOTS)
            return rec, rec["active"]
        rec = dict(record)
        rec["boots"] = record.get("boots", 0) + 1
        return rec, rec["active"]
    return None, record["active"]
