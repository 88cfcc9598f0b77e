/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * polar-cim: a bit-plane compute-in-memory accelerator on PCI.
 *
 * The register map, the queue entries and every command are specified in
 * hw/README.md and encoded in polar_cim_hw.h, which the driver and the
 * library share. The arithmetic lives in cim_engine.c and the firmware
 * image parser in cim_firmware.c: plain C that the library's software
 * backend compiles too, so device and backend are bit-exact.
 *
 * Threading: MMIO handlers run on vCPU threads with the BQL held; they
 * only update registers and wake the worker. The worker thread fetches
 * commands, does all DMA and all engine work, and takes the BQL only to
 * raise interrupts and around each DMA (polar_cim_dma). Lock order: BQL,
 * then s->lock; the worker never holds s->lock while it takes the BQL.
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/module.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qemu/main-loop.h"
#include "qapi/error.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/msix.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "qom/object.h"
#include "trace.h"
#include "polar_cim_hw.h"
#include "cim_command.h"

#define TYPE_POLAR_CIM "polar-cim"
OBJECT_DECLARE_SIMPLE_TYPE(PolarCimState, POLAR_CIM)

#define POLAR_CIM_MAX_BATCH 4096

typedef struct PolarCimQueue {
    uint64_t sq_base;
    uint64_t cq_base;
    uint32_t size;
    bool enabled;
    bool error;
    uint32_t sq_tail;           /* doorbell, written by the driver */
    uint32_t sq_head;           /* next entry the worker fetches */
    uint32_t cq_head;           /* doorbell, written by the driver */
    uint32_t cq_tail;           /* next CQ slot the worker fills */
    uint16_t phase;
    uint64_t fetched;           /* commands fetched since enable */
    uint32_t generation;        /* bumped by enable and disable */
} PolarCimQueue;

struct PolarCimState {
    PCIDevice parent_obj;

    MemoryRegion mmio;

    /* Properties. */
    uint32_t rows;
    uint32_t cols;
    uint32_t tiles;
    uint32_t adc_bits;
    uint32_t rows_per_conv;     /* 0 = rows */
    char *recon;                /* "codes" (NULL) or "cells" */
    uint32_t recon_frac_bits;   /* F of "cells" */
    uint32_t num_queues;
    uint32_t sigma_static;      /* Q16 */
    uint32_t sigma_dynamic;     /* Q16 */
    uint32_t stuck_ppm;
    uint32_t adc_offset_sigma;  /* Q16 LSB */
    uint32_t adc_gain_sigma;    /* Q16 */
    uint64_t seed;
    uint32_t cycle_ps;          /* modelled latency per cycle, 0 = none */
    uint32_t engine_threads;    /* host threads one MATMUL may use */

    /* Registers and queues; guarded by lock. */
    QemuMutex lock;
    QemuCond work_cond;
    uint32_t scratch;
    uint32_t int_status;
    uint32_t int_mask;
    uint32_t error_code;
    uint32_t error_queue;
    bool fatal;
    bool busy;
    uint32_t progress;
    uint32_t heartbeat;
    uint64_t fw_addr;
    uint32_t fw_size;
    uint32_t fw_status;
    uint32_t fw_version;
    bool fw_boot_pending;
    uint32_t fault_mode;
    uint32_t fault_queue;
    uint32_t fault_count;
    uint32_t fault_delay_us;
    uint64_t live[POLAR_CIM_NUM_COUNTERS];      /* after the last command */
    uint64_t latched[POLAR_CIM_NUM_COUNTERS];   /* what the registers show */
    uint64_t commands;
    uint32_t generation;        /* bumped by reset: stale work is dropped */
    bool engine_reset_pending;
    PolarCimQueue queues[POLAR_CIM_MAX_QUEUES];
    unsigned next_queue;        /* round-robin start */

    /* Owned by the worker thread. */
    QemuThread worker;
    bool stopping;
    struct cim_engine *engine;
    struct cim_firmware fw;
    uint8_t *buf_in;
    uint8_t *buf_out;
    size_t buf_in_size;
    size_t buf_out_size;
};

/* ---- interrupts --------------------------------------------------------- */

/* Called with the BQL held and s->lock not held. */
static void polar_cim_raise(PolarCimState *s, uint32_t bits, unsigned vector)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    bool pending, unmasked;

    qemu_mutex_lock(&s->lock);
    s->int_status |= bits;
    pending = s->int_status & ~s->int_mask;
    unmasked = bits & ~s->int_mask;
    qemu_mutex_unlock(&s->lock);

    trace_polar_cim_irq(bits, vector);
    if (msix_enabled(pdev)) {
        if (unmasked) {
            msix_notify(pdev, vector);
        }
    } else {
        pci_set_irq(pdev, pending);
    }
}

/* INTx follows the status; called with the BQL held. */
static void polar_cim_update_intx(PolarCimState *s)
{
    PCIDevice *pdev = PCI_DEVICE(s);

    if (!msix_enabled(pdev)) {
        pci_set_irq(pdev, (s->int_status & ~s->int_mask) != 0);
    }
}

static void polar_cim_raise_from_worker(PolarCimState *s, uint32_t bits,
                                        unsigned vector)
{
    bql_lock();
    polar_cim_raise(s, bits, vector);
    bql_unlock();
}

/* ---- DMA through scatter-gather lists ----------------------------------- */

/*
 * Every DMA of the device. Behind an IOMMU a failed translation raises
 * the IOMMU's fault interrupt, which needs the BQL: without it the first
 * stray access would abort QEMU instead of being reported to the guest.
 * Called without s->lock.
 */
static MemTxResult polar_cim_dma(PolarCimState *s, dma_addr_t addr, void *buf,
                                 dma_addr_t len, DMADirection dir)
{
    bool had_bql = bql_locked();
    MemTxResult r;

    if (!had_bql) {
        bql_lock();
    }
    r = pci_dma_rw(PCI_DEVICE(s), addr, buf, len, dir,
                   MEMTXATTRS_UNSPECIFIED);
    if (!had_bql) {
        bql_unlock();
    }
    return r;
}

/*
 * Copies len bytes between buf and the memory an SG list describes. The
 * list must cover at least len bytes; its reserved fields must be zero.
 */
