# Meter profiles: golden register words -> exact values, read plans, user JSON
# profiles. Dual test: runs on MicroPython and CPython.
from dicamm.proto import profiles
from dicamm.errors import ConfigError


def _w(*words):
    # register words -> bytes as on the wire
    b = bytearray()
    for w in words:
        b.append(w >> 8)
        b.append(w & 0xFF)
    return bytes(b)


def _f(hexbits):
    v = int(hexbits, 16)
    return _w(v >> 16, v & 0xFFFF)


def _one(profile, name, data):
    f = profile["fields"][name]
    block = (f[0], f[1], profiles.size(f[2]), (name,))
    return profiles.decode(profile, block, data)[name]


def _raises(fn, *args):
    try:
        fn(*args)
    except ConfigError:
        return
    raise AssertionError("no ConfigError for %r" % (args,))


def test_names_and_get():
    n = profiles.names()
    for want in ("sdm72dm", "sdm120", "sdm630", "abb_b21", "abb_b23", "em111"):
        assert want in n, want
        p = profiles.get(want)
        assert p["name"] == want
        for k in ("power_w", "import_wh", "export_wh"):
            assert k in p["fields"], (want, k)
        assert p["baud"] in (2400, 9600, 19200)
    assert profiles.get("SDM630")["name"] == "sdm630"
    assert profiles.get("sdm120")["baud"] == 2400
    _raises(profiles.get, "nosuch")


def test_float32_energy_exact():
    p = profiles.get("sdm630")
    table = (
        ("4640e6b6", 12345678),      # 12345.678 kWh (float 12345.677734375)
        ("47c34fff", 99999992),      # 99999.99 kWh -> 99999.9921875
        ("4b800000", 16777216000),   # 2**24 kWh
        ("4b189680", 10000000000),   # 1e7 kWh: beyond 32 bits
        ("3a83126f", 1),             # 0.001 kWh
        ("00000000", 0),
        ("449a5000", 1234500),       # 1234.5 kWh
        ("3f000000", 500),           # 0.5 kWh
        ("3a03126f", 1),             # 0.0005 kWh = 0.50000002 Wh rounds up
        ("00000001", 0),             # smallest subnormal
    )
    for bits, wh in table:
        got = _one(p, "import_wh", _f(bits))
        assert got == wh and isinstance(got, int), (bits, got, wh)
    assert _one(p, "export_wh", _f("7fc00000")) is None   # NaN
    assert _one(p, "export_wh", _f("7f800000")) is None   # +inf


def test_float32_power_and_volts():
    p = profiles.get("sdm630")
    assert _one(p, "power_w", _f("c4bb8800")) == -1500     # -1500.25 W
    assert _one(p, "power_w", _f("c4bb9000")) == -1501     # -1500.5 W: half away from zero
    assert _one(p, "power_w", _f("4f32d05e")) == 3000000000
    v = _one(p, "voltage_v", _f("43668000"))
    assert isinstance(v, float) and abs(v - 230.5) < 1e-3


def test_abb_scaled_integers():
    p = profiles.get("abb_b23")
    assert _one(p, "import_wh", _w(0, 0, 0x0001, 0xE240)) == 1234560        # 123456 * 0.01 kWh
    assert _one(p, "export_wh", _w(0x0000, 0x0001, 0x0000, 0x0000)) == 42949672960  # 2**32 * 10 Wh
    assert _one(p, "power_w", _w(0xFFFD, 0xB5E6)) == -1500                   # -150042 * 0.01 W
    assert _one(p, "power_w", _w(0x0000, 0x0032)) == 1                       # 0.50 W rounds up
    assert _one(p, "power_w", _w(0xFFFF, 0xFFCE)) == -1                      # -0.50 W
    assert abs(_one(p, "voltage_v", _w(0x0000, 0x0904)) - 230.8) < 1e-3
    assert abs(_one(p, "current_a", _w(0x0000, 0x04D2)) - 12.34) < 1e-3
    assert _one(p, "power_w", _w(0x7FFF, 0xFFFF)) is None                    # ABB "invalid"
    assert _one(p, "import_wh", _w(0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF)) is None


def test_carlo_gavazzi_lsw_first():
    p = profiles.get("em111")
    # 1234567 * 0.1 kWh, words LSW first: 0xD687, 0x0012
    assert _one(p, "import_wh", _w(0xD687, 0x0012)) == 123456700
    assert _one(p, "power_w", _w(0x3A98, 0x0000)) == 1500                    # 15000 * 0.1 W
    assert _one(p, "power_w", _w(0xC568, 0xFFFF)) == -1500                   # -15000
    assert abs(_one(p, "voltage_v", _w(0x0904, 0)) - 230.8) < 1e-3
    assert abs(_one(p, "current_a", _w(0x1F40, 0)) - 8.0) < 1e-3


