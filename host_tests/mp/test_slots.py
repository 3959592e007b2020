# Which code starts (proto/slots.py, issue 19 item 3): the boot record's rules as
# a table, start by start. Dual test (MicroPython and CPython).
from dicamm.proto import slots


def test_no_record_or_no_update_starts_the_deployed_code():
    for rec in (None, {}, {"active": "", "trial": False}):
        assert slots.at_start(rec) == (None, ""), rec


def test_a_switch_starts_the_new_folder_on_trial_and_keeps_the_running_one():
    rec = slots.switch_to({"active": "code/0.2.0", "version": "0.2.0", "trial": False}, "code/0.3.0", "0.3.0")
    assert (rec["active"], rec["previous"], rec["version"], rec["trial"], rec["boots"]) == \
        ("code/0.3.0", "code/0.2.0", "0.3.0", True, 0)
    assert slots.switch_to(None, "code/0.2.0", "0.2.0")["previous"] == ""


def test_trial_starts_are_counted_and_the_fourth_goes_back():
    rec = slots.switch_to({"active": ""}, "code/0.2.0", "0.2.0")
    seen = []
    for _ in range(slots.MAX_BOOTS + 1):
        new, folder = slots.at_start(rec)
        rec = new
        seen.append((folder, rec["boots"], rec["trial"]))
    assert seen == [("code/0.2.0", 1, True), ("code/0.2.0", 2, True), ("code/0.2.0", 3, True), ("", 0, False)], seen
    assert rec["last"] == {"event": "rolled back", "version": "0.2.0", "why": "not confirmed within 3 starts"}


def test_a_confirmed_version_starts_without_counting():
    rec = slots.confirm(slots.switch_to({}, "code/0.2.0", "0.2.0"))
    assert rec["last"] == {"event": "confirmed", "version": "0.2.0", "why": None}
    assert slots.at_start(rec) == (None, "code/0.2.0")


def test_a_rollback_names_the_version_and_why():
    rec = slots.rollback(slots.switch_to({"active": "code/0.1.0", "version": "0.1.0"}, "code/0.2.0", "0.2.0"),
                         "crashed at start: X")
    assert (rec["active"], rec["version"], rec["previous"], rec["trial"]) == ("code/0.1.0", "0.1.0", "", False)
    assert rec["last"] == {"event": "rolled back", "version": "0.2.0", "why": "crashed at start: X"}
