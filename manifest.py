# Freeze the DICAMM firmware into a custom MicroPython build (saves RAM, no
# .mpy files on the filesystem). In the MicroPython tree, ports/esp32:
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/this/repo/manifest.py
# boot.py, main.py and board.py stay on the filesystem (make deploy copies
# them; frozen modules are found before /lib, so delete lib/dicamm there).
include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules
include("tools/manifest_firmware.py")