def test_plan_counts():
    std = profiles.STANDARD
    for name, want in (("sdm72dm", 1), ("sdm120", 1), ("sdm630", 1), ("abb_b21", 2), ("abb_b23", 2), ("em111", 1)):
        p = profiles.get(name)
        fields = [f for f in std if f in p["fields"]]
        blocks = profiles.plan(p, fields)
        assert len(blocks) == want, (name, blocks)
        seen = []
        for fn, addr, count, names in blocks:
            assert 1 <= count <= p["max_regs"] <= 125
            for n in names:
                f = p["fields"][n]
                assert f[0] == fn and addr <= f[1] and f[1] + profiles.size(f[2]) <= addr + count
                seen.append(n)
        assert sorted(seen) == sorted(fields)
    p = profiles.get("sdm630")
    assert len(profiles.plan(p, ("power_w", "import_wh", "export_wh"))) == 1
    assert profiles.plan(p, ("power_w", "import_wh", "export_wh")) == [(4, 0x34, 0x18, ("power_w", "import_wh", "export_wh"))]
    assert len(profiles.plan(p, ("import_wh", "total_wh"))) == 2   # 0x48..0x157 is more than 80 registers
    b = profiles.plan(profiles.get("abb_b23"), ("import_wh", "export_wh", "power_w"))
    assert b == [(3, 0x5000, 8, ("import_wh", "export_wh")), (3, 0x5B14, 2, ("power_w",))]
    _raises(profiles.plan, p, ("nosuch",))


def test_decode_block_of_plan():
    p = profiles.get("sdm630")
    (blk,) = profiles.plan(p, ("power_w", "import_wh", "export_wh"))
    words = [0] * blk[2]
    words[0], words[1] = 0x449A, 0x5000            # 1234.5 W at 0x34
    words[0x48 - 0x34], words[0x49 - 0x34] = 0x4640, 0xE6B6
    words[0x4A - 0x34], words[0x4B - 0x34] = 0x3F00, 0x0000
    d = profiles.decode(p, blk, _w(*words))
    assert d == {"power_w": 1235, "import_wh": 12345678, "export_wh": 500}, d


def _user(**over):
    obj = {"name": "mymeter", "baud": 19200, "parity": "E", "max_gap": 4, "fields": {
        "power_w": {"function": 4, "register": 52, "type": "float32", "word_order": "big", "scale": 1, "unit": "W"},
        "import_wh": {"function": 3, "register": 0x100, "type": "uint32", "word_order": "little", "scale": 0.01, "unit": "kWh"},
        "export_wh": {"function": 3, "register": 0x102, "type": "int64", "scale": "1/10", "unit": "Wh"},
        "current_a": {"function": 3, "register": 0x110, "type": "uint16", "scale": 1, "unit": "mA"},
    }}
    obj.update(over)
    return obj


def test_user_profile_good():
    p = profiles.from_json(_user())
    assert p["name"] == "mymeter" and p["baud"] == 19200 and p["parity"] == "E"
    assert p["fields"]["import_wh"] == (3, 0x100, "uint32", True, 10, 1)
    assert p["fields"]["export_wh"] == (3, 0x102, "int64", False, 1, 10)
    assert profiles.decode(p, (3, 0x100, 2, ("import_wh",)), _w(0xE240, 0x0001)) == {"import_wh": 1234560}
    assert profiles.decode(p, (3, 0x102, 4, ("export_wh",)), _w(0, 0, 0, 125)) == {"export_wh": 13}
    blocks = profiles.plan(p, ("power_w", "import_wh", "export_wh", "current_a"))
    assert blocks == [(3, 0x100, 6, ("import_wh", "export_wh")), (3, 0x110, 1, ("current_a",)),
                      (4, 52, 2, ("power_w",))], blocks
    assert abs(profiles.decode(p, blocks[1], _w(1500))["current_a"] - 1.5) < 1e-6
    for scale, want in ((0.1, (1, 10)), ("0.001", (1, 1000)), (1e-05, (1, 100000)), (2, (2, 1)), ("2.5", (5, 2))):
        u = _user()
        u["fields"]["power_w"]["scale"] = scale
        assert profiles.from_json(u)["fields"]["power_w"][4:] == want, scale


