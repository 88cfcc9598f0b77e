// SPDX-License-Identifier: MIT
/*
 * abi_fuzz: a seeded, reproducible fuzzer of polar_accel.ko's user ABI, run
 * in the VM. Several processes, each with its own accel file, do random
 * operations: valid structures with one corrupted field, random bytes for
 * every ioctl number of the driver (with the right and wrong sizes and
 * directions) and for some outside it, random handles, huge sizes,
 * unaligned mmap offsets, io_uring URING_CMD SQEs with random payloads,
 * with close/reopen, fork and munmap of BO mappings mixed in.
 *
 * After the run it checks that the kernel log gained no oops, BUG,
 * WARNING, KASAN/UBSAN report or hung task, and that a normal job still
 * completes. It prints one line
 *	fuzz ops=<n> seed=<s> errors_by_errno=0:<n>,EINVAL:<n>,...
 * where ops counts the operations of all processes (forked children's
 * included) and errors_by_errno the results of those operations and of
 * the io_uring completions (cqes= on the second line). Of the operations,
 * the ioctl calls on the accel file and the URING_CMD SQEs are counted
 * apart (ioctls= and uring_sqes= on the second line): make stress's
 * figure of fuzzed calls. The sequence of operations follows from the
 * seed; their results depend on timing.
 *
 * Usage: abi_fuzz [-s SEED] [-n OPS] [-p PROCS] [-t SECONDS]
 * (defaults: seed 1, 20000 ops over 3 processes, 25 s cap; without options
 * polar_fuzz_{seed,ops,procs,secs}= on the kernel command line set them).
 * Built standalone (make stress) and, with ABI_FUZZ_NO_MAIN, included by
 * tests/selftests/polar_accel_fuzz_test.c for make check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drm/polar_accel.h"
#include "polar/polar.h"
#include "polar_cim_hw.h"

#define AF_MAX_ERRNO	160
#define AF_POOL		4	/* BOs per file that jobs use */
#define AF_POOL_SIZE	(64 * 1024)
#define AF_MAX_CMDS	64
#define AF_PENDING	16

/* Shared between the fuzzing processes (MAP_SHARED | MAP_ANONYMOUS). */
struct af_shared {
	uint64_t ops;
	uint64_t by_errno[AF_MAX_ERRNO + 1];	/* last: errno out of range */
	uint64_t jobs_submitted, jobs_ended;
	uint64_t ioctls;	/* ioctl() calls on the accel file */
	uint64_t forks, reopens, munmaps, uring_sqes, cqes;
	uint64_t deadline_ns;
};

struct af_result {
	uint64_t seed, ops, jobs_submitted, jobs_ended, ioctls;
	uint64_t forks, reopens, munmaps, uring_sqes, cqes;
	int crashed;		/* processes that died of a signal or failed */
	int klog_new;		/* new kernel-log problem markers */
	int final_job;		/* status of the normal job after the run */
	double secs;
	char errors[1024];	/* errors_by_errno=... */
};

struct af_bo {
	uint32_t handle;
	uint64_t size, offset;
	uint8_t *map;
};

struct af_proc {
	uint64_t rng;
	int fd;
	bool ring_ok, is_child;
	struct io_uring ring;
	struct af_bo pool[AF_POOL];
	uint64_t pending[AF_PENDING];
	unsigned int npending;
	struct drm_polar_accel_cmd cmds[AF_MAX_CMDS];
	uint64_t buf[16384 / 8];	/* random ioctl argument, 16 KiB */
	struct af_shared *sh;
	uint32_t queues, tiles;
};

static uint64_t af_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t af_below(struct af_proc *p, uint32_t n)
{
	return n ? (uint32_t)(af_next(&p->rng) % n) : 0;
}

static uint64_t af_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* An "interesting" 64-bit value: boundaries, powers of two, random. */
static uint64_t af_value(struct af_proc *p)
{
	static const uint64_t v[] = {
		0, 1, 2, 3, 4, 7, 8, 15, 16, 63, 64, 65, 255, 256, 4095, 4096,
		4097, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000,
		0xffffffff, 0x100000000ull, DRM_POLAR_ACCEL_MAX_BO_SIZE,
		DRM_POLAR_ACCEL_MAX_BO_SIZE + 1, 1ull << 62, 1ull << 63,
		~0ull, ~0ull - 4095, (uint64_t)-1 >> 1,
	};

	switch (af_below(p, 4)) {
	case 0:
		return af_next(&p->rng);
	case 1:
		return 1ull << af_below(p, 64);
	default:
		return v[af_below(p, sizeof(v) / sizeof(v[0]))];
	}
}

