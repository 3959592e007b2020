# The DICAMM image as an out-of-tree board of MicroPython's esp32 port (make image,
# tools/build_image.sh): the port's board DICAMM_BASE_BOARD (environment; default
# ESP32_GENERIC) with its variant DICAMM_BASE_VARIANT (optional), plus this repo's
# sdkconfig.dicamm last, so that its settings win. The MicroPython source is untouched.
if(DEFINED ENV{DICAMM_BASE_BOARD} AND NOT "$ENV{DICAMM_BASE_BOARD}" STREQUAL "")
    set(DICAMM_BASE_BOARD $ENV{DICAMM_BASE_BOARD})
else()
    set(DICAMM_BASE_BOARD ESP32_GENERIC)
endif()
include(boards/${DICAMM_BASE_BOARD}/mpconfigboard.cmake)
if(DEFINED ENV{DICAMM_BASE_VARIANT} AND NOT "$ENV{DICAMM_BASE_VARIANT}" STREQUAL "")
    include(boards/${DICAMM_BASE_BOARD}/mpconfigvariant_$ENV{DICAMM_BASE_VARIANT}.cmake)
endif()
list(APPEND SDKCONFIG_DEFAULTS ${CMAKE_CURRENT_LIST_DIR}/../../../sdkconfig.dicamm)
# mpconfigboard.h includes the base board's header
list(APPEND MICROPY_DEF_BOARD DICAMM_BASE_BOARD_H=\"boards/${DICAMM_BASE_BOARD}/mpconfigboard.h\")
