# Meter profiles as data, and the pure code that turns register words into values.
#
# A profile is a dict: name, vendor, model, baud, parity, phases, max_gap (unused
# registers a read may span), max_regs (per request), ranges (register spans where
# every register is defined, so reading across them is safe even when max_gap is
# 0), ident (function, register, count, expected) and fields:
#   field name -> (function, register, type, lsw_first, num, den)
# The value in the field's own unit is raw * num / den: energy in Wh, power in W,
# voltage in V, current in A. Energy and power come out as exact integers (float32
# is taken apart into mantissa and exponent, never multiplied as a float: a float
# on the ESP32 has 24 bits, too few for Wh); voltage and current as floats.
import struct

from micropython import const

from dicamm.errors import ConfigError

_MAX_REGS = const(125)

# type -> registers
_SIZE = {"float32": 2, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4}
# field name -> allowed units and their factor to the field's unit as (num, den)
_UNITS = {
    "power_w": {"W": (1, 1), "kW": (1000, 1), "mW": (1, 1000)},
    "import_wh": {"Wh": (1, 1), "kWh": (1000, 1), "MWh": (1000000, 1)},
    "export_wh": {"Wh": (1, 1), "kWh": (1000, 1), "MWh": (1000000, 1)},
    "total_wh": {"Wh": (1, 1), "kWh": (1000, 1), "MWh": (1000000, 1)},
    "voltage_v": {"V": (1, 1), "mV": (1, 1000), "kV": (1000, 1)},
    "current_a": {"A": (1, 1), "mA": (1, 1000)},
}
_BASE = {"power_w": "W", "voltage_v": "V", "current_a": "A"}
# fields read by default (those a profile has) and the ones a Reading must carry
STANDARD = ("power_w", "import_wh", "export_wh", "voltage_v", "current_a")
REQUIRED = ("power_w", "import_wh", "export_wh")


def _table():
    # The profile table, and out of the module cache again: whatever the
    # caller keeps (one profile) stays, the rest is freed by the next collection.
    from dicamm.proto import profile_table, unload
    t = profile_table.PROFILES
    unload("dicamm.proto.profile_table")
    return t


def names():
    return sorted(_table())


def get(name):
    p = _table().get(name.lower()) if isinstance(name, str) else None
    if p is None:
        raise ConfigError("unknown meter profile %r" % (name,))
    return p


def field(profile, name):
    # (function, register, type, lsw_first, num, den) of one field
    return profile["fields"][name]


def size(typ):
    return _SIZE[typ]


# -- planning ---------------------------------------------------------------

def _in_range(profile, lo, hi):
    # True when registers lo..hi-1 all lie in one defined area of the profile.
    for a, b in profile.get("ranges", ()):
        if a <= lo and hi <= b:
            return True
    return False


def plan(profile, fields):
    # Groups fields into the fewest read requests the profile allows. A Block is
    # (function, address, count, names). Registers between two fields are read
    # only when the gap is within max_gap or inside a defined area.
    fs = profile["fields"]
    items = []
    for n in fields:
        f = fs.get(n)
        if f is None:
            raise ConfigError("profile %s has no field %s" % (profile.get("name"), n))
        items.append((f[0], f[1], f[1] + _SIZE[f[2]], n))
    items.sort()
    gap = profile.get("max_gap", 0)
    most = min(profile.get("max_regs", _MAX_REGS), _MAX_REGS)
    blocks = []
    cur = None  # [function, start, end, names]
    for fn, lo, hi, n in items:
        if cur is not None and fn == cur[0] and max(hi, cur[2]) - cur[1] <= most and (
                lo <= cur[2] + gap or _in_range(profile, cur[2], lo)):
            if hi > cur[2]:
                cur[2] = hi
            cur[3].append(n)
            continue
        if cur is not None:
            blocks.append((cur[0], cur[1], cur[2] - cur[1], tuple(cur[3])))
        cur = [fn, lo, hi, [n]]
    if cur is not None:
        blocks.append((cur[0], cur[1], cur[2] - cur[1], tuple(cur[3])))
    return blocks


# -- decoding ---------------------------------------------------------------

