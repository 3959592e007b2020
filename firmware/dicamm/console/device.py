# Restarting the device from the console (`reboot`, the end of `setup` and of
# `factory-reset`): the MQTT link is closed first; the unix port exits.
from dicamm.platform import UNIX


def _on_board(app):
    return not UNIX and app.board.get("chip") is not None


def reboot(con, why="reboot"):
    from dicamm.services.confirm import restart
    if _on_board(con.app):
        con.write("%s: restarting now" % why)
    else:
        con.write("%s: the unix port has no reset - the firmware exits now; start it again" % why)
    restart(con.app)
