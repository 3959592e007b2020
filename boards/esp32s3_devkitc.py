# Espressif ESP32-S3-DevKitC-1 with an RS485 transceiver module (DE and /RE tied
# together). Pins avoid the flash (GPIO26-32), the octal PSRAM of the R8/R16
# variants (GPIO33-37), USB (GPIO19/20) and the UART0 console (GPIO43/44).
# The on-board LED is an addressable RGB LED (GPIO48, GPIO38 on v1.1), not a
# plain GPIO, so no status LED is declared. Safe mode: BOOT button (GPIO0),
# pressed after the reset is released.
# Staged output (relay.stages_w): relays 2 and 3 on GPIO15/16. The control box
# contact (dso.contact) between GPIO6 and GND, internal pull-up: closed reads low.
# Image: ESP32_GENERIC_S3; modules with octal PSRAM (N8R8, N16R8) may use its
# SPIRAM_OCT variant and run the firmware as .mpy; an N8 without PSRAM needs the
# image built with the firmware frozen in (docs/FLASHING.md, Memory).
BOARD = {
    "name": "esp32s3_devkitc",
    "chip": "esp32s3",
    "firmware_image": {"name": "ESP32_GENERIC_S3", "version": "1.29.0",
                       "page": "MicroPython download page, board ESP32_GENERIC_S3", "frozen": False},
    "meter_uart": {"id": 1, "tx": 17, "rx": 18, "de": 8},
    "relay": {"pin": 4, "active_low": False, "feedback": 5, "feedback_active_low": True},
    "stages": [{"pin": 15, "active_low": False, "feedback": None, "feedback_active_low": False},
               {"pin": 16, "active_low": False, "feedback": None, "feedback_active_low": False}],
    "dso_input": {"pin": 6, "active_low": True, "pull": "up"},
    "led": None,
    "safe_mode_pin": 0,
    "net": {"kind": "wifi"},
    "fs": "littlefs",
}
