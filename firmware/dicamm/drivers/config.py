# Device configuration: a schema as data, values checked on every change, saved
# atomically as root/config.json (only the values that differ from the default,
# so new firmware defaults apply). The previous good file is kept as
# config.json.bak and used when config.json cannot be read.
import json

from dicamm.drivers import fsutil
from dicamm.errors import ConfigError
from dicamm.proto.schema import MASK, SCHEMA, check, describe, is_secret, keys  # noqa: F401 (the API)

_REQUIRED = object()


def _flatten(obj, prefix, out):
    # {"meter": {"baud": 9600}} and {"meter.baud": 9600} mean the same.
    for k, v in obj.items():
        k = prefix + k
        if isinstance(v, dict):
            _flatten(v, k + ".", out)
        else:
            out[k] = v
    return out


class Config:
    def __init__(self, root):
        self.path = fsutil.join(root, "config.json")
        self.bak = self.path + ".bak"
        self._values = {}      # only values that differ from the default
        self.unknown = {}      # keys found in the file that this firmware does not know
        self.problems = []     # what went wrong while loading (for the log and `config`)
        self.error = None      # ConfigError if config.json itself was unreadable
        self.source = "defaults"
        self.load()

    def load(self):
        fsutil.discard_tmp(self.path)
        fsutil.discard_tmp(self.bak)
        self._values = {}
        self.unknown = {}
        self.problems = []
        self.error = None
        self.source = "defaults"
        data = fsutil.read(self.path)
        if data is None:
            return
        obj = self._parse(data)
        if obj is None:
            self.error = ConfigError("%s is corrupt" % self.path)
            self.problems.append(str(self.error))
            obj = self._parse(fsutil.read(self.bak) or b"")
            if obj is None:
                self.problems.append("no usable backup, using defaults")
                return
            self.problems.append("using backup %s" % self.bak)
            self.source = "backup"
        else:
            self.source = "file"
        for k, v in _flatten(obj, "", {}).items():
            if k not in SCHEMA:
                self.unknown[k] = v
                self.problems.append("unknown key %s kept" % k)
                continue
            try:
                v = check(k, v)
            except ConfigError as e:
                self.problems.append("%s, default used" % e)
                continue
            if v != SCHEMA[k][1]:
                self._values[k] = v

    @staticmethod
    def _parse(data):
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeError):
            return None
        return obj if isinstance(obj, dict) else None

    def get(self, key, default=_REQUIRED):
        # Unknown key: `default` if one is given, else ConfigError.
        if key not in SCHEMA:
            if default is not _REQUIRED:
                return default
            raise ConfigError("unknown key %s" % key)
        v = self._values.get(key, SCHEMA[key][1])
        return list(v) if isinstance(v, list) else v   # the default must stay intact

    def __getitem__(self, key):
        return self.get(key)

    def set(self, key, value):
        # value: text from the CLI or a typed JSON value. Not saved until save().
        value = check(key, value)
        if value == SCHEMA[key][1]:
            self._values.pop(key, None)
        else:
            self._values[key] = value
        return value

    def unset(self, key):
        # Back to the default.
        if key not in SCHEMA:
            raise ConfigError("unknown key %s" % key)
        self._values.pop(key, None)
        return SCHEMA[key][1]

    def is_default(self, key):
        return key not in self._values

    def as_dict(self, masked=True):
        out = {}
        for k in SCHEMA:
            v = self.get(k)
            out[k] = MASK if masked and SCHEMA[k][4] and v else v
        return out

    def export_json(self, masked=True, all_keys=False):
        # The values that differ from the default (or all). Masked secrets are
        # skipped by import_json, so a masked export can be re-imported safely.
        d = self.as_dict(masked) if all_keys else {
            k: (MASK if masked and SCHEMA[k][4] and v else v) for k, v in self._values.items()}
        return json.dumps(d)

    def import_json(self, text, replace=False):
        # Check every key first; apply only if all are good. replace=True resets
        # keys not in `text` to their defaults. Returns the keys that changed.
        try:
            obj = json.loads(text)
        except ValueError:
            raise ConfigError("import: not valid JSON")
        if not isinstance(obj, dict):
            raise ConfigError("import: expected a JSON object")
        new = dict(self._values) if not replace else {}
        if replace:   # keep secrets that a masked export left out
            for k in self._values:
                if SCHEMA[k][4]:
                    new[k] = self._values[k]
        errors = []
        for k, v in _flatten(obj, "", {}).items():
            if SCHEMA.get(k, (0, 0, 0, 0, False))[4] and v == MASK:
                continue
            try:
                v = check(k, v)
            except ConfigError as e:
                errors.append(str(e))
                continue
            if v == SCHEMA[k][1]:
                new.pop(k, None)
            else:
                new[k] = v
        if errors:
            raise ConfigError("import refused: " + "; ".join(errors))
        changed = [k for k in SCHEMA if new.get(k, SCHEMA[k][1]) != self.get(k)]
        self._values = new
        return sorted(changed)

    def save(self, stats=None):
        # Keep the current good file as the backup, then replace it atomically.
        old = fsutil.read(self.path)
        if old is not None and self._parse(old) is not None:
            fsutil.write_atomic(self.bak, old, stats)
        d = dict(self._values)
        for k, v in self.unknown.items():
            d[k] = v
        fsutil.write_atomic(self.path, json.dumps(d), stats)
        self.error = None
        self.source = "file"
