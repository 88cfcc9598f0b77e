// SPDX-License-Identifier: MIT
/*
 * device_fuzz: a fuzzer for the polar-cim device model itself. It drives
 * our QEMU over qtest (tests/qtest/qtest_client.h) with a stream of
 * operations drawn from a seeded generator: register writes and reads,
 * ring set-up, doorbells, SQEs with SG lists (structurally valid most of
 * the time, so commands reach the engine, with one field mutated some of
 * the time), CQ draining, firmware boots of good and damaged images,
 * armed faults, scribbles over rings and lists, device and system
 * resets. A QEMU crash, a reply that does not come within the timeout
 * (a hang) or a sanitizer report on QEMU's stderr fails the run, with
 * the seed and the operation index to reproduce it.
 *
 *   device_fuzz --qemu Q --fw F [--seed S] [--ops N] [--restart R]
 */
#define _GNU_SOURCE
#include <endian.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../qtest/cim_qtest.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t below(uint32_t n)
{
	return n ? rnd() % n : 0;
}

static bool chance(unsigned percent)
{
	return below(100) < percent;
}

/* Boundary values, powers of two or random bits. */
static uint32_t odd_value(void)
{
	static const uint32_t edge[] = {
		0, 1, 2, 3, 4, 7, 8, 15, 16, 63, 64, 127, 128, 255, 256,
		4095, 4096, 4097, 65535, 65536, 0x7fffffff, 0x80000000,
		0xfffffffe, 0xffffffff,
	};

	switch (below(3)) {
	case 0:
		return edge[below(sizeof(edge) / sizeof(edge[0]))];
	case 1:
		return 1u << below(32);
	default:
		return (uint32_t)rnd();
	}
}

/* What the fuzzer believes of the device, as a driver would track it. */
struct fuzz_queue {
	uint32_t size;
	uint32_t tail;
	uint32_t cq_head;
	int phase;
	bool enabled;
};

struct fuzz {
	struct qtest q;
	const char *qemu;
	void *fw;
	size_t fw_size;
	uint64_t seed;
	uint32_t queues, rows, cols, tiles;
	struct fuzz_queue fq[POLAR_CIM_MAX_QUEUES];
	uint64_t ops, cmds_submitted, cqes_seen, qtest_before;
	uint64_t status_count[9];
	/* The last PROGRAM_TILES, so that MATMULs find programmed tiles. */
	struct polar_cim_sqe layer;
	char last[16][96];
};

static void note(struct fuzz *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(struct fuzz *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->last[f->ops % 16], sizeof(f->last[0]), fmt, ap);
	va_end(ap);
}

static void wr(struct fuzz *f, uint32_t reg, uint32_t val)
{
	qtest_writel(&f->q, cim_reg(reg), val);
}

static uint32_t rd(struct fuzz *f, uint32_t reg)
{
	return qtest_readl(&f->q, cim_reg(reg));
}

static void queue_up(struct fuzz *f, unsigned qid)
{
	static const uint32_t sizes[] = { 2, 4, 8, 16, 64 };
	struct fuzz_queue *fq = &f->fq[qid];

	fq->size = sizes[below(5)];
	cim_queue_setup(&f->q, qid, fq->size);
	fq->tail = fq->cq_head = 0;
	fq->phase = 1;
	fq->enabled = true;
}

static void bring_up(struct fuzz *f)
{
	cim_boot_firmware(&f->q, f->fw, f->fw_size);
	for (unsigned i = 0; i < f->queues; i++)
		queue_up(f, i);
}