static int polar_cim_sgl_xfer(PolarCimState *s, uint64_t sgl, uint32_t nsge,
                              uint8_t *buf, size_t len, bool to_device)
{
    size_t done = 0;
    uint32_t i;

    if (nsge == 0 || nsge > POLAR_CIM_MAX_SGE) {
        return POLAR_CIM_ST_BAD_FIELD;
    }
    for (i = 0; i < nsge && done < len; i++) {
        struct polar_cim_sge sge;
        uint64_t chunk;
        MemTxResult r;

        if (polar_cim_dma(s, sgl + i * sizeof(sge), &sge, sizeof(sge),
                          DMA_DIRECTION_TO_DEVICE)) {
            return POLAR_CIM_ST_DMA_ERROR;
        }
        sge.addr = le64_to_cpu(sge.addr);
        sge.len = le32_to_cpu(sge.len);
        if (sge.rsvd || sge.len == 0) {
            return POLAR_CIM_ST_BAD_FIELD;
        }
        chunk = MIN((uint64_t)sge.len, len - done);
        r = polar_cim_dma(s, sge.addr, buf + done, chunk,
                          to_device ? DMA_DIRECTION_TO_DEVICE :
                                      DMA_DIRECTION_FROM_DEVICE);
        if (r != MEMTX_OK) {
            qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: DMA %s 0x%" PRIx64
                          "+%" PRIu64 " failed\n",
                          to_device ? "read" : "write", sge.addr, chunk);
            return POLAR_CIM_ST_DMA_ERROR;
        }
        done += chunk;
    }
    if (done < len) {
        return POLAR_CIM_ST_BAD_FIELD;  /* the list is too short */
    }
    return POLAR_CIM_ST_OK;
}

static uint8_t *polar_cim_buf(uint8_t **buf, size_t *size, size_t need)
{
    if (*size < need) {
        g_free(*buf);
        *buf = g_malloc(need);
        *size = need;
    }
    return *buf;
}

/* ---- commands ------------------------------------------------------------ */

static void polar_cim_command_from_sqe(const struct polar_cim_sqe *e,
                                       struct cim_command *c)
{
    c->opcode = e->opcode;
    c->wfmt = e->wfmt;
    c->xfmt = e->xfmt;
    c->tile0 = e->tile0;
    c->in_dim = e->in_dim;
    c->out_dim = e->out_dim;
    c->batch = e->batch;
    c->adc_fs_q8 = e->adc_fs_q8;
    c->rows_per_conv = e->rows_per_conv;
    c->job_seed = e->job_seed;
}

static void polar_cim_heartbeat(void *opaque, uint32_t vectors)
{
    PolarCimState *s = opaque;

    qemu_mutex_lock(&s->lock);
    s->heartbeat += vectors;
    qemu_mutex_unlock(&s->lock);
}

/* PROGRAM_TILES and MATMUL: DMA in, compute in cim_command, DMA out. */
static uint16_t polar_cim_cmd_compute(PolarCimState *s,
                                      const struct polar_cim_sqe *e,
                                      uint32_t *result)
{
    struct cim_command c;
    uint64_t in_len, out_len;
    uint8_t *in, *out = NULL;
    uint16_t st;
    uint32_t i;

    polar_cim_command_from_sqe(e, &c);
    st = cim_command_check(s->engine, &c, POLAR_CIM_MAX_BATCH);
    if (st) {
        return st;
    }
    in_len = cim_command_src_bytes(&c);
    out_len = cim_command_dst_bytes(&c);
    in = polar_cim_buf(&s->buf_in, &s->buf_in_size, in_len);
    st = polar_cim_sgl_xfer(s, e->src_sgl, e->src_nsge, in, in_len, true);
    if (st) {
        return st;
    }
    if (c.opcode == POLAR_CIM_OP_PROGRAM_TILES) {
        return cim_command_program(s->engine, &c, (const int8_t *)in);
    }

    out = polar_cim_buf(&s->buf_out, &s->buf_out_size, out_len);
    st = cim_command_matmul(s->engine, &s->fw, &c, (const int8_t *)in,
                            (int32_t *)out, polar_cim_heartbeat, s);
    if (st) {
        return st;
    }
    for (i = 0; i < out_len / 4; i++) {
        uint32_t v = cpu_to_le32(((uint32_t *)out)[i]);

        memcpy(out + 4 * i, &v, 4);
    }
    st = polar_cim_sgl_xfer(s, e->dst_sgl, e->dst_nsge, out, out_len, false);
    if (!st) {
        *result = out_len;
    }
    return st;
}

static void polar_cim_counters(PolarCimState *s, uint64_t *out)
{
    cim_command_counters(s->engine, s->commands, out);
}

static uint16_t polar_cim_cmd_read_counters(PolarCimState *s,
                                            const struct polar_cim_sqe *e,
                                            uint32_t *result)
{
    uint64_t c[POLAR_CIM_NUM_COUNTERS];
    uint16_t st;
    int i;

    polar_cim_counters(s, c);
    for (i = 0; i < POLAR_CIM_NUM_COUNTERS; i++) {
        c[i] = cpu_to_le64(c[i]);
    }
    st = polar_cim_sgl_xfer(s, e->dst_sgl, e->dst_nsge, (uint8_t *)c,
                            sizeof(c), false);
    if (!st) {
        *result = sizeof(c);
    }
    return st;
}

static bool polar_cim_sqe_reserved_ok(const struct polar_cim_sqe *e)
{
    return !e->flags && !e->rsvd0 && !e->rsvd1 && !e->rsvd2 && !e->rsvd3;
}

static uint16_t polar_cim_execute(PolarCimState *s,
                                  const struct polar_cim_sqe *e,
                                  uint32_t *result)
{
    *result = 0;
    if (!polar_cim_sqe_reserved_ok(e)) {
        return POLAR_CIM_ST_BAD_FIELD;
    }
    if (s->fw_status != POLAR_CIM_FW_BOOTED &&
        e->opcode != POLAR_CIM_OP_NOP) {
        return POLAR_CIM_ST_NO_FIRMWARE;
    }
    switch (e->opcode) {
    case POLAR_CIM_OP_NOP:
    case POLAR_CIM_OP_FENCE:
        /*
         * One worker executes commands in order, so every command fetched
         * before a FENCE, on any queue, has completed when it runs.
         */
        return POLAR_CIM_ST_OK;
    case POLAR_CIM_OP_PROGRAM_TILES:
    case POLAR_CIM_OP_MATMUL:
        return polar_cim_cmd_compute(s, e, result);
    case POLAR_CIM_OP_READ_COUNTERS:
        return polar_cim_cmd_read_counters(s, e, result);
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: bad opcode 0x%x\n",
                      e->opcode);
        return POLAR_CIM_ST_BAD_OPCODE;
    }
}

