# The few exception types of the firmware. Every fault on a link becomes one of
# these, so the layer above has one thing to catch and one place to retry.


class DicammError(Exception):
    pass


class ModbusError(DicammError):
    pass


class ModbusTimeout(ModbusError):
    # No (complete, valid) answer before the response deadline.
    pass


class ModbusFrameError(ModbusError):
    # Bytes arrived but no valid frame: bad CRC, wrong unit, wrong function, bad length.
    pass


class ModbusException(ModbusError):
    # The slave answered with an exception response (function | 0x80).
    NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
             4: "slave device failure", 5: "acknowledge", 6: "slave device busy",
             8: "memory parity error", 10: "gateway path unavailable",
             11: "gateway target failed to respond"}

    def __init__(self, code, function=0):
        self.code = code
        self.function = function
        super().__init__("exception %02d (%s)" % (code, self.NAMES.get(code, "unknown")))


class StorageError(DicammError):
    pass


class LinkError(DicammError):
    # Network, TLS or HTTP failure on the HAN or MQTT link.
    pass


class ConfigError(DicammError):
    pass


class CommandError(DicammError):
    # A command from the CLI or MQTT that is malformed or not allowed.
    pass


class UsageError(DicammError):
    # A console line that does not parse or a command used the wrong way.
    pass


class UpdateError(DicammError):
    # A firmware release refused or a firmware update that failed: the text says
    # which check (bad signature, wrong board, downgrade, sha256 mismatch, ...).
    pass
