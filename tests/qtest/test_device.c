// SPDX-License-Identifier: MIT
/*
 * test_device: regression tests of the polar-cim device model itself,
 * run against our QEMU binary over qtest (no guest kernel): lifetime
 * (unplug and resets while a command runs), what a guest can make QEMU
 * allocate, property checks and guest-error logging.
 *
 * POLAR_QEMU names the QEMU binary (default
 * $BUILD/qemu-build/qemu-system-x86_64), POLAR_FW the firmware image
 * (default $BUILD/firmware/polar_cim.fw).
 */
#define _GNU_SOURCE
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../unit/unit.h"
#include "cim_qtest.h"

static char qemu[512], fw_path[512];
static void *fw;
static size_t fw_size;

/*
 * A MATMUL long enough (seconds of host time, one host thread) that a
 * reset or an unplug lands in the middle of it: 2048 x 2048 INT8 weights
 * over 256 tiles, 1024 vectors, with read noise (about 10 s before the
 * fixes, when nothing could stop it).
 */
#define LONG_DIM	2048u
#define LONG_BATCH	1024u
#define LONG_PROPS	",tiles=256,threads=1,cycle-ps=0,sigma-dynamic=6554"
#define W_ADDR		CIM_DATA_ADDR
#define X_ADDR		(CIM_DATA_ADDR + 0x00400000u)
#define Y_ADDR		(CIM_DATA_ADDR + 0x01000000u)

static uint32_t rd(struct qtest *q, uint32_t reg)
{
	return qtest_readl(q, cim_reg(reg));
}

static int start(struct qtest *q, const char *props, const char *extra)
{
	char args[1024];

	snprintf(args, sizeof(args), CIM_DEVICE_ARGS "%s %s", props, extra);
	if (qtest_start(q, qemu, args)) {
		fprintf(stderr, "  QEMU did not start: %s\n", q->why);
		return -1;
	}
	cim_pci_setup(q);
	if (rd(q, POLAR_CIM_REG_ID) != POLAR_CIM_ID_MAGIC) {
		fprintf(stderr, "  no polar-cim at BAR0\n");
		return -1;
	}
	return 0;
}

/* Firmware and queue 0 of @size entries. */
static int bring_up(struct qtest *q, uint32_t size)
{
	if (cim_boot_firmware(q, fw, fw_size) != POLAR_CIM_FW_BOOTED) {
		fprintf(stderr, "  firmware did not boot: %s\n", q->why);
		return -1;
	}
	cim_queue_setup(q, 0, size);
	return q->failed ? -1 : 0;
}

/* PROGRAM_TILES then a MATMUL that computes for seconds; 0 once it runs. */
static int start_long_matmul(struct qtest *q, uint32_t *tail)
{
	struct polar_cim_sqe e = {
		.opcode = POLAR_CIM_OP_PROGRAM_TILES,
		.tag = 1,
		.in_dim = LONG_DIM,
		.out_dim = LONG_DIM,
		.src_sgl = CIM_SGL_ADDR,
		.src_nsge = 1,
	};
	struct polar_cim_cqe cqe;

	qtest_memset(q, W_ADDR, 1, LONG_DIM * LONG_DIM);
	qtest_memset(q, X_ADDR, 1, LONG_DIM * LONG_BATCH);
	cim_sgl_one(q, CIM_SGL_ADDR, W_ADDR, LONG_DIM * LONG_DIM);
	cim_submit(q, 0, 16, tail, &e);
	if (cim_wait_cqe(q, 0, 0, 1, 20000, &cqe) != POLAR_CIM_ST_OK) {
		fprintf(stderr, "  PROGRAM_TILES failed: %s\n", q->why);
		return -1;
	}
	qtest_writel(q, cim_reg(POLAR_CIM_REG_Q(0, POLAR_CIM_Q_CQ_HEAD)), 1);
	cim_sgl_one(q, CIM_SGL_ADDR + 0x100, X_ADDR, LONG_DIM * LONG_BATCH);
	cim_sgl_one(q, CIM_SGL_ADDR + 0x200, Y_ADDR, LONG_DIM * LONG_BATCH * 4);
	e = (struct polar_cim_sqe){
		.opcode = POLAR_CIM_OP_MATMUL,
		.tag = 2,
		.in_dim = LONG_DIM,
		.out_dim = LONG_DIM,
		.batch = LONG_BATCH,
		.src_sgl = CIM_SGL_ADDR + 0x100,
		.src_nsge = 1,
		.dst_sgl = CIM_SGL_ADDR + 0x200,
		.dst_nsge = 1,
	};
	cim_submit(q, 0, 16, tail, &e);
	/* Running: busy, and the heartbeat has moved past the first chunk. */
	for (int i = 0; i < 2000 && !q->failed; i++) {
		if ((rd(q, POLAR_CIM_REG_STATUS) & POLAR_CIM_STATUS_BUSY) &&
		    rd(q, POLAR_CIM_REG_HEARTBEAT))
			return 0;
		usleep(5000);
	}
	fprintf(stderr, "  the MATMUL did not start: %s\n", q->why);
	return -1;
}

