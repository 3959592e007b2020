# The last few log lines in RAM for `log`; nothing is written to flash.


class RingLog:
    def __init__(self, size=16):
        self.lines = [None] * size
        self.n = 0

    def add(self, t_ms, text):
        self.lines[self.n % len(self.lines)] = (t_ms, text)
        self.n += 1

    def last(self, k):
        k = min(k, self.n, len(self.lines))
        return [self.lines[(self.n - k + i) % len(self.lines)] for i in range(k)]
