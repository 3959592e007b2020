# Builds the hardware objects of a board from its pin table (boards/<name>.py)
# and the configuration. Drivers receive these objects; they never create them.
from dicamm.platform import UNIX

_PARITY_BITS = {"N": None, "E": 0, "O": 1}


def meter_port(board, config):
    # The serial port the Modbus master talks through.
    baud = config.get("meter.baud")
    parity = config.get("meter.parity")
    if UNIX or board.get("chip") is None:
        from dicamm.drivers.posix_serial import PosixSerial
        return PosixSerial(config.get("meter.port"), baud, parity)
    import machine
    from dicamm.drivers.uart_rs485 import Rs485Uart
    u = board["meter_uart"]
    uart = machine.UART(u["id"], baudrate=baud, bits=8, parity=_PARITY_BITS[parity], stop=1,
                        tx=u["tx"], rx=u["rx"], rxbuf=512)
    de = machine.Pin(u["de"], machine.Pin.OUT, value=0) if u.get("de") is not None else None
    return Rs485Uart(uart, baud, de)


def relay_output(board, root, now_ms_fn=None, config=None):
    # One relay, or with relay.stages_w a staged output of as many relays
    # (the board's "relay" and then its "stages" pins).
    stages = config.get("relay.stages_w") if config is not None else None
    r = board.get("relay") or {}
    if r.get("pin") is None:
        # unix board: the emulated relays are files the meter emulator reads
        from dicamm.drivers.relay import FileRelay
        out = [FileRelay(root.rstrip("/") + "/relay%s.gpio" % ("" if i == 0 else i + 1), now_ms_fn)
               for i in range(max(1, len(stages or ())))]
    else:
        import machine
        from dicamm.drivers.relay import RelayOutput
        pins = [r] + list(board.get("stages") or ())
        if stages and len(stages) > len(pins):
            from dicamm.errors import ConfigError
            raise ConfigError("relay.stages_w: %d stages, board %s has %d relay pins" % (
                len(stages), board.get("name"), len(pins)))
        out = []
        for p in pins[:max(1, len(stages or ()))]:
            fb = machine.Pin(p["feedback"], machine.Pin.IN) if p.get("feedback") is not None else None
            out.append(RelayOutput(machine.Pin(p["pin"], machine.Pin.OUT), p.get("active_low", False), fb,
                                   p.get("feedback_active_low", False)))
    if not stages:
        return out[0]
    from dicamm.drivers.relay import StagedOutput
    return StagedOutput(out, stages)


def dso_contact(board, root, config):
    # The control box contact (dso.contact "no"/"nc"), or None when it is off.
    polarity = config.get("dso.contact")
    if polarity in (None, "off"):
        return None
    from dicamm.drivers.contact import Contact, FileContact, MissingInput, PinContact
    d = board.get("dso_input")
    if d is None:
        raw = MissingInput("board %s declares no dso_input" % board.get("name"))
    elif d.get("pin") is None:
        raw = FileContact(root.rstrip("/") + "/dso.contact")
    else:
        import machine
        pull = {"up": machine.Pin.PULL_UP, "down": machine.Pin.PULL_DOWN}.get(d.get("pull"))
        raw = PinContact(machine.Pin(d["pin"], machine.Pin.IN, pull), d.get("active_low", False))
    return Contact(raw, polarity, config.get("dso.debounce_ms"))