/*
 * One chunk of the long MATMUL is about 64M multiply-accumulates with
 * noise: a fraction of a second of one core, seconds on a loaded machine.
 */
#define STOP_BOUND_MS 4000

/*
 * ACPI hot-unplug of slot 4 on the pc machine, as a guest does it: QMP
 * device_del, then the guest's eject write to the PCI hotplug register.
 * The eject runs the device's exit in the I/O handler: QEMU must answer
 * it within @bound_ms, and the device must be gone.
 */
static void unplug_within(struct qtest *q, int bound_ms)
{
	int64_t t0;

	CHECK(qtest_qmp(q, "{\"execute\": \"device_del\", \"arguments\": "
			"{\"id\": \"cim\"}}") == 0);
	q->timeout_ms = bound_ms;
	t0 = qtest_now_ms();
	qtest_outl(q, 0xae08, 1u << CIM_SLOT);
	if (q->failed)
		fprintf(stderr, "  eject: %s\n", q->why);
	CHECK(!q->failed);
	fprintf(stderr, "  eject answered after %lld ms\n",
		(long long)(qtest_now_ms() - t0));
	q->timeout_ms = 10000;
	CHECK(qtest_qmp_event(q, "DEVICE_DELETED", 10000) == 0);
	CHECK(qtest_alive(q));
}

/* Finding 11: unplug while a completion waits out an injected DELAY. */
static void test_unplug_during_delayed_completion(void)
{
	struct polar_cim_sqe nop = { .opcode = POLAR_CIM_OP_NOP, .tag = 7 };
	struct qtest q;
	uint32_t tail = 0;

	if (start(&q, "", "") || bring_up(&q, 16)) {
		CHECK(0);
		qtest_stop(&q);
		qtest_cleanup(&q);
		return;
	}
	qtest_writel(&q, cim_reg(POLAR_CIM_REG_FAULT_QUEUE), 0);
	qtest_writel(&q, cim_reg(POLAR_CIM_REG_FAULT_DELAY_US), 3000000);
	qtest_writel(&q, cim_reg(POLAR_CIM_REG_FAULT_MODE),
		     POLAR_CIM_FAULT_DELAY);
	cim_submit(&q, 0, 16, &tail, &nop);
	usleep(100000);
	CHECK(rd(&q, POLAR_CIM_REG_STATUS) & POLAR_CIM_STATUS_BUSY);
	unplug_within(&q, STOP_BOUND_MS);
	qtest_stop(&q);
	qtest_cleanup(&q);
}

