// SPDX-License-Identifier: MIT
/*
 * cim_command: the semantics of PROGRAM_TILES and MATMUL, shared by the
 * QEMU device and the library's software backend (see cim_command.h).
 */
#include <errno.h>

#include "cim_command.h"

static uint32_t wfmt_bits(uint8_t wfmt)
{
	return wfmt == POLAR_CIM_WFMT_INT4 ? 4 : 8;
}

static uint32_t xfmt_bits(uint8_t xfmt)
{
	return (xfmt == POLAR_CIM_XFMT_INT4 || xfmt == POLAR_CIM_XFMT_UINT4) ?
	       4 : 8;
}

static uint16_t errno_status(int err)
{
	if (err >= 0)
		return POLAR_CIM_ST_OK;
	if (err == -ERANGE)
		return POLAR_CIM_ST_TILE_RANGE;
	if (err == -ENOMEM)
		return POLAR_CIM_ST_NO_RESOURCES;
	/* The engine says -EINVAL when tiles hold another shape or format. */
	return POLAR_CIM_ST_NOT_PROGRAMMED;
}

uint16_t cim_command_check(const struct cim_engine *e,
			   const struct cim_command *c, uint32_t max_batch)
{
	const struct cim_config *cfg = cim_engine_config(e);
	uint64_t row_tiles, col_tiles;

	if (c->in_dim == 0 || c->out_dim == 0 ||
	    c->wfmt > POLAR_CIM_WFMT_NF4)
		return POLAR_CIM_ST_BAD_FIELD;
	if (c->opcode == POLAR_CIM_OP_MATMUL &&
	    (c->batch == 0 || c->batch > max_batch ||
	     c->xfmt > POLAR_CIM_XFMT_UINT4 ||
	     (c->rows_per_conv && c->rows_per_conv != cfg->rows_per_conversion) ||
	     (c->adc_fs_q8 && (c->adc_fs_q8 < 256 ||
			       c->adc_fs_q8 > POLAR_CIM_MAX_FS_Q8))))
		return POLAR_CIM_ST_BAD_FIELD;
	row_tiles = (c->in_dim + (uint64_t)cfg->rows - 1) / cfg->rows;
	col_tiles = (c->out_dim + (uint64_t)cfg->cols - 1) / cfg->cols;
	if (c->tile0 + row_tiles * col_tiles > cfg->tiles)
		return POLAR_CIM_ST_TILE_RANGE;
	return POLAR_CIM_ST_OK;
}

uint64_t cim_command_src_bytes(const struct cim_command *c)
{
	if (c->opcode == POLAR_CIM_OP_PROGRAM_TILES)
		return (uint64_t)c->in_dim * c->out_dim;
	if (c->opcode == POLAR_CIM_OP_MATMUL)
		return (uint64_t)c->batch * c->in_dim;
	return 0;
}

uint64_t cim_command_dst_bytes(const struct cim_command *c)
{
	if (c->opcode == POLAR_CIM_OP_MATMUL)
		return (uint64_t)c->batch * c->out_dim * 4;
	return 0;
}

uint16_t cim_command_program(struct cim_engine *e,
			     const struct cim_command *c, const int8_t *w)
{
	int ret = cim_engine_program(e, c->tile0, c->in_dim, c->out_dim,
				     (enum cim_fmt)c->wfmt, w);

	if (ret == -EINVAL)
		return POLAR_CIM_ST_BAD_FIELD;	/* a code out of range */
	return errno_status(ret);
}

/* 4-bit inputs outside their range are the command's fault. */
static int inputs_in_range(const struct cim_matmul_args *a, const int8_t *x,
			   uint64_t n)
{
	int lo = a->x_signed ? -8 : 0, hi = a->x_signed ? 7 : 15;

	if (a->xfmt != CIM_FMT_INT4)
		return 1;
	for (uint64_t k = 0; k < n; k++)
		if (x[k] < lo || x[k] > hi)
			return 0;
	return 1;
}

void cim_command_matmul_prepare(const struct cim_engine *e,
				const struct cim_firmware *fw,
				const struct cim_command *c,
				struct cim_command_matmul_job *j)
{
	const struct cim_config *cfg = cim_engine_config(e);
	uint64_t macs_per_vector = (uint64_t)c->in_dim * c->out_dim, chunk;
	struct cim_matmul_args *a = &j->args;
	const struct cim_fw_schedule *fs;
	uint32_t i;