static void polar_cim_sqe_to_cpu(struct polar_cim_sqe *e)
{
    e->tag = le32_to_cpu(e->tag);
    e->tile0 = le16_to_cpu(e->tile0);
    e->in_dim = le32_to_cpu(e->in_dim);
    e->out_dim = le32_to_cpu(e->out_dim);
    e->batch = le32_to_cpu(e->batch);
    e->adc_fs_q8 = le32_to_cpu(e->adc_fs_q8);
    e->rows_per_conv = le16_to_cpu(e->rows_per_conv);
    e->job_seed = le32_to_cpu(e->job_seed);
    e->src_sgl = le64_to_cpu(e->src_sgl);
    e->dst_sgl = le64_to_cpu(e->dst_sgl);
    e->src_nsge = le16_to_cpu(e->src_nsge);
    e->dst_nsge = le16_to_cpu(e->dst_nsge);
}

/* ---- firmware boot ------------------------------------------------------ */

static void polar_cim_boot_firmware(PolarCimState *s, uint64_t addr,
                                    uint32_t size, uint32_t generation)
{
    uint32_t status;
    uint8_t *image;

    if (size < sizeof(struct polar_cim_fw_header) ||
        size > POLAR_CIM_FW_MAX_SIZE) {
        status = POLAR_CIM_FW_ERR_SIZE;
    } else {
        image = g_malloc(size);
        if (polar_cim_dma(s, addr, image, size, DMA_DIRECTION_TO_DEVICE)) {
            status = POLAR_CIM_FW_ERR_DMA;
        } else {
            struct cim_fw_diag diag;

            status = cim_firmware_parse(image, size, &s->fw, &diag);
            if (status != POLAR_CIM_FW_BOOTED) {
                qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: firmware "
                              "rejected at offset %u: %s\n", diag.offset,
                              diag.msg);
            }
        }
        g_free(image);
    }
    if (status == POLAR_CIM_FW_BOOTED && s->fw.has_codebook) {
        cim_engine_set_codebook(s->engine, s->fw.codebook);
    }
    trace_polar_cim_fw_boot(size, status);
    qemu_mutex_lock(&s->lock);
    if (generation != s->generation) {
        /* Reset while booting: the boot never happened. */
        qemu_mutex_unlock(&s->lock);
        return;
    }
    s->fw_status = status;
    s->fw_version = status == POLAR_CIM_FW_BOOTED ? s->fw.version : 0;
    qemu_mutex_unlock(&s->lock);
    polar_cim_raise_from_worker(s, POLAR_CIM_INT_FW, s->num_queues);
}

/* A reset clears the tiles and the counters: a fresh engine does both. */
static void polar_cim_engine_recreate(PolarCimState *s)
{
    struct cim_config cfg = *cim_engine_config(s->engine);
    struct cim_engine *fresh;

    if (cim_engine_create(&cfg, &fresh) == 0) {
        cim_engine_set_threads(fresh, s->engine_threads);
        cim_engine_destroy(s->engine);
        s->engine = fresh;
    } else {
        cim_engine_reset_counters(s->engine);
    }
}

/* ---- the worker ------------------------------------------------------------ */

/* A queue with work, round-robin; called with s->lock held. */
static PolarCimQueue *polar_cim_next_queue(PolarCimState *s, unsigned *qid)
{
    unsigned i;

    if (s->fatal || s->fw_boot_pending || s->engine_reset_pending) {
        return NULL;
    }
    for (i = 0; i < s->num_queues; i++) {
        unsigned q = (s->next_queue + i) % s->num_queues;
        PolarCimQueue *queue = &s->queues[q];

        /* A full CQ stalls its queue until the driver consumes entries. */
        if (queue->enabled && !queue->error &&
            queue->sq_head != queue->sq_tail &&
            (queue->cq_tail + 1) % queue->size != queue->cq_head) {
            s->next_queue = (q + 1) % s->num_queues;
            *qid = q;
            return queue;
        }
    }
    return NULL;
}

/*
 * Waits like a slow command, but a reset or the device's exit ends the
 * wait at once: the command it belongs to is dropped anyway.
 */
static void polar_cim_sleep(PolarCimState *s, uint64_t us, uint32_t generation)
{
    int64_t deadline = qemu_clock_get_us(QEMU_CLOCK_REALTIME) + us;

    qemu_mutex_lock(&s->lock);
    while (generation == s->generation && !s->stopping) {
        int64_t left = deadline - qemu_clock_get_us(QEMU_CLOCK_REALTIME);

        if (left <= 0) {
            break;
        }
        qemu_cond_timedwait(&s->work_cond, &s->lock, MAX(left / 1000, 1));
    }
    qemu_mutex_unlock(&s->lock);
}

/* Does the armed fault hit this fetch? Called with s->lock held. */
static uint32_t polar_cim_take_fault(PolarCimState *s, unsigned qid)
{
    uint32_t mode = s->fault_mode;

    if (mode == POLAR_CIM_FAULT_NONE || s->fault_queue != qid) {
        return POLAR_CIM_FAULT_NONE;
    }
    if (s->fault_count) {
        s->fault_count--;
        return POLAR_CIM_FAULT_NONE;
    }
    s->fault_mode = POLAR_CIM_FAULT_NONE;
    trace_polar_cim_fault(mode, qid);
    return mode;
}