/* Finding 11: unplug in the middle of a long MATMUL. */
static void test_unplug_during_matmul(void)
{
	struct qtest q;
	uint32_t tail = 0;

	if (start(&q, LONG_PROPS, "") || bring_up(&q, 16) ||
	    start_long_matmul(&q, &tail)) {
		CHECK(0);
		qtest_stop(&q);
		qtest_cleanup(&q);
		return;
	}
	unplug_within(&q, STOP_BOUND_MS);
	qtest_stop(&q);
	qtest_cleanup(&q);
}

/*
 * Finding 13: a reset stops the running MATMUL at its next chunk, so
 * STATUS.BUSY drops within STOP_BOUND_MS, and no completion is posted.
 */
static void reset_during_matmul(bool power_on)
{
	struct polar_cim_cqe cqe;
	struct qtest q;
	uint32_t tail = 0;
	int64_t t0, busy_ms = -1;

	if (start(&q, LONG_PROPS, "") || bring_up(&q, 16) ||
	    start_long_matmul(&q, &tail)) {
		CHECK(0);
		qtest_stop(&q);
		qtest_cleanup(&q);
		return;
	}
	t0 = qtest_now_ms();
	if (power_on) {
		CHECK(qtest_qmp(&q, "{\"execute\": \"system_reset\"}") == 0);
		/* The system reset cleared the BAR too. */
		cim_pci_setup(&q);
	} else {
		qtest_writel(&q, cim_reg(POLAR_CIM_REG_CTRL),
			     POLAR_CIM_CTRL_RESET);
	}
	while (!q.failed && qtest_now_ms() - t0 < 5 * STOP_BOUND_MS) {
		if (!(rd(&q, POLAR_CIM_REG_STATUS) & POLAR_CIM_STATUS_BUSY)) {
			busy_ms = qtest_now_ms() - t0;
			break;
		}
		usleep(2000);
	}
	fprintf(stderr, "  BUSY dropped %lld ms after the reset\n",
		(long long)busy_ms);
	CHECK(busy_ms >= 0 && busy_ms < STOP_BOUND_MS);
	/* No CQE for the MATMUL (slot 1 of the CQ, phase 1). */
	qtest_memread(&q, CIM_CQ(0) + sizeof(cqe), &cqe, sizeof(cqe));
	CHECK(!(le16toh(cqe.phase) & 1));
	CHECK(!q.failed && qtest_alive(&q));
	qtest_stop(&q);
	qtest_cleanup(&q);
}

static void test_power_on_reset_stops_matmul(void)
{
	reset_during_matmul(true);
}

static void test_ctrl_reset_stops_matmul(void)
{
	reset_during_matmul(false);
}

/*
 * Finding 12: a MATMUL whose batch x in_dim is 32 GiB, on a chip of
 * 65536 tiles, must complete with an error status (the tiles are not
 * programmed) instead of aborting QEMU, and QEMU's RSS must stay bounded.
 */
static void test_huge_matmul_is_refused(void)
{
	const uint32_t in_dim = 65536u * 128, batch = 4096;
	struct polar_cim_sqe e = {
		.opcode = POLAR_CIM_OP_MATMUL,
		.tag = 3,
		.in_dim = in_dim,
		.out_dim = 1,
		.batch = batch,
		.src_sgl = CIM_SGL_ADDR,
		.src_nsge = 1,
		.dst_sgl = CIM_SGL_ADDR + 0x100,
		.dst_nsge = 1,
	};
	struct polar_cim_cqe cqe;
	struct qtest q;
	uint32_t tail = 0;
	long rss0, rss1;
	int st;

	if (start(&q, ",tiles=65536", "") || bring_up(&q, 16)) {
		CHECK(0);
		qtest_stop(&q);
		qtest_cleanup(&q);
		return;
	}
	/* Valid lists: the device may move the data it needs. */
	cim_sgl_one(&q, CIM_SGL_ADDR, CIM_DATA_ADDR, 0x04000000);
	cim_sgl_one(&q, CIM_SGL_ADDR + 0x100, CIM_DATA_ADDR + 0x04000000,
		    batch * 4);
	rss0 = qtest_rss_kib(&q);
	cim_submit(&q, 0, 16, &tail, &e);
	st = cim_wait_cqe(&q, 0, 0, 1, 20000, &cqe);
	rss1 = qtest_rss_kib(&q);
	fprintf(stderr, "  status %d, QEMU RSS %ld -> %ld KiB (%s)\n", st,
		rss0, rss1, q.failed ? q.why : "alive");
	CHECK(qtest_alive(&q));
	CHECK(st == POLAR_CIM_ST_NOT_PROGRAMMED);
	CHECK(rss1 - rss0 < 64 * 1024);
	qtest_stop(&q);
	qtest_cleanup(&q);
}