/* Starts a QEMU with a device of random geometry. */
static int instance_start(struct fuzz *f)
{
	static const uint32_t dims[] = { 16, 32, 64, 128 };
	static const uint32_t cycle_ps[] = { 0, 0, 1000, 100000 };
	char args[512];

	f->rows = dims[below(4)];
	f->cols = dims[below(4)];
	f->tiles = 1u << below(7);
	f->queues = 1 + below(4);
	snprintf(args, sizeof(args), CIM_DEVICE_ARGS ",rows=%u,cols=%u,"
		 "tiles=%u,queues=%u,adc-bits=%u,rows-per-conv=%u,"
		 "sigma-dynamic=%u,sigma-static=%u,stuck-rate=%u,threads=%u,"
		 "cycle-ps=%u,seed=%u",
		 f->rows, f->cols, f->tiles, f->queues, 3 + below(6),
		 chance(50) ? 0 : f->rows / 2, chance(50) ? 0 : 6554,
		 chance(50) ? 0 : 6554, chance(70) ? 0 : 2000, 1 + below(2),
		 cycle_ps[below(4)], (unsigned)below(1000));
	memset(f->fq, 0, sizeof(f->fq));
	if (qtest_start(&f->q, f->qemu, args))
		return -1;
	f->q.timeout_ms = 15000;
	fprintf(stderr, "device_fuzz: instance at op %" PRIu64 ": %s\n",
		f->ops, args + strlen(CIM_DEVICE_ARGS) + 1);
	cim_pci_setup(&f->q);
	bring_up(f);
	return f->q.failed ? -1 : 0;
}

/* An SG list for len bytes at data, in 1..4 pieces, at sgl. */
static void make_sgl(struct fuzz *f, uint64_t sgl, uint64_t data,
		     uint32_t len, uint16_t *nsge)
{
	struct polar_cim_sge sge[4];
	uint32_t n = 1 + below(4), i, left = len;

	if (len < n)
		n = len ? len : 1;
	/* Now and then at the device's own registers (a DMA loop). */
	if (chance(2))
		data = CIM_BAR0 + below(POLAR_CIM_BAR0_SIZE);
	for (i = 0; i < n; i++) {
		uint32_t piece = i == n - 1 ? left : 1 + below(left - (n - i));

		sge[i].addr = htole64(data);
		sge[i].len = htole32(piece ? piece : 1);
		sge[i].rsvd = 0;
		data += piece;
		left -= piece;
	}
	qtest_memwrite(&f->q, sgl, sge, n * sizeof(sge[0]));
	*nsge = n;
}

static void mutate_sqe(struct polar_cim_sqe *e)
{
	uint8_t *p = (uint8_t *)e;
	uint32_t v = odd_value();

	switch (below(4)) {
	case 0:
		p[below(sizeof(*e))] = v;
		break;
	case 1: {
		unsigned off = below(sizeof(*e) / 2) * 2;

		memcpy(p + off, &v, 2);
		break;
	}
	default: {
		unsigned off = below(sizeof(*e) / 4) * 4;

		memcpy(p + off, &v, 4);
		break;
	}
	}
}