	*a = (struct cim_matmul_args){ 0 };
	a->tile0 = c->tile0;
	a->in_dim = c->in_dim;
	a->out_dim = c->out_dim;
	a->wfmt = (enum cim_fmt)c->wfmt;
	a->xfmt = xfmt_bits(c->xfmt) == 4 ? CIM_FMT_INT4 : CIM_FMT_INT8;
	a->x_signed = c->xfmt == POLAR_CIM_XFMT_INT8 ||
		      c->xfmt == POLAR_CIM_XFMT_INT4;
	a->adc_fs_q8 = c->adc_fs_q8 ? c->adc_fs_q8 :
		       cim_adc_fs_for_recon(cfg, cim_firmware_default_fs_q8(fw,
					    cfg->rows_per_conversion));
	a->job_seed = c->job_seed;

	fs = fw ? cim_firmware_schedule(fw, wfmt_bits(c->wfmt),
					xfmt_bits(c->xfmt)) : NULL;
	if (fs) {
		struct cim_fw_pair pairs[CIM_FW_MAX_PAIRS];

		a->n_sched = cim_firmware_schedule_pairs(fs, pairs);
		for (i = 0; i < a->n_sched; i++) {
			j->sched[i].x_plane = pairs[i].xplane;
			j->sched[i].w_plane = pairs[i].wplane;
		}
	}

	chunk = macs_per_vector ? CIM_COMMAND_CHUNK_MACS / macs_per_vector : 0;
	if (chunk < CIM_COMMAND_BATCH_CHUNK)
		chunk = CIM_COMMAND_BATCH_CHUNK;
	j->chunk = chunk < c->batch ? (uint32_t)chunk : c->batch;
}

uint16_t cim_command_matmul_chunk(struct cim_engine *e,
				  struct cim_command_matmul_job *j,
				  uint32_t first, uint32_t n, const int8_t *x,
				  int32_t *y)
{
	struct cim_matmul_args *a = &j->args;

	if (!inputs_in_range(a, x, (uint64_t)n * a->in_dim))
		return POLAR_CIM_ST_BAD_FIELD;
	/* Set here, not in prepare: the job may have been copied since. */
	a->sched = a->n_sched ? j->sched : NULL;
	a->batch = n;
	a->item0 = first;
	a->x = x;
	a->y = y;
	return errno_status(cim_engine_matmul(e, a));
}

uint16_t cim_command_matmul(struct cim_engine *e,
			    const struct cim_firmware *fw,
			    const struct cim_command *c, const int8_t *x,
			    int32_t *y,
			    void (*progress)(void *opaque, uint32_t vectors),
			    void *opaque)
{
	struct cim_command_matmul_job j;
	uint32_t b, n;

	cim_command_matmul_prepare(e, fw, c, &j);
	/* A bad input anywhere fails the command before any vector runs. */
	if (!inputs_in_range(&j.args, x, (uint64_t)c->batch * c->in_dim))
		return POLAR_CIM_ST_BAD_FIELD;

	/*
	 * Chunks let the device show progress inside a long command. The
	 * noise of a vector depends on its index in the whole command, so
	 * chunking does not change the result.
	 */
	for (b = 0; b < c->batch; b += n) {
		uint16_t st;

		n = c->batch - b < j.chunk ? c->batch - b : j.chunk;
		st = cim_command_matmul_chunk(e, &j, b, n,
					      x + (uint64_t)b * c->in_dim,
					      y + (uint64_t)b * c->out_dim);
		if (st)
			return st;
		if (progress)
			progress(opaque, n);
	}
	return POLAR_CIM_ST_OK;
}

void cim_command_counters(const struct cim_engine *e, uint64_t commands,
			  uint64_t out[POLAR_CIM_NUM_COUNTERS])
{
	struct cim_counters c;
	struct cim_energy energy;

	cim_engine_counters(e, &c);
	cim_energy_estimate_chip(&c, cim_engine_config(e), NULL, &energy);
	out[POLAR_CIM_CNT_COMMANDS] = commands;
	out[POLAR_CIM_CNT_MACS] = c.macs;
	out[POLAR_CIM_CNT_ARRAY_ACTIVATIONS] = c.array_activations;
	out[POLAR_CIM_CNT_ADC_CONVERSIONS] = c.adc_conversions;
	out[POLAR_CIM_CNT_SHIFT_ADDS] = c.shift_adds;
	out[POLAR_CIM_CNT_BYTES_MOVED] = c.bytes_weights + c.bytes_in +
					 c.bytes_out;
	out[POLAR_CIM_CNT_CYCLES] = c.cycles;
	out[POLAR_CIM_CNT_ENERGY_FJ] = (uint64_t)(energy.total * 1e15);
}
