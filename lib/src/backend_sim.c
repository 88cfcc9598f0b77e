// SPDX-License-Identifier: MIT
/*
 * The software backend ("sim"): the device's arithmetic, cim_engine, run
 * in this process. Commands execute through cim_command.c, the code the
 * QEMU device runs, with the same firmware image, so a job gives the same
 * status and bit-identical sums as on a device with the same properties.
 * Jobs run at submission; their completions wait for polar_reap().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drm/polar_accel.h"
#include "polar_internal.h"
#include "polar_cim_cmd.h"

#define SIM_NUM_QUEUES 4
#define SIM_MAX_BATCH 4096
#define SIM_MAX_CMDS 64

static const struct {
	const char *name;
	size_t offset;
	int is64;
} sim_props[] = {
#define PROP(n, f) { n, offsetof(struct cim_config, f), 0 }
	PROP("rows", rows),
	PROP("cols", cols),
	PROP("tiles", tiles),
	PROP("adc-bits", adc_bits),
	PROP("rows-per-conv", rows_per_conversion),
	PROP("recon-frac-bits", recon_frac_bits),
	PROP("digital-planes", digital_planes),
	PROP("adc-bits-msb", adc_bits_msb),
	PROP("adc-msb-levels", adc_msb_levels),
	PROP("sigma-static", sigma_static_q16),
	PROP("sigma-dynamic", sigma_dynamic_q16),
	PROP("stuck-rate", stuck_rate_ppm),
	PROP("adc-offset-sigma", adc_offset_sigma_q16),
	PROP("adc-gain-sigma", adc_gain_sigma_q16),
#undef PROP
	{ "seed", offsetof(struct cim_config, seed), 1 },
};

/*
 * "rows=128,recon=cells,seed=7": the QEMU device's property names and
 * defaults; recon takes a name, the others numbers.
 */
static int sim_parse_props(const char *props, struct cim_config *cfg)
{
	char buf[512], *save = NULL, *tok;

	memset(cfg, 0, sizeof(*cfg));
	cfg->seed = 1;		/* as -device polar-cim */
	if (strlen(props) >= sizeof(buf))
		return polar_fail(-EINVAL, "sim: property string too long");
	strcpy(buf, props);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '='), *end;
		unsigned long long v;
		size_t i;

		if (!eq)
			return polar_fail(-EINVAL, "sim: property '%s' has no "
					  "value", tok);
		*eq = '\0';
		if (!strcmp(tok, "recon")) {
			int r = cim_recon_parse(eq + 1);

			if (r < 0)
				return polar_fail(-EINVAL, "sim: recon=%s: not "
						  "codes or cells", eq + 1);
			cfg->recon = (uint32_t)r;
			continue;
		}
		errno = 0;
		v = strtoull(eq + 1, &end, 0);
		if (errno || *end || end == eq + 1)
			return polar_fail(-EINVAL, "sim: %s=%s is not a number",
					  tok, eq + 1);
		for (i = 0; i < sizeof(sim_props) / sizeof(sim_props[0]); i++)
			if (!strcmp(tok, sim_props[i].name))
				break;
		if (i == sizeof(sim_props) / sizeof(sim_props[0]))
			return polar_fail(-EINVAL, "sim: unknown property '%s'",
					  tok);
		if (sim_props[i].is64) {
			*(uint64_t *)((char *)cfg + sim_props[i].offset) = v;
		} else {
			if (v > UINT32_MAX)
				return polar_fail(-EINVAL, "sim: %s=%llu too "
						  "large", tok, v);
			*(uint32_t *)((char *)cfg + sim_props[i].offset) = v;
		}
	}
	if (cfg->recon_frac_bits && cfg->recon != CIM_RECON_CELLS)
		return polar_fail(-EINVAL, "sim: recon-frac-bits needs "
				  "recon=cells");
	return 0;
}