/* A command, valid-looking most of the time. */
static void op_submit(struct fuzz *f)
{
	static const uint8_t ops[] = {
		POLAR_CIM_OP_NOP, POLAR_CIM_OP_PROGRAM_TILES,
		POLAR_CIM_OP_PROGRAM_TILES, POLAR_CIM_OP_MATMUL,
		POLAR_CIM_OP_MATMUL, POLAR_CIM_OP_MATMUL,
		POLAR_CIM_OP_READ_COUNTERS, POLAR_CIM_OP_FENCE,
	};
	unsigned qid = below(f->queues), n = 1 + below(3), i;
	struct fuzz_queue *fq = &f->fq[qid];
	uint64_t sgl = CIM_SGL_ADDR + qid * 0x10000 + below(16) * 0x400;
	uint64_t data = CIM_DATA_ADDR + below(64) * 0x100000;

	if (!fq->enabled || !fq->size)
		return;
	for (i = 0; i < n; i++) {
		struct polar_cim_sqe e = { 0 };
		uint32_t in_tiles = 1 + below(2), out_tiles = 1 + below(2);

		/* Leave one slot: a full SQ is the driver's bug. */
		if ((fq->tail + 1) % fq->size == fq->cq_head)
			break;
		e.opcode = ops[below(sizeof(ops))];
		e.tag = (uint32_t)rnd();
		e.in_dim = 1 + below(f->rows * in_tiles);
		e.out_dim = 1 + below(f->cols * out_tiles);
		e.tile0 = below(f->tiles);
		e.wfmt = below(3);
		e.xfmt = below(4);
		e.batch = 1 + below(chance(10) ? 256 : 16);
		e.adc_fs_q8 = chance(70) ? 0 : 256 + below(f->rows * 256);
		e.job_seed = (uint32_t)rnd();
		if (e.opcode == POLAR_CIM_OP_MATMUL && f->layer.in_dim &&
		    chance(75)) {
			e.tile0 = f->layer.tile0;
			e.in_dim = f->layer.in_dim;
			e.out_dim = f->layer.out_dim;
			e.wfmt = f->layer.wfmt;
		}
		if (e.opcode == POLAR_CIM_OP_PROGRAM_TILES) {
			uint32_t len = e.in_dim * e.out_dim;
			uint8_t w[4096];

			/* Codes in range for INT4/NF4 most of the time. */
			for (uint32_t k = 0; k < sizeof(w); k++)
				w[k] = e.wfmt ? below(chance(95) ? 8 : 256) :
						(uint8_t)rnd();
			qtest_memwrite(&f->q, data, w,
				       len < sizeof(w) ? len : sizeof(w));
			make_sgl(f, sgl, data, len, &e.src_nsge);
			e.src_sgl = sgl;
			f->layer = e;
		} else if (e.opcode == POLAR_CIM_OP_MATMUL) {
			uint32_t len = e.batch * e.in_dim;

			if (e.xfmt >= POLAR_CIM_XFMT_INT4 && chance(95))
				qtest_memset(&f->q, data, below(8), len);
			make_sgl(f, sgl, data, len, &e.src_nsge);
			make_sgl(f, sgl + 0x100, data + 0x80000,
				 e.batch * e.out_dim * 4, &e.dst_nsge);
			e.src_sgl = sgl;
			e.dst_sgl = sgl + 0x100;
		} else if (e.opcode == POLAR_CIM_OP_READ_COUNTERS) {
			make_sgl(f, sgl + 0x100, data + 0x80000, 64,
				 &e.dst_nsge);
			e.dst_sgl = sgl + 0x100;
		}
		if (chance(15))
			mutate_sqe(&e);
		note(f, "submit q%u slot %u op 0x%x %ux%u b%u t%u", qid,
		     fq->tail, e.opcode, e.in_dim, e.out_dim, e.batch,
		     e.tile0);
		/* cim_submit rings the doorbell per entry. */
		cim_submit(&f->q, qid, fq->size, &fq->tail, &e);
		f->cmds_submitted++;
	}
}

/* Drains what the device posted, as a driver's interrupt handler does. */
static void op_drain(struct fuzz *f)
{
	unsigned qid = below(f->queues);
	struct fuzz_queue *fq = &f->fq[qid];
	struct polar_cim_cqe cqe;
	unsigned n = 0;

	if (!fq->enabled || !fq->size)
		return;
	note(f, "drain q%u", qid);
	wr(f, POLAR_CIM_REG_INT_STATUS, 1u << qid);
	while (n++ < fq->size && !f->q.failed) {
		qtest_memread(&f->q, CIM_CQ(qid) + fq->cq_head * sizeof(cqe),
			      &cqe, sizeof(cqe));
		if ((le16toh(cqe.phase) & 1) != fq->phase)
			break;
		f->status_count[le16toh(cqe.status) < 8 ?
				le16toh(cqe.status) : 8]++;
		f->cqes_seen++;
		fq->cq_head = (fq->cq_head + 1) % fq->size;
		if (!fq->cq_head)
			fq->phase ^= 1;
	}
	wr(f, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CQ_HEAD), fq->cq_head);
}