static void polar_cim_process_one(PolarCimState *s, PolarCimQueue *queue,
                                  unsigned qid, uint32_t generation)
{
    uint32_t queue_generation;
    struct polar_cim_sqe e;
    struct polar_cim_cqe c;
    uint64_t sq_addr, cq_addr, cycles_before;
    struct cim_counters counters;
    uint32_t slot, fault, result = 0;
    uint16_t status;

    qemu_mutex_lock(&s->lock);
    queue_generation = queue->generation;
    slot = queue->sq_head;
    sq_addr = queue->sq_base + (uint64_t)slot * sizeof(e);
    fault = polar_cim_take_fault(s, qid);
    queue->fetched++;
    s->busy = true;
    qemu_mutex_unlock(&s->lock);

    if (polar_cim_dma(s, sq_addr, &e, sizeof(e), DMA_DIRECTION_TO_DEVICE)) {
        qemu_mutex_lock(&s->lock);
        queue->error = true;
        s->error_code = POLAR_CIM_ERROR_RING_DMA;
        s->error_queue = qid;
        s->busy = false;
        qemu_mutex_unlock(&s->lock);
        polar_cim_raise_from_worker(s, POLAR_CIM_INT_ERROR, s->num_queues);
        return;
    }
    polar_cim_sqe_to_cpu(&e);
    trace_polar_cim_cmd(qid, slot, e.opcode, e.tag);

    cim_engine_counters(s->engine, &counters);
    cycles_before = counters.cycles;
    if (fault == POLAR_CIM_FAULT_DMA_ERROR) {
        status = POLAR_CIM_ST_DMA_ERROR;
    } else if (fault == POLAR_CIM_FAULT_STRAY_DMA) {
        uint8_t stray[64];

        /* A real device bug: DMA to an address nobody mapped for it. */
        if (polar_cim_dma(s, POLAR_CIM_STRAY_DMA_ADDR, stray, sizeof(stray),
                          DMA_DIRECTION_TO_DEVICE)) {
            qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: DMA read 0x%" PRIx64
                          "+%zu failed (injected stray DMA)\n",
                          (uint64_t)POLAR_CIM_STRAY_DMA_ADDR, sizeof(stray));
        }
        status = POLAR_CIM_ST_DMA_ERROR;
    } else if (fault == POLAR_CIM_FAULT_FW_CRASH) {
        qemu_mutex_lock(&s->lock);
        s->fatal = true;
        s->error_code = POLAR_CIM_ERROR_FW_CRASH;
        s->error_queue = qid;
        s->busy = false;
        qemu_mutex_unlock(&s->lock);
        polar_cim_raise_from_worker(s, POLAR_CIM_INT_ERROR, s->num_queues);
        return;
    } else {
        status = polar_cim_execute(s, &e, &result);
    }

    /* Modelled latency from the engine's cycle count. */
    cim_engine_counters(s->engine, &counters);
    if (s->cycle_ps) {
        uint64_t ns = (counters.cycles - cycles_before) * s->cycle_ps / 1000;

        if (ns >= 1000) {
            polar_cim_sleep(s, ns / 1000, generation);
        }
    }
    if (fault == POLAR_CIM_FAULT_DELAY) {
        polar_cim_sleep(s, s->fault_delay_us, generation);
    }

    qemu_mutex_lock(&s->lock);
    s->busy = false;
    s->commands++;
    polar_cim_counters(s, s->live);
    if (generation != s->generation || !queue->enabled ||
        queue_generation != queue->generation) {
        /* Reset or re-enabled while it ran: the result goes nowhere. */
        qemu_mutex_unlock(&s->lock);
        return;
    }
    s->progress++;
    queue->sq_head = (slot + 1) % queue->size;
    if (fault == POLAR_CIM_FAULT_DROP) {
        qemu_mutex_unlock(&s->lock);
        return;
    }
    c.tag = cpu_to_le32(fault == POLAR_CIM_FAULT_CORRUPT_CQE ?
                        ~e.tag : e.tag);
    c.status = cpu_to_le16(status);
    c.sq_head = cpu_to_le16(queue->sq_head);
    c.result = cpu_to_le32(result);
    c.queue = cpu_to_le16(qid);
    c.phase = cpu_to_le16(queue->phase);
    cq_addr = queue->cq_base + (uint64_t)queue->cq_tail * sizeof(c);
    queue->cq_tail = (queue->cq_tail + 1) % queue->size;
    if (queue->cq_tail == 0) {
        queue->phase ^= 1;
    }
    qemu_mutex_unlock(&s->lock);

    if (polar_cim_dma(s, cq_addr, &c, sizeof(c), DMA_DIRECTION_FROM_DEVICE)) {
        qemu_mutex_lock(&s->lock);
        queue->error = true;
        s->error_code = POLAR_CIM_ERROR_RING_DMA;
        s->error_queue = qid;
        qemu_mutex_unlock(&s->lock);
        polar_cim_raise_from_worker(s, POLAR_CIM_INT_ERROR, s->num_queues);
        return;
    }
    trace_polar_cim_complete(qid, e.tag, status, result);
    polar_cim_raise_from_worker(s, 1u << qid, qid);
    if (fault == POLAR_CIM_FAULT_ERROR_IRQ) {
        qemu_mutex_lock(&s->lock);
        s->error_code = POLAR_CIM_ERROR_INJECTED;
        s->error_queue = qid;
        qemu_mutex_unlock(&s->lock);
        polar_cim_raise_from_worker(s, POLAR_CIM_INT_ERROR, s->num_queues);
    }
}