/* The result of an operation, or (@cqe) of an io_uring completion. */
static void af_result(struct af_proc *p, int err, bool cqe)
{
	if (err < 0)
		err = -err;
	if (err > AF_MAX_ERRNO)
		err = AF_MAX_ERRNO;
	__atomic_fetch_add(&p->sh->by_errno[err], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(cqe ? &p->sh->cqes : &p->sh->ops, 1,
			   __ATOMIC_RELAXED);
}

static void af_count(struct af_proc *p, int err)
{
	af_result(p, err, false);
}

static int af_ioctl(struct af_proc *p, unsigned long nr, void *arg)
{
	__atomic_fetch_add(&p->sh->ioctls, 1, __ATOMIC_RELAXED);
	return ioctl(p->fd, nr, arg) ? errno : 0;
}

static void af_gem_close(int fd, uint32_t handle)
{
	struct drm_gem_close c = { .handle = handle };

	ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c);
}

static uint64_t af_param(int fd, uint32_t prm)
{
	struct drm_polar_accel_get_param a = { .param = prm };

	return ioctl(fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM, &a) ? 0 : a.value;
}

static int af_open(void)
{
	char path[64];

	if (polar_find_device(NULL, 0, path, sizeof(path)))
		return -1;
	return open(path, O_RDWR | O_CLOEXEC);
}

static void af_pool_map(struct af_proc *p, struct af_bo *b)
{
	void *m = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       p->fd, b->offset);

	b->map = m == MAP_FAILED ? NULL : m;
}

static void af_pool_create(struct af_proc *p)
{
	unsigned int i;

	for (i = 0; i < AF_POOL; i++) {
		struct drm_polar_accel_bo_create c = { .size = AF_POOL_SIZE };
		struct drm_polar_accel_bo_info in = { 0 };
		struct af_bo *b = &p->pool[i];

		memset(b, 0, sizeof(*b));
		if (ioctl(p->fd, DRM_IOCTL_POLAR_ACCEL_BO_CREATE, &c))
			continue;
		in.handle = c.handle;
		if (ioctl(p->fd, DRM_IOCTL_POLAR_ACCEL_BO_INFO, &in))
			continue;
		b->handle = c.handle;
		b->size = in.size;
		b->offset = in.mmap_offset;
		af_pool_map(p, b);
		if (b->map)
			memset(b->map, (int)i, b->size);
	}
}

static void af_pool_unmap(struct af_proc *p)
{
	unsigned int i;

	for (i = 0; i < AF_POOL; i++)
		if (p->pool[i].map) {
			munmap(p->pool[i].map, p->pool[i].size);
			p->pool[i].map = NULL;
		}
}

static void af_file_open(struct af_proc *p)
{
	p->fd = af_open();
	p->npending = 0;
	af_pool_create(p);
	p->ring_ok = !p->is_child &&
		     !io_uring_queue_init(32, &p->ring, IORING_SETUP_SQE128);
}

static void af_file_close(struct af_proc *p)
{
	af_pool_unmap(p);
	if (p->ring_ok)
		io_uring_queue_exit(&p->ring);	/* may cancel jobs in flight */
	p->ring_ok = false;
	close(p->fd);	/* with jobs in flight and BOs still held */
}

