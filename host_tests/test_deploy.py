# make deploy / make flash without a board: the dry-run lists every file and
# mpremote command; build_mpy's .mpy files are real (header, architecture) and
# load on the unix port; flash gives the right esptool arguments per chip;
# manifest.py and package.json cover the actual firmware files.
import glob
import hashlib
import json
import os
import shlex
import subprocess
import sys

import pytest

from conftest import FIRMWARE, MICROPYTHON, ROOT, TOOLS

import build_mpy
import flash

pytestmark = pytest.mark.slow  # runs the firmware or emulators as processes

PY = sys.executable
DEVICE_BOARDS = ["esp32_devkitc", "esp32s3_devkitc", "olimex_esp32_poe_iso", "lilygo_t_can485"]
ARCH_CODE = {"xtensawin": 10, "rv32imc": 11}


def firmware_package_files():
    # Every .py of the dicamm package and its subpackages, relative to firmware/.
    return sorted(os.path.relpath(p, FIRMWARE).replace(os.sep, "/")
                  for p in glob.glob(os.path.join(FIRMWARE, "dicamm", "**", "*.py"), recursive=True))


def firmware_device_paths():
    out = ["lib/%s.mpy" % p[:-3] for p in firmware_package_files()]
    out += ["lib/%s.mpy" % os.path.basename(p)[:-3] for p in glob.glob(os.path.join(FIRMWARE, "*.py"))
            if os.path.basename(p) not in ("boot.py", "main.py")]
    return sorted(out)


