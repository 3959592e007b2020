# Restarting the device from the console (`reboot`, the end of `setup` and of
# `factory-reset`): the MQTT link is closed first; the unix port exits.
import sys

from dicamm.platform import UNIX


def _on_board(app):
    return not UNIX and app.board.get("chip") is not None


def reboot(con, why="reboot"):
    app = con.app
    if app.mqtt is not None:
        try:
            app.mqtt.stop()
        except Exception:
            pass
    if _on_board(app):
        con.write("%s: restarting now" % why)
        import machine
        machine.reset()
    con.write("%s: the unix port has no reset - the firmware exits now; start it again" % why)
    con.restore_tty()
    sys.exit(0)
