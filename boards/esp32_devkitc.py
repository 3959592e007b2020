# Espressif ESP32-DevKitC (ESP32-WROOM-32, 4 MB flash, no PSRAM) with an RS485
# transceiver module (MAX3485 or similar, 3.3 V): DI <- TX, RO -> RX, DE and /RE
# tied together on one GPIO. GPIO16/17 are free only on WROOM modules (a
# WROVER uses them for PSRAM). The DevKitC has no user LED: GPIO2 drives an
# external LED (many clones have one on GPIO2). Safe mode: BOOT button (GPIO0),
# pressed after the reset is released (held during reset it starts the ROM
# download mode instead).
# Staged output (relay.stages_w): relays 2 and 3 on GPIO25/26. The control box
# contact (dso.contact) between GPIO27 and GND, internal pull-up: closed reads low.
# Image: ESP32_GENERIC built with the firmware frozen in (manifest.py): without
# PSRAM the firmware as .mpy does not fit the heap (docs/FLASHING.md, Memory).
BOARD = {
    "name": "esp32_devkitc",
    "chip": "esp32",
    "firmware_image": {"name": "ESP32_GENERIC", "version": "1.29.0",
                       "page": "MicroPython download page, board ESP32_GENERIC", "frozen": True},
    "meter_uart": {"id": 2, "tx": 17, "rx": 16, "de": 4},
    "relay": {"pin": 23, "active_low": False, "feedback": 22, "feedback_active_low": True},
    "stages": [{"pin": 25, "active_low": False, "feedback": None, "feedback_active_low": False},
               {"pin": 26, "active_low": False, "feedback": None, "feedback_active_low": False}],
    "dso_input": {"pin": 27, "active_low": True, "pull": "up"},
    "led": 2,
    "safe_mode_pin": 0,
    "net": {"kind": "wifi"},
    "fs": "littlefs",
}