/* A valid command on the pool's BOs (what the library would send). */
static void af_valid_cmd(struct af_proc *p, struct drm_polar_accel_cmd *c)
{
	uint32_t in = 1 + af_below(p, 64), out = 1 + af_below(p, 32);
	uint32_t batch = 1 + af_below(p, 4);
	struct af_bo *a = &p->pool[af_below(p, AF_POOL)];
	struct af_bo *b = &p->pool[af_below(p, AF_POOL)];

	memset(c, 0, sizeof(*c));
	switch (af_below(p, 5)) {
	case 0:
		c->opcode = POLAR_CIM_OP_NOP;
		break;
	case 1:
		c->opcode = POLAR_CIM_OP_FENCE;
		break;
	case 2:
		c->opcode = POLAR_CIM_OP_READ_COUNTERS;
		c->dst = (struct drm_polar_accel_buf){ b->handle, 0, 0, 64 };
		break;
	case 3:
		c->opcode = POLAR_CIM_OP_PROGRAM_TILES;
		c->wfmt = af_below(p, 3);
		c->tile0 = af_below(p, p->tiles ? p->tiles : 1);
		c->in_dim = in;
		c->out_dim = out;
		c->src = (struct drm_polar_accel_buf){ a->handle, 0, 0,
						       (uint64_t)in * out };
		break;
	default:
		c->opcode = POLAR_CIM_OP_MATMUL;
		c->wfmt = af_below(p, 3);
		c->xfmt = af_below(p, 3);
		c->tile0 = af_below(p, p->tiles ? p->tiles : 1);
		c->in_dim = in;
		c->out_dim = out;
		c->batch = batch;
		c->job_seed = (uint32_t)af_next(&p->rng);
		c->src = (struct drm_polar_accel_buf){ a->handle, 0, 0,
						       (uint64_t)batch * in };
		c->dst = (struct drm_polar_accel_buf){
			b->handle, 0, 0, (uint64_t)batch * out * 4 };
		break;
	}
}

/* Overwrite one field-sized, field-aligned piece of @obj with a value. */
static void af_corrupt(struct af_proc *p, void *obj, size_t len)
{
	static const size_t widths[] = { 1, 2, 4, 8 };
	size_t w = widths[af_below(p, 4)], off;
	uint64_t v = af_value(p);

	if (w > len)
		w = len;
	off = af_below(p, (uint32_t)(len / w)) * w;
	memcpy((uint8_t *)obj + off, &v, w);	/* little-endian low bytes */
}

static void af_remember(struct af_proc *p, uint64_t seqno)
{
	p->pending[p->npending++ % AF_PENDING] = seqno;
	__atomic_fetch_add(&p->sh->jobs_submitted, 1, __ATOMIC_RELAXED);
}

/* SUBMIT of 1..4 valid commands with (usually) one corrupted field. */
static void op_submit(struct af_proc *p, bool corrupt)
{
	struct drm_polar_accel_submit s = { 0 };
	uint32_t n = 1 + af_below(p, 4), i;
	int err;

	for (i = 0; i < n; i++)
		af_valid_cmd(p, &p->cmds[i]);
	s.queue = af_below(p, p->queues ? p->queues : 1);
	s.num_cmds = n;
	s.cmds = (uintptr_t)p->cmds;
	if (corrupt) {
		if (af_below(p, 3) == 0)
			af_corrupt(p, &s, sizeof(s));
		else
			af_corrupt(p, &p->cmds[af_below(p, n)],
				   sizeof(p->cmds[0]));
	}
	err = af_ioctl(p, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s);
	if (!err)
		af_remember(p, s.seqno);
	af_count(p, err);
}

static void af_reap(struct af_proc *p)
{
	struct io_uring_cqe *cqe;

	while (p->ring_ok && !io_uring_peek_cqe(&p->ring, &cqe)) {
		if (cqe->user_data == 1)
			__atomic_fetch_add(&p->sh->jobs_ended, 1,
					   __ATOMIC_RELAXED);
		af_result(p, cqe->res, true);
		io_uring_cqe_seen(&p->ring, cqe);
	}
}

/* URING_CMD SQEs: a corrupted valid payload, random bytes, random cmd_op. */
static void op_uring(struct af_proc *p)
{
	struct drm_polar_accel_uring_submit u = { 0 };
	struct io_uring_sqe *sqe;
	uint32_t n = 1 + af_below(p, 3), i, kind = af_below(p, 4);

	if (!p->ring_ok) {
		op_submit(p, true);
		return;
	}
	af_reap(p);
	sqe = io_uring_get_sqe(&p->ring);
	if (!sqe) {
		io_uring_submit(&p->ring);
		return;
	}
	for (i = 0; i < n; i++)
		af_valid_cmd(p, &p->cmds[i]);
	u.queue = af_below(p, p->queues ? p->queues : 1);
	u.num_cmds = n;
	u.cmds = (uintptr_t)p->cmds;
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, p->fd, NULL, 0, 0);
	sqe->cmd_op = DRM_POLAR_ACCEL_URING_SUBMIT;
	memcpy(sqe->cmd, &u, sizeof(u));
	switch (kind) {
	case 0:		/* valid */
		break;
	case 1:		/* one field of the payload or of a command */
		if (af_below(p, 2))
			af_corrupt(p, sqe->cmd, sizeof(u));
		else
			af_corrupt(p, &p->cmds[af_below(p, n)],
				   sizeof(p->cmds[0]));
		break;
	case 2:		/* random bytes, the cmds pointer left valid or not */
		for (i = 0; i < sizeof(u) / 8; i++)
			((uint64_t *)sqe->cmd)[i] = af_next(&p->rng);
		if (af_below(p, 2))
			memcpy(sqe->cmd + 16, &u.cmds, 8);
		break;
	default:	/* an unknown cmd_op */
		sqe->cmd_op = (uint32_t)af_value(p);
		break;
	}
	io_uring_sqe_set_data64(sqe, kind == 0 ? 1 : 2);
	__atomic_fetch_add(&p->sh->uring_sqes, 1, __ATOMIC_RELAXED);
	if (kind == 0)
		__atomic_fetch_add(&p->sh->jobs_submitted, 1,
				   __ATOMIC_RELAXED);
	if (io_uring_submit(&p->ring) < 0)
		af_count(p, EIO);
	af_reap(p);
}