static void *polar_cim_worker(void *opaque)
{
    PolarCimState *s = opaque;

    qemu_mutex_lock(&s->lock);
    while (!s->stopping) {
        PolarCimQueue *queue;
        uint32_t generation;
        unsigned qid;

        if (s->engine_reset_pending) {
            s->engine_reset_pending = false;
            qemu_mutex_unlock(&s->lock);
            polar_cim_engine_recreate(s);
            memset(&s->fw, 0, sizeof(s->fw));
            qemu_mutex_lock(&s->lock);
            s->commands = 0;
            memset(s->live, 0, sizeof(s->live));
            continue;
        }
        if (s->fw_boot_pending) {
            uint64_t addr = s->fw_addr;
            uint32_t size = s->fw_size;

            s->fw_boot_pending = false;
            generation = s->generation;
            qemu_mutex_unlock(&s->lock);
            polar_cim_boot_firmware(s, addr, size, generation);
            qemu_mutex_lock(&s->lock);
            continue;
        }
        queue = polar_cim_next_queue(s, &qid);
        if (!queue) {
            qemu_cond_wait(&s->work_cond, &s->lock);
            continue;
        }
        generation = s->generation;
        qemu_mutex_unlock(&s->lock);
        polar_cim_process_one(s, queue, qid, generation);
        qemu_mutex_lock(&s->lock);
    }
    qemu_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- registers ----------------------------------------------------------- */

/*
 * Called with s->lock held. A CTRL reset clears queues, firmware,
 * interrupts and faults; the tiles keep their weights, as non-volatile
 * cells do, so a driver recovering from a hang can re-run jobs without
 * reprogramming. A power-on (system) reset also clears the tiles.
 */
static void polar_cim_reset_locked(PolarCimState *s, bool power_on)
{
    s->generation++;
    s->int_status = 0;
    s->int_mask = 0;
    s->error_code = POLAR_CIM_ERROR_NONE;
    s->error_queue = 0;
    s->fatal = false;
    s->progress = 0;
    s->heartbeat = 0;
    s->fw_status = POLAR_CIM_FW_NONE;
    s->fw_version = 0;
    s->fw_boot_pending = false;
    s->fault_mode = POLAR_CIM_FAULT_NONE;
    s->fault_count = 0;
    s->next_queue = 0;
    memset(s->queues, 0, sizeof(s->queues));
    if (power_on) {
        s->engine_reset_pending = true;
        memset(s->latched, 0, sizeof(s->latched));
        s->fault_queue = 0;
        s->fault_delay_us = 0;
    }
    qemu_cond_signal(&s->work_cond);
}

static uint64_t polar_cim_queue_read(PolarCimState *s, unsigned q,
                                     hwaddr reg)
{
    PolarCimQueue *queue = &s->queues[q];

    switch (reg) {
    case POLAR_CIM_Q_SQ_BASE_LO:
        return (uint32_t)queue->sq_base;
    case POLAR_CIM_Q_SQ_BASE_HI:
        return queue->sq_base >> 32;
    case POLAR_CIM_Q_CQ_BASE_LO:
        return (uint32_t)queue->cq_base;
    case POLAR_CIM_Q_CQ_BASE_HI:
        return queue->cq_base >> 32;
    case POLAR_CIM_Q_SIZE:
        return queue->size;
    case POLAR_CIM_Q_CTRL:
        return queue->enabled ? POLAR_CIM_Q_CTRL_ENABLE : 0;
    case POLAR_CIM_Q_SQ_TAIL:
        return queue->sq_tail;
    case POLAR_CIM_Q_CQ_HEAD:
        return queue->cq_head;
    case POLAR_CIM_Q_SQ_HEAD:
        return queue->sq_head;
    case POLAR_CIM_Q_CQ_TAIL:
        return queue->cq_tail;
    case POLAR_CIM_Q_STATUS:
        return (queue->enabled ? POLAR_CIM_Q_STATUS_ENABLED : 0) |
               (queue->error ? POLAR_CIM_Q_STATUS_ERROR : 0);
    default:
        return 0;
    }
}

static void polar_cim_queue_enable(PolarCimState *s, PolarCimQueue *queue,
                                   bool enable)
{
    queue->generation++;
    if (!enable) {
        queue->enabled = false;
        return;
    }
    if (queue->size < 2 || queue->size > POLAR_CIM_MAX_QUEUE_ENTRIES ||
        (queue->size & (queue->size - 1)) ||
        queue->sq_base % sizeof(struct polar_cim_sqe) ||
        queue->cq_base % sizeof(struct polar_cim_cqe)) {
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: bad ring setup\n");
        queue->error = true;
        return;
    }
    queue->enabled = true;
    queue->error = false;
    queue->sq_head = queue->sq_tail = 0;
    queue->cq_head = queue->cq_tail = 0;
    queue->phase = 1;
    queue->fetched = 0;
}

static void polar_cim_queue_write(PolarCimState *s, unsigned q, hwaddr reg,
                                  uint32_t val)
{
    PolarCimQueue *queue = &s->queues[q];
    bool running = queue->enabled;

    switch (reg) {
    case POLAR_CIM_Q_SQ_BASE_LO:
    case POLAR_CIM_Q_SQ_BASE_HI:
    case POLAR_CIM_Q_CQ_BASE_LO:
    case POLAR_CIM_Q_CQ_BASE_HI:
    case POLAR_CIM_Q_SIZE:
        if (running) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "polar-cim: queue %u reconfigured while enabled\n",
                          q);
            return;
        }
        break;
    default:
        break;
    }

    switch (reg) {
    case POLAR_CIM_Q_SQ_BASE_LO:
        queue->sq_base = deposit64(queue->sq_base, 0, 32, val);
        break;
    case POLAR_CIM_Q_SQ_BASE_HI:
        queue->sq_base = deposit64(queue->sq_base, 32, 32, val);
        break;
    case POLAR_CIM_Q_CQ_BASE_LO:
        queue->cq_base = deposit64(queue->cq_base, 0, 32, val);
        break;
    case POLAR_CIM_Q_CQ_BASE_HI:
        queue->cq_base = deposit64(queue->cq_base, 32, 32, val);
        break;
    case POLAR_CIM_Q_SIZE:
        queue->size = val;
        break;
    case POLAR_CIM_Q_CTRL:
        polar_cim_queue_enable(s, queue, val & POLAR_CIM_Q_CTRL_ENABLE);
        break;
    case POLAR_CIM_Q_SQ_TAIL:
        if (!running || val >= queue->size) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "polar-cim: queue %u SQ tail %u rejected\n", q, val);
            return;
        }
        queue->sq_tail = val;
        qemu_cond_signal(&s->work_cond);
        break;
    case POLAR_CIM_Q_CQ_HEAD:
        if (!running || val >= queue->size) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "polar-cim: queue %u CQ head %u rejected\n", q, val);
            return;
        }
        queue->cq_head = val;
        qemu_cond_signal(&s->work_cond);
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "polar-cim: write to read-only queue register 0x%"
                      HWADDR_PRIx "\n", reg);
        break;
    }
}

