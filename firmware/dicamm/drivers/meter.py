# One meter on the Modbus bus: reads the profile's fields in the fewest
# transactions and returns a Reading dict (power_w, import_wh, export_wh as
# integers, voltage_v/current_a as floats, model, address). The caller stamps
# the time. Any failed or invalid transaction raises ModbusError, so a value
# from a bad read is never returned: nor a non-finite, negative or backwards
# running energy register ("invalid value", profiles.invalid), whichever
# fields were asked for. read_identity() gives vendor, model, serial, firmware.
from dicamm.errors import DicammError, ModbusError, ModbusException
from dicamm.proto import profiles


def load_profile(name, custom_path):
    # The profile of meter model `name`; "custom" is read from custom_path
    # (meter_profile.json, the profile format of profiles.from_json).
    if name == "custom":
        import json
        from dicamm.drivers import fsutil
        raw = fsutil.read(custom_path)
        if raw is None:
            raise DicammError("model 'custom' needs meter_profile.json")
        return profiles.from_json(json.loads(raw))
    return profiles.get(name)


class Meter:
    def __init__(self, master, profile, unit):
        self.master = master
        self.profile = profile
        self.unit = unit
        fs = profile["fields"]
        self._blocks = profiles.plan(profile, [f for f in profiles.STANDARD if f in fs])
        self.floor = {}  # last good energy registers: they never run backwards

    async def _read_blocks(self, blocks, out):
        p = self.profile
        for b in blocks:
            data = await self.master.read_registers(self.unit, b[0], b[1], b[2])
            out.update(profiles.decode(p, b, data))
        return out

    async def read(self, fields=None):
        # fields=None: the standard set, all of REQUIRED must be valid. Otherwise
        # just the named fields; energy and power among them must be valid too.
        r = {"model": self.profile["name"], "address": self.unit}
        if fields is not None:
            await self._read_blocks(profiles.plan(self.profile, fields), r)
        else:
            await self._read_blocks(self._blocks, r)
        names = profiles.REQUIRED if fields is None else fields
        why = profiles.invalid(r, names, self.floor)
        if why is not None:
            raise ModbusError(why)
        for k in ("import_wh", "export_wh"):
            if k in names:
                self.floor[k] = r[k]
        for k in ("voltage_v", "current_a"):
            if k in r and r[k] is None:
                del r[k]
        return r

    async def read_identity(self, only=None, known=None):
        # {"vendor", "model", "serial", "firmware"} from the meter's own
        # registers where the profile has them, else from the profile; `only`:
        # the names to read now (one transaction for the serial), the others
        # taken from `known`.
        p = self.profile
        out = {"vendor": p.get("vendor", ""), "model": p.get("model", p["name"]), "serial": "", "firmware": ""}
        if known:
            out.update(known)
        for name, spec in (p.get("identity") or {}).items():
            if only is not None and name not in only:
                continue
            data = await self.master.read_registers(self.unit, spec[0], spec[1], spec[2])
            v = profiles.identity_value(spec, data)
            if v:
                out[name] = v
        return out

    async def identify(self):
        # The profile's name when its identification register matches, else None.
        idn = self.profile.get("ident")
        if not idn:
            return None
        try:
            data = await self.master.read_registers(self.unit, idn[0], idn[1], idn[2])
        except ModbusException:
            return None  # a device, but not one with this register
        return self.profile["name"] if profiles.ident_matches(self.profile, data) else None