/* Random bytes for an ioctl number of the driver, the DRM core or none. */
static void op_random_ioctl(struct af_proc *p)
{
	static const unsigned long driver[] = {
		DRM_IOCTL_POLAR_ACCEL_GET_PARAM, DRM_IOCTL_POLAR_ACCEL_BO_CREATE,
		DRM_IOCTL_POLAR_ACCEL_BO_INFO, DRM_IOCTL_POLAR_ACCEL_SUBMIT,
		DRM_IOCTL_POLAR_ACCEL_WAIT,
	};
	/* Core ioctls whose arguments hold no pointer the kernel writes to. */
	static const unsigned long core[] = {
		DRM_IOCTL_GET_CAP, DRM_IOCTL_SET_CLIENT_CAP, DRM_IOCTL_GEM_CLOSE,
		DRM_IOCTL_GEM_FLINK, DRM_IOCTL_GEM_OPEN,
		DRM_IOCTL_PRIME_HANDLE_TO_FD, DRM_IOCTL_PRIME_FD_TO_HANDLE,
		DRM_IOCTL_SET_MASTER, DRM_IOCTL_DROP_MASTER,
	};
	unsigned long nr;
	size_t i, len;
	int err;

	switch (af_below(p, 6)) {
	case 0: case 1: case 2:	/* the driver's, exactly */
		nr = driver[af_below(p, 5)];
		break;
	case 3:	/* the driver's numbers with another size or direction */
		nr = _IOC(af_below(p, 4), DRM_IOCTL_BASE,
			  DRM_COMMAND_BASE + af_below(p, 5),
			  af_below(p, 3) ? af_below(p, 129) : af_below(p, 16384));
		break;
	case 4:	/* the DRM core, or driver numbers the driver does not have */
		nr = af_below(p, 2) ? core[af_below(p, sizeof(core) /
						    sizeof(core[0]))] :
			_IOC(af_below(p, 4), DRM_IOCTL_BASE,
			     DRM_COMMAND_BASE + 5 + af_below(p, 0x5b),
			     af_below(p, 256));
		break;
	default:	/* not DRM at all */
		nr = _IOC(af_below(p, 4), 'x' + af_below(p, 3),
			  af_below(p, 256), af_below(p, 256));
		break;
	}
	len = _IOC_SIZE(nr);
	for (i = 0; i < (len + 7) / 8; i++)
		p->buf[i] = af_below(p, 3) ? af_value(p) : 0;
	if (nr == DRM_IOCTL_POLAR_ACCEL_SUBMIT && af_below(p, 2)) {
		/* a plausible command array behind the pointer */
		struct drm_polar_accel_submit s;

		for (i = 0; i < AF_MAX_CMDS; i++)
			af_valid_cmd(p, &p->cmds[i]);
		memcpy(&s, p->buf, sizeof(s));
		s.cmds = (uintptr_t)p->cmds;
		s.num_cmds &= 0x7f;
		memcpy(p->buf, &s, sizeof(s));
	}
	if (nr == DRM_IOCTL_POLAR_ACCEL_BO_CREATE) {
		struct drm_polar_accel_bo_create c;

		/* Keep what can be created small; huge sizes stay invalid. */
		memcpy(&c, p->buf, sizeof(c));
		if (c.size > AF_POOL_SIZE)
			c.size |= 1ull << 40;
		memcpy(p->buf, &c, sizeof(c));
	}
	if (nr == DRM_IOCTL_POLAR_ACCEL_WAIT) {
		struct drm_polar_accel_wait w;

		memcpy(&w, p->buf, sizeof(w));
		if (w.timeout_ns > 1000000 || w.timeout_ns < 0)
			w.timeout_ns = af_below(p, 2) ? -1 : 1000;
		memcpy(p->buf, &w, sizeof(w));
	}
	err = af_ioctl(p, nr, p->buf);
	if (!err) {
		union {
			struct drm_polar_accel_bo_create c;
			struct drm_gem_open o;
			struct drm_prime_handle h;
			struct drm_polar_accel_submit s;
		} u;

		memcpy(&u, p->buf, sizeof(u));
		if (nr == DRM_IOCTL_POLAR_ACCEL_BO_CREATE)
			af_gem_close(p->fd, u.c.handle);
		else if (nr == DRM_IOCTL_GEM_OPEN)
			af_gem_close(p->fd, u.o.handle);
		else if (nr == DRM_IOCTL_PRIME_HANDLE_TO_FD)
			close(u.h.fd);
		else if (nr == DRM_IOCTL_PRIME_FD_TO_HANDLE)
			af_gem_close(p->fd, u.h.handle);
		else if (nr == DRM_IOCTL_POLAR_ACCEL_SUBMIT)
			af_remember(p, u.s.seqno);
	}
	af_count(p, err);
}

