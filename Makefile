# DICAMM firmware. On a fresh machine: `make sim` (bench simulation) and `make test`.
VENV    := .venv
PY      := $(VENV)/bin/python
MP      := $(VENV)/bin/micropython
STAMP   := $(VENV)/.setup-done
PORT    ?= /dev/ttyUSB0
BOARD   ?= esp32_devkitc

.PHONY: setup sim test test-fast bench campaign mpy clean deploy flash console frozen-unix frozen32 image
# test workers: the slow tests mostly wait on simulated time, so more than the cores
JOBS    ?= 4

# The 32-bit unix port with the firmware frozen in (as on an ESP32 without PSRAM), from
# the pinned MicroPython source: the whole-day heap test runs on it. Rebuilt when the
# firmware or what goes into the build changes (about a minute on 2 cores).
FROZEN32 := build/frozen-unix32/micropython
FROZEN32_INPUTS := $(shell find firmware -name '*.py') tools/manifest_firmware.py tools/manifest_unix.py \
	tools/mbedtls_config_brainpool.h tools/build_frozen_unix.sh tools/micropython.lock

setup: $(STAMP) $(FROZEN32)

$(STAMP): requirements-host.txt tools/micropython.lock tools/mpy_source.sh tools/setup.sh
	bash tools/setup.sh
	touch $(STAMP)

frozen32: $(FROZEN32)

$(FROZEN32): $(STAMP) $(FROZEN32_INPUTS)
	BITS=32 bash tools/build_frozen_unix.sh

sim: setup
	$(PY) tools/sim.py $(SIM_ARGS)

# whole files per worker (module fixtures share one rig); the slowest tests and the
# slow tests' share of the time are printed at the end
test: setup
	$(PY) -m pytest host_tests -n $(JOBS) --dist loadfile --durations=15 $(PYTEST_ARGS)

# the unit and dual tests (CPython and the MicroPython unix port), no emulators
test-fast: setup
	$(PY) -m pytest host_tests -m "not slow" -n 2 $(PYTEST_ARGS)

bench: setup
	DICAMM_FROZEN32_MICROPYTHON=$${DICAMM_FROZEN32_MICROPYTHON:-$(FROZEN32)} $(PY) tools/bench.py $(BENCH_ARGS)

campaign: setup
	$(PY) tools/campaign.py $(CAMPAIGN_ARGS)

# The unix port with the firmware frozen in, 64 bits (BITS=32: what `make frozen32`
# builds), from the pinned source or MPY_DIR: make frozen-unix [MPY_DIR=~/src/micropython] [BITS=32]
frozen-unix: $(STAMP)
	MPY_DIR=$(MPY_DIR) BITS=$(BITS) bash tools/build_frozen_unix.sh

# The board's MicroPython image: firmware frozen in, ESP-IDF settings of sdkconfig.dicamm
# (Brainpool, TLS 1.2); needs ESP-IDF and a MicroPython checkout (docs/FLASHING.md):
# make image BOARD=esp32_devkitc MPY_DIR=~/src/micropython [VARIANT=SPIRAM_OCT]
image:
	BOARD=$(BOARD) MPY_DIR=$(MPY_DIR) VARIANT=$(VARIANT) bash tools/build_image.sh

mpy: setup
	$(PY) tools/build_mpy.py --board $(BOARD)

deploy: setup
	$(PY) tools/deploy.py --port $(PORT) --board $(BOARD) $(DEPLOY_ARGS)

flash: setup
	$(PY) tools/flash.py --port $(PORT) --board $(BOARD) $(FLASH_ARGS)

console: setup
	$(VENV)/bin/mpremote connect $(PORT) repl

clean:
	rm -rf build $(VENV)