int polar_sim_open(struct polar_device *dev, const char *props)
{
	const struct cim_config *cfg;
	struct cim_config want;
	long cpus;
	int ret;

	ret = sim_parse_props(props, &want);
	if (ret)
		return ret;
	ret = polar_load_firmware(dev, 1);
	if (ret)
		return ret;
	ret = cim_engine_create(&want, &dev->engine);
	if (ret)
		return polar_fail(ret, "sim: invalid chip properties '%s' (see "
				  "cim_engine.h for the ranges)", props);
	if (dev->fw.has_codebook)
		cim_engine_set_codebook(dev->engine, dev->fw.codebook);
	/* Results do not depend on it; a large MATMUL uses every CPU. */
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	cim_engine_set_threads(dev->engine, cpus < 1 ? 1 :
			       cpus > CIM_MAX_THREADS ? CIM_MAX_THREADS :
			       (unsigned int)cpus);
	cfg = cim_engine_config(dev->engine);
	dev->ops = &polar_sim_ops;
	dev->caps = (struct polar_caps){
		.rows = cfg->rows,
		.cols = cfg->cols,
		.tiles = cfg->tiles,
		.adc_bits = cfg->adc_bits,
		.rows_per_conv = cfg->rows_per_conversion,
		.recon = cfg->recon,
		.recon_frac_bits = cfg->recon_frac_bits,
		.num_queues = SIM_NUM_QUEUES,
		.max_batch = SIM_MAX_BATCH,
		.max_cmds = SIM_MAX_CMDS,
		.sigma_static = cfg->sigma_static_q16,
		.sigma_dynamic = cfg->sigma_dynamic_q16,
		.adc_offset_sigma = cfg->adc_offset_sigma_q16,
		.adc_gain_sigma = cfg->adc_gain_sigma_q16,
		.stuck_ppm = cfg->stuck_rate_ppm,
		.seed = cfg->seed,
		.fw_version = dev->fw.version,
		.features = 0,
		.sim = 1,
	};
	dev->design = (struct polar_design){
		.digital_planes = cfg->digital_planes,
		.adc_bits_msb = cfg->adc_bits_msb,
		.adc_msb_levels = cfg->adc_msb_levels,
	};
	dev->submit_path = POLAR_PATH_IOCTL;
	return 0;
}

static void sim_close(struct polar_device *dev)
{
	cim_engine_destroy(dev->engine);
	polar_fifo_free(&dev->done);
}

static int sim_buffer_create(struct polar_device *dev, struct polar_buffer *buf)
{
	size_t size = (buf->size + 4095) & ~(size_t)4095;

	buf->map = aligned_alloc(4096, size);
	if (!buf->map)
		return polar_fail(-ENOMEM, "%s: no memory for a %zu-byte "
				  "buffer", dev->path, buf->size);
	memset(buf->map, 0, size);
	return 0;
}

static void sim_buffer_free(struct polar_device *dev, struct polar_buffer *buf)
{
	(void)dev;
	free(buf->map);
}