def _rdiv(n, d):
    # n / d rounded half away from zero, integers only (d > 0).
    if n >= 0:
        return (2 * n + d) // (2 * d)
    return -((-2 * n + d) // (2 * d))


def _raw(data, off, nregs, lsw_first):
    v = 0
    if lsw_first:
        i = off + 2 * (nregs - 1)
        while i >= off:
            v = (v << 16) | (data[i] << 8) | data[i + 1]
            i -= 2
    else:
        for i in range(off, off + 2 * nregs, 2):
            v = (v << 16) | (data[i] << 8) | data[i + 1]
    return v


def float32_scaled(bits, num, den):
    # round(float32(bits) * num / den) with integer arithmetic; None for NaN/inf.
    e = (bits >> 23) & 0xFF
    m = bits & 0x7FFFFF
    if e == 0xFF:
        return None
    if e:
        m |= 0x800000
        e -= 150
    else:
        e = -149
    n = m * num
    if bits >> 31:
        n = -n
    if e >= 0:
        return _rdiv(n << e, den)
    if e < -120:  # below 2**-96: zero for any sane scale
        return 0
    return _rdiv(n, den << -e)


def _value(profile, f, is_int, data, off):
    typ = f[2]
    nregs = _SIZE[typ]
    v = _raw(data, off, nregs, f[3])
    if typ == "float32":
        if is_int:
            return float32_scaled(v, f[4], f[5])
        x = struct.unpack(">f", struct.pack(">I", v))[0]
        if x != x or x in (float("inf"), float("-inf")):
            return None
        return x * f[4] / f[5]
    bits = 16 * nregs
    if typ[0] == "i":
        if profile.get("nan") and v == (1 << (bits - 1)) - 1:
            return None
        if v >> (bits - 1):
            v -= 1 << bits
    elif profile.get("nan") and v == (1 << bits) - 1:
        return None
    if is_int:
        return _rdiv(v * f[4], f[5])
    return v * f[4] / f[5]


def decode(profile, block, data):
    # block: (function, address, count, names) from plan(); data: 2*count bytes,
    # big-endian register words as on the wire. Returns {name: value or None}.
    if len(data) < 2 * block[2]:
        raise ValueError("short data")
    fs = profile["fields"]
    out = {}
    for n in block[3]:
        f = fs[n]
        out[n] = _value(profile, f, n.endswith("_w") or n.endswith("_wh"), data, 2 * (f[1] - block[1]))
    return out


def invalid(r, names, floor=None):
    # Why reading r (decoded fields `names`) must not become a value, or None:
    # a non-finite (None) power or energy, a negative energy register, or one
    # below `floor` (the last good value of the same meter: registers never
    # run backwards). The text starts with "invalid value".
    for n in names:
        v = r.get(n)
        if n == "power_w" and v is None:
            return "invalid value: power_w not finite"
        if not n.endswith("_wh"):
            continue
        if v is None:
            return "invalid value: %s not finite" % n
        if v < 0:
            return "invalid value: %s negative" % n
        if floor and floor.get(n) is not None and v < floor[n]:
            return "invalid value: %s ran backwards (%d < %d Wh)" % (n, v, floor[n])
    return None


def kwh_decimals(profile):
    # The kWh decimals the import register really resolves: 3 for float32
    # (Wh), else from its scale (0.01 kWh -> 2, 0.1 kWh -> 1).
    f = profile["fields"]["import_wh"]
    if f[2] == "float32" or f[5] != 1:
        return 3
    d, n = 3, f[4]
    while d and n % 10 == 0:
        n //= 10
        d -= 1
    return d


def identity_value(spec, data):
    # spec: (function, register, count, kind) of an identity register;
    # kind "u16"/"u32": the number in decimal; "ascii": the text without
    # padding (NUL and blanks).
    kind = spec[3]
    if kind == "ascii":
        return "".join(chr(b) for b in bytes(data[:2 * spec[2]]) if 32 <= b < 127).strip()
    return "%d" % _raw(data, 0, spec[2], False)


def ident_matches(profile, data):
    # data: the registers of profile["ident"]; ints compare with the first
    # register(s), bytes with the start of the text.
    idn = profile.get("ident")
    if not idn:
        return False
    want = idn[3]
    if isinstance(want, int):
        return _raw(data, 0, idn[2], False) == want
    return bytes(data[:len(want)]) == want


# -- user-defined profiles --------------------------------------------------

def _ratio(x, what):
    # A scale as an exact fraction: 1, 0.01, "0.001", "1/100".
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise ConfigError("%s: scale must be a number" % what)
    if isinstance(x, int):
        r = (x, 1)
    else:
        s = x if isinstance(x, str) else repr(x)
        s = s.strip().lower()
        try:
            if "/" in s:
                a, b = s.split("/")
                r = (int(a), int(b))
            else:
                exp = 0
                if "e" in s:
                    s, ex = s.split("e")
                    exp = int(ex)
                neg = s.startswith("-")
                s = s.lstrip("+-")
                if "." in s:
                    a, b = s.split(".")
                else:
                    a, b = s, ""
                n = int((a or "0") + b)
                d = 10 ** len(b)
                if exp > 0:
                    n *= 10 ** exp
                elif exp < 0:
                    d *= 10 ** -exp
                r = (-n if neg else n, d)
        except ValueError:
            raise ConfigError("%s: bad scale %r" % (what, x))
    if r[1] <= 0 or r[0] == 0:
        raise ConfigError("%s: scale must be non-zero" % what)
    return r


def _gcd(a, b):
    a, b = abs(a), abs(b)
    while b:
        a, b = b, a % b
    return a


def _int(obj, key, lo, hi, default=None):
    v = obj.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError("%s must be an integer %d..%d" % (key, lo, hi))
    return v


def _identity(obj):
    # {"serial"|"model"|"firmware": {"function", "register", "type": u16|u32|ascii,
    # "count" (ascii registers)}} -> {name: (function, register, count, kind)}
    out = {}
    if obj is None:
        return out
    if not isinstance(obj, dict):
        raise ConfigError("identity must be an object")
    for n, f in obj.items():
        if n not in ("serial", "model", "firmware") or not isinstance(f, dict):
            raise ConfigError("identity: %r must be serial, model or firmware with an object" % (n,))
        kind = f.get("type", "u32")
        if kind not in ("u16", "u32", "ascii"):
            raise ConfigError("identity %s: type must be u16, u32 or ascii" % n)
        cnt = {"u16": 1, "u32": 2}.get(kind) or _int(f, "count", 1, 16)
        fn = f.get("function", 3)
        if fn not in (3, 4) or isinstance(fn, bool):
            raise ConfigError("identity %s: function must be 3 or 4" % n)
        out[n] = (fn, _int(f, "register", 0, 0xFFFF - cnt), cnt, kind)
    return out


def from_json(obj):
    # A profile from a user's JSON object (see the module header for the shape).
    if not isinstance(obj, dict):
        raise ConfigError("profile must be a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 32:
        raise ConfigError("profile name must be a string of 1..32 characters")
    baud = _int(obj, "baud", 300, 230400, 9600)
    parity = obj.get("parity", "N")
    if parity not in ("N", "E", "O"):
        raise ConfigError("parity must be N, E or O")
    fields = obj.get("fields")
    if not isinstance(fields, dict):
        raise ConfigError("fields must be an object")
    out = {}
    for n, f in fields.items():
        units = _UNITS.get(n)
        if units is None:
            raise ConfigError("unknown field %r (known: %s)" % (n, ", ".join(sorted(_UNITS))))
        if not isinstance(f, dict):
            raise ConfigError("%s must be an object" % n)
        fn = f.get("function", 4)
        if fn not in (3, 4) or isinstance(fn, bool):
            raise ConfigError("%s: function must be 3 or 4" % n)
        reg = _int(f, "register", 0, 0xFFFF)
        typ = f.get("type")
        if typ not in _SIZE:
            raise ConfigError("%s: type must be one of %s" % (n, ", ".join(sorted(_SIZE))))
        if reg + _SIZE[typ] > 0x10000:
            raise ConfigError("%s: register out of range" % n)
        wo = f.get("word_order", "big")
        if wo not in ("big", "little"):
            raise ConfigError("%s: word_order must be big or little" % n)
        unit = f.get("unit", _BASE.get(n, "Wh"))
        if unit not in units:
            raise ConfigError("%s: unit must be one of %s" % (n, ", ".join(sorted(units))))
        sn, sd = _ratio(f.get("scale", 1), n)
        un, ud = units[unit]
        num, den = sn * un, sd * ud
        if den < 0:
            num, den = -num, -den
        g = _gcd(num, den)
        out[n] = (fn, reg, typ, wo == "little", num // g, den // g)
    for n in REQUIRED:
        if n not in out:
            raise ConfigError("profile needs field %s" % n)
    p = {"name": name, "vendor": str(obj.get("vendor", "")), "model": str(obj.get("model", name)),
         "baud": baud, "parity": parity, "phases": _int(obj, "phases", 1, 3, 1),
         "max_gap": _int(obj, "max_gap", 0, _MAX_REGS, 0),
         "max_regs": _int(obj, "max_regs", 1, _MAX_REGS, _MAX_REGS),
         "ranges": (), "ident": None, "fields": out, "identity": _identity(obj.get("identity"))}
    idn = obj.get("ident")
    if idn is not None:
        if not isinstance(idn, dict):
            raise ConfigError("ident must be an object")
        want = idn.get("value")
        if isinstance(want, str) and 0 < len(want) <= 32:
            want = want.encode()
            cnt = (len(want) + 1) // 2
        elif isinstance(want, int) and not isinstance(want, bool) and 0 <= want <= 0xFFFFFFFF:
            cnt = 1 if want <= 0xFFFF else 2
        else:
            raise ConfigError("ident value must be an integer or a short text")
        fn = idn.get("function", 3)
        if fn not in (3, 4) or isinstance(fn, bool):
            raise ConfigError("ident function must be 3 or 4")
        p["ident"] = (fn, _int(idn, "register", 0, 0xFFFF), cnt, want)
    return p
