# RS-485 half-duplex port over an already-created machine.UART (made by the
# board set-up from boards/<name>.py, never here). DE/RE is driven high while
# we transmit and low once the last stop bit has left, so the meter's answer
# is not cut off. Implements the serial port contract of ModbusMaster.
import time

from micropython import const

_FLUSH_SCRAP = const(32)  # bytes per read while dropping stale input
_FLUSH_MAX = const(1024)  # a babbling line cannot keep us here for ever


class Rs485Uart:
    def __init__(self, uart, baud, de_pin=None):
        self.uart = uart
        self.baud = baud
        self.de = de_pin
        self._scrap = bytearray(_FLUSH_SCRAP)
        self._has_flush = hasattr(uart, "flush")
        if de_pin is not None:
            de_pin.value(0)  # listen

    def _char_us(self, nbytes):
        return (nbytes * 11000000 + self.baud - 1) // self.baud

    def write(self, buf):
        de = self.de
        if de is None:
            return self.uart.write(buf)
        t0 = time.ticks_us()
        de.value(1)
        try:
            n = self.uart.write(buf)
            if self._has_flush:
                # Returns once the TX FIFO and shift register are empty.
                self.uart.flush()
            else:
                # The driver only queued the bytes: wait out their time on
                # the wire, counted from the start of the write.
                left = self._char_us(len(buf)) - time.ticks_diff(time.ticks_us(), t0)
                if left > 0:
                    time.sleep_us(left)
        finally:
            de.value(0)
        return n

    def readinto(self, buf):
        # Never blocks: reads only what the UART already holds.
        k = self.uart.any()
        if not k:
            return 0
        if k > len(buf):
            k = len(buf)
        n = self.uart.readinto(buf, k)
        return n or 0

    def flush_input(self):
        uart = self.uart
        dropped = 0
        while dropped < _FLUSH_MAX:
            k = uart.any()
            if not k:
                return
            n = uart.readinto(self._scrap, min(k, _FLUSH_SCRAP))
            if not n:
                return
            dropped += n