/*
 * The device's own bound on a MATMUL's batch, the MAX_BATCH register: a
 * guest that drives the rings itself (not through the driver, whose
 * SUBMIT checks the same bound first) gets BAD_FIELD one past it, and
 * the bound itself runs.
 */
static void test_batch_bound_is_the_registers(void)
{
	const uint32_t dim = 8;
	struct polar_cim_sqe prog = {
		.opcode = POLAR_CIM_OP_PROGRAM_TILES,
		.tag = 1,
		.in_dim = dim,
		.out_dim = dim,
		.src_sgl = CIM_SGL_ADDR,
		.src_nsge = 1,
	};
	struct polar_cim_sqe mm = {
		.opcode = POLAR_CIM_OP_MATMUL,
		.in_dim = dim,
		.out_dim = dim,
		.src_sgl = CIM_SGL_ADDR + 0x100,
		.src_nsge = 1,
		.dst_sgl = CIM_SGL_ADDR + 0x200,
		.dst_nsge = 1,
	};
	struct polar_cim_cqe cqe;
	struct qtest q;
	uint32_t tail = 0, max_batch;

	if (start(&q, "", "") || bring_up(&q, 16)) {
		CHECK(0);
		qtest_stop(&q);
		qtest_cleanup(&q);
		return;
	}
	max_batch = rd(&q, POLAR_CIM_REG_MAX_BATCH);
	CHECK(max_batch > 0 && max_batch <= 0x10000);
	qtest_memset(&q, W_ADDR, 1, dim * dim);
	qtest_memset(&q, X_ADDR, 1, (size_t)dim * (max_batch + 1));
	cim_sgl_one(&q, CIM_SGL_ADDR, W_ADDR, dim * dim);
	cim_sgl_one(&q, CIM_SGL_ADDR + 0x100, X_ADDR, dim * (max_batch + 1));
	cim_sgl_one(&q, CIM_SGL_ADDR + 0x200, Y_ADDR,
		    (size_t)dim * (max_batch + 1) * 4);
	cim_submit(&q, 0, 16, &tail, &prog);
	CHECK(cim_wait_cqe(&q, 0, 0, 1, 10000, &cqe) == POLAR_CIM_ST_OK);
	mm.tag = 2;
	mm.batch = max_batch;
	cim_submit(&q, 0, 16, &tail, &mm);
	CHECK(cim_wait_cqe(&q, 0, 1, 1, 20000, &cqe) == POLAR_CIM_ST_OK);
	mm.tag = 3;
	mm.batch = max_batch + 1;
	cim_submit(&q, 0, 16, &tail, &mm);
	CHECK(cim_wait_cqe(&q, 0, 2, 1, 10000, &cqe) ==
	      POLAR_CIM_ST_BAD_FIELD);
	CHECK(qtest_alive(&q));
	qtest_stop(&q);
	qtest_cleanup(&q);
}

/*
 * Without booted firmware the device runs NOPs only: a valid
 * PROGRAM_TILES completes with NO_FIRMWARE, then runs once the firmware
 * has booted. The driver never submits in that state (probe and recovery
 * fail first), so only a test that drives the rings itself sees the gate.
 */
