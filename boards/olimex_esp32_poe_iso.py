# Olimex ESP32-POE-ISO (ESP32-WROOM-32, LAN8720 Ethernet PHY, isolated PoE).
# Ethernet as in MicroPython's OLIMEX_ESP32_POE board (which also covers
# ESP32-POE and ESP32-Gateway): RMII clock output on GPIO17, PHY power GPIO12,
# MDC 23, MDIO 18, PHY address 0; for network.LAN(phy_type=PHY_LAN8720).
# Uncertain, check the schematic of your revision:
# - the WROVER variants (-16MB/-WROVER) use GPIO16/17 for PSRAM and route the
#   RMII clock differently; this file is for the WROOM board;
# - the RS485 transceiver is an external module on the UEXT connector:
#   TXD GPIO4, RXD GPIO36 (input only), DE//RE on GPIO5 (UEXT pin 10);
# - relay and feedback on the EXT header: GPIO32, GPIO33;
# - BUT1 is GPIO34 (input only, external pull-up on the board), used for safe
#   mode; the board has no user LED.
# - staged output (relay.stages_w): relays 2 and 3 on GPIO13/16 (EXT header); the
#   control box contact (dso.contact) between GPIO14 and GND, internal pull-up;
# Image: OLIMEX_ESP32_POE with the firmware frozen in (no PSRAM on the standard
# variant; docs/FLASHING.md, Memory).
BOARD = {
    "name": "olimex_esp32_poe_iso",
    "chip": "esp32",
    "firmware_image": {"name": "OLIMEX_ESP32_POE", "version": "1.29.0",
                       "page": "MicroPython download page, board OLIMEX_ESP32_POE", "frozen": True},
    "meter_uart": {"id": 2, "tx": 4, "rx": 36, "de": 5},
    "relay": {"pin": 32, "active_low": False, "feedback": 33, "feedback_active_low": True},
    "stages": [{"pin": 13, "active_low": False, "feedback": None, "feedback_active_low": False},
               {"pin": 16, "active_low": False, "feedback": None, "feedback_active_low": False}],
    "dso_input": {"pin": 14, "active_low": True, "pull": "up"},
    "led": None,
    "safe_mode_pin": 34,
    "net": {"kind": "ethernet", "phy": "LAN8720", "phy_addr": 0, "mdc": 23, "mdio": 18,
            "power": 12, "ref_clk": 17, "ref_clk_mode": "out"},
    "fs": "littlefs",
}
