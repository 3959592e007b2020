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


def relay_output(board, root, now_ms_fn=None):
    r = board.get("relay") or {}
    if r.get("pin") is None:
        # unix board: the emulated relay is a file the meter emulator reads
        from dicamm.drivers.relay import FileRelay
        return FileRelay(root.rstrip("/") + "/relay.gpio", now_ms_fn)
    import machine
    from dicamm.drivers.relay import RelayOutput
    pin = machine.Pin(r["pin"], machine.Pin.OUT)
    fb = None
    if r.get("feedback") is not None:
        fb = machine.Pin(r["feedback"], machine.Pin.IN)
    return RelayOutput(pin, r.get("active_low", False), fb, r.get("feedback_active_low", False))