static void test_commands_need_booted_firmware(void)
{
	struct polar_cim_sqe nop = { .opcode = POLAR_CIM_OP_NOP, .tag = 1 };
	struct polar_cim_sqe prog = {
		.opcode = POLAR_CIM_OP_PROGRAM_TILES,
		.tag = 2,
		.in_dim = 8,
		.out_dim = 8,
		.src_sgl = CIM_SGL_ADDR,
		.src_nsge = 1,
	};
	struct polar_cim_cqe cqe;
	struct qtest q;
	uint32_t tail = 0;

	if (start(&q, "", "")) {
		CHECK(0);
		qtest_stop(&q);
		qtest_cleanup(&q);
		return;
	}
	CHECK(!(rd(&q, POLAR_CIM_REG_STATUS) & POLAR_CIM_STATUS_FW_BOOTED));
	qtest_memset(&q, W_ADDR, 1, 64);
	cim_sgl_one(&q, CIM_SGL_ADDR, W_ADDR, 64);
	cim_queue_setup(&q, 0, 16);
	cim_submit(&q, 0, 16, &tail, &nop);
	CHECK(cim_wait_cqe(&q, 0, 0, 1, 10000, &cqe) == POLAR_CIM_ST_OK);
	cim_submit(&q, 0, 16, &tail, &prog);
	CHECK(cim_wait_cqe(&q, 0, 1, 1, 10000, &cqe) ==
	      POLAR_CIM_ST_NO_FIRMWARE);
	CHECK(cim_boot_firmware(&q, fw, fw_size) == POLAR_CIM_FW_BOOTED);
	cim_submit(&q, 0, 16, &tail, &prog);
	CHECK(cim_wait_cqe(&q, 0, 2, 1, 10000, &cqe) == POLAR_CIM_ST_OK);
	CHECK(!q.failed);
	qtest_stop(&q);
	qtest_cleanup(&q);
}

/* Finding 14: cycle-ps out of its range fails device creation. */
static void test_cycle_ps_is_validated(void)
{
	struct qtest q;
	int ret;

	ret = qtest_start(&q, qemu, CIM_DEVICE_ARGS ",cycle-ps=4000000000");
	fprintf(stderr, "  cycle-ps=4000000000: %s\n",
		ret ? "refused" : "accepted");
	CHECK(ret != 0);
	qtest_stop(&q);
	qtest_cleanup(&q);
	ret = qtest_start(&q, qemu, CIM_DEVICE_ARGS ",cycle-ps=1000000");
	CHECK(ret == 0);
	qtest_stop(&q);
	qtest_cleanup(&q);
}

static int file_contains(const char *path, const char *what)
{
	size_t n;
	char *text = cim_read_file(path, &n), *copy;
	int found;

	if (!text)
		return 0;
	copy = strndup(text, n);
	found = strstr(copy, what) != NULL;
	free(copy);
	free(text);
	return found;
}

/*
 * Issue 15: the chip's arithmetic properties reject values outside their
 * ranges at creation, with one line that names the property; good values
 * read back through RECON and DESIGN, and a guest write to those
 * read-only registers is logged as a guest error.
 */
