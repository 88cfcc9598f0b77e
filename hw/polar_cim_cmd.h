/* SPDX-License-Identifier: MIT */
/*
 * The ABI's rules for the fields of one command (uapi/drm/polar_accel.h,
 * "struct drm_polar_accel_cmd"), written once for the two places that
 * accept jobs: the driver at SUBMIT and the library's software backend.
 * Both must refuse exactly the same commands, or a program tested on the
 * sim fails on the device.
 *
 * The device itself checks more at run time (programmed tiles, firmware):
 * that is cim_command_check() in qemu-device/, reported as a command
 * status, not here.
 */
#ifndef POLAR_CIM_CMD_H
#define POLAR_CIM_CMD_H

#include "polar_cim_hw.h"

#ifndef __KERNEL__
#include <errno.h>
#endif

/* A command's fields, whatever structure carried them. */
struct polar_cim_cmd_fields {
	polar_u8 opcode;
	polar_u8 wfmt;
	polar_u8 xfmt;
	polar_u8 src_empty;	/* 1: no source buffer (all of it zero) */
	polar_u8 dst_empty;	/* 1: no destination buffer */
	polar_u16 tile0;
	polar_u16 rows_per_conv;
	polar_u32 in_dim;
	polar_u32 out_dim;
	polar_u32 batch;
	polar_u32 adc_fs_q8;
	polar_u32 job_seed;
};

/* What the device reports about itself (its registers). */
struct polar_cim_cmd_limits {
	polar_u32 rows;
	polar_u32 cols;
	polar_u32 tiles;
	polar_u32 max_batch;
	polar_u32 rows_per_conv;
};

/* Sets *why (when the caller asked) to what is wrong; returns err. */
static inline int polar_cim_cmd_refuse(const char **why, const char *what,
				       int err)
{
	if (why)
		*why = what;
	return err;
}

/*
 * polar_cim_cmd_check() - 0 when the ABI allows the command, with the
 * bytes it reads from its source and writes to its destination; -EINVAL
 * for a field the opcode does not allow, -ERANGE for tiles past the end,
 * with *why (if @why is not NULL) naming the field.
 */
static inline int polar_cim_cmd_check(const struct polar_cim_cmd_fields *c,
				      const struct polar_cim_cmd_limits *lim,
				      polar_u64 *src_len, polar_u64 *dst_len,
				      const char **why)
{
	polar_u64 row_tiles, col_tiles;
	int no_operands;

	*src_len = 0;
	*dst_len = 0;
	switch (c->opcode) {
	case POLAR_CIM_OP_NOP:
	case POLAR_CIM_OP_FENCE:
	case POLAR_CIM_OP_READ_COUNTERS:
		no_operands = !c->wfmt && !c->xfmt && !c->tile0 &&
			      !c->rows_per_conv && !c->in_dim && !c->out_dim &&
			      !c->batch && !c->adc_fs_q8 && !c->job_seed;
		if (!no_operands)
			return polar_cim_cmd_refuse(why, "a format, tile, "
				"dimension, batch, ADC or seed field that this "
				"opcode must leave 0", -EINVAL);
		if (!c->src_empty)
			return polar_cim_cmd_refuse(why, "a source buffer, "
				"which this opcode does not read", -EINVAL);
		if (c->opcode != POLAR_CIM_OP_READ_COUNTERS) {
			if (!c->dst_empty)
				return polar_cim_cmd_refuse(why, "a destination"
					" buffer, which this opcode does not "
					"write", -EINVAL);
			return 0;
		}
		*dst_len = POLAR_CIM_NUM_COUNTERS * sizeof(polar_u64);
		return 0;
	case POLAR_CIM_OP_PROGRAM_TILES:
		if (c->xfmt || c->rows_per_conv || c->batch || c->adc_fs_q8 ||
		    c->job_seed)
			return polar_cim_cmd_refuse(why, "xfmt, rows_per_conv, "
				"batch, adc_fs_q8 or job_seed, which "
				"PROGRAM_TILES must leave 0", -EINVAL);
		if (!c->dst_empty)
			return polar_cim_cmd_refuse(why, "a destination buffer,"
				" which PROGRAM_TILES does not write", -EINVAL);
		break;
	case POLAR_CIM_OP_MATMUL:
		if (c->xfmt > POLAR_CIM_XFMT_UINT4)
			return polar_cim_cmd_refuse(why, "xfmt", -EINVAL);
		if (!c->batch || c->batch > lim->max_batch)
			return polar_cim_cmd_refuse(why, "batch (1..max_batch)",
						    -EINVAL);
		if (c->rows_per_conv && c->rows_per_conv != lim->rows_per_conv)
			return polar_cim_cmd_refuse(why, "rows_per_conv (0 or "
				"the device's)", -EINVAL);
		if (c->adc_fs_q8 && (c->adc_fs_q8 < 256 ||
				     c->adc_fs_q8 > POLAR_CIM_MAX_FS_Q8))
			return polar_cim_cmd_refuse(why, "adc_fs_q8 (0 or "
				"256..POLAR_CIM_MAX_FS_Q8)", -EINVAL);
		break;
	default:
		return polar_cim_cmd_refuse(why, "unknown opcode", -EINVAL);
	}

	if (c->wfmt > POLAR_CIM_WFMT_NF4)
		return polar_cim_cmd_refuse(why, "wfmt", -EINVAL);
	if (!c->in_dim || !c->out_dim || !lim->rows || !lim->cols)
		return polar_cim_cmd_refuse(why, "in_dim or out_dim (0)",
					    -EINVAL);
	/* 32-bit quotients: no 64-bit division in the kernel. */
	row_tiles = c->in_dim / lim->rows + !!(c->in_dim % lim->rows);
	col_tiles = c->out_dim / lim->cols + !!(c->out_dim % lim->cols);
	if (c->tile0 + row_tiles * col_tiles > lim->tiles)
		return polar_cim_cmd_refuse(why, "tile0 and the dimensions "
			"(tiles past the device's last)", -ERANGE);
	if (c->opcode == POLAR_CIM_OP_PROGRAM_TILES) {
		*src_len = (polar_u64)c->in_dim * c->out_dim;
	} else {
		*src_len = (polar_u64)c->batch * c->in_dim;
		*dst_len = (polar_u64)c->batch * c->out_dim * sizeof(polar_u32);
	}
	return 0;
}

#endif /* POLAR_CIM_CMD_H */
