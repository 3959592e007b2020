// The DICAMM image: the base board's settings (see mpconfigboard.cmake beside this file).
#include DICAMM_BASE_BOARD_H