static void test_chip_properties_are_validated(void)
{
	static const struct {
		const char *props, *names;
	} bad[] = {
		{ ",recon=exact", "recon must be codes or cells" },
		{ ",recon=codes,recon-frac-bits=2", "recon-frac-bits applies" },
		{ ",recon=cells,recon-frac-bits=9", "recon-frac-bits 9" },
		{ ",digital-planes=9", "digital-planes 9" },
		{ ",adc-bits-msb=5", "adc-bits-msb 5" },
		{ ",adc-bits-msb=17", "adc-bits-msb 17" },
		{ ",adc-bits=13,adc-bits-msb=16", "adc-bits-msb 16" },
		{ ",adc-msb-levels=2", "adc-msb-levels 2" },
		{ ",adc-bits-msb=8,adc-msb-levels=16", "adc-msb-levels 16" },
	};
	struct qtest q;
	size_t k;
	int ret;

	for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		char args[256];

		snprintf(args, sizeof(args), CIM_DEVICE_ARGS "%s", bad[k].props);
		ret = qtest_start(&q, qemu, args);
		fprintf(stderr, "  %s: %s\n", bad[k].props,
			ret ? "refused" : "accepted");
		CHECK(ret != 0);
		CHECK(file_contains(q.stderr_path, bad[k].names));
		qtest_stop(&q);
		qtest_cleanup(&q);
	}
	if (start(&q, ",recon=cells,recon-frac-bits=3,digital-planes=1,"
		  "adc-bits-msb=8,adc-msb-levels=2", "-d guest_errors")) {
		CHECK(0);
		qtest_stop(&q);
		qtest_cleanup(&q);
		return;
	}
	CHECK(rd(&q, POLAR_CIM_REG_RECON) ==
	      (POLAR_CIM_RECON_CELLS | 3u << POLAR_CIM_RECON_FRAC_SHIFT));
	CHECK(rd(&q, POLAR_CIM_REG_DESIGN) ==
	      (1u | 8u << POLAR_CIM_DESIGN_MSB_BITS_SHIFT |
	       2u << POLAR_CIM_DESIGN_MSB_LEVELS_SHIFT));
	qtest_writel(&q, cim_reg(POLAR_CIM_REG_DESIGN), 0x0f);
	CHECK(rd(&q, POLAR_CIM_REG_DESIGN) ==
	      (1u | 8u << POLAR_CIM_DESIGN_MSB_BITS_SHIFT |
	       2u << POLAR_CIM_DESIGN_MSB_LEVELS_SHIFT));
	CHECK(!q.failed);
	qtest_stop(&q);
	CHECK(file_contains(q.stderr_path, "to read-only or unknown register "
			    "0x50"));
	qtest_cleanup(&q);
}

/*
 * Finding 14: the datasheet says reads of unknown offsets are logged as
 * guest errors; offsets 0x2c-0x3f of a queue's registers are such.
 */
static void test_unknown_queue_register_is_logged(void)
{
	struct qtest q;

	if (start(&q, "", "-d guest_errors")) {
		CHECK(0);
		qtest_stop(&q);
		qtest_cleanup(&q);
		return;
	}
	CHECK(qtest_readl(&q, cim_reg(POLAR_CIM_REG_Q(1, 0x2c))) == 0);
	CHECK(!q.failed);
	qtest_stop(&q);
	CHECK(file_contains(q.stderr_path, "unknown queue 1 register 0x2c"));
	qtest_cleanup(&q);
}

int main(void)
{
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";

	snprintf(qemu, sizeof(qemu), "%s", getenv("POLAR_QEMU") ?
		 getenv("POLAR_QEMU") : "");
	if (!qemu[0])
		snprintf(qemu, sizeof(qemu), "%s/qemu-build/qemu-system-x86_64",
			 build);
	snprintf(fw_path, sizeof(fw_path), "%s", getenv("POLAR_FW") ?
		 getenv("POLAR_FW") : "");
	if (!fw_path[0])
		snprintf(fw_path, sizeof(fw_path), "%s/firmware/polar_cim.fw",
			 build);
	fw = cim_read_file(fw_path, &fw_size);
	if (!fw || access(qemu, X_OK)) {
		fprintf(stderr, "test_device: need %s and %s\n", qemu, fw_path);
		return 1;
	}
	RUN(test_unplug_during_delayed_completion);
	RUN(test_unplug_during_matmul);
	RUN(test_power_on_reset_stops_matmul);
	RUN(test_ctrl_reset_stops_matmul);
	RUN(test_huge_matmul_is_refused);
	RUN(test_batch_bound_is_the_registers);
	RUN(test_commands_need_booted_firmware);
	RUN(test_cycle_ps_is_validated);
	RUN(test_unknown_queue_register_is_logged);
	RUN(test_chip_properties_are_validated);
	return unit_summary();
}