static uint64_t polar_cim_mmio_read(void *opaque, hwaddr addr, unsigned size)
{
    PolarCimState *s = opaque;
    uint64_t val = 0;

    qemu_mutex_lock(&s->lock);
    if (addr >= POLAR_CIM_REG_QUEUE_BASE &&
        addr < POLAR_CIM_REG_Q(s->num_queues, 0)) {
        hwaddr off = addr - POLAR_CIM_REG_QUEUE_BASE;

        val = polar_cim_queue_read(s, off / POLAR_CIM_QUEUE_STRIDE,
                                   off % POLAR_CIM_QUEUE_STRIDE);
        goto out;
    }
    if (addr >= POLAR_CIM_REG_COUNTER_LO(0) &&
        addr < POLAR_CIM_REG_COUNTER_LO(POLAR_CIM_NUM_COUNTERS)) {
        unsigned i = (addr - POLAR_CIM_REG_COUNTER_LO(0)) / 8;

        val = (addr & 4) ? s->latched[i] >> 32 : (uint32_t)s->latched[i];
        goto out;
    }

    switch (addr) {
    case POLAR_CIM_REG_ID:
        val = POLAR_CIM_ID_MAGIC;
        break;
    case POLAR_CIM_REG_VERSION:
        val = POLAR_CIM_VERSION;
        break;
    case POLAR_CIM_REG_SCRATCH:
        val = s->scratch;
        break;
    case POLAR_CIM_REG_CAPS:
        val = POLAR_CIM_CAP_FAULT_INJECT | POLAR_CIM_CAP_FMT_INT8 |
              POLAR_CIM_CAP_FMT_INT4 | POLAR_CIM_CAP_FMT_NF4 |
              POLAR_CIM_CAP_COUNTERS |
              (msix_present(PCI_DEVICE(s)) ? POLAR_CIM_CAP_MSIX : 0);
        break;
    case POLAR_CIM_REG_ROWS:
        val = s->rows;
        break;
    case POLAR_CIM_REG_COLS:
        val = s->cols;
        break;
    case POLAR_CIM_REG_TILES:
        val = s->tiles;
        break;
    case POLAR_CIM_REG_ADC_BITS:
        val = s->adc_bits;
        break;
    case POLAR_CIM_REG_NUM_QUEUES:
        val = s->num_queues;
        break;
    case POLAR_CIM_REG_MAX_ENTRIES:
        val = POLAR_CIM_MAX_QUEUE_ENTRIES;
        break;
    case POLAR_CIM_REG_SIGMA_STATIC:
        val = s->sigma_static;
        break;
    case POLAR_CIM_REG_SIGMA_DYNAMIC:
        val = s->sigma_dynamic;
        break;
    case POLAR_CIM_REG_STUCK_PPM:
        val = s->stuck_ppm;
        break;
    case POLAR_CIM_REG_SEED_LO:
        val = (uint32_t)s->seed;
        break;
    case POLAR_CIM_REG_SEED_HI:
        val = s->seed >> 32;
        break;
    case POLAR_CIM_REG_ADC_OFFSET_SIGMA:
        val = s->adc_offset_sigma;
        break;
    case POLAR_CIM_REG_ADC_GAIN_SIGMA:
        val = s->adc_gain_sigma;
        break;
    case POLAR_CIM_REG_MAX_BATCH:
        val = POLAR_CIM_MAX_BATCH;
        break;
    case POLAR_CIM_REG_ROWS_PER_CONV:
        val = s->rows_per_conv;
        break;
    case POLAR_CIM_REG_RECON:
        val = cim_engine_config(s->engine)->recon |
              cim_engine_config(s->engine)->recon_frac_bits <<
              POLAR_CIM_RECON_FRAC_SHIFT;
        break;
    case POLAR_CIM_REG_STATUS:
        val = (s->fw_status == POLAR_CIM_FW_BOOTED ?
               POLAR_CIM_STATUS_FW_BOOTED : 0) |
              (s->fatal ? POLAR_CIM_STATUS_FATAL : 0) |
              (s->busy ? POLAR_CIM_STATUS_BUSY : 0);
        break;
    case POLAR_CIM_REG_PROGRESS:
        val = s->progress;
        break;
    case POLAR_CIM_REG_HEARTBEAT:
        val = s->heartbeat;
        break;
    case POLAR_CIM_REG_FW_ADDR_LO:
        val = (uint32_t)s->fw_addr;
        break;
    case POLAR_CIM_REG_FW_ADDR_HI:
        val = s->fw_addr >> 32;
        break;
    case POLAR_CIM_REG_FW_SIZE:
        val = s->fw_size;
        break;
    case POLAR_CIM_REG_FW_STATUS:
        val = s->fw_status;
        break;
    case POLAR_CIM_REG_FW_VERSION:
        val = s->fw_version;
        break;
    case POLAR_CIM_REG_INT_STATUS:
        val = s->int_status;
        break;
    case POLAR_CIM_REG_INT_MASK:
        val = s->int_mask;
        break;
    case POLAR_CIM_REG_ERROR_CODE:
        val = s->error_code;
        break;
    case POLAR_CIM_REG_ERROR_QUEUE:
        val = s->error_queue;
        break;
    case POLAR_CIM_REG_FAULT_MODE:
        val = s->fault_mode;
        break;
    case POLAR_CIM_REG_FAULT_QUEUE:
        val = s->fault_queue;
        break;
    case POLAR_CIM_REG_FAULT_COUNT:
        val = s->fault_count;
        break;
    case POLAR_CIM_REG_FAULT_DELAY_US:
        val = s->fault_delay_us;
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "polar-cim: read of unknown register 0x%" HWADDR_PRIx
                      "\n", addr);
        break;
    }
out:
    qemu_mutex_unlock(&s->lock);
    trace_polar_cim_mmio_read(addr, val);
    return val;
}

