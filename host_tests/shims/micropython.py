# CPython stand-in for MicroPython's `micropython` module, for host tests only.
# Never shipped to a board.


def const(x):
    return x


def native(f):
    return f


def viper(f):
    return f