static void op_wait(struct af_proc *p)
{
	struct drm_polar_accel_wait w = { 0 };
	int err;

	if (p->npending && af_below(p, 3)) {
		w.seqno = p->pending[af_below(p, p->npending < AF_PENDING ?
					      p->npending : AF_PENDING)];
		w.timeout_ns = af_below(p, 2) ? 0 : 200000;
	} else {
		w.seqno = af_value(p);
		w.timeout_ns = (int64_t)af_below(p, 1000);
	}
	if (af_below(p, 4) == 0)
		af_corrupt(p, &w.flags, 16);	/* flags, status, cmd_status, pad */
	err = af_ioctl(p, DRM_IOCTL_POLAR_ACCEL_WAIT, &w);
	if (!err)
		__atomic_fetch_add(&p->sh->jobs_ended, 1, __ATOMIC_RELAXED);
	af_count(p, err);
}

static void op_bo_create(struct af_proc *p)
{
	struct drm_polar_accel_bo_create c = { 0 };
	int err;

	c.size = af_below(p, 2) ? af_value(p) : af_below(p, 3 * 4096);
	c.flags = af_below(p, 3) ? 0 : (uint32_t)af_value(p);
	c.handle = (uint32_t)af_value(p);	/* out: ignored */
	err = af_ioctl(p, DRM_IOCTL_POLAR_ACCEL_BO_CREATE, &c);
	if (!err) {
		struct drm_polar_accel_bo_info in = { .handle = c.handle };

		if (!ioctl(p->fd, DRM_IOCTL_POLAR_ACCEL_BO_INFO, &in) &&
		    in.size <= AF_POOL_SIZE && af_below(p, 2)) {
			uint8_t *m = mmap(NULL, in.size, PROT_READ | PROT_WRITE,
					  MAP_SHARED, p->fd, in.mmap_offset);

			if (m != MAP_FAILED) {
				m[0] = 1;
				m[in.size - 1] = 2;
				/* closed while mapped: the map keeps it */
				af_gem_close(p->fd, c.handle);
				m[in.size / 2] = 3;
				munmap(m, in.size);
				af_count(p, err);
				return;
			}
		}
		af_gem_close(p->fd, c.handle);
	}
	af_count(p, err);
}

static void op_bo_info(struct af_proc *p)
{
	struct drm_polar_accel_bo_info in = { 0 };

	in.handle = af_below(p, 2) ? af_below(p, 64) : (uint32_t)af_value(p);
	if (af_below(p, 4) == 0)
		in.pad = (uint32_t)af_value(p);
	af_count(p, af_ioctl(p, DRM_IOCTL_POLAR_ACCEL_BO_INFO, &in));
}

static void op_gem_close(struct af_proc *p)
{
	struct drm_gem_close c = { 0 };

	/* Never the pool's own handles: their closing is op_reopen's job. */
	c.handle = 64 + af_below(p, 64);
	if (af_below(p, 2))
		c.handle = (uint32_t)af_value(p);
	if (c.handle < 64)
		c.handle += 64;
	c.pad = af_below(p, 4) ? 0 : (uint32_t)af_value(p);
	af_count(p, af_ioctl(p, DRM_IOCTL_GEM_CLOSE, &c));
}