static int sim_errno(uint16_t st)
{
	switch (st) {
	case POLAR_CIM_ST_OK:
		return 0;
	case POLAR_CIM_ST_TILE_RANGE:
		return -ERANGE;
	case POLAR_CIM_ST_NOT_PROGRAMMED:
		return -ENOENT;
	case POLAR_CIM_ST_BAD_OPCODE:
	case POLAR_CIM_ST_BAD_FIELD:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* Checks a buffer the command needs `need` bytes of, as the driver does. */
static int sim_check_buf(struct polar_device *dev, uint32_t i, const char *which,
			 const struct polar_buf_ref *r, uint64_t need)
{
	if (!need)
		return r->buf || r->offset || r->size ?
		       polar_fail(-EINVAL, "%s: command %u: unused %s buffer "
				  "must be empty", dev->path, i, which) : 0;
	if (!r->buf)
		return polar_fail(-EINVAL, "%s: command %u: no %s buffer",
				  dev->path, i, which);
	if (r->size < need)
		return polar_fail(-EINVAL, "%s: command %u: %s range of %llu "
				  "bytes, the command needs %llu", dev->path, i,
				  which, (unsigned long long)r->size,
				  (unsigned long long)need);
	return 0;
}

static uint16_t sim_read_counters(struct polar_device *dev, uint8_t *out)
{
	uint64_t c[POLAR_CIM_NUM_COUNTERS];

	cim_command_counters(dev->engine, dev->commands, c);
	memcpy(out, c, sizeof(c));
	return POLAR_CIM_ST_OK;
}

static int sim_submit(struct polar_device *dev, uint32_t queue,
		      const struct polar_cmd *cmds, uint32_t n,
		      uint64_t user_data)
{
	struct polar_fifo_entry done = { .user_data = user_data };
	uint32_t i;
	int ret;

	(void)queue;
	/*
	 * Validate the whole job first, by the ABI's rules that the driver
	 * applies too (hw/polar_cim_cmd.h), then as the device would.
	 */
	for (i = 0; i < n; i++) {
		const struct polar_cmd *p = &cmds[i];
		const struct polar_cim_cmd_limits lim = {
			.rows = dev->caps.rows, .cols = dev->caps.cols,
			.tiles = dev->caps.tiles,
			.max_batch = dev->caps.max_batch,
			.rows_per_conv = dev->caps.rows_per_conv,
		};
		const struct polar_cim_cmd_fields f = {
			.opcode = p->opcode, .wfmt = p->wfmt, .xfmt = p->xfmt,
			.src_empty = !p->src.buf && !p->src.offset &&
				     !p->src.size,
			.dst_empty = !p->dst.buf && !p->dst.offset &&
				     !p->dst.size,
			.tile0 = p->tile0, .in_dim = p->in_dim,
			.out_dim = p->out_dim, .batch = p->batch,
			.adc_fs_q8 = p->adc_fs_q8, .job_seed = p->job_seed,
		};
		struct cim_command c = {
			.opcode = p->opcode, .wfmt = p->wfmt, .xfmt = p->xfmt,
			.tile0 = p->tile0, .in_dim = p->in_dim,
			.out_dim = p->out_dim, .batch = p->batch,
			.adc_fs_q8 = p->adc_fs_q8, .job_seed = p->job_seed,
		};
		uint64_t src = 0, dst = 0;
		const char *why = "";
		uint16_t st;

		ret = polar_cim_cmd_check(&f, &lim, &src, &dst, &why);
		if (ret)
			return polar_fail(ret, "%s: command %u, opcode %u: %s",
					  dev->path, i, p->opcode, why);
		if (p->opcode == POLAR_CIM_OP_PROGRAM_TILES ||
		    p->opcode == POLAR_CIM_OP_MATMUL) {
			st = cim_command_check(dev->engine, &c, SIM_MAX_BATCH);
			if (st)
				return polar_fail(sim_errno(st), "%s: command %u: "
						  "invalid %s (device status %u)",
						  dev->path, i,
						  p->opcode == POLAR_CIM_OP_MATMUL ?
						  "MATMUL" : "PROGRAM_TILES", st);
		}
		ret = sim_check_buf(dev, i, "src", &p->src, src);
		if (!ret)
			ret = sim_check_buf(dev, i, "dst", &p->dst, dst);
		if (ret)
			return ret;
	}

	for (i = 0; i < n; i++) {
		const struct polar_cmd *p = &cmds[i];
		struct cim_command c = {
			.opcode = p->opcode, .wfmt = p->wfmt, .xfmt = p->xfmt,
			.tile0 = p->tile0, .in_dim = p->in_dim,
			.out_dim = p->out_dim, .batch = p->batch,
			.adc_fs_q8 = p->adc_fs_q8, .job_seed = p->job_seed,
		};
		uint8_t *src = p->src.buf ? (uint8_t *)p->src.buf->map +
			       p->src.offset : NULL;
		uint8_t *dst = p->dst.buf ? (uint8_t *)p->dst.buf->map +
			       p->dst.offset : NULL;
		uint16_t st = POLAR_CIM_ST_OK;

		if (p->opcode == POLAR_CIM_OP_PROGRAM_TILES)
			st = cim_command_program(dev->engine, &c,
						 (const int8_t *)src);
		else if (p->opcode == POLAR_CIM_OP_MATMUL)
			st = cim_command_matmul(dev->engine, &dev->fw, &c,
						(const int8_t *)src,
						(int32_t *)dst, NULL, NULL);
		else if (p->opcode == POLAR_CIM_OP_READ_COUNTERS)
			st = sim_read_counters(dev, dst);
		if (st && !done.cmd_status)
			done.cmd_status = st;
	}
	dev->commands += n;
	done.status = sim_errno(done.cmd_status);
	if (polar_fifo_push(&dev->done, &done))
		return polar_fail(-ENOMEM, "out of memory");
	return 0;
}

static int sim_reap(struct polar_device *dev, struct polar_completion *out,
		    uint32_t max, uint32_t min_wait)
{
	struct polar_fifo_entry *e;
	uint32_t n = 0;

	(void)min_wait;		/* every submitted job has already run */
	while (n < max && (e = polar_fifo_peek(&dev->done))) {
		out[n].user_data = e->user_data;
		out[n].status = e->status;
		out[n].cmd_status = e->cmd_status;
		polar_fifo_pop(&dev->done);
		n++;
	}
	return n;
}

const struct polar_backend_ops polar_sim_ops = {
	.buffer_create = sim_buffer_create,
	.buffer_free = sim_buffer_free,
	.submit = sim_submit,
	.reap = sim_reap,
	.close = sim_close,
};