def dry_run(tmp_path, board, *extra):
    r = subprocess.run([PY, os.path.join(TOOLS, "deploy.py"), "--port", "/dev/ttyUSB7", "--board", board,
                        "--dry-run", "--out", str(tmp_path)] + list(extra),
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    files, runs = [], []
    for line in r.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        assert kind in ("file", "run"), line
        if kind == "file":
            local, dev = rest.split(" ")
            files.append((local, dev[1:]))
        else:
            runs.append(shlex.split(rest))
    return files, runs


def mpy_header(path):
    with open(path, "rb") as f:
        head = f.read(4)
    return head[0], head[1], head[2] >> 2


@pytest.mark.parametrize("board", DEVICE_BOARDS)
def test_deploy_dry_run_lists_every_module(tmp_path, board):
    files, runs = dry_run(tmp_path, board, "--psram")  # .mpy: what a board with PSRAM gets
    devs = [d for _, d in files]
    assert len(devs) == len(set(devs))
    expected = set(firmware_device_paths()) | {"lib/umqtt/simple.mpy", "board.mpy", "boot.py", "main.py",
                                               "config.default.json"}
    assert set(devs) == expected
    for local, dev in files:
        path = os.path.join(ROOT, local)
        assert os.path.isfile(path), local
        if dev.endswith(".mpy"):
            magic, version, arch = mpy_header(path)
            assert (magic, version) == (ord("M"), 6) and arch in (0, ARCH_CODE["xtensawin"]), local
    # every mpremote call talks to the given port
    for cmd in runs:
        assert os.path.basename(cmd[0]) == "mpremote" and cmd[1:3] == ["connect", "/dev/ttyUSB7"], cmd
    # safe mode first (no watchdog while copying), hard reset last
    assert runs[0][3:5] == ["exec", "--no-follow"] and "safemode" in runs[0][5] and "machine.reset()" in runs[0][5]
    assert runs[-1][3:] == ["reset"]
    # every file is copied exactly once, into its folder
    copied = []
    for cmd in runs:
        if cmd[3] == "cp":
            dest = cmd[-1][1:]
            for local in cmd[4:-1]:
                copied.append(dest + os.path.basename(local))
    assert sorted(copied) == sorted(devs)
    scripts = [cmd[-1] for cmd in runs if cmd[-2] == "run"]
    assert [os.path.basename(s) for s in scripts] == ["deploy_prepare.py", "deploy_finish.py"]


def test_deploy_dry_run_mip(tmp_path):
    files, runs = dry_run(tmp_path, "esp32_devkitc", "--mip", "--psram")
    devs = [d for _, d in files]
    assert "lib/umqtt/simple.mpy" not in devs and "lib/dicamm/drivers/startup.mpy" in devs
    assert ["mip", "install", "--target", "lib", "umqtt.simple@" + build_mpy.umqtt_version()] in [c[3:] for c in runs]


def test_deploy_dry_run_frozen(tmp_path):
    # An image with the firmware frozen in: no lib/ modules are copied, and the
    # board's lib/dicamm and lib/umqtt (from an earlier .mpy deploy) are emptied.
    files, runs = dry_run(tmp_path / "out", "esp32_devkitc", "--frozen")
    assert sorted(d for _, d in files) == ["board.mpy", "boot.py", "config.default.json", "main.py"]
    assert not [c for c in runs if c[3] == "mip"]
    finish = [os.path.join(ROOT, c[-1]) for c in runs if c[-2] == "run"][1]
    fs = tmp_path / "fs"
    (fs / "lib" / "dicamm").mkdir(parents=True)
    (fs / "lib" / "dicamm" / "app.mpy").write_text("x")
    (fs / "lib" / "other.mpy").write_text("x")          # the user's own: kept
    (fs / "config.default.json").write_text("{}")
    r = subprocess.run([MICROPYTHON, finish], cwd=str(fs), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.listdir(fs / "lib" / "dicamm") == []
    assert sorted(os.listdir(fs / "lib")) == ["dicamm", "other.mpy"]
    r = subprocess.run([PY, os.path.join(TOOLS, "deploy.py"), "--port", "x", "--frozen", "--mip", "--dry-run",
                        "--out", str(tmp_path / "o2")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "exclude" in r.stderr


@pytest.mark.parametrize("board", ["esp32_devkitc", "lilygo_t_can485", "olimex_esp32_poe_iso"])
def test_deploy_refuses_mpy_without_psram(tmp_path, board):
    # The firmware as .mpy needs more heap than an ESP32 without PSRAM has: the
    # user is told to flash a frozen image (or to say the board has PSRAM).
    r = subprocess.run([PY, os.path.join(TOOLS, "deploy.py"), "--port", "x", "--board", board, "--dry-run",
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "no PSRAM" in r.stderr and "--frozen" in r.stderr and not r.stdout
    files, _ = dry_run(tmp_path / "s3", "esp32s3_devkitc")   # PSRAM module: .mpy without a flag
    assert "lib/dicamm/services/app.mpy" in [d for _, d in files]


def test_deploy_refuses_unix(tmp_path):
    r = subprocess.run([PY, os.path.join(TOOLS, "deploy.py"), "--port", "x", "--board", "unix", "--dry-run",
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "unix" in r.stderr


def test_deploy_scripts_on_a_board_filesystem(tmp_path):
    # Run the generated on-board scripts on the unix port in a folder that
    # stands for the board's filesystem.
    _, runs = dry_run(tmp_path / "out", "esp32_devkitc", "--psram")
    prepare, finish = [os.path.join(ROOT, c[-1]) for c in runs if c[-2] == "run"]
    fs = tmp_path / "fs"
    fs.mkdir()

    def run(script):
        r = subprocess.run([MICROPYTHON, script], cwd=str(fs), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr

    run(prepare)
    run(prepare)  # again: folders exist, no error
    assert (fs / "lib" / "dicamm").is_dir() and (fs / "lib" / "umqtt").is_dir()
    drivers = fs / "lib" / "dicamm" / "drivers"
    assert drivers.is_dir()
    (drivers / "startup.mpy").write_text("x")
    (drivers / "startup.py").write_text("x")  # would shadow the .mpy
    (drivers / "gone.mpy").write_text("x")    # module no longer in the firmware
    (fs / "lib" / "dicamm" / "startup.mpy").write_text("x")  # the flat layout before the subpackages
    (fs / "board.py").write_text("x")
    (fs / "crash.count").write_text("3")
    (fs / "safemode").write_text("1")
    (fs / "config.default.json").write_text("{}")
    run(finish)
    assert sorted(os.listdir(drivers)) == ["startup.mpy"]
    assert sorted(os.listdir(fs / "lib" / "dicamm")) == ["console", "drivers", "proto", "services"]
    assert sorted(os.listdir(fs)) == ["config.json", "lib"]
    # an existing config is kept
    (fs / "config.json").write_text('{"site": 1}')
    (fs / "config.default.json").write_text("{}")
    run(finish)
    assert (fs / "config.json").read_text() == '{"site": 1}' and not (fs / "config.default.json").exists()


@pytest.mark.parametrize("chip,arch", [("esp32", "xtensawin"), ("esp32s3", "xtensawin"), ("esp32c3", "rv32imc")])
def test_mpy_cross_arch_field(tmp_path, chip, arch):
    # A module with native code carries the architecture in the header.
    assert build_mpy.ARCH[chip] == arch
    src = tmp_path / "n.py"
    src.write_text("@micropython.native\ndef f(x):\n    return x + 1\n")
    out = tmp_path / "n.mpy"
    subprocess.run([build_mpy.mpy_cross_exe(), "-march=" + arch, "-o", str(out), str(src)], check=True)
    assert mpy_header(str(out)) == (ord("M"), 6, ARCH_CODE[arch])


def test_built_mpy_loads_on_unix_port(tmp_path):
    board, files = build_mpy.build("esp32_devkitc", str(tmp_path))
    assert board["chip"] == "esp32"
    lib = tmp_path / "esp32_devkitc" / "lib"
    script = ("import sys\nsys.path.insert(0, %r)\nsys.path.insert(0, %r)\n"
              "from dicamm import errors\nfrom dicamm.drivers import startup\nimport board\nprint(startup.__file__, board.BOARD['name'])\n"
              % (str(lib), str(tmp_path / "esp32_devkitc")))
    r = subprocess.run([MICROPYTHON, "-c", script], capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(lib / "dicamm" / "drivers" / "startup.mpy"), "esp32_devkitc"]


# -- flash ----------------------------------------------------------------------

def flash_run(*args):
    return subprocess.run([PY, os.path.join(TOOLS, "flash.py")] + list(args), capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("board,chip,offset", [
    ("esp32_devkitc", "esp32", "0x1000"), ("olimex_esp32_poe_iso", "esp32", "0x1000"),
    ("lilygo_t_can485", "esp32", "0x1000"), ("esp32s3_devkitc", "esp32s3", "0x0"),
])
def test_flash_dry_run_per_chip(tmp_path, board, chip, offset):
    _, b = build_mpy.load_board(board)
    image = tmp_path / ("%s-20260101-v1.29.0.bin" % b["firmware_image"]["name"])
    image.write_bytes(b"\xe9" + bytes(4095))
    sha = hashlib.sha256(image.read_bytes()).hexdigest()
    r = flash_run("--port", "/dev/ttyUSB3", "--board", board, "--image", str(image), "--sha256", sha, "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = [shlex.split(l[4:]) for l in r.stdout.splitlines()]
    common = ["-m", "esptool", "--chip", chip, "--port", "/dev/ttyUSB3", "--baud", "460800"]
    assert lines == [[PY] + common + ["erase-flash"], [PY] + common + ["write-flash", offset, str(image)]]


def test_flash_c3_offset():
    cmds = flash.esptool_cmds("esp32c3", "/dev/ttyACM0", "img.bin")
    assert cmds[-1][-3:] == ["write-flash", "0x0", "img.bin"] and "esp32c3" in cmds[0]


def test_flash_checks_image(tmp_path):
    good = tmp_path / "ESP32_GENERIC-20260101-v1.29.0.bin"
    good.write_bytes(b"image")
    sha = hashlib.sha256(b"image").hexdigest()
    base = ["--port", "p", "--board", "esp32_devkitc", "--dry-run", "--image"]
    r = flash_run(*base, str(good))  # no known sha256: refused, prints it
    assert r.returncode != 0 and sha in r.stderr
    r = flash_run(*base, str(good), "--sha256", "0" * 64)
    assert r.returncode != 0 and "mismatch" in r.stderr
    s3 = tmp_path / "ESP32_GENERIC_S3-20260101-v1.29.0.bin"
    s3.write_bytes(b"image")
    r = flash_run(*base, str(s3), "--sha256", sha)  # image of another board
    assert r.returncode != 0 and "not a ESP32_GENERIC image" in r.stderr
    assert flash_run("--port", "p", "--board", "unix", "--dry-run").returncode != 0
    r = flash_run("--port", "p", "--board", "esp32s3_devkitc")  # no image, no dry run
    assert r.returncode != 0 and "ESP32_GENERIC_S3" in r.stderr


# -- manifest.py and package.json -----------------------------------------------

def read_manifest(path):
    """The calls of a MicroPython manifest, includes followed (the port's own,
    $(...), are recorded, not read); base_path made absolute as makemanifest does."""
    calls = []

    def run(p):
        here = os.path.dirname(p)

        def include(q, **kw):
            calls.append(("include", (q,), kw))
            if not q.startswith("$("):
                run(os.path.normpath(os.path.join(here, q)))

        def rec(kind):
            def f(*a, **kw):
                if "base_path" in kw:
                    kw = dict(kw, base_path=os.path.normpath(os.path.join(here, kw["base_path"])))
                calls.append((kind, a, kw))
            return f

        scope = {k: rec(k) for k in ("require", "module", "package", "freeze", "metadata")}
        scope["include"] = include
        with open(p) as f:
            exec(f.read(), scope)

    run(path)
    return calls


@pytest.mark.parametrize("manifest, port_include", [
    ("manifest.py", "$(PORT_DIR)/boards/manifest.py"),
    ("tools/manifest_unix.py", "$(PORT_DIR)/variants/manifest.py"),
])
def test_manifest_covers_firmware(manifest, port_include):
    calls = read_manifest(os.path.join(ROOT, manifest))
    assert ("include", (port_include,), {}) in calls
    assert ("require", ("umqtt.simple",), {}) in calls
    assert ("package", ("dicamm",), {"base_path": FIRMWARE}) in calls
    assert os.path.isfile(os.path.join(ROOT, "firmware", "dicamm", "__init__.py"))
    modules = sorted(a[0] for k, a, kw in calls if k == "module" and kw.get("base_path") == FIRMWARE)
    top = sorted(os.path.basename(p) for p in glob.glob(os.path.join(FIRMWARE, "*.py"))
                 if os.path.basename(p) not in ("boot.py", "main.py"))
    assert modules == top, "%s: module() calls must match firmware/*.py" % manifest
    # What the frozen build holds (package() takes base_path/dicamm/**/*.py, as
    # MicroPython's manifestfile does), against the tree and the .mpy build.
    frozen = []
    for k, a, kw in calls:
        if k == "package" and kw.get("base_path") == FIRMWARE:
            frozen += sorted(os.path.relpath(p, FIRMWARE).replace(os.sep, "/") for p in glob.glob(
                os.path.join(FIRMWARE, a[0], "**", "*.py"), recursive=True))
    frozen += modules
    assert sorted(frozen) == firmware_package_files() + top
    assert sorted("lib/" + f[:-3] + ".mpy" for f in frozen) == firmware_device_paths()
    assert sorted(dev + ".mpy" for _, dev in build_mpy.firmware_modules()) == firmware_device_paths()


def test_package_json_current():
    with open(os.path.join(ROOT, "package.json")) as f:
        text = f.read()
    pkg = json.loads(text)
    assert text == build_mpy.format_package_json(build_mpy.package_json()), \
        "package.json is out of date: run tools/build_mpy.py --package-json"
    assert pkg["deps"] == [["umqtt.simple", build_mpy.umqtt_version()]]
    dests = sorted(d[:-3] + ".mpy" for d, _ in pkg["urls"])
    assert ["lib/" + d for d in dests] == firmware_device_paths()
    for _, src in pkg["urls"]:
        assert os.path.isfile(os.path.join(ROOT, src)), src
