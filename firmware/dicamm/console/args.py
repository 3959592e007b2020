# A console command's words, parsed: positional words and --flags (with
# --key value for the options a command declares). Shared by the dispatcher
# (cli.py) and the dialogs that call other commands (wizard.py).
from dicamm.errors import UsageError


class Args:
    # Parsed words: positional words and --flags (with --key value for the
    # options a command declares).
    def __init__(self, words, options=()):
        self.pos = []
        self.flags = {}
        i = 0
        while i < len(words):
            w = words[i]
            if w.startswith("--") and len(w) > 2:
                name = w[2:]
                if name in options:
                    if i + 1 >= len(words):
                        raise UsageError("--%s needs a value" % name)
                    self.flags[name] = words[i + 1]
                    i += 1
                else:
                    self.flags[name] = True
            else:
                self.pos.append(w)
            i += 1
        self.json = bool(self.flags.get("json"))

    def int_flag(self, name, default, lo=0, hi=1000000):
        v = self.flags.get(name)
        if v is None:
            return default
        try:
            n = int(v)
        except ValueError:
            raise UsageError("--%s wants a number" % name)
        if not lo <= n <= hi:
            raise UsageError("--%s must be %d..%d" % (name, lo, hi))
        return n