static void op_get_param(struct af_proc *p)
{
	struct drm_polar_accel_get_param a = { 0 };

	a.param = af_below(p, 2) ? af_below(p, 30) : (uint32_t)af_value(p);
	a.pad = af_below(p, 4) ? 0 : (uint32_t)af_value(p);
	af_count(p, af_ioctl(p, DRM_IOCTL_POLAR_ACCEL_GET_PARAM, &a));
}

/* mmap at random and unaligned offsets and sizes; munmap of pool maps. */
static void op_mmap(struct af_proc *p)
{
	struct af_bo *b = &p->pool[af_below(p, AF_POOL)];
	uint64_t off, len;
	void *m;

	switch (af_below(p, 4)) {
	case 0:	/* a real BO, unaligned or beyond its end */
		off = b->offset + af_below(p, 2 * AF_POOL_SIZE);
		len = 1 + af_below(p, 4 * AF_POOL_SIZE);
		break;
	case 1:	/* a page-aligned random offset */
		off = af_value(p) & ~4095ull;
		len = 4096;
		break;
	case 2:	/* munmap a pool mapping, map it again later */
		if (b->map) {
			munmap(b->map, b->size);
			b->map = NULL;
			__atomic_fetch_add(&p->sh->munmaps, 1,
					   __ATOMIC_RELAXED);
		} else {
			af_pool_map(p, b);
		}
		af_count(p, 0);
		return;
	default:	/* half of a pool BO, then a partial munmap */
		off = b->offset;
		len = b->size ? b->size : 4096;
		break;
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, off);
	if (m == MAP_FAILED) {
		af_count(p, errno);
		return;
	}
	af_count(p, 0);
	if (off == b->offset && len <= b->size) {
		((volatile uint8_t *)m)[0] = 0x5a;
		munmap(m, 4096);	/* a hole in the middle of a mapping */
		if (len > 4096)
			((volatile uint8_t *)m)[len - 1] = 0xa5;
		if (len > 4096)
			munmap((uint8_t *)m + 4096, len - 4096);
	} else {
		munmap(m, len);
	}
}

static void op_reopen(struct af_proc *p)
{
	__atomic_fetch_add(&p->sh->reopens, 1, __ATOMIC_RELAXED);
	af_file_close(p);
	af_file_open(p);
	af_count(p, p->fd < 0 ? ENODEV : 0);
}

static void af_loop(struct af_proc *p, uint64_t ops, bool may_fork);

