// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: cim_firmware_parse() on the input. An accepted image
 * must round-trip through cim_firmware_build() to an equal firmware, and
 * its schedules and calibration must be usable.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cim_firmware.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t image[POLAR_CIM_FW_MAX_SIZE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cim_firmware fw, again;
	struct cim_fw_pair pairs[CIM_FW_MAX_PAIRS];
	struct cim_fw_diag diag;
	size_t len = 0;
	uint32_t w, x;

	if (cim_firmware_parse(data, size, &fw, &diag) != POLAR_CIM_FW_BOOTED) {
		if (!memchr(diag.msg, 0, sizeof(diag.msg)))
			__builtin_trap();	/* unterminated message */
		return 0;
	}
	for (w = 4; w <= 8; w += 4)
		for (x = 4; x <= 8; x += 4) {
			const struct cim_fw_schedule *s =
				cim_firmware_schedule(&fw, w, x);

			if (s && cim_firmware_schedule_pairs(s, pairs) == 0)
				__builtin_trap();
		}
	(void)cim_firmware_default_fs_q8(&fw, 16);
	if (cim_firmware_build(&fw, image, sizeof(image), &len) ||
	    cim_firmware_parse(image, len, &again, NULL) != POLAR_CIM_FW_BOOTED ||
	    !cim_firmware_equal(&fw, &again))
		__builtin_trap();	/* parse and build disagree */
	return 0;
}