def test_user_profile_bad():
    bad = []
    bad.append([])
    bad.append(_user(name=""))
    bad.append(_user(baud="fast"))
    bad.append(_user(parity="X"))
    bad.append(_user(max_gap=500))
    bad.append(_user(fields=[]))
    for key, val in (("function", 6), ("register", 70000), ("register", -1), ("type", "float64"),
                     ("word_order", "middle"), ("scale", 0), ("scale", "abc"), ("scale", None), ("unit", "kW")):
        u = _user()
        u["fields"]["import_wh"][key] = val
        bad.append(u)
    u = _user()
    del u["fields"]["export_wh"]
    bad.append(u)
    u = _user()
    u["fields"]["frequency_hz"] = {"register": 1, "type": "uint16"}
    bad.append(u)
    u = _user()
    u["fields"]["power_w"]["register"] = 0xFFFF   # float32 would run past 0xFFFF
    bad.append(u)
    bad.append(_user(ident={"register": 0xFC02, "value": 1.5}))
    for obj in bad:
        _raises(profiles.from_json, obj)


def test_identification():
    p = profiles.get("sdm630")
    assert profiles.ident_matches(p, _w(0x0070))
    assert not profiles.ident_matches(p, _w(0x0020))
    a = profiles.get("abb_b23")
    assert profiles.ident_matches(a, b"B23 112-100\x00")
    assert not profiles.ident_matches(profiles.get("abb_b21"), b"B23 112-100\x00")
    assert not profiles.ident_matches(profiles.get("em111"), b"\x00\x00")
    u = profiles.from_json(_user(ident={"register": 0x8960, "value": "XY"}))
    assert u["ident"] == (3, 0x8960, 1, b"XY") and profiles.ident_matches(u, b"XY")


def test_invalid_values_never_become_values():
    # Issue 17: a NaN (decoded as None), a negative or a backwards-running
    # energy register, or a NaN power, is refused with "invalid value ...".
    names = ("power_w", "import_wh", "export_wh")
    good = {"power_w": 10, "import_wh": 1000, "export_wh": 0}
    assert profiles.invalid(good, names) is None
    assert profiles.invalid(good, names, {"import_wh": 1000, "export_wh": 0}) is None
    cases = [({"import_wh": None}, "import_wh not finite"), ({"export_wh": -1}, "export_wh negative"),
             ({"power_w": None}, "power_w not finite"), ({"import_wh": 999}, "import_wh ran backwards")]
    for change, want in cases:
        r = dict(good)
        r.update(change)
        why = profiles.invalid(r, names, {"import_wh": 1000})
        assert why is not None and why.startswith("invalid value: " + want), (change, why)
    # the energy-only read of a boundary checks only what it read
    assert profiles.invalid({"import_wh": 5, "export_wh": 0}, ("import_wh", "export_wh")) is None
    # a NaN float32 from the wire decodes to None, which invalid() refuses
    nan = _one(profiles.get("sdm630"), "import_wh", _f("7fc00000"))
    assert nan is None and profiles.invalid({"import_wh": nan, "export_wh": 0}, ("import_wh",))


def test_kwh_decimals_follow_the_register():
    assert profiles.kwh_decimals(profiles.get("sdm630")) == 3   # float32 kWh: Wh
    assert profiles.kwh_decimals(profiles.get("abb_b21")) == 2  # 0.01 kWh
    assert profiles.kwh_decimals(profiles.get("em111")) == 1    # 0.1 kWh


def test_identity_registers():
    for name in ("sdm72dm", "sdm120", "sdm630", "abb_b21", "abb_b23", "em111"):
        assert "serial" in profiles.get(name)["identity"], name
    sdm = profiles.get("sdm630")["identity"]["serial"]
    assert sdm == (3, 0xFC00, 2, "u32")
    assert profiles.identity_value(sdm, _w(0x0134, 0x5678)) == "20207224"  # 0x01345678
    abb = profiles.get("abb_b23")["identity"]
    assert profiles.identity_value(abb["model"], b"B23 112-100\x00") == "B23 112-100"
    assert profiles.identity_value(profiles.get("em111")["identity"]["serial"], b"BN2401234 \x00\x00\x00\x00\x00") \
        == "BN2401234"
    u = profiles.from_json(_user(identity={"serial": {"register": 0x1000, "type": "ascii", "count": 4},
                                           "firmware": {"register": 0x1010, "type": "u16", "function": 4}}))
    assert u["identity"] == {"serial": (3, 0x1000, 4, "ascii"), "firmware": (4, 0x1010, 1, "u16")}
    for bad in ({"serial": {"register": 1, "type": "float"}}, {"colour": {"register": 1}},
                {"serial": {"register": 1, "type": "ascii"}}, {"serial": {"register": 1, "function": 6}}, []):
        _raises(profiles.from_json, _user(identity=bad))
