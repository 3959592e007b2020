# DICAMM firmware. On a fresh machine: `make sim` (bench simulation) and `make test`.
VENV    := .venv
PY      := $(VENV)/bin/python
MP      := $(VENV)/bin/micropython
STAMP   := $(VENV)/.setup-done
PORT    ?= /dev/ttyUSB0
BOARD   ?= esp32_devkitc

.PHONY: setup sim test test-fast bench campaign mpy clean deploy flash console frozen-unix image
# test workers: the slow tests mostly wait on simulated time, so more than the cores
JOBS    ?= 4

setup: $(STAMP)

$(STAMP): requirements-host.txt tools/mplib.lock tools/setup.sh
	bash tools/setup.sh
	touch $(STAMP)

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
	$(PY) tools/bench.py $(BENCH_ARGS)

campaign: setup
	$(PY) tools/campaign.py $(CAMPAIGN_ARGS)

# The unix port with the firmware frozen in, to measure the heap of a frozen build:
# make frozen-unix MPY_DIR=~/src/micropython [BITS=32]  (needs a MicroPython checkout)
frozen-unix: setup
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
