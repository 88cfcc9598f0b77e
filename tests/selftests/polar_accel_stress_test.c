// SPDX-License-Identifier: GPL-2.0
/*
 * Stress kselftest of polar_accel.ko: 4 processes x 1000 MATMUL jobs at
 * once, each process with its own file, BOs and tile range, several jobs
 * in flight over a mix of queues, half through SUBMIT + WAIT and half
 * through io_uring (when the driver reports FEATURE_URING_CMD), every
 * output checked bit for bit against cim_engine on the host CPU.
 * GPL-2.0: includes the kselftest harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

#define NPROC 4
#define NJOBS 1000
#define WINDOW 8	/* jobs in flight per process */
#define NSETS 2		/* weight sets per process */

struct stats {
	unsigned int submitted, completed, verified, lost, failed, mismatched;
	unsigned int via_uring, via_ioctl;
	int setup_error;
};

struct wset {
	struct cim_command c;
	struct bo w;
};

struct slot {
	struct bo x, y;
	struct drm_polar_accel_cmd cmd;
	int32_t expect[64 * 32];
	uint64_t ylen, seqno;
	int status;
	bool done;
};

static int engine_init(int fd, struct cim_engine **sim, struct cim_firmware *fw)
{
	struct cim_config cfg = { 0 };
	static uint8_t image[POLAR_CIM_FW_MAX_SIZE];
	ssize_t n;
	int fwfd;

	cfg.rows = param(fd, DRM_POLAR_ACCEL_PARAM_TILE_ROWS);
	cfg.cols = param(fd, DRM_POLAR_ACCEL_PARAM_TILE_COLS);
	cfg.tiles = param(fd, DRM_POLAR_ACCEL_PARAM_NUM_TILES);
	cfg.adc_bits = param(fd, DRM_POLAR_ACCEL_PARAM_ADC_BITS);
	cfg.rows_per_conversion = param(fd, DRM_POLAR_ACCEL_PARAM_ROWS_PER_CONV);
	cfg.sigma_static_q16 = param(fd, DRM_POLAR_ACCEL_PARAM_SIGMA_STATIC);
	cfg.stuck_rate_ppm = param(fd, DRM_POLAR_ACCEL_PARAM_STUCK_PPM);
	cfg.adc_offset_sigma_q16 =
		param(fd, DRM_POLAR_ACCEL_PARAM_ADC_OFFSET_SIGMA);
	cfg.adc_gain_sigma_q16 = param(fd, DRM_POLAR_ACCEL_PARAM_ADC_GAIN_SIGMA);
	cfg.seed = param(fd, DRM_POLAR_ACCEL_PARAM_SEED);
	param_recon(fd, &cfg.recon, &cfg.recon_frac_bits);
	param_design(fd, &cfg.digital_planes, &cfg.adc_bits_msb,
		     &cfg.adc_msb_levels);
	if (cim_engine_create(&cfg, sim))
		return -1;
	fwfd = open(FW_PATH, O_RDONLY);
	if (fwfd < 0)
		return -1;
	n = read(fwfd, image, sizeof(image));
	close(fwfd);
	if (n <= 0 || cim_firmware_parse(image, n, fw, NULL) !=
		      POLAR_CIM_FW_BOOTED)
		return -1;
	if (fw->has_codebook)
		cim_engine_set_codebook(*sim, fw->codebook);
	return 0;
}