static const uint32_t known_regs[] = {
	POLAR_CIM_REG_ID, POLAR_CIM_REG_SCRATCH, POLAR_CIM_REG_CAPS,
	POLAR_CIM_REG_CTRL, POLAR_CIM_REG_STATUS, POLAR_CIM_REG_PROGRESS,
	POLAR_CIM_REG_HEARTBEAT, POLAR_CIM_REG_FW_ADDR_LO,
	POLAR_CIM_REG_FW_ADDR_HI, POLAR_CIM_REG_FW_SIZE, POLAR_CIM_REG_FW_CTRL,
	POLAR_CIM_REG_FW_STATUS, POLAR_CIM_REG_INT_STATUS,
	POLAR_CIM_REG_INT_MASK, POLAR_CIM_REG_ERROR_CODE,
	POLAR_CIM_REG_COUNTERS_LATCH, POLAR_CIM_REG_FAULT_MODE,
	POLAR_CIM_REG_FAULT_QUEUE, POLAR_CIM_REG_FAULT_COUNT,
	POLAR_CIM_REG_FAULT_DELAY_US,
};

static uint32_t some_register(void)
{
	switch (below(4)) {
	case 0:
		return known_regs[below(sizeof(known_regs) / 4)];
	case 1:
	case 2:
		return POLAR_CIM_REG_Q(below(POLAR_CIM_MAX_QUEUES + 1),
				       below(POLAR_CIM_QUEUE_STRIDE / 4) * 4);
	default:
		return below(POLAR_CIM_BAR0_SIZE / 4) * 4;
	}
}

static void op_mmio_write(struct fuzz *f)
{
	uint32_t reg = some_register(), val = odd_value();

	/* Long injected delays only stall the fuzzer: mostly short ones. */
	if (reg == POLAR_CIM_REG_FAULT_DELAY_US && chance(95))
		val %= 20000;
	/* The firmware address and rings must stay in RAM most of the time. */
	if ((reg == POLAR_CIM_REG_FW_ADDR_LO || reg == POLAR_CIM_REG_FW_ADDR_HI ||
	     (reg >= POLAR_CIM_REG_QUEUE_BASE &&
	      (reg % POLAR_CIM_QUEUE_STRIDE) < POLAR_CIM_Q_SIZE)) && chance(80))
		return;
	note(f, "write 0x%x = 0x%x", reg, val);
	wr(f, reg, val);
	if (reg >= POLAR_CIM_REG_QUEUE_BASE) {
		unsigned qid = (reg - POLAR_CIM_REG_QUEUE_BASE) /
			       POLAR_CIM_QUEUE_STRIDE;

		if (qid < POLAR_CIM_MAX_QUEUES &&
		    reg % POLAR_CIM_QUEUE_STRIDE == POLAR_CIM_Q_CTRL)
			f->fq[qid].enabled = false;	/* set up again later */
	}
	if (reg == POLAR_CIM_REG_CTRL && (val & POLAR_CIM_CTRL_RESET))
		memset(f->fq, 0, sizeof(f->fq));
}

static void op_mmio_read(struct fuzz *f)
{
	uint32_t reg = some_register();

	note(f, "read 0x%x", reg);
	rd(f, reg);
}

static void op_boot(struct fuzz *f)
{
	uint8_t img[POLAR_CIM_FW_MAX_SIZE];
	size_t n = f->fw_size < sizeof(img) ? f->fw_size : sizeof(img);

	memcpy(img, f->fw, n);
	if (chance(30))
		img[below(n)] ^= 1u << below(8);
	if (chance(10))
		n = below(n + 64);
	note(f, "boot %zu bytes", n);
	qtest_memwrite(&f->q, CIM_FW_ADDR, img, n);
	wr(f, POLAR_CIM_REG_FW_ADDR_LO, CIM_FW_ADDR);
	wr(f, POLAR_CIM_REG_FW_ADDR_HI, chance(3) ? odd_value() : 0);
	wr(f, POLAR_CIM_REG_FW_SIZE, n);
	wr(f, POLAR_CIM_REG_FW_CTRL, POLAR_CIM_FW_CTRL_BOOT);
}

