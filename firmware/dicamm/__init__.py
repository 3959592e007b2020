# DICAMM firmware package. Modules are imported lazily by the application.
VERSION = "0.1.0"
