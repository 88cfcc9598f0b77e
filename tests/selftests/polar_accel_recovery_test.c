// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests of hang detection and recovery in polar_accel.ko, driven by
 * the device's fault injection through debugfs (accel/<minor>/fault): a
 * dropped, corrupted, DMA-failed, error-interrupt, firmware-crash or
 * delayed command among MATMUL jobs on one queue, submitted through the
 * ioctl or through io_uring, while other processes keep jobs running on
 * the other queues through both paths. The guilty job fails with the
 * documented errno, every innocent job (ours and the other processes')
 * completes with output bit-exact against cim_engine on the host CPU
 * (tiles keep their weights across a reset), RESET_COUNT moves when a
 * reset is due, and the device serves a fresh job afterwards. Also a
 * debugfs-requested reset with jobs in flight.
 * Skipped when the driver lacks DRM_POLAR_ACCEL_FEATURE_HANG_RECOVERY.
 * GPL-2.0: includes the kselftest harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "polar_selftest.h"
#include "polar_selftest_uring.h"

#include "drm/polar_accel.h"
#include "polar/polar.h"
#include "polar_cim_hw.h"
#include "cim_command.h"

#define TIMEOUT_PARAM "/sys/module/polar_accel/parameters/job_timeout_ms"
#define TEST_TIMEOUT_MS 500

/* ---- pre-programmed weights and MATMUL-only jobs ------------------------ */

/* A weight set programmed once into a tile range, shared by many jobs. */
struct wset {
	struct cim_command c;	/* MATMUL template: formats, shape, tiles */
	struct bo w;
};

struct job {
	struct bo x, y;
	struct drm_polar_accel_cmd cmd;
	int32_t *expect;
	uint64_t ylen;
	uint64_t seqno;
	uint32_t queue;
	int status;
	uint32_t cmd_status;
};

/* Programs @ws on the device (queue @q) and on the software engine. */
static int wset_program(int fd, struct cim_engine *sim, struct wset *ws,
			uint8_t wfmt, uint8_t xfmt, uint16_t tile0,
			uint32_t in_dim, uint32_t out_dim, uint32_t batch,
			uint32_t q, unsigned int seed)
{
	struct drm_polar_accel_cmd p = { .opcode = POLAR_CIM_OP_PROGRAM_TILES };
	uint64_t wlen = (uint64_t)in_dim * out_dim, i;
	int ret;

	memset(ws, 0, sizeof(*ws));
	ret = bo_new(fd, wlen, &ws->w);
	if (ret)
		return ret;
	srand(seed);
	for (i = 0; i < wlen; i++)
		((int8_t *)ws->w.map)[i] = weight_code(wfmt, rand());
	ws->c.opcode = POLAR_CIM_OP_PROGRAM_TILES;
	ws->c.wfmt = wfmt;
	ws->c.xfmt = xfmt;
	ws->c.tile0 = tile0;
	ws->c.in_dim = in_dim;
	ws->c.out_dim = out_dim;
	ws->c.batch = batch;
	if (cim_command_program(sim, &ws->c, ws->w.map) != POLAR_CIM_ST_OK)
		return -EINVAL;
	ws->c.opcode = POLAR_CIM_OP_MATMUL;
	p.wfmt = wfmt;
	p.tile0 = tile0;
	p.in_dim = in_dim;
	p.out_dim = out_dim;
	p.src = (struct drm_polar_accel_buf){ ws->w.handle, 0, 0, wlen };
	return run(fd, q, &p, 1);
}

/* A MATMUL on @ws with random inputs; its expected output precomputed. */
static int job_init(int fd, struct cim_engine *sim,
		    const struct cim_firmware *fw, const struct wset *ws,
		    struct job *j, uint32_t queue, unsigned int seed)
{
	struct cim_command c = ws->c;
	uint64_t xlen = (uint64_t)c.batch * c.in_dim, i;
	int ret;

	memset(j, 0, sizeof(*j));
	j->queue = queue;
	j->ylen = (uint64_t)c.batch * c.out_dim * 4;
	ret = bo_new(fd, xlen, &j->x);
	if (!ret)
		ret = bo_new(fd, j->ylen, &j->y);
	if (ret)
		return ret;
	srand(seed);
	for (i = 0; i < xlen; i++)
		((int8_t *)j->x.map)[i] = input_code(c.xfmt, rand());
	memset(j->y.map, 0xa5, j->ylen);
	c.job_seed = seed;
	j->expect = malloc(j->ylen);
	if (!j->expect)
		return -ENOMEM;
	if (cim_command_matmul(sim, fw, &c, j->x.map, j->expect, NULL,
			       NULL) != POLAR_CIM_ST_OK)
		return -EINVAL;
	j->cmd.opcode = POLAR_CIM_OP_MATMUL;
	j->cmd.wfmt = c.wfmt;
	j->cmd.xfmt = c.xfmt;
	j->cmd.tile0 = c.tile0;
	j->cmd.in_dim = c.in_dim;
	j->cmd.out_dim = c.out_dim;
	j->cmd.batch = c.batch;
	j->cmd.job_seed = seed;
	j->cmd.src = (struct drm_polar_accel_buf){ j->x.handle, 0, 0, xlen };
	j->cmd.dst = (struct drm_polar_accel_buf){ j->y.handle, 0, 0, j->ylen };
	return 0;
}

static bool job_exact(const struct job *j)
{
	return !memcmp(j->expect, j->y.map, j->ylen);
}

static void job_fini(int fd, struct job *j)
{
	bo_free(fd, &j->x);
	bo_free(fd, &j->y);
	free(j->expect);
}

/* ---- fixture ------------------------------------------------------------- */

struct env {
	int fd;
	struct cim_engine *sim;
	struct cim_firmware fw;
	uint32_t queues;
	char saved_timeout[32];
	bool timeout_changed;
};

/* 0 ready, 1 skip (why in @msg), -1 failed (why in @msg). */
static int env_init(struct env *e, char *msg, size_t len)
{
	struct cim_config cfg = { 0 };
	static uint8_t image[POLAR_CIM_FW_MAX_SIZE];
	char buf[32];
	uint64_t features;
	ssize_t n;
	int fwfd;

	memset(e, 0, sizeof(*e));
	e->fd = accel_open();
	if (e->fd < 0) {
		snprintf(msg, len, "no accel device");
		return -1;
	}
	features = param(e->fd, DRM_POLAR_ACCEL_PARAM_FEATURES);
	e->queues = param(e->fd, DRM_POLAR_ACCEL_PARAM_NUM_QUEUES);
	if (!(features & DRM_POLAR_ACCEL_FEATURE_HANG_RECOVERY)) {
		snprintf(msg, len, "driver lacks FEATURE_HANG_RECOVERY");
		return 1;
	}
	if (!debugfs_has(e->fd, "fault") || !debugfs_has(e->fd, "reset")) {
		snprintf(msg, len, "no debugfs fault/reset files");
		return 1;
	}
	if (param(e->fd, DRM_POLAR_ACCEL_PARAM_SIGMA_DYNAMIC)) {
		snprintf(msg, len, "dynamic noise is on: results are not exact");
		return 1;
	}
	if (e->queues < 2) {
		snprintf(msg, len, "needs two queues");
		return 1;
	}
	if (file_read(TIMEOUT_PARAM, e->saved_timeout,
		      sizeof(e->saved_timeout)) <= 0) {
		snprintf(msg, len, "cannot read %s", TIMEOUT_PARAM);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%d", TEST_TIMEOUT_MS);
	if (file_write(TIMEOUT_PARAM, buf)) {
		snprintf(msg, len, "cannot write %s", TIMEOUT_PARAM);
		return -1;
	}
	e->timeout_changed = true;

	cfg.rows = param(e->fd, DRM_POLAR_ACCEL_PARAM_TILE_ROWS);
	cfg.cols = param(e->fd, DRM_POLAR_ACCEL_PARAM_TILE_COLS);
	cfg.tiles = param(e->fd, DRM_POLAR_ACCEL_PARAM_NUM_TILES);
	cfg.adc_bits = param(e->fd, DRM_POLAR_ACCEL_PARAM_ADC_BITS);
	cfg.rows_per_conversion =
		param(e->fd, DRM_POLAR_ACCEL_PARAM_ROWS_PER_CONV);
	cfg.sigma_static_q16 = param(e->fd, DRM_POLAR_ACCEL_PARAM_SIGMA_STATIC);
	cfg.stuck_rate_ppm = param(e->fd, DRM_POLAR_ACCEL_PARAM_STUCK_PPM);
	cfg.adc_offset_sigma_q16 =
		param(e->fd, DRM_POLAR_ACCEL_PARAM_ADC_OFFSET_SIGMA);
	cfg.adc_gain_sigma_q16 =
		param(e->fd, DRM_POLAR_ACCEL_PARAM_ADC_GAIN_SIGMA);
	cfg.seed = param(e->fd, DRM_POLAR_ACCEL_PARAM_SEED);
	param_recon(e->fd, &cfg.recon, &cfg.recon_frac_bits);
	param_design(e->fd, &cfg.digital_planes, &cfg.adc_bits_msb,
		     &cfg.adc_msb_levels);
	if (cim_engine_create(&cfg, &e->sim)) {
		snprintf(msg, len, "cim_engine_create failed");
		return -1;
	}
	fwfd = open(FW_PATH, O_RDONLY);
	if (fwfd < 0) {
		snprintf(msg, len, "no %s", FW_PATH);
		return -1;
	}
	n = read(fwfd, image, sizeof(image));
	close(fwfd);
	if (n <= 0 || cim_firmware_parse(image, n, &e->fw, NULL) !=
		      POLAR_CIM_FW_BOOTED) {
		snprintf(msg, len, "cannot parse %s", FW_PATH);
		return -1;
	}
	if (e->fw.has_codebook)
		cim_engine_set_codebook(e->sim, e->fw.codebook);
	return 0;
}

static void env_fini(struct env *e)
{
	if (e->timeout_changed)
		file_write(TIMEOUT_PARAM, e->saved_timeout);
	if (e->sim)
		cim_engine_destroy(e->sim);
	if (e->fd >= 0)
		close(e->fd);
}

#define ENV_SETUP(e) do { \
	char _msg[128]; \
	int _r = env_init(e, _msg, sizeof(_msg)); \
	if (_r > 0) \
		SKIP(return, "%s", _msg); \
	ASSERT_EQ(0, _r) TH_LOG("%s", _msg); \
} while (0)

static const char *errname(int status)
{
	static char buf[32];

	switch (status) {
	case 0: return "0";
	case -EIO: return "-EIO";
	case -ETIMEDOUT: return "-ETIMEDOUT";
	case -ENODEV: return "-ENODEV";
	case -ECANCELED: return "-ECANCELED";
	case -ENOENT: return "-ENOENT";
	case -EINVAL: return "-EINVAL";
	}
	snprintf(buf, sizeof(buf), "%d", status);
	return buf;
}

/* ---- background load: other processes' jobs on the other queues -------- */

#define LOAD_PROCS 2

struct load_report {
	uint32_t submitted, verified, failed;
	int first_status;
};

/* Submits @j through io_uring and waits for its CQE: the job's status. */
static int uring_job(struct io_uring *ring, int fd, struct job *j)
{
	uint64_t ud = 0;
	int res = 0, ret;

	ret = uring_prep_job(ring, fd, j->queue, &j->cmd, 1, j->cmd.job_seed);
	if (ret)
		return ret;
	ret = io_uring_submit(ring);
	if (ret != 1)
		return ret < 0 ? ret : -EIO;
	ret = uring_reap(ring, &res, &ud, 30);
	if (ret)
		return ret;
	return ud == j->cmd.job_seed ? res : -EBADMSG;
}

/*
 * One load process: its own file and weights (tile 46 + @k), one job at a
 * time on every queue but @avoid, odd jobs through io_uring, each checked
 * against the software engine, until the parent closes @stopfd. Writes a
 * byte to @outfd once its weights are on the device, then its report.
 */
static void load_proc(struct env *e, int k, uint32_t avoid, int stopfd,
		      int outfd)
{
	struct load_report rep = { 0 };
	uint32_t n, q = avoid;
	struct io_uring ring;
	bool have_ring = false;
	struct wset ws;
	char ready = 1;
	int fd;

	fd = accel_open();
	if (fd < 0 || wset_program(fd, e->sim, &ws, POLAR_CIM_WFMT_INT8,
				   POLAR_CIM_XFMT_INT4, 46 + k, 96, 48, 2,
				   avoid ? 0 : 1, 70 + k)) {
		rep.failed = 1;
		rep.first_status = -ENODEV;
		goto out;
	}
	have_ring = !ring_init(&ring, 8);
	if (write(outfd, &ready, 1) != 1)
		_exit(2);
	for (n = 0; ; n++) {
		struct pollfd pfd = { .fd = stopfd, .events = POLLIN };
		struct job j;
		int st;

		if (poll(&pfd, 1, 0) > 0)
			break;
		do
			q = (q + 1) % e->queues;
		while (q == avoid);
		if (job_init(fd, e->sim, &e->fw, &ws, &j, q,
			     10000 * (k + 1) + n)) {
			rep.failed++;
			break;
		}
		rep.submitted++;
		if (have_ring && (n & 1)) {
			st = uring_job(&ring, fd, &j);
		} else {
			st = submit(fd, q, &j.cmd, 1, &j.seqno);
			if (!st)
				st = wait_job(fd, j.seqno, NULL);
		}
		if (!st && job_exact(&j)) {
			rep.verified++;
		} else {
			if (!rep.failed)
				rep.first_status = st ? st : -EBADMSG;
			rep.failed++;
		}
		job_fini(fd, &j);
	}
	bo_free(fd, &ws.w);
out:
	if (have_ring)
		io_uring_queue_exit(&ring);
	if (write(outfd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(2);
	_exit(rep.failed ? 1 : 0);
}

struct load {
	pid_t pid[LOAD_PROCS];
	int stop[2], out[LOAD_PROCS][2];
	int started;
};

/* Starts the load processes and waits until their weights are loaded. */
static int load_start(struct env *e, struct load *ld, uint32_t avoid)
{
	int k;
	char c;

	memset(ld, 0, sizeof(*ld));
	if (pipe(ld->stop))
		return -errno;
	for (k = 0; k < LOAD_PROCS; k++) {
		if (pipe(ld->out[k]))
			return -errno;
		ld->pid[k] = fork();
		if (ld->pid[k] < 0)
			return -errno;
		if (!ld->pid[k]) {
			close(ld->stop[1]);
			close(ld->out[k][0]);
			load_proc(e, k, avoid, ld->stop[0], ld->out[k][1]);
		}
		close(ld->out[k][1]);
		ld->started++;
		if (read(ld->out[k][0], &c, 1) != 1)
			return -EIO;
	}
	close(ld->stop[0]);
	return 0;
}

/* Stops the load: 0 when every load job completed and verified. */
static int load_stop(struct load *ld, struct load_report *sum)
{
	int k, st, bad = 0;

	memset(sum, 0, sizeof(*sum));
	close(ld->stop[1]);
	for (k = 0; k < ld->started; k++) {
		struct load_report r = { .failed = 1, .first_status = -EPIPE };

		if (read(ld->out[k][0], &r, sizeof(r)) != sizeof(r))
			bad = 1;
		close(ld->out[k][0]);
		if (waitpid(ld->pid[k], &st, 0) != ld->pid[k] ||
		    !WIFEXITED(st) || WEXITSTATUS(st))
			bad = 1;
		sum->submitted += r.submitted;
		sum->verified += r.verified;
		sum->failed += r.failed;
		if (r.failed && !sum->first_status)
			sum->first_status = r.first_status;
	}
	return bad || sum->failed ? -1 : 0;
}

FIXTURE(fault) {
	struct env e;
};

/*
 * @mode: the debugfs fault mode; @delay_us for "delay"
 * @guilty: which of the NQ_JOBS jobs on the faulted queue is hit
 * @ok_status: statuses the guilty job may end with (0-terminated list
 *	unless the first is 0, which means "must complete 0, bit-exact")
 * @reset: 1 a reset must happen, 0 none may happen, -1 either
 * @cmd_status: the guilty job's expected device status, or -1 for any
 *	(checked on the ioctl path: a CQE carries only the errno)
 * @uring: the faulted queue's jobs go through io_uring, not SUBMIT/WAIT
 */
FIXTURE_VARIANT(fault) {
	const char *mode;
	int guilty;
	uint32_t delay_us;
	int ok_status[3];
	int reset;
	int cmd_status;
	bool uring;
};

/* Each fault through both submit paths: NAME (ioctl) and NAME_uring. */
#define FAULT_VARIANT(name, ...) \
	FIXTURE_VARIANT_ADD(fault, name) { __VA_ARGS__, .uring = false }; \
	FIXTURE_VARIANT_ADD(fault, name##_uring) { __VA_ARGS__, .uring = true }

/* A later completion on the queue can reveal the loss: no reset needed. */
FAULT_VARIANT(drop,
	.mode = "drop", .guilty = 2, .ok_status = { -ETIMEDOUT, -EIO },
	.reset = -1, .cmd_status = -1);

/* The last job's completion lost: only the hang timer can find it. */
FAULT_VARIANT(drop_last,
	.mode = "drop", .guilty = 5, .ok_status = { -ETIMEDOUT, -EIO },
	.reset = 1, .cmd_status = -1);

FAULT_VARIANT(corrupt,
	.mode = "corrupt", .guilty = 2,
	.ok_status = { -ETIMEDOUT, -EIO }, .reset = -1,
	.cmd_status = -1);

FAULT_VARIANT(dma_error,
	.mode = "dma_error", .guilty = 2,
	.ok_status = { -EIO }, .reset = -1,
	.cmd_status = POLAR_CIM_ST_DMA_ERROR);

FAULT_VARIANT(error_irq,
	.mode = "error_irq", .guilty = 2,
	.ok_status = { 0 }, .reset = -1,
	.cmd_status = 0);

FAULT_VARIANT(fw_crash,
	.mode = "fw_crash", .guilty = 2,
	.ok_status = { -EIO, -ETIMEDOUT }, .reset = 1,
	.cmd_status = -1);

/* Shorter than job_timeout_ms: slow is not hung. */
FAULT_VARIANT(delay_shorter_than_timeout,
	.mode = "delay", .guilty = 2, .delay_us = 200000,
	.ok_status = { 0 }, .reset = 0,
	.cmd_status = 0);

FIXTURE_SETUP(fault)
{
	ENV_SETUP(&self->e);
}

FIXTURE_TEARDOWN(fault)
{
	env_fini(&self->e);
}

#define NQ_JOBS 6	/* jobs on the faulted queue */
#define NO_JOBS 3	/* jobs on another queue */

TEST_F_TIMEOUT(fault, guilty_job_fails_innocent_jobs_complete, 120)
{
	struct env *e = &self->e;
	const uint32_t q = 1, o = 0;
	struct job jobs[NQ_JOBS + NO_JOBS], fresh;
	struct load_report load_sum;
	uint64_t reset0, reset1;
	struct io_uring ring;
	struct load load;
	struct wset wa, wb;
	char arm[96];
	int i, k, klog0, guilty;

	klog0 = klog_problems();
	reset0 = param(e->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT);

	/* Weights first, on both queues; the fault counts commands from now. */
	ASSERT_EQ(0, wset_program(e->fd, e->sim, &wa, POLAR_CIM_WFMT_INT4,
				  POLAR_CIM_XFMT_INT8, 40, 100, 60, 3, q, 11));
	ASSERT_EQ(0, wset_program(e->fd, e->sim, &wb, POLAR_CIM_WFMT_NF4,
				  POLAR_CIM_XFMT_UINT4, 41, 64, 32, 2, o, 12));
	for (i = 0; i < NQ_JOBS; i++)
		ASSERT_EQ(0, job_init(e->fd, e->sim, &e->fw, &wa, &jobs[i], q,
				      200 + i));
	for (i = 0; i < NO_JOBS; i++)
		ASSERT_EQ(0, job_init(e->fd, e->sim, &e->fw, &wb,
				      &jobs[NQ_JOBS + i], o, 300 + i));

	/* Other processes keep every other queue busy meanwhile. */
	ASSERT_EQ(0, load_start(e, &load, q));
	if (variant->uring) {
		ASSERT_EQ(0, ring_init(&ring, 2 * NQ_JOBS));
	}

	snprintf(arm, sizeof(arm), "%s %u %d %u", variant->mode, q, variant->guilty,
		 variant->delay_us);
	ASSERT_EQ(0, debugfs_write(e->fd, "fault", arm)) TH_LOG("%s", arm);

	/* Interleaved: the other queue's jobs run while q goes wrong. */
	for (i = 0, k = 0; i < NQ_JOBS; i++) {
		if (variant->uring) {
			ASSERT_EQ(0, uring_prep_job(&ring, e->fd, q,
						    &jobs[i].cmd, 1, i));
		} else {
			ASSERT_EQ(0, submit(e->fd, q, &jobs[i].cmd, 1,
					    &jobs[i].seqno));
		}
		if (k < NO_JOBS) {
			struct job *j = &jobs[NQ_JOBS + k++];

			ASSERT_EQ(0, submit(e->fd, o, &j->cmd, 1, &j->seqno));
		}
	}
	if (variant->uring) {
		ASSERT_EQ(NQ_JOBS, io_uring_submit(&ring));
		for (i = 0; i < NQ_JOBS; i++) {
			uint64_t ud = ~0ull;
			int res = 0;

			ASSERT_EQ(0, uring_reap(&ring, &res, &ud, 60));
			ASSERT_GT(NQ_JOBS, ud);
			jobs[ud].status = res;
			jobs[ud].cmd_status = ~0u;
		}
		io_uring_queue_exit(&ring);
	} else {
		for (i = 0; i < NQ_JOBS; i++)
			jobs[i].status = wait_job(e->fd, jobs[i].seqno,
						  &jobs[i].cmd_status);
	}
	for (i = NQ_JOBS; i < NQ_JOBS + NO_JOBS; i++)
		jobs[i].status = wait_job(e->fd, jobs[i].seqno,
					  &jobs[i].cmd_status);

	EXPECT_EQ(0, load_stop(&load, &load_sum))
		TH_LOG("%s: load processes: %u of %u jobs failed (first: %s)",
		       variant->mode, load_sum.failed, load_sum.submitted,
		       errname(load_sum.first_status));
	TH_LOG("%s via %s: load processes submitted %u, verified %u",
	       variant->mode, variant->uring ? "io_uring" : "ioctl",
	       load_sum.submitted, load_sum.verified);
	EXPECT_LT(0, load_sum.verified);

	/*
	 * io_uring may issue the SQEs out of order (some from its worker
	 * threads), so the fault's n-th command need not be the n-th SQE:
	 * there the guilty job is the one that failed, if any.
	 */
	guilty = variant->guilty;
	if (variant->uring) {
		int failed = 0;

		for (i = 0; i < NQ_JOBS; i++)
			if (jobs[i].status) {
				guilty = i;
				failed++;
			}
		EXPECT_GE(1, failed) TH_LOG("%s: %d jobs failed on queue %u",
					    variant->mode, failed, q);
	}
	for (i = 0; i < NQ_JOBS + NO_JOBS; i++) {
		struct job *j = &jobs[i];

		if (i == guilty) {
			bool ok = false;

			TH_LOG("%s: guilty job status %s, cmd_status %u",
			       variant->mode, errname(j->status),
			       j->cmd_status);
			for (k = 0; k < 3; k++)
				if (variant->ok_status[k] == j->status &&
				    (k == 0 || j->status))
					ok = true;
			EXPECT_TRUE(ok) TH_LOG("%s: guilty job ended %s",
					       variant->mode,
					       errname(j->status));
			if (variant->cmd_status >= 0 && !variant->uring)
				EXPECT_EQ(variant->cmd_status, j->cmd_status);
			if (!variant->ok_status[0] && !j->status)
				EXPECT_TRUE(job_exact(j))
					TH_LOG("%s: guilty job's output differs",
					       variant->mode);
			continue;
		}
		EXPECT_EQ(0, j->status)
			TH_LOG("%s: innocent job %d (queue %u) ended %s "
			       "(cmd_status %u)", variant->mode, i, j->queue,
			       errname(j->status), j->cmd_status);
		if (!j->status)
			EXPECT_TRUE(job_exact(j))
				TH_LOG("%s: innocent job %d: device and "
				       "software engine differ (first: %d vs "
				       "%d)", variant->mode, i,
				       ((int32_t *)j->y.map)[0], j->expect[0]);
	}

	reset1 = param(e->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT);
	TH_LOG("%s: reset_count %llu -> %llu", variant->mode,
	       (unsigned long long)reset0, (unsigned long long)reset1);
	if (variant->reset == 1) {
		EXPECT_LT(reset0, reset1);
	} else if (variant->reset == 0) {
		EXPECT_EQ(reset0, reset1);
	}

	/* The device serves a fresh job on the faulted queue, bit-exact. */
	ASSERT_EQ(0, job_init(e->fd, e->sim, &e->fw, &wa, &fresh, q, 400));
	EXPECT_EQ(0, run(e->fd, q, &fresh.cmd, 1));
	EXPECT_TRUE(job_exact(&fresh));
	job_fini(e->fd, &fresh);

	for (i = 0; i < NQ_JOBS + NO_JOBS; i++)
		job_fini(e->fd, &jobs[i]);
	bo_free(e->fd, &wa.w);
	bo_free(e->fd, &wb.w);
	EXPECT_EQ(klog0, klog_problems())
		TH_LOG("the kernel log shows new warnings");
}

FIXTURE(recovery) {
	struct env e;
};

FIXTURE_SETUP(recovery)
{
	ENV_SETUP(&self->e);
}

FIXTURE_TEARDOWN(recovery)
{
	env_fini(&self->e);
}

/* A requested reset with jobs in flight: all re-run and complete. */
TEST_F_TIMEOUT(recovery, debugfs_reset_with_jobs_in_flight, 120)
{
	enum { N = 12 };
	struct env *e = &self->e;
	struct job jobs[N];
	uint64_t reset0, reset1;
	struct wset wa;
	char buf[64];
	int i, klog0;

	klog0 = klog_problems();
	ASSERT_EQ(0, wset_program(e->fd, e->sim, &wa, POLAR_CIM_WFMT_INT8,
				  POLAR_CIM_XFMT_UINT8, 44, 130, 20, 2, 0, 21));
	for (i = 0; i < N; i++)
		ASSERT_EQ(0, job_init(e->fd, e->sim, &e->fw, &wa, &jobs[i],
				      i % e->queues, 500 + i));
	reset0 = param(e->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT);

	/* Hold queue 0 for 300 ms so that the reset meets queued work. */
	ASSERT_EQ(0, debugfs_write(e->fd, "fault", "delay 0 0 300000"));
	for (i = 0; i < N; i++)
		ASSERT_EQ(0, submit(e->fd, jobs[i].queue, &jobs[i].cmd, 1,
				    &jobs[i].seqno));
	ASSERT_EQ(0, debugfs_write(e->fd, "reset", "1"));
	for (i = 0; i < N; i++) {
		int st = wait_job(e->fd, jobs[i].seqno, &jobs[i].cmd_status);

		EXPECT_EQ(0, st) TH_LOG("job %d (queue %u) ended %s", i,
					jobs[i].queue, errname(st));
		if (!st)
			EXPECT_TRUE(job_exact(&jobs[i]))
				TH_LOG("job %d: device and software engine "
				       "differ", i);
	}
	reset1 = param(e->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT);
	EXPECT_EQ(reset0 + 1, reset1);
	ASSERT_LT(0, debugfs_read(e->fd, "reset_count", buf, sizeof(buf)));
	EXPECT_EQ(reset1, strtoull(buf, NULL, 0)) TH_LOG("debugfs: %s", buf);

	for (i = 0; i < N; i++)
		job_fini(e->fd, &jobs[i]);
	bo_free(e->fd, &wa.w);
	EXPECT_EQ(klog0, klog_problems())
		TH_LOG("the kernel log shows new warnings");
}

/* A delay longer than job_timeout_ms is a hang; the job fails in time. */
TEST_F_TIMEOUT(recovery, delay_longer_than_timeout_is_a_hang, 120)
{
	struct env *e = &self->e;
	struct job j, after;
	uint64_t reset0;
	struct wset wa;
	int st;

	ASSERT_EQ(0, wset_program(e->fd, e->sim, &wa, POLAR_CIM_WFMT_INT4,
				  POLAR_CIM_XFMT_UINT4, 45, 64, 64, 2, 0, 31));
	ASSERT_EQ(0, job_init(e->fd, e->sim, &e->fw, &wa, &j, 0, 600));
	ASSERT_EQ(0, job_init(e->fd, e->sim, &e->fw, &wa, &after, 0, 601));
	reset0 = param(e->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT);
	ASSERT_EQ(0, debugfs_write(e->fd, "fault", "delay 0 0 3000000"));
	ASSERT_EQ(0, submit(e->fd, 0, &j.cmd, 1, &j.seqno));
	ASSERT_EQ(0, submit(e->fd, 0, &after.cmd, 1, &after.seqno));
	st = wait_job(e->fd, j.seqno, NULL);
	EXPECT_TRUE(st == -ETIMEDOUT || st == -EIO) TH_LOG("status %s",
							  errname(st));
	st = wait_job(e->fd, after.seqno, NULL);
	EXPECT_EQ(0, st) TH_LOG("the innocent job ended %s", errname(st));
	if (!st)
		EXPECT_TRUE(job_exact(&after));
	EXPECT_LT(reset0, param(e->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT));
	job_fini(e->fd, &j);
	job_fini(e->fd, &after);
	bo_free(e->fd, &wa.w);
}

/* The debugfs files read, and job_timeout_ms takes what is written. */
TEST_F(recovery, debugfs_and_timeout_param)
{
	struct env *e = &self->e;
	char buf[4096];

	EXPECT_LT(0, debugfs_read(e->fd, "queues", buf, sizeof(buf)));
	EXPECT_LT(0, debugfs_read(e->fd, "counters", buf, sizeof(buf)));
	EXPECT_LT(0, debugfs_read(e->fd, "reset_count", buf, sizeof(buf)));
	EXPECT_EQ(param(e->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT),
		  strtoull(buf, NULL, 0));
	EXPECT_EQ(0, file_write(TIMEOUT_PARAM, "750"));
	EXPECT_LT(0, file_read(TIMEOUT_PARAM, buf, sizeof(buf)));
	EXPECT_STREQ("750", buf);
	/* A malformed fault request is refused. */
	EXPECT_NE(0, debugfs_write(e->fd, "fault", "explode 0 0"));
	EXPECT_NE(0, debugfs_write(e->fd, "fault", "drop 99 0"));
}

/*
 * A recovery whose firmware boot fails leaves the device failing jobs
 * with -EIO, but not forever: the submissions it refuses ask for another
 * recovery, and once one works jobs run again. The failed boot is real:
 * debugfs makes the driver hand the device a corrupted image once, which
 * the device rejects on its CRC.
 */
TEST_F_TIMEOUT(recovery, failed_recovery_is_retried, 120)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	struct env *e = &self->e;
	uint64_t reset0;
	int st = -1, i;

	ASSERT_TRUE(debugfs_has(e->fd, "fw_corrupt_next_boot"))
		TH_LOG("debugfs cannot make a firmware boot fail");
	reset0 = param(e->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT);
	ASSERT_EQ(0, debugfs_write(e->fd, "fw_corrupt_next_boot", "1"));
	ASSERT_EQ(0, debugfs_write(e->fd, "reset", "1"));
	EXPECT_EQ(reset0 + 1, param(e->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT));
	/* The boot failed: a job now fails with -EIO, at SUBMIT or WAIT. */
	st = run(e->fd, 0, &nop, 1);
	EXPECT_TRUE(st == -EIO || st == -ENODEV) TH_LOG("NOP after the failed reset: %s",
							 errname(st));
	/* ... and the device comes back by itself within seconds. */
	for (i = 0; i < 100; i++) {
		st = run(e->fd, 0, &nop, 1);
		if (!st)
			break;
		sleep_ms(50);
	}
	EXPECT_EQ(0, st) TH_LOG("jobs still fail 5 s after a failed reset: %s",
				errname(st));
	EXPECT_LT(reset0 + 1, param(e->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT));
	EXPECT_NE(0, param(e->fd, DRM_POLAR_ACCEL_PARAM_FW_VERSION));
}

TEST_HARNESS_MAIN
