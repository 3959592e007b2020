# The one place that asks which implementation and port we run on.
import sys

MICROPYTHON = sys.implementation.name == "micropython"
UNIX = sys.platform in ("linux", "darwin")