static void polar_cim_mmio_write(void *opaque, hwaddr addr, uint64_t val,
                                 unsigned size)
{
    PolarCimState *s = opaque;

    trace_polar_cim_mmio_write(addr, val);
    qemu_mutex_lock(&s->lock);
    if (addr >= POLAR_CIM_REG_QUEUE_BASE &&
        addr < POLAR_CIM_REG_Q(s->num_queues, 0)) {
        hwaddr off = addr - POLAR_CIM_REG_QUEUE_BASE;

        polar_cim_queue_write(s, off / POLAR_CIM_QUEUE_STRIDE,
                              off % POLAR_CIM_QUEUE_STRIDE, val);
        qemu_mutex_unlock(&s->lock);
        return;
    }

    switch (addr) {
    case POLAR_CIM_REG_SCRATCH:
        s->scratch = val;
        break;
    case POLAR_CIM_REG_CTRL:
        if (val & POLAR_CIM_CTRL_RESET) {
            trace_polar_cim_reset();
            polar_cim_reset_locked(s, false);
        }
        break;
    case POLAR_CIM_REG_FW_ADDR_LO:
        s->fw_addr = deposit64(s->fw_addr, 0, 32, val);
        break;
    case POLAR_CIM_REG_FW_ADDR_HI:
        s->fw_addr = deposit64(s->fw_addr, 32, 32, val);
        break;
    case POLAR_CIM_REG_FW_SIZE:
        s->fw_size = val;
        break;
    case POLAR_CIM_REG_FW_CTRL:
        if (val & POLAR_CIM_FW_CTRL_BOOT) {
            s->fw_status = POLAR_CIM_FW_NONE;
            s->fw_boot_pending = true;
            qemu_cond_signal(&s->work_cond);
        }
        break;
    case POLAR_CIM_REG_INT_STATUS:
        s->int_status &= ~(uint32_t)val;
        break;
    case POLAR_CIM_REG_INT_MASK:
        s->int_mask = val;
        break;
    case POLAR_CIM_REG_COUNTERS_LATCH:
        if (val & 1) {
            /* The worker publishes a consistent set after each command. */
            memcpy(s->latched, s->live, sizeof(s->latched));
        }
        break;
    case POLAR_CIM_REG_FAULT_MODE:
        if (val > POLAR_CIM_FAULT_STRAY_DMA) {
            qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: unknown fault mode %"
                          PRIu64 "\n", val);
            break;
        }
        s->fault_mode = val;
        break;
    case POLAR_CIM_REG_FAULT_QUEUE:
        s->fault_queue = val;
        break;
    case POLAR_CIM_REG_FAULT_COUNT:
        s->fault_count = val;
        break;
    case POLAR_CIM_REG_FAULT_DELAY_US:
        s->fault_delay_us = MIN(val, 10 * 1000 * 1000);
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: write of 0x%" PRIx64
                      " to read-only or unknown register 0x%" HWADDR_PRIx
                      "\n", val, addr);
        break;
    }
    qemu_mutex_unlock(&s->lock);
    polar_cim_update_intx(s);
}

static const MemoryRegionOps polar_cim_mmio_ops = {
    .read = polar_cim_mmio_read,
    .write = polar_cim_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 4,
        .max_access_size = 4,
    },
    .impl = {
        .min_access_size = 4,
        .max_access_size = 4,
    },
};

/* ---- lifetime ------------------------------------------------------------- */

static void polar_cim_realize(PCIDevice *pdev, Error **errp)
{
    PolarCimState *s = POLAR_CIM(pdev);
    struct cim_config cfg = { 0 };
    unsigned v;
    int ret;

    if (s->rows == 0 || s->cols == 0 || s->tiles == 0 || s->tiles > 65536 ||
        s->adc_bits == 0) {
        error_setg(errp, "polar-cim: rows, cols and adc-bits must be non-zero "
                   "and tiles in 1..65536 (tile numbers are 16-bit)");
        return;
    }
    if (s->num_queues < 1 || s->num_queues > POLAR_CIM_MAX_QUEUES) {
        error_setg(errp, "polar-cim: queues must be in 1..%d, not %" PRIu32,
                   POLAR_CIM_MAX_QUEUES, s->num_queues);
        return;
    }
    cfg.rows = s->rows;
    cfg.cols = s->cols;
    cfg.tiles = s->tiles;
    cfg.adc_bits = s->adc_bits;
    cfg.rows_per_conversion = s->rows_per_conv;
    ret = cim_recon_parse(s->recon ? s->recon : "codes");
    if (ret < 0) {
        error_setg(errp, "polar-cim: recon must be codes or cells, not '%s'",
                   s->recon);
        return;
    }
    cfg.recon = ret;
    cfg.recon_frac_bits = s->recon_frac_bits;
    if (cfg.recon == CIM_RECON_CODES && s->recon_frac_bits) {
        error_setg(errp, "polar-cim: recon-frac-bits applies to recon=cells "
                   "only");
        return;
    }
    if (s->recon_frac_bits > CIM_MAX_RECON_FRAC) {
        error_setg(errp, "polar-cim: recon-frac-bits %" PRIu32 " is not in "
                   "0..%d", s->recon_frac_bits, CIM_MAX_RECON_FRAC);
        return;
    }
    cfg.sigma_static_q16 = s->sigma_static;
    cfg.sigma_dynamic_q16 = s->sigma_dynamic;
    cfg.stuck_rate_ppm = s->stuck_ppm;
    cfg.adc_offset_sigma_q16 = s->adc_offset_sigma;
    cfg.adc_gain_sigma_q16 = s->adc_gain_sigma;
    cfg.seed = s->seed;
    if (s->rows_per_conv > s->rows) {
        error_setg(errp, "polar-cim: rows-per-conv %" PRIu32 " exceeds rows "
                   "%" PRIu32, s->rows_per_conv, s->rows);
        return;
    }
    if (s->engine_threads < 1 || s->engine_threads > CIM_MAX_THREADS) {
        error_setg(errp, "polar-cim: threads %" PRIu32 " is not in 1..%d",
                   s->engine_threads, CIM_MAX_THREADS);
        return;
    }
    ret = cim_engine_create(&cfg, &s->engine);
    if (ret) {
        error_setg(errp, "polar-cim: invalid chip configuration (rows %"
                   PRIu32 ", cols %" PRIu32 ", tiles %" PRIu32 ", adc-bits %"
                   PRIu32 ", noise and stuck-rate limits in cim_engine.h)",
                   s->rows, s->cols, s->tiles, s->adc_bits);
        return;
    }
    s->rows_per_conv = cim_engine_config(s->engine)->rows_per_conversion;
    /* The guest waits while a MATMUL runs: its host thread can help. */
    cim_engine_set_threads(s->engine, s->engine_threads);

    pci_config_set_interrupt_pin(pdev->config, 1);
    memory_region_init_io(&s->mmio, OBJECT(s), &polar_cim_mmio_ops, s,
                          "polar-cim-mmio", POLAR_CIM_BAR0_SIZE);
    pci_register_bar(pdev, 0, PCI_BASE_ADDRESS_SPACE_MEMORY, &s->mmio);
    /* One vector per queue plus one for errors and firmware. */
    if (msix_init_exclusive_bar(pdev, s->num_queues + 1, POLAR_CIM_MSIX_BAR,
                                NULL) == 0) {
        for (v = 0; v <= s->num_queues; v++) {
            msix_vector_use(pdev, v);
        }
    }

    qemu_mutex_init(&s->lock);
    qemu_cond_init(&s->work_cond);
    s->stopping = false;
    qemu_thread_create(&s->worker, "polar-cim", polar_cim_worker, s,
                       QEMU_THREAD_JOINABLE);
}