static void op_fault(struct fuzz *f)
{
	note(f, "fault");
	wr(f, POLAR_CIM_REG_FAULT_QUEUE, below(f->queues + 1));
	wr(f, POLAR_CIM_REG_FAULT_COUNT, below(4));
	wr(f, POLAR_CIM_REG_FAULT_DELAY_US, below(20000));
	wr(f, POLAR_CIM_REG_FAULT_MODE, below(POLAR_CIM_FAULT_STRAY_DMA + 2));
}

/* Random bytes over an SQ, an SG list area or a CQ. */
static void op_scribble(struct fuzz *f)
{
	uint8_t junk[64];
	uint64_t at;

	for (unsigned i = 0; i < sizeof(junk); i++)
		junk[i] = rnd();
	switch (below(3)) {
	case 0:
		at = CIM_SQ(below(f->queues)) + below(64) * 64;
		break;
	case 1:
		at = CIM_SGL_ADDR + below(0x40000);
		break;
	default:
		at = CIM_CQ(below(f->queues)) + below(64) * 16;
		break;
	}
	note(f, "scribble 0x%" PRIx64, at);
	qtest_memwrite(&f->q, at, junk, 1 + below(sizeof(junk)));
}

static void op_queue(struct fuzz *f)
{
	unsigned qid = below(f->queues);

	note(f, "queue %u %s", qid, chance(80) ? "up" : "down");
	if (chance(80)) {
		queue_up(f, qid);
	} else {
		wr(f, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CTRL), 0);
		f->fq[qid].enabled = false;
	}
}

static void op_reset(struct fuzz *f)
{
	if (chance(80)) {
		note(f, "CTRL.RESET");
		wr(f, POLAR_CIM_REG_CTRL, POLAR_CIM_CTRL_RESET);
	} else {
		note(f, "system_reset");
		if (qtest_qmp(&f->q, "{\"execute\": \"system_reset\"}"))
			return;
		/* A system reset clears the BAR: place it again. */
		cim_pci_setup(&f->q);
	}
	memset(f->fq, 0, sizeof(f->fq));
	if (chance(90))
		bring_up(f);
}

static void one_op(struct fuzz *f)
{
	unsigned r = below(1000);

	if (r < 380)
		op_submit(f);
	else if (r < 560)
		op_drain(f);
	else if (r < 680)
		op_mmio_write(f);
	else if (r < 800)
		op_mmio_read(f);
	else if (r < 840)
		op_queue(f);
	else if (r < 870)
		op_boot(f);
	else if (r < 900)
		op_fault(f);
	else if (r < 950)
		op_scribble(f);
	else if (r < 958)
		op_reset(f);
	else
		usleep(below(500));
}

