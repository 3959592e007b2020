# The pure layer: protocol codecs and rules. Bytes or numbers in, values out;
# no machine, socket, ssl, os, time or asyncio, and nothing from the other
# layers (host_tests/test_layers.py checks it), so every module here runs
# unchanged in the dual tests on MicroPython and CPython.


def unload(mod):
    # A module out of sys.modules and off its package, so that nothing keeps
    # it alive: for data loaded for one use (cmdspec, profile_table) and the
    # console's command groups. -> True when it was loaded.
    import sys
    if mod not in sys.modules:
        return False
    del sys.modules[mod]
    pkg, _, leaf = mod.rpartition(".")
    try:
        delattr(sys.modules[pkg], leaf)
    except (AttributeError, KeyError, TypeError):
        pass
    return True