/* A child on the same file (BOs, pending jobs), without the ring. */
static void op_fork(struct af_proc *p)
{
	pid_t pid;
	int status;

	if (p->is_child) {
		af_count(p, 0);
		return;
	}
	__atomic_fetch_add(&p->sh->forks, 1, __ATOMIC_RELAXED);
	pid = fork();
	if (pid < 0) {
		af_count(p, errno);
		return;
	}
	if (pid == 0) {
		p->is_child = true;
		p->ring_ok = false;	/* the parent's ring is not ours */
		p->rng ^= 0x243f6a8885a308d3ull;
		af_loop(p, 20 + af_below(p, 40), false);
		if (af_below(p, 2))
			close(p->fd);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		af_count(p, ECHILD);
	else
		af_count(p, 0);
}

static void af_loop(struct af_proc *p, uint64_t ops, bool may_fork)
{
	uint64_t i;

	for (i = 0; i < ops; i++) {
		uint32_t r = af_below(p, 100);

		if (p->fd < 0) {
			op_reopen(p);
			continue;
		}
		if (!(i & 63) && af_now_ns() > p->sh->deadline_ns)
			break;
		if (r < 22)
			op_submit(p, true);
		else if (r < 34)
			op_uring(p);
		else if (r < 50)
			op_random_ioctl(p);
		else if (r < 58)
			op_wait(p);
		else if (r < 64)
			op_bo_create(p);
		else if (r < 68)
			op_bo_info(p);
		else if (r < 72)
			op_gem_close(p);
		else if (r < 80)
			op_mmap(p);
		else if (r < 84)
			op_get_param(p);
		else if (r < 86)
			op_reopen(p);
		else if (r < 88 && may_fork)
			op_fork(p);
		else
			op_submit(p, false);	/* real traffic */
	}
}

static void af_worker(struct af_shared *sh, uint64_t seed, unsigned int idx,
		      uint64_t ops)
{
	struct af_proc *p = calloc(1, sizeof(*p));

	if (!p)
		_exit(2);
	p->sh = sh;
	p->rng = seed * 0x100000001b3ull + idx + 1;
	af_file_open(p);
	if (p->fd < 0)
		_exit(3);
	p->queues = af_param(p->fd, DRM_POLAR_ACCEL_PARAM_NUM_QUEUES);
	p->tiles = af_param(p->fd, DRM_POLAR_ACCEL_PARAM_NUM_TILES);
	af_loop(p, ops, true);
	if (p->ring_ok) {	/* let the ring's last CQEs arrive */
		struct __kernel_timespec ts = { .tv_nsec = 100000000 };
		struct io_uring_cqe *cqe;

		io_uring_submit(&p->ring);
		while (!io_uring_wait_cqe_timeout(&p->ring, &cqe, &ts)) {
			if (cqe->user_data == 1)
				__atomic_fetch_add(&sh->jobs_ended, 1,
						   __ATOMIC_RELAXED);
			af_result(p, cqe->res, true);
			io_uring_cqe_seen(&p->ring, cqe);
		}
	}
	af_file_close(p);
	free(p);
	_exit(0);
}

/* Kernel-log markers of a kernel problem, counted over the whole log. */
static int af_klog_problems(void)
{
	static const char *const pat[] = {
		"WARNING:", "BUG:", "Oops", "Call Trace", "general protection",
		"refcount_t:", "KASAN", "UBSAN", "kfence", "blocked for more than",
		"hung_task", "Kernel panic", "list_add corruption",
		"list_del corruption",
	};
	int size = klogctl(10, NULL, 0), n, count = 0;
	size_t k;
	char *buf;

	if (size <= 0)
		return 0;
	buf = calloc(1, size + 1);
	if (!buf)
		return 0;
	n = klogctl(3, buf, size);
	if (n > 0) {
		buf[n] = 0;
		for (k = 0; k < sizeof(pat) / sizeof(pat[0]); k++) {
			const char *s = buf;

			while ((s = strstr(s, pat[k]))) {
				count++;
				s++;
			}
		}
	}
	free(buf);
	return count;
}

/* A normal job after the storm: NOP then READ_COUNTERS, through WAIT. */
static int af_final_job(void)
{
	struct drm_polar_accel_bo_create c = { .size = 4096 };
	struct drm_polar_accel_cmd cmds[2] = {
		{ .opcode = POLAR_CIM_OP_NOP },
		{ .opcode = POLAR_CIM_OP_READ_COUNTERS },
	};
	struct drm_polar_accel_submit s = { .num_cmds = 2 };
	struct drm_polar_accel_wait w = { 0 };
	int fd = af_open(), ret;
	struct timespec now;

	/* WAIT takes an absolute CLOCK_MONOTONIC deadline: 20 s from now. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	w.timeout_ns = (now.tv_sec + 20) * 1000000000ll + now.tv_nsec;

	if (fd < 0)
		return -ENODEV;
	if (ioctl(fd, DRM_IOCTL_POLAR_ACCEL_BO_CREATE, &c)) {
		ret = -errno;
		goto out;
	}
	cmds[1].dst = (struct drm_polar_accel_buf){ c.handle, 0, 0, 64 };
	s.cmds = (uintptr_t)cmds;
	if (ioctl(fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s)) {
		ret = -errno;
		goto out;
	}
	w.seqno = s.seqno;
	ret = ioctl(fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w) ? -errno : w.status;
out:
	close(fd);
	return ret;
}

static const char *af_errname(int e)
{
	const char *n;

	if (e == 0)
		return "0";
	if (e >= AF_MAX_ERRNO)
		return "other";
	n = strerrorname_np(e);
	return n ? n : "?";
}

/*
 * Runs @nproc processes of @ops_total / @nproc operations each, for at most
 * @max_secs, then the checks. Returns 0 when nothing crashed, the kernel
 * log is clean and the final job succeeded.
 */
static int abi_fuzz_run(uint64_t seed, unsigned int nproc, uint64_t ops_total,
			unsigned int max_secs, struct af_result *res)
{
	struct af_shared *sh;
	uint64_t t0 = af_now_ns();
	pid_t pids[64];
	unsigned int i;
	size_t len = 0;
	int klog0 = af_klog_problems(), e;

	memset(res, 0, sizeof(*res));
	res->seed = seed;
	if (nproc > 64)
		nproc = 64;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return -1;
	memset(sh, 0, sizeof(*sh));
	sh->deadline_ns = t0 + (uint64_t)max_secs * 1000000000ull;
	signal(SIGPIPE, SIG_IGN);
	fflush(NULL);
	for (i = 0; i < nproc; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			af_worker(sh, seed, i, ops_total / nproc);
	}
	for (i = 0; i < nproc; i++) {
		int status;

		if (pids[i] < 0 || waitpid(pids[i], &status, 0) != pids[i] ||
		    !WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "abi_fuzz: process %u: status %#x\n",
				i, pids[i] < 0 ? -1 : status);
			res->crashed++;
		}
	}
	res->secs = (af_now_ns() - t0) / 1e9;
	res->ops = sh->ops;
	res->jobs_submitted = sh->jobs_submitted;
	res->jobs_ended = sh->jobs_ended;
	res->forks = sh->forks;
	res->reopens = sh->reopens;
	res->munmaps = sh->munmaps;
	res->ioctls = sh->ioctls;
	res->uring_sqes = sh->uring_sqes;
	res->cqes = sh->cqes;
	len = snprintf(res->errors, sizeof(res->errors), "errors_by_errno=");
	for (e = 0; e <= AF_MAX_ERRNO && len < sizeof(res->errors); e++)
		if (sh->by_errno[e])
			len += snprintf(res->errors + len,
					sizeof(res->errors) - len, "%s%s:%" PRIu64,
					res->errors[len - 1] == '=' ? "" : ",",
					af_errname(e), sh->by_errno[e]);
	munmap(sh, sizeof(*sh));
	res->final_job = af_final_job();
	res->klog_new = af_klog_problems() - klog0;
	printf("fuzz ops=%" PRIu64 " seed=%" PRIu64 " %s\n", res->ops, seed,
	       res->errors);
	printf("fuzz procs=%u secs=%.1f jobs_submitted=%" PRIu64
	       " jobs_ended=%" PRIu64 " ioctls=%" PRIu64
	       " uring_sqes=%" PRIu64 " cqes=%" PRIu64
	       " forks=%" PRIu64
	       " reopens=%" PRIu64 " munmaps=%" PRIu64
	       " crashed=%d kernel_warnings=%d final_job=%d\n",
	       nproc, res->secs, res->jobs_submitted, res->jobs_ended,
	       res->ioctls, res->uring_sqes, res->cqes, res->forks, res->reopens, res->munmaps,
	       res->crashed, res->klog_new, res->final_job);
	fflush(stdout);
	return res->crashed || res->klog_new || res->final_job ? 1 : 0;
}

#ifndef ABI_FUZZ_NO_MAIN
/* name=value on the kernel command line (the VM's init passes no args). */
static uint64_t af_cmdline(const char *name, uint64_t def)
{
	char buf[2048], key[64];
	const char *s;
	ssize_t n;
	int f = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);

	if (f < 0)
		return def;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return def;
	buf[n] = 0;
	snprintf(key, sizeof(key), " %s=", name);
	s = strstr(buf, key);
	return s ? strtoull(s + strlen(key), NULL, 0) : def;
}

int main(int argc, char **argv)
{
	uint64_t seed = af_cmdline("polar_fuzz_seed", 1);
	uint64_t ops = af_cmdline("polar_fuzz_ops", 20000);
	unsigned int nproc = af_cmdline("polar_fuzz_procs", 3);
	unsigned int secs = af_cmdline("polar_fuzz_secs", 25);
	struct af_result res;
	int c, ret;

	while ((c = getopt(argc, argv, "s:n:p:t:")) != -1) {
		switch (c) {
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			ops = strtoull(optarg, NULL, 0);
			break;
		case 'p':
			nproc = strtoul(optarg, NULL, 0);
			break;
		case 't':
			secs = strtoul(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: abi_fuzz [-s SEED] [-n OPS] "
				"[-p PROCS] [-t SECONDS]\n");
			return 2;
		}
	}
	if (!nproc)
		nproc = 1;
	ret = abi_fuzz_run(seed, nproc, ops, secs, &res);
	printf("%s - abi_fuzz seed=%" PRIu64 "\n", ret ? "not ok 1" : "ok 1",
	       seed);
	return ret ? 1 : 0;
}
#endif
