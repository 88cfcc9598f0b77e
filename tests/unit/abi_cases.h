/* SPDX-License-Identifier: MIT */
/*
 * Commands that the job ABI (uapi/drm/polar_accel.h, hw/polar_cim_cmd.h)
 * accepts or refuses, for the tests that hold the software backend
 * (unit/test_sim.c) and the driver (selftests/polar_lib_test.c, on the
 * device beside the sim) to the same answer for each.
 */
#ifndef ABI_CASES_H
#define ABI_CASES_H

#include <errno.h>

#include "polar/polar.h"

struct abi_case {
	const char *name;
	struct polar_cmd cmd;	/* without buffers */
	uint32_t src_bytes;	/* 0: no source buffer */
	uint32_t dst_bytes;	/* 0: no destination buffer */
	int expect;		/* polar_submit()'s return */
};

/* A MATMUL of 2 vectors, 16 in, 8 out, with one field of yours. */
#define ABI_MATMUL(in, b, ...) { .opcode = POLAR_CIM_OP_MATMUL, \
	.in_dim = (in), .out_dim = 8, .batch = (b), __VA_ARGS__ }

static const struct abi_case abi_cases[] = {
	{ "nop", { .opcode = POLAR_CIM_OP_NOP }, 0, 0, 0 },
	{ "nop_with_wfmt", { .opcode = POLAR_CIM_OP_NOP, .wfmt = 1 }, 0, 0,
	  -EINVAL },
	{ "nop_with_batch", { .opcode = POLAR_CIM_OP_NOP, .batch = 1 }, 0, 0,
	  -EINVAL },
	{ "nop_with_seed", { .opcode = POLAR_CIM_OP_NOP, .job_seed = 5 }, 0, 0,
	  -EINVAL },
	{ "nop_with_src", { .opcode = POLAR_CIM_OP_NOP }, 64, 0, -EINVAL },
	{ "fence_with_dst", { .opcode = POLAR_CIM_OP_FENCE }, 0, 64, -EINVAL },
	{ "fence_with_dims", { .opcode = POLAR_CIM_OP_FENCE, .in_dim = 4,
	  .out_dim = 4 }, 0, 0, -EINVAL },
	{ "counters", { .opcode = POLAR_CIM_OP_READ_COUNTERS }, 0, 64, 0 },
	{ "counters_with_src", { .opcode = POLAR_CIM_OP_READ_COUNTERS }, 64,
	  64, -EINVAL },
	{ "counters_short_dst", { .opcode = POLAR_CIM_OP_READ_COUNTERS }, 0,
	  63, -EINVAL },
	{ "program_with_batch", { .opcode = POLAR_CIM_OP_PROGRAM_TILES,
	  .in_dim = 16, .out_dim = 8, .batch = 1 }, 128, 0, -EINVAL },
	{ "program_with_dst", { .opcode = POLAR_CIM_OP_PROGRAM_TILES,
	  .in_dim = 16, .out_dim = 8 }, 128, 64, -EINVAL },
	{ "program_wfmt_past_nf4", { .opcode = POLAR_CIM_OP_PROGRAM_TILES,
	  .wfmt = 7, .in_dim = 16, .out_dim = 8 }, 128, 0, -EINVAL },
	{ "matmul_xfmt_past_uint4", ABI_MATMUL(16, 2, .xfmt = 9), 32, 64, -EINVAL },
	{ "matmul_batch_0", ABI_MATMUL(16, 0), 32, 64, -EINVAL },
	{ "matmul_fs_below_one_cell", ABI_MATMUL(16, 2, .adc_fs_q8 = 100), 32, 64,
	  -EINVAL },
	{ "matmul_in_dim_0", ABI_MATMUL(0, 2), 32, 64, -EINVAL },
	{ "matmul_tiles_past_the_end", ABI_MATMUL(16, 2, .tile0 = 60000), 32, 64,
	  -ERANGE },
	{ "unknown_opcode", { .opcode = 0x55 }, 0, 0, -EINVAL },
};

#define ABI_NUM_CASES (sizeof(abi_cases) / sizeof(abi_cases[0]))

#endif /* ABI_CASES_H */