/* A sanitizer's report (or QEMU's own abort message) on stderr. */
static bool stderr_has_report(const char *path)
{
	static const char *const marks[] = {
		"AddressSanitizer", "UndefinedBehaviorSanitizer",
		"runtime error:", "LeakSanitizer", "Assertion", "**\nERROR",
		"Aborted",
	};
	size_t n;
	char *text = cim_read_file(path, &n), *s;
	bool found = false;

	if (!text)
		return false;
	s = strndup(text, n);
	for (unsigned i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
		found |= strstr(s, marks[i]) != NULL;
	free(s);
	free(text);
	return found;
}

static int report_failure(struct fuzz *f, const char *why)
{
	fprintf(stderr, "device_fuzz: FAIL seed %" PRIu64 " op %" PRIu64
		": %s\n  QEMU stderr: %s\n  last operations:\n", f->seed,
		f->ops, why, f->q.stderr_path);
	for (unsigned i = 1; i <= 16; i++)
		if (f->last[(f->ops + i) % 16][0])
			fprintf(stderr, "    %s\n", f->last[(f->ops + i) % 16]);
	return 1;
}

/* Ends an instance; non-zero if QEMU died or reported anything. */
static int instance_end(struct fuzz *f)
{
	char why[512];
	int status;

	if (f->q.failed || !qtest_alive(&f->q)) {
		snprintf(why, sizeof(why), "%s", f->q.failed ? f->q.why :
			 "QEMU died");
		qtest_stop(&f->q);
		return report_failure(f, why);
	}
	/* quit: QEMU's own exit path runs too (and LeakSanitizer if on). */
	qtest_qmp(&f->q, "{\"execute\": \"quit\"}");
	for (int i = 0; i < 500 && qtest_alive(&f->q); i++)
		usleep(10000);
	status = qtest_stop(&f->q);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		snprintf(why, sizeof(why), "QEMU exit status 0x%x at quit",
			 status);
		return report_failure(f, why);
	}
	if (stderr_has_report(f->q.stderr_path))
		return report_failure(f, "sanitizer report on QEMU's stderr");
	qtest_cleanup(&f->q);
	return 0;
}

int main(int argc, char **argv)
{
	static struct fuzz f;
	static const struct option opts[] = {
		{ "qemu", required_argument, NULL, 'q' },
		{ "fw", required_argument, NULL, 'f' },
		{ "seed", required_argument, NULL, 's' },
		{ "ops", required_argument, NULL, 'n' },
		{ "restart", required_argument, NULL, 'r' },
		{ 0 },
	};
	uint64_t total = 100000, restart = 50000, next_restart;
	int64_t t0 = qtest_now_ms();
	const char *fw = NULL;
	int c;

	f.seed = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			f.qemu = optarg;
			break;
		case 'f':
			fw = optarg;
			break;
		case 's':
			f.seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			total = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			restart = strtoull(optarg, NULL, 0);
			break;
		default:
			return 2;
		}
	}
	if (!f.qemu || !fw || !(f.fw = cim_read_file(fw, &f.fw_size))) {
		fprintf(stderr, "usage: device_fuzz --qemu QEMU --fw IMAGE "
			"[--seed S] [--ops N] [--restart N]\n");
		return 2;
	}
	rng_state = f.seed;
	if (instance_start(&f))
		return report_failure(&f, f.q.why);
	next_restart = restart;
	for (f.ops = 0; f.ops < total; f.ops++) {
		if (f.ops == next_restart) {
			if (instance_end(&f))
				return 1;
			if (instance_start(&f))
				return report_failure(&f, f.q.why);
			next_restart += restart;
		}
		one_op(&f);
		if (f.q.failed || (f.ops % 1000 == 0 && !qtest_alive(&f.q)))
			return instance_end(&f);
	}
	if (instance_end(&f))
		return 1;
	printf("device_fuzz: seed %" PRIu64 ": %" PRIu64 " operations, %"
	       PRIu64 " commands submitted, %" PRIu64 " completions (OK %"
	       PRIu64 ", BAD_OPCODE %" PRIu64 ", BAD_FIELD %" PRIu64
	       ", TILE_RANGE %" PRIu64 ", DMA_ERROR %" PRIu64 ", NO_FIRMWARE %"
	       PRIu64 ", NOT_PROGRAMMED %" PRIu64 ", other %" PRIu64
	       ") in %.1f s: no crash, hang or sanitizer report\n",
	       f.seed, f.ops, f.cmds_submitted, f.cqes_seen,
	       f.status_count[0], f.status_count[1], f.status_count[2],
	       f.status_count[3], f.status_count[4], f.status_count[5],
	       f.status_count[6], f.status_count[7] + f.status_count[8],
	       (qtest_now_ms() - t0) / 1000.0);
	printf("ok - device_fuzz seed %" PRIu64 ", %" PRIu64 " ops\n", f.seed,
	       f.ops);
	return 0;
}