static int wset_program(int fd, struct cim_engine *sim, struct wset *ws,
			uint8_t wfmt, uint8_t xfmt, uint16_t tile0,
			uint32_t in_dim, uint32_t out_dim, uint32_t batch,
			uint32_t q)
{
	struct drm_polar_accel_cmd p = { .opcode = POLAR_CIM_OP_PROGRAM_TILES };
	uint64_t wlen = (uint64_t)in_dim * out_dim, i;
	int ret;

	memset(ws, 0, sizeof(*ws));
	ret = bo_new(fd, wlen, &ws->w);
	if (ret)
		return ret;
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

/* Random inputs for a MATMUL on @ws in slot @s, expected output computed. */
static int slot_prepare(struct cim_engine *sim, const struct cim_firmware *fw,
			const struct wset *ws, struct slot *s, uint32_t seed)
{
	struct cim_command c = ws->c;
	uint64_t xlen = (uint64_t)c.batch * c.in_dim, i;

	s->ylen = (uint64_t)c.batch * c.out_dim * 4;
	for (i = 0; i < xlen; i++)
		((int8_t *)s->x.map)[i] = input_code(c.xfmt, rand());
	memset(s->y.map, 0xa5, s->ylen);
	c.job_seed = seed;
	if (cim_command_matmul(sim, fw, &c, s->x.map, s->expect, NULL,
			       NULL) != POLAR_CIM_ST_OK)
		return -EINVAL;
	memset(&s->cmd, 0, sizeof(s->cmd));
	s->cmd.opcode = POLAR_CIM_OP_MATMUL;
	s->cmd.wfmt = c.wfmt;
	s->cmd.xfmt = c.xfmt;
	s->cmd.tile0 = c.tile0;
	s->cmd.in_dim = c.in_dim;
	s->cmd.out_dim = c.out_dim;
	s->cmd.batch = c.batch;
	s->cmd.job_seed = seed;
	s->cmd.src = (struct drm_polar_accel_buf){ s->x.handle, 0, 0, xlen };
	s->cmd.dst = (struct drm_polar_accel_buf){ s->y.handle, 0, 0, s->ylen };
	s->done = false;
	s->status = -1;
	return 0;
}

/* One process's share: NJOBS jobs in rounds of WINDOW. */
static void worker(int p, bool uring, struct stats *st)
{
	struct cim_firmware fw;
	struct cim_engine *sim = NULL;
	struct wset ws[NSETS];
	struct io_uring ring;
	struct slot *slots;
	uint32_t queues;
	int fd, i, r;

	srand(1000 + p);
	fd = accel_open();
	slots = calloc(WINDOW, sizeof(*slots));
	if (fd < 0 || !slots || engine_init(fd, &sim, &fw)) {
		st->setup_error = 1;
		return;
	}
	queues = param(fd, DRM_POLAR_ACCEL_PARAM_NUM_QUEUES);
	/* A distinct tile range per process: tiles 48 + 4p, 49 + 4p. */
	if (wset_program(fd, sim, &ws[0], p % 2 ? POLAR_CIM_WFMT_INT4 :
			 POLAR_CIM_WFMT_INT8, POLAR_CIM_XFMT_INT8,
			 48 + 4 * p, 64, 32, 2, p % queues) ||
	    wset_program(fd, sim, &ws[1], POLAR_CIM_WFMT_NF4,
			 p % 2 ? POLAR_CIM_XFMT_UINT4 : POLAR_CIM_XFMT_INT4,
			 49 + 4 * p, 48, 24, 2, (p + 1) % queues)) {
		st->setup_error = 2;
		return;
	}
	for (i = 0; i < WINDOW; i++)
		if (bo_new(fd, 4096, &slots[i].x) ||
		    bo_new(fd, 4096, &slots[i].y)) {
			st->setup_error = 3;
			return;
		}
	if (uring && io_uring_queue_init(2 * WINDOW, &ring,
					 IORING_SETUP_SQE128)) {
		st->setup_error = 4;
		return;
	}

	for (r = 0; r * WINDOW < NJOBS; r++) {
		bool via_uring = uring && (r % 2);
		int n = NJOBS - r * WINDOW < WINDOW ? NJOBS - r * WINDOW :
						      WINDOW;

		for (i = 0; i < n; i++) {
			struct slot *s = &slots[i];
			uint32_t q = (p + r + i) % queues;

			if (slot_prepare(sim, &fw, &ws[(r + i) % NSETS], s,
					 r * WINDOW + i)) {
				st->setup_error = 5;
				return;
			}
			if (via_uring) {
				uring_prep_job(&ring, fd, q, &s->cmd, 1, i);
			} else if (submit(fd, q, &s->cmd, 1, &s->seqno)) {
				s->done = true;
				s->status = -EIO;
				st->failed++;
				continue;
			}
			st->submitted++;
		}
		if (via_uring) {
			int got = 0;

			if (io_uring_submit(&ring) != n) {
				st->setup_error = 6;
				return;
			}
			st->via_uring += n;
			while (got < n) {
				struct __kernel_timespec ts = { .tv_sec = 20 };
				struct io_uring_cqe *cqe;
				int ret = io_uring_wait_cqe_timeout(&ring, &cqe,
								    &ts);

				if (ret == -EINTR)
					continue;
				if (ret)
					break;
				if (cqe->user_data < (uint64_t)n &&
				    !slots[cqe->user_data].done) {
					slots[cqe->user_data].done = true;
					slots[cqe->user_data].status = cqe->res;
				}
				io_uring_cqe_seen(&ring, cqe);
				got++;
			}
		} else {
			st->via_ioctl += n;
			for (i = 0; i < n; i++) {
				int ret;

				if (slots[i].done)
					continue;
				ret = wait_job(fd, slots[i].seqno, NULL);
				if (ret > -1000) {
					slots[i].done = true;
					slots[i].status = ret;
				}
			}
		}
		for (i = 0; i < n; i++) {
			struct slot *s = &slots[i];

			if (!s->done) {
				st->lost++;
				continue;
			}
			st->completed++;
			if (s->status) {
				st->failed++;
				continue;
			}
			if (memcmp(s->expect, s->y.map, s->ylen))
				st->mismatched++;
			else
				st->verified++;
		}
		if (st->lost)
			break;	/* a ring out of step: stop, report */
	}
	if (uring)
		io_uring_queue_exit(&ring);
	close(fd);
	cim_engine_destroy(sim);
}

FIXTURE(stress) {
	int fd;
	uint64_t features;
};

FIXTURE_SETUP(stress)
{
	self->fd = accel_open();
	ASSERT_LE(0, self->fd);
	self->features = param(self->fd, DRM_POLAR_ACCEL_PARAM_FEATURES);
	if (param(self->fd, DRM_POLAR_ACCEL_PARAM_SIGMA_DYNAMIC))
		SKIP(return, "dynamic noise is on: results are not exact");
	if (param(self->fd, DRM_POLAR_ACCEL_PARAM_NUM_TILES) < 48 + 4 * NPROC)
		SKIP(return, "too few tiles");
}

FIXTURE_TEARDOWN(stress)
{
	close(self->fd);
}

TEST_F_TIMEOUT(stress, four_processes_thousand_jobs_each, 300)
{
	bool uring = self->features & DRM_POLAR_ACCEL_FEATURE_URING_CMD;
	struct stats *st, total = { 0 };
	struct timespec t0, t1;
	pid_t pid[NPROC];
	int p, status, klog0;
	double secs;

	klog0 = klog_problems();
	st = mmap(NULL, NPROC * sizeof(*st), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, st);
	memset(st, 0, NPROC * sizeof(*st));
	if (!uring)
		TH_LOG("no FEATURE_URING_CMD: all jobs through SUBMIT + WAIT");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (p = 0; p < NPROC; p++) {
		pid[p] = fork();
		ASSERT_LE(0, pid[p]);
		if (!pid[p]) {
			worker(p, uring, &st[p]);
			_exit(0);
		}
	}
	for (p = 0; p < NPROC; p++) {
		ASSERT_EQ(pid[p], waitpid(pid[p], &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
			TH_LOG("process %d: status %#x", p, status);
		EXPECT_EQ(0, st[p].setup_error) TH_LOG("process %d", p);
		total.submitted += st[p].submitted;
		total.completed += st[p].completed;
		total.verified += st[p].verified;
		total.lost += st[p].lost;
		total.failed += st[p].failed;
		total.mismatched += st[p].mismatched;
		total.via_uring += st[p].via_uring;
		total.via_ioctl += st[p].via_ioctl;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	TH_LOG("submitted=%u completed=%u verified=%u lost=%u failed=%u "
	       "mismatched=%u (ioctl %u, io_uring %u) in %.1f s",
	       total.submitted, total.completed, total.verified, total.lost,
	       total.failed, total.mismatched, total.via_ioctl,
	       total.via_uring, secs);
	EXPECT_EQ(NPROC * NJOBS, total.submitted);
	EXPECT_EQ(NPROC * NJOBS, total.completed);
	EXPECT_EQ(NPROC * NJOBS, total.verified);
	EXPECT_EQ(0, total.lost);
	EXPECT_EQ(0, total.failed);
	EXPECT_EQ(0, total.mismatched);
	EXPECT_GT(60.0, secs);
	EXPECT_EQ(klog0, klog_problems())
		TH_LOG("the kernel log shows new warnings");
	munmap(st, NPROC * sizeof(*st));
}

TEST_HARNESS_MAIN