static void polar_cim_exit(PCIDevice *pdev)
{
    PolarCimState *s = POLAR_CIM(pdev);

    qemu_mutex_lock(&s->lock);
    s->stopping = true;
    qemu_cond_signal(&s->work_cond);
    qemu_mutex_unlock(&s->lock);
    qemu_thread_join(&s->worker);
    qemu_cond_destroy(&s->work_cond);
    qemu_mutex_destroy(&s->lock);
    if (msix_present(pdev)) {
        msix_uninit_exclusive_bar(pdev);
    }
    cim_engine_destroy(s->engine);
    g_free(s->buf_in);
    g_free(s->buf_out);
}

static void polar_cim_reset(DeviceState *dev)
{
    PolarCimState *s = POLAR_CIM(dev);

    qemu_mutex_lock(&s->lock);
    s->scratch = 0;
    polar_cim_reset_locked(s, true);
    qemu_mutex_unlock(&s->lock);
    polar_cim_update_intx(s);
}

static const Property polar_cim_properties[] = {
    DEFINE_PROP_UINT32("rows", PolarCimState, rows, 128),
    DEFINE_PROP_UINT32("cols", PolarCimState, cols, 128),
    DEFINE_PROP_UINT32("tiles", PolarCimState, tiles, 64),
    DEFINE_PROP_UINT32("adc-bits", PolarCimState, adc_bits, 5),
    DEFINE_PROP_UINT32("rows-per-conv", PolarCimState, rows_per_conv, 0),
    DEFINE_PROP_STRING("recon", PolarCimState, recon),
    DEFINE_PROP_UINT32("recon-frac-bits", PolarCimState, recon_frac_bits, 0),
    DEFINE_PROP_UINT32("queues", PolarCimState, num_queues, 4),
    DEFINE_PROP_UINT32("sigma-static", PolarCimState, sigma_static, 0),
    DEFINE_PROP_UINT32("sigma-dynamic", PolarCimState, sigma_dynamic, 0),
    DEFINE_PROP_UINT32("stuck-rate", PolarCimState, stuck_ppm, 0),
    DEFINE_PROP_UINT32("adc-offset-sigma", PolarCimState, adc_offset_sigma,
                       0),
    DEFINE_PROP_UINT32("adc-gain-sigma", PolarCimState, adc_gain_sigma, 0),
    DEFINE_PROP_UINT64("seed", PolarCimState, seed, 1),
    DEFINE_PROP_UINT32("cycle-ps", PolarCimState, cycle_ps, 1000),
    DEFINE_PROP_UINT32("threads", PolarCimState, engine_threads, 2),
};

static const VMStateDescription polar_cim_vmstate = {
    .name = TYPE_POLAR_CIM,
    .unmigratable = 1,  /* engine state and worker are not migrated */
};

static void polar_cim_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = polar_cim_realize;
    k->exit = polar_cim_exit;
    k->vendor_id = POLAR_CIM_PCI_VENDOR_ID;
    k->device_id = POLAR_CIM_PCI_DEVICE_ID;
    k->revision = POLAR_CIM_PCI_REVISION;
    k->class_id = POLAR_CIM_PCI_CLASS;
    dc->desc = "polar-cim bit-plane compute-in-memory accelerator";
    dc->vmsd = &polar_cim_vmstate;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    device_class_set_legacy_reset(dc, polar_cim_reset);
    device_class_set_props(dc, polar_cim_properties);

    object_class_property_set_description(klass, "rows",
        "rows per tile: inputs summed on one bit line");
    object_class_property_set_description(klass, "cols",
        "columns per tile: output channels per tile");
    object_class_property_set_description(klass, "tiles",
        "number of CIM tiles on the chip");
    object_class_property_set_description(klass, "adc-bits",
        "resolution of each column's ADC in bits");
    object_class_property_set_description(klass, "rows-per-conv",
        "rows summed per ADC conversion (row parallelism), 0 = rows");
    object_class_property_set_description(klass, "recon",
        "reconstruction: codes (default; shift-add ADC codes, LSB applied "
        "once per output) or cells (each conversion rounded to cells)");
    object_class_property_set_description(klass, "recon-frac-bits",
        "fractional bits kept per conversion with recon=cells, 0..8");
    object_class_property_set_description(klass, "queues",
        "submission/completion ring pairs (1..16), one MSI-X vector each");
    object_class_property_set_description(klass, "sigma-static",
        "per-cell conductance spread, Q16 (65536 = 100%), fixed per chip");
    object_class_property_set_description(klass, "sigma-dynamic",
        "read noise per analog sum, Q16 of one cell current, per job");
    object_class_property_set_description(klass, "stuck-rate",
        "stuck-at-0/1 cells per million, fixed per chip");
    object_class_property_set_description(klass, "adc-offset-sigma",
        "per-column ADC offset spread, Q16 of one ADC LSB");
    object_class_property_set_description(klass, "adc-gain-sigma",
        "per-column ADC gain error spread, Q16 (65536 = 100%)");
    object_class_property_set_description(klass, "seed",
        "chip seed: static variability is a pure function of it");
    object_class_property_set_description(klass, "cycle-ps",
        "modelled completion latency per array cycle in ps (0 = none)");
}

static const TypeInfo polar_cim_info = {
    .name          = TYPE_POLAR_CIM,
    .parent        = TYPE_PCI_DEVICE,
    .instance_size = sizeof(PolarCimState),
    .class_init    = polar_cim_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { INTERFACE_CONVENTIONAL_PCI_DEVICE },
        { },
    },
};

static void polar_cim_register_types(void)
{
    type_register_static(&polar_cim_info);
}

type_init(polar_cim_register_types)
