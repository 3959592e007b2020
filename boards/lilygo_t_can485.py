# LilyGO T-CAN485 (ESP32-WROOM, 4 MB flash): on-board MAX13487E RS485
# transceiver with automatic direction control, so no DE pin. Pins from the
# vendor's pin table and RS485 example: RS485 TX GPIO22, RX GPIO21; the
# transceiver's /RE (GPIO17) and /SHDN (GPIO19) and the ME2107 boost converter
# that powers RS485 and CAN (GPIO16) must all be driven high before the UART is
# used: "hold" lists [pin, level] pairs that boot.py drives at start-up.
# Uncertain, check your board revision:
# - the relay and its feedback use the free header pins GPIO32 and GPIO33;
# - the LED is a WS2812 RGB LED on GPIO4, not a plain GPIO: no status LED;
# - safe mode: BOOT button (GPIO0), pressed after the reset is released.
# - staged output (relay.stages_w): relays 2 and 3 on GPIO18/23; the control box
#   contact (dso.contact) between GPIO25 and GND, internal pull-up (closed reads low);
# Image: ESP32_GENERIC with the firmware frozen in (no PSRAM; docs/FLASHING.md, Memory).
BOARD = {
    "name": "lilygo_t_can485",
    "chip": "esp32",
    "firmware_image": {"name": "ESP32_GENERIC", "version": "1.29.0",
                       "page": "MicroPython download page, board ESP32_GENERIC", "frozen": True},
    "meter_uart": {"id": 2, "tx": 22, "rx": 21, "de": None,
                   "hold": [[16, 1], [19, 1], [17, 1]]},
    "relay": {"pin": 32, "active_low": False, "feedback": 33, "feedback_active_low": True},
    "stages": [{"pin": 18, "active_low": False, "feedback": None, "feedback_active_low": False},
               {"pin": 23, "active_low": False, "feedback": None, "feedback_active_low": False}],
    "dso_input": {"pin": 25, "active_low": True, "pull": "up"},
    "led": None,
    "safe_mode_pin": 0,
    "net": {"kind": "wifi"},
    "fs": "littlefs",
}
