// SPDX-License-Identifier: MIT
/* cim_qtest: polar-cim helpers over qtest (see cim_qtest.h). */
#define _GNU_SOURCE
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cim_qtest.h"

static uint32_t cfg_addr(uint32_t reg)
{
	return 0x80000000u | (CIM_SLOT << 11) | (reg & 0xfc);
}

void cim_pci_setup(struct qtest *q)
{
	qtest_outl(q, 0xcf8, cfg_addr(0x10));
	qtest_outl(q, 0xcfc, CIM_BAR0);
	qtest_outl(q, 0xcf8, cfg_addr(0x04));
	qtest_outl(q, 0xcfc, 0x6);	/* memory space, bus master */
}

uint32_t cim_boot_firmware(struct qtest *q, const void *image, size_t size)
{
	int64_t deadline = qtest_now_ms() + 10000;
	uint32_t st;

	qtest_memwrite(q, CIM_FW_ADDR, image, size);
	qtest_writel(q, cim_reg(POLAR_CIM_REG_FW_ADDR_LO), CIM_FW_ADDR);
	qtest_writel(q, cim_reg(POLAR_CIM_REG_FW_ADDR_HI), 0);
	qtest_writel(q, cim_reg(POLAR_CIM_REG_FW_SIZE), size);
	qtest_writel(q, cim_reg(POLAR_CIM_REG_FW_CTRL), POLAR_CIM_FW_CTRL_BOOT);
	do {
		st = qtest_readl(q, cim_reg(POLAR_CIM_REG_FW_STATUS));
	} while (!st && !q->failed && qtest_now_ms() < deadline &&
		 !usleep(1000));
	return st;
}

void cim_queue_setup(struct qtest *q, unsigned qid, uint32_t size)
{
	qtest_memset(q, CIM_CQ(qid), 0, size * sizeof(struct polar_cim_cqe));
	qtest_writel(q, cim_reg(POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SQ_BASE_LO)),
		     CIM_SQ(qid));
	qtest_writel(q, cim_reg(POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SQ_BASE_HI)),
		     0);
	qtest_writel(q, cim_reg(POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CQ_BASE_LO)),
		     CIM_CQ(qid));
	qtest_writel(q, cim_reg(POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CQ_BASE_HI)),
		     0);
	qtest_writel(q, cim_reg(POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SIZE)), size);
	qtest_writel(q, cim_reg(POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CTRL)),
		     POLAR_CIM_Q_CTRL_ENABLE);
}

void cim_submit(struct qtest *q, unsigned qid, uint32_t size,
		uint32_t *tail, const struct polar_cim_sqe *in)
{
	struct polar_cim_sqe e = *in;

	e.tag = htole32(e.tag);
	e.tile0 = htole16(e.tile0);
	e.in_dim = htole32(e.in_dim);
	e.out_dim = htole32(e.out_dim);
	e.batch = htole32(e.batch);
	e.adc_fs_q8 = htole32(e.adc_fs_q8);
	e.rows_per_conv = htole16(e.rows_per_conv);
	e.job_seed = htole32(e.job_seed);
	e.src_sgl = htole64(e.src_sgl);
	e.dst_sgl = htole64(e.dst_sgl);
	e.src_nsge = htole16(e.src_nsge);
	e.dst_nsge = htole16(e.dst_nsge);
	qtest_memwrite(q, CIM_SQ(qid) + (uint64_t)*tail * sizeof(e), &e,
		       sizeof(e));
	*tail = (*tail + 1) % size;
	qtest_writel(q, cim_reg(POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SQ_TAIL)),
		     *tail);
}

void cim_sgl_one(struct qtest *q, uint64_t sgl_addr, uint64_t addr,
		 uint32_t len)
{
	struct polar_cim_sge sge = {
		.addr = htole64(addr),
		.len = htole32(len),
	};

	qtest_memwrite(q, sgl_addr, &sge, sizeof(sge));
}

int cim_wait_cqe(struct qtest *q, unsigned qid, uint32_t head, int phase,
		 int timeout_ms, struct polar_cim_cqe *out)
{
	int64_t deadline = qtest_now_ms() + timeout_ms;

	while (!q->failed) {
		qtest_memread(q, CIM_CQ(qid) + head * sizeof(*out), out,
			      sizeof(*out));
		if ((le16toh(out->phase) & 1) == phase)
			return le16toh(out->status);
		if (qtest_now_ms() > deadline)
			break;
		usleep(2000);
	}
	return -1;
}

void *cim_read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(n);
		if (buf && fread(buf, 1, n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*size = n;
	}
	fclose(f);
	return buf;
}
