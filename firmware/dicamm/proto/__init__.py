# The pure layer: protocol codecs and rules. Bytes or numbers in, values out;
# no machine, socket, ssl, os, time or asyncio, and nothing from the other
# layers (host_tests/test_layers.py checks it), so every module here runs
# unchanged in the dual tests on MicroPython and CPython.
