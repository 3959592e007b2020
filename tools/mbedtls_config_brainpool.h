/* mbedTLS config for the unix builds of tools/build_frozen_unix.sh (passed as
 * MBEDTLS_CONFIG_FILE, so the unpacked MicroPython source stays untouched):
 * the unix port's own config plus the Brainpool curves that BSI TR-03116-3
 * (2.2 "Domainparameter fuer Elliptische Kurven") names for the smart metering
 * system and that SM-PKI certificates use. With them mbedTLS verifies a
 * Brainpool gateway certificate and offers brainpoolP256r1/P384r1 for ECDHE
 * (RFC 7027). The ESP32 image does the same with sdkconfig.dicamm (next to manifest.py). */
#ifndef DICAMM_MBEDTLS_CONFIG_BRAINPOOL_H
#define DICAMM_MBEDTLS_CONFIG_BRAINPOOL_H

#include "mbedtls/mbedtls_config_port.h"

#define MBEDTLS_ECP_DP_BP256R1_ENABLED
#define MBEDTLS_ECP_DP_BP384R1_ENABLED

#endif
