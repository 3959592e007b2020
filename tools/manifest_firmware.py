# The DICAMM firmware as frozen modules, shared by every port's manifest:
# manifest.py (ESP32 boards) and tools/manifest_unix.py (the unix port, to measure
# the heap of a frozen build on the host).
require("umqtt.simple")
module("ussl.py", base_path="../firmware")
package("dicamm", base_path="../firmware")
