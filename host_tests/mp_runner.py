# Runs the test_* functions of a dual test module (host_tests/mp/) under
# MicroPython or CPython and prints "N passed, M failed". Usage:
#   micropython host_tests/mp_runner.py MODULE [MODULE ...]
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here + "/mp")
sys.path.insert(0, _here + "/../firmware")
sys.path.insert(0, _here + "/../build/lib")


def run(names):
    passed = failed = 0
    for name in names:
        mod = __import__(name)
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(mod, attr)
            try:
                fn()
                passed += 1
            except Exception as e:
                failed += 1
                print("FAIL %s.%s: %r" % (name, attr, e))
                sys.print_exception(e) if hasattr(sys, "print_exception") else None
    print("%d passed, %d failed" % (passed, failed))
    return failed


if __name__ == "__main__":
    sys.exit(1 if run(sys.argv[1:]) else 0)
