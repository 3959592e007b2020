# The ESP32 image's TLS settings (sdkconfig.dicamm next to manifest.py, the board
# tools/esp32_board/DICAMM, make image) and the unix builds' mbedTLS config: both
# enable brainpoolP256r1/P384r1, as BSI TR-03116-3 (2.2, chapter 5) asks for the HAN,
# over what MicroPython's own settings (read from the pinned source) turn off.
import glob
import os
import re
import subprocess
import tarfile

import pytest

from conftest import ROOT

FRAGMENT = os.path.join(ROOT, "sdkconfig.dicamm")
BOARD_CMAKE = os.path.join(ROOT, "tools", "esp32_board", "DICAMM", "mpconfigboard.cmake")
WANT = {"CONFIG_MBEDTLS_ECP_DP_BP256R1_ENABLED": "y", "CONFIG_MBEDTLS_ECP_DP_BP384R1_ENABLED": "y",
        "CONFIG_MBEDTLS_SSL_PROTO_TLS1_2": "y", "CONFIG_MBEDTLS_SSL_PROTO_TLS1_3": "n"}


def settings(text):
    # sdkconfig lines NAME=value -> dict; comments and blank lines skipped
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, sep, v = line.partition("=")
            assert sep and re.fullmatch(r"CONFIG_[A-Z0-9_]+", k), line
            out[k] = v
    return out


def port_source(*names):
    tars = glob.glob(os.path.join(os.path.dirname(ROOT), "shared", "micropython", "micropython-*.tar.xz"))
    if not tars:
        pytest.skip("no MicroPython source tarball in ../shared/micropython")
    got = {}
    with tarfile.open(tars[0]) as t:
        for m in t:
            if m.name in names:
                got[m.name] = t.extractfile(m).read().decode()
    return got


def test_fragment_sets_brainpool_and_tls12_only():
    with open(FRAGMENT) as f:
        assert settings(f.read()) == WANT


def test_fragment_turns_on_what_micropythons_base_turns_off():
    base_name = "micropython/ports/esp32/boards/sdkconfig.base"
    base = settings(port_source(base_name)[base_name])
    for k in ("CONFIG_MBEDTLS_ECP_DP_BP256R1_ENABLED", "CONFIG_MBEDTLS_ECP_DP_BP384R1_ENABLED"):
        assert base.get(k) == "n", k  # the reason for the fragment is still there
        assert WANT[k] == "y"


def test_board_appends_the_fragment_last_and_uses_the_base_board():
    with open(BOARD_CMAKE) as f:
        text = f.read()
    m = re.search(r"list\(APPEND SDKCONFIG_DEFAULTS \$\{CMAKE_CURRENT_LIST_DIR\}/([^)\s]+)\)", text)
    assert m, text
    assert os.path.normpath(os.path.join(os.path.dirname(BOARD_CMAKE), m.group(1))) == FRAGMENT
    # appended after the base board's include, so the fragment comes last and wins
    assert text.index("include(boards/${DICAMM_BASE_BOARD}/mpconfigboard.cmake)") < m.start()
    with open(os.path.join(os.path.dirname(BOARD_CMAKE), "mpconfigboard.h")) as f:
        assert "#include DICAMM_BASE_BOARD_H" in f.read()


def test_unix_mbedtls_config_adds_the_brainpool_curves():
    with open(os.path.join(ROOT, "tools", "mbedtls_config_brainpool.h")) as f:
        text = f.read()
    assert '#include "mbedtls/mbedtls_config_port.h"' in text
    for d in ("MBEDTLS_ECP_DP_BP256R1_ENABLED", "MBEDTLS_ECP_DP_BP384R1_ENABLED"):
        assert "#define " + d in text
    name = "micropython/extmod/mbedtls/mbedtls_config_common.h"
    common = port_source(name)[name]
    assert "BP256R1" not in common  # MicroPython's unix config has no Brainpool of its own
    with open(os.path.join(ROOT, "tools", "build_frozen_unix.sh")) as f:
        assert "tools/mbedtls_config_brainpool.h" in f.read()


def _image(tmp_path, path_dirs, **env):
    e = dict(os.environ, PATH=os.pathsep.join(path_dirs), **env)
    return subprocess.run(["bash", os.path.join(ROOT, "tools", "build_image.sh")], capture_output=True,
                          text=True, env=e, timeout=30)


def test_make_image_says_clearly_that_esp_idf_is_missing(tmp_path):
    r = _image(tmp_path, ["/usr/bin", "/bin"], BOARD="esp32_devkitc", MPY_DIR=str(tmp_path))
    assert r.returncode == 2, r
    assert "ESP-IDF is not installed here (no idf.py on PATH)" in r.stderr, r.stderr
    assert "docs/FLASHING.md" in r.stderr


@pytest.mark.parametrize("board,variant,base", [("esp32_devkitc", "", "ESP32_GENERIC"),
                                                ("olimex_esp32_poe_iso", "", "OLIMEX_ESP32_POE"),
                                                ("esp32s3_devkitc", "SPIRAM_OCT", "ESP32_GENERIC_S3")])
def test_make_image_command_and_the_one_in_flashing_md(tmp_path, board, variant, base):
    # with an idf.py on the PATH (a stand-in), DRY_RUN prints the ESP-IDF build it runs
    fake = tmp_path / "idf"
    fake.mkdir()
    (fake / "idf.py").write_text("#!/bin/sh\nexit 0\n")
    (fake / "idf.py").chmod(0o755)
    r = _image(tmp_path, [str(fake), "/usr/bin", "/bin"], BOARD=board, MPY_DIR="/src/mp", DRY_RUN="1",
               VARIANT=variant)
    assert r.returncode == 0, r
    cmd = r.stdout.strip().splitlines()[-1]
    want = ("DICAMM_BASE_BOARD=%s DICAMM_BASE_VARIANT=%s make -C /src/mp/ports/esp32 BOARD_DIR=%s/tools/esp32_board/DICAMM "
            "BUILD=build-DICAMM-%s%s FROZEN_MANIFEST=%s/manifest.py"
            % (base, variant, ROOT, base, "-" + variant if variant else "", ROOT))
    assert cmd == want
    if board == "esp32_devkitc":  # the exact command in the docs
        with open(os.path.join(ROOT, "docs", "FLASHING.md")) as f:
            doc = f.read()
        assert cmd.replace("/src/mp", "<micropython>").replace(ROOT, "<repo>") in doc
