# The unix port with the DICAMM firmware frozen in: tools/build_frozen_unix.sh.
include("$(PORT_DIR)/variants/manifest.py")  # the unix port's own frozen modules (ssl)
include("$(MPY_DIR)/extmod/asyncio")
include("manifest_firmware.py")
