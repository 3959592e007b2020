# The meter profiles this firmware knows, as data (see profiles.py for the
# format). Imported only to take one profile (or the list of names) and then
# dropped again, so that only the configured profile stays in RAM.

# Eastron: input registers, float32 big-endian (MSW first). The meter answers
# unused registers with zeros and takes up to 40 values (80 registers) a request.
# Meter code: holding register 0xFC02 (values as reported for these models).
_F = "float32"
_SDM_E = (4, 0x0048, _F, False, 1000, 1)  # import kWh
_SDM_X = (4, 0x004A, _F, False, 1000, 1)  # export kWh
_SDM_T = (4, 0x0156, _F, False, 1000, 1)  # total kWh
_SDM_V = (4, 0x0000, _F, False, 1, 1)     # L1-N voltage
_SDM_I = (4, 0x0006, _F, False, 1, 1)     # L1 current
# Identity: (function, register, count, kind), see profiles.identity_value.
_SDM_ID = {"serial": (3, 0xFC00, 2, "u32")}   # serial number, unsigned long
_ABB_ID = {"serial": (3, 0x8900, 2, "u32"),    # serial number
           "firmware": (3, 0x8908, 8, "ascii"),  # firmware version, 16 characters
           "model": (3, 0x8960, 6, "ascii")}     # type designation, 12 characters
_EM_ID = {"serial": (4, 0x5000, 7, "ascii")}   # serial number, 14 characters

PROFILES = {
    "sdm72dm": {
        "name": "sdm72dm", "vendor": "Eastron", "model": "SDM72D-M", "baud": 9600, "parity": "N", "phases": 3,
        "max_gap": 80, "max_regs": 80, "ranges": (), "ident": (3, 0xFC02, 1, 0x0084), "identity": _SDM_ID,
        "fields": {"power_w": (4, 0x0034, _F, False, 1, 1), "import_wh": _SDM_E,
                   "export_wh": _SDM_X, "total_wh": _SDM_T},
    },
    "sdm120": {
        "name": "sdm120", "vendor": "Eastron", "model": "SDM120-Modbus", "baud": 2400, "parity": "N", "phases": 1,
        "max_gap": 80, "max_regs": 80, "ranges": (), "ident": (3, 0xFC02, 1, 0x0020), "identity": _SDM_ID,
        "fields": {"power_w": (4, 0x000C, _F, False, 1, 1), "import_wh": _SDM_E,
                   "export_wh": _SDM_X, "total_wh": _SDM_T, "voltage_v": _SDM_V, "current_a": _SDM_I},
    },
    "sdm630": {
        "name": "sdm630", "vendor": "Eastron", "model": "SDM630-Modbus", "baud": 9600, "parity": "N", "phases": 3,
        "max_gap": 80, "max_regs": 80, "ranges": (), "ident": (3, 0xFC02, 1, 0x0070), "identity": _SDM_ID,
        "fields": {"power_w": (4, 0x0034, _F, False, 1, 1), "import_wh": _SDM_E,
                   "export_wh": _SDM_X, "total_wh": _SDM_T, "voltage_v": _SDM_V, "current_a": _SDM_I},
    },
    # ABB B21 / B23: holding registers, scaled integers, MSW first. Reads must stay
    # inside defined register areas (ranges); invalid values read as all ones /
    # max positive ("nan"). Type designation: 6 registers of ASCII at 0x8960.
    "abb_b21": {
        "name": "abb_b21", "vendor": "ABB", "model": "B21", "baud": 9600, "parity": "E", "phases": 1, "nan": True,
        "max_gap": 0, "max_regs": 125, "ranges": ((0x5000, 0x5010), (0x5B00, 0x5B2E)),
        "ident": (3, 0x8960, 6, b"B21"), "identity": _ABB_ID,
        "fields": {"import_wh": (3, 0x5000, "uint64", False, 10, 1),   # 0.01 kWh
                   "export_wh": (3, 0x5004, "uint64", False, 10, 1),
                   "power_w": (3, 0x5B14, "int32", False, 1, 100),     # 0.01 W
                   "voltage_v": (3, 0x5B00, "uint32", False, 1, 10),   # 0.1 V, L1
                   "current_a": (3, 0x5B0C, "uint32", False, 1, 100)},  # 0.01 A, L1
    },
    "abb_b23": {
        "name": "abb_b23", "vendor": "ABB", "model": "B23", "baud": 9600, "parity": "E", "phases": 3, "nan": True,
        "max_gap": 0, "max_regs": 125, "ranges": ((0x5000, 0x5010), (0x5B00, 0x5B2E)),
        "ident": (3, 0x8960, 6, b"B23"), "identity": _ABB_ID,
        "fields": {"import_wh": (3, 0x5000, "uint64", False, 10, 1),
                   "export_wh": (3, 0x5004, "uint64", False, 10, 1),
                   "power_w": (3, 0x5B14, "int32", False, 1, 100),
                   "voltage_v": (3, 0x5B00, "uint32", False, 1, 10),
                   "current_a": (3, 0x5B0C, "uint32", False, 1, 100)},
    },
    # Carlo Gavazzi EM111: input registers, INT32 with the least significant word
    # first; W x10, kWh x10, V x10, A x1000. No identification register checked.
    "em111": {
        "name": "em111", "vendor": "Carlo Gavazzi", "model": "EM111", "baud": 9600, "parity": "N", "phases": 1,
        "max_gap": 0, "max_regs": 125, "ranges": ((0x0000, 0x0022),), "ident": None, "identity": _EM_ID,
        "fields": {"voltage_v": (4, 0x0000, "int32", True, 1, 10),
                   "current_a": (4, 0x0002, "int32", True, 1, 1000),
                   "power_w": (4, 0x0004, "int32", True, 1, 10),
                   "import_wh": (4, 0x0010, "int32", True, 100, 1),
                   "export_wh": (4, 0x0020, "int32", True, 100, 1)},
    },
}
