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
 * Threading, as hw/nvme does it: everything the guest can see (registers,
 * DMA, interrupts) happens with the BQL held, in the MMIO handlers or in
 * a bottom half (polar_cim_bh) that fetches commands, moves their data
 * and posts completions. The worker thread only runs the engine on data
 * the bottom half has fetched, one work item at a time (a PROGRAM_TILES,
 * or one chunk of a MATMUL's vectors), and never takes the BQL: so the
 * device's exit can join it, and a reset or an exit stops a MATMUL at the
 * next chunk. s->lock guards only the hand-over of a work item.
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

/*
 * Data bytes (inputs plus outputs) a MATMUL holds at once: its chunks are
 * cut to fit, down to one vector, so what a guest can make the device
 * allocate does not grow with batch.
 */
#define POLAR_CIM_CHUNK_BYTES (1u << 20)

/* Commands one run of the bottom half completes before it yields. */
#define POLAR_CIM_BH_BUDGET 64

/* cycle-ps: 1 us per array cycle is already a very slow chip. */
#define POLAR_CIM_MAX_CYCLE_PS 1000000

typedef struct PolarCimQueue {
    uint64_t sq_base;
    uint64_t cq_base;
    uint32_t size;
    bool enabled;
    bool error;
    uint32_t sq_tail;           /* doorbell, written by the driver */
    uint32_t sq_head;           /* next entry the device fetches */
    uint32_t cq_head;           /* doorbell, written by the driver */
    uint32_t cq_tail;           /* next CQ slot the device fills */
    uint16_t phase;
    uint64_t fetched;           /* commands fetched since enable */
    uint32_t generation;        /* bumped by enable and disable */
} PolarCimQueue;

/* Where a transfer through an SG list has got to. */
typedef struct PolarCimSgl {
    uint64_t base;              /* DMA address of the list */
    uint32_t nsge;
    uint32_t next;              /* index of the next entry to read */
    uint64_t addr;              /* what is left of the current entry */
    uint32_t left;
} PolarCimSgl;

typedef enum PolarCimWork {
    POLAR_CIM_WORK_NONE,
    POLAR_CIM_WORK_PROGRAM,     /* PROGRAM_TILES from cmd.in */
    POLAR_CIM_WORK_MATMUL,      /* the chunk cmd.first.. of cmd.in */
} PolarCimWork;

/* The command the device is executing: STATUS.BUSY while active. */
typedef struct PolarCimCmd {
    bool active;
    unsigned qid;
    uint32_t slot;
    uint32_t generation;        /* device generation at fetch */
    uint32_t queue_generation;
    uint32_t fault;             /* the injected fault that hit it */
    uint32_t fault_delay_us;
    struct polar_cim_sqe sqe;   /* in CPU byte order */
    struct cim_command c;
    uint64_t cycles_before;
    PolarCimSgl src, dst;
    struct cim_command_matmul_job job;
    uint32_t first;             /* first vector of the current chunk */
    uint32_t n;                 /* vectors in the current chunk */
    uint32_t chunk;             /* vectors per chunk */
    uint8_t *in;
    int32_t *out;
    bool waiting;               /* modelled latency running (timer) */
    uint16_t status;            /* once computed, or waiting */
    uint32_t result;
} PolarCimCmd;

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
    uint32_t digital_planes;    /* most significant weight planes, exact */
    uint32_t adc_bits_msb;      /* 0 = every conversion at adc-bits */
    uint32_t adc_msb_levels;    /* 0 = 1 with adc-bits-msb */
    uint32_t num_queues;
    bool msix;                  /* false: INTx only, CAPS.MSIX = 0 */
    uint32_t sigma_static;      /* Q16 */
    uint32_t sigma_dynamic;     /* Q16 */
    uint32_t stuck_ppm;
    uint32_t adc_offset_sigma;  /* Q16 LSB */
    uint32_t adc_gain_sigma;    /* Q16 */
    uint64_t seed;
    uint32_t cycle_ps;          /* modelled latency per cycle, 0 = none */
    uint32_t engine_threads;    /* host threads one MATMUL may use */

    /* Registers, queues and the command: BQL. */
    uint32_t scratch;
    uint32_t int_status;
    uint32_t int_mask;
    uint32_t error_code;
    uint32_t error_queue;
    bool fatal;
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
    PolarCimCmd cmd;
    QEMUBH *bh;
    QEMUTimer *latency_timer;

    /*
     * The engine and the firmware: the worker's while a work item is
     * handed over, the bottom half's otherwise.
     */
    struct cim_engine *engine;
    struct cim_firmware fw;

    /* The hand-over to the worker: s->lock. */
    QemuThread worker;
    QemuMutex lock;
    QemuCond work_cond;
    bool stopping;
    PolarCimWork work;
    bool work_done;
    uint16_t work_status;
};

static void polar_cim_bh(void *opaque);

/* ---- interrupts --------------------------------------------------------- */

static void polar_cim_raise(PolarCimState *s, uint32_t bits, unsigned vector)
{
    PCIDevice *pdev = PCI_DEVICE(s);

    s->int_status |= bits;
    trace_polar_cim_irq(bits, vector);
    if (msix_enabled(pdev)) {
        if (bits & ~s->int_mask) {
            msix_notify(pdev, vector);
        }
    } else {
        pci_set_irq(pdev, (s->int_status & ~s->int_mask) != 0);
    }
}

/* INTx follows the status. */
static void polar_cim_update_intx(PolarCimState *s)
{
    PCIDevice *pdev = PCI_DEVICE(s);

    if (!msix_enabled(pdev)) {
        pci_set_irq(pdev, (s->int_status & ~s->int_mask) != 0);
    }
}

static void polar_cim_error(PolarCimState *s, uint32_t code, unsigned qid)
{
    s->error_code = code;
    s->error_queue = qid;
    polar_cim_raise(s, POLAR_CIM_INT_ERROR, s->num_queues);
}

/* ---- DMA through scatter-gather lists ----------------------------------- */

static MemTxResult polar_cim_dma(PolarCimState *s, dma_addr_t addr, void *buf,
                                 dma_addr_t len, DMADirection dir)
{
    return pci_dma_rw(PCI_DEVICE(s), addr, buf, len, dir,
                      MEMTXATTRS_UNSPECIFIED);
}

static uint16_t polar_cim_sgl_init(PolarCimSgl *sgl, uint64_t base,
                                   uint32_t nsge, const char *which)
{
    *sgl = (PolarCimSgl){ .base = base, .nsge = nsge };
    if (nsge == 0 || nsge > POLAR_CIM_MAX_SGE) {
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: %s SG list of %u "
                      "entries, not 1..%u\n", which, nsge, POLAR_CIM_MAX_SGE);
        return POLAR_CIM_ST_BAD_FIELD;
    }
    return POLAR_CIM_ST_OK;
}

/*
 * Moves the next len bytes of the data an SG list describes to or from
 * buf, reading list entries only as they are needed.
 */
static uint16_t polar_cim_sgl_xfer(PolarCimState *s, PolarCimSgl *sgl,
                                   void *buf, uint64_t len, bool to_device)
{
    uint8_t *p = buf;

    while (len) {
        uint64_t chunk;

        if (!sgl->left) {
            struct polar_cim_sge sge;
            uint64_t at = sgl->base + (uint64_t)sgl->next * sizeof(sge);

            if (sgl->next == sgl->nsge) {
                qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: SG list at 0x%"
                              PRIx64 " is too short\n", sgl->base);
                return POLAR_CIM_ST_BAD_FIELD;
            }
            if (polar_cim_dma(s, at, &sge, sizeof(sge),
                              DMA_DIRECTION_TO_DEVICE)) {
                qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: SG entry read at "
                              "0x%" PRIx64 " failed\n", at);
                return POLAR_CIM_ST_DMA_ERROR;
            }
            sgl->next++;
            sgl->addr = le64_to_cpu(sge.addr);
            sgl->left = le32_to_cpu(sge.len);
            if (sge.rsvd || sgl->left == 0) {
                qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: SG entry at 0x%"
                              PRIx64 " has length 0 or reserved bits\n", at);
                sgl->left = 0;
                return POLAR_CIM_ST_BAD_FIELD;
            }
        }
        chunk = MIN((uint64_t)sgl->left, len);
        if (polar_cim_dma(s, sgl->addr, p, chunk,
                          to_device ? DMA_DIRECTION_TO_DEVICE :
                                      DMA_DIRECTION_FROM_DEVICE)) {
            qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: DMA %s 0x%" PRIx64
                          "+%" PRIu64 " failed\n",
                          to_device ? "read" : "write", sgl->addr, chunk);
            return POLAR_CIM_ST_DMA_ERROR;
        }
        sgl->addr += chunk;
        sgl->left -= chunk;
        p += chunk;
        len -= chunk;
    }
    return POLAR_CIM_ST_OK;
}

/* ---- the worker: engine work only --------------------------------------- */

static uint16_t polar_cim_work_run(PolarCimState *s, PolarCimWork work)
{
    PolarCimCmd *cmd = &s->cmd;

    if (work == POLAR_CIM_WORK_PROGRAM) {
        return cim_command_program(s->engine, &cmd->c,
                                   (const int8_t *)cmd->in);
    }
    return cim_command_matmul_chunk(s->engine, &cmd->job, cmd->first, cmd->n,
                                    (const int8_t *)cmd->in, cmd->out);
}

static void *polar_cim_worker(void *opaque)
{
    PolarCimState *s = opaque;

    qemu_mutex_lock(&s->lock);
    while (!s->stopping) {
        PolarCimWork work = s->work;
        uint16_t st;

        if (work == POLAR_CIM_WORK_NONE || s->work_done) {
            qemu_cond_wait(&s->work_cond, &s->lock);
            continue;
        }
        qemu_mutex_unlock(&s->lock);
        st = polar_cim_work_run(s, work);
        qemu_mutex_lock(&s->lock);
        s->work_status = st;
        s->work_done = true;
        qemu_bh_schedule(s->bh);
    }
    qemu_mutex_unlock(&s->lock);
    return NULL;
}

static void polar_cim_work_start(PolarCimState *s, PolarCimWork work)
{
    qemu_mutex_lock(&s->lock);
    s->work = work;
    s->work_done = false;
    qemu_cond_signal(&s->work_cond);
    qemu_mutex_unlock(&s->lock);
}

/*
 * Is a work item with the worker? If it has come back, takes its status
 * into cmd->status and returns false.
 */
static bool polar_cim_work_running(PolarCimState *s)
{
    bool running;

    qemu_mutex_lock(&s->lock);
    running = s->work != POLAR_CIM_WORK_NONE && !s->work_done;
    if (s->work != POLAR_CIM_WORK_NONE && s->work_done) {
        s->cmd.status = s->work_status;
        s->work = POLAR_CIM_WORK_NONE;
        s->work_done = false;
    }
    qemu_mutex_unlock(&s->lock);
    return running;
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

static uint64_t polar_cim_cycles(PolarCimState *s)
{
    struct cim_counters counters;

    cim_engine_counters(s->engine, &counters);
    return counters.cycles;
}

static uint16_t polar_cim_cmd_read_counters(PolarCimState *s, uint32_t *result)
{
    PolarCimCmd *cmd = &s->cmd;
    uint64_t c[POLAR_CIM_NUM_COUNTERS];
    uint16_t st;
    int i;

    cim_command_counters(s->engine, s->commands, c);
    for (i = 0; i < POLAR_CIM_NUM_COUNTERS; i++) {
        c[i] = cpu_to_le64(c[i]);
    }
    st = polar_cim_sgl_init(&cmd->dst, cmd->sqe.dst_sgl, cmd->sqe.dst_nsge,
                            "destination");
    if (!st) {
        st = polar_cim_sgl_xfer(s, &cmd->dst, c, sizeof(c), false);
    }
    if (!st) {
        *result = sizeof(c);
    }
    return st;
}

/*
 * PROGRAM_TILES and MATMUL, after their checks: fetches the weights or the
 * first chunk of inputs and hands them to the worker. Returns OK when the
 * worker has the command, else the status it completes with.
 */
static uint16_t polar_cim_cmd_compute_start(PolarCimState *s)
{
    PolarCimCmd *cmd = &s->cmd;
    struct cim_command *c = &cmd->c;
    uint64_t in_len, vector_bytes;
    uint16_t st;

    st = polar_cim_sgl_init(&cmd->src, cmd->sqe.src_sgl, cmd->sqe.src_nsge,
                            "source");
    if (st) {
        return st;
    }
    if (c->opcode == POLAR_CIM_OP_PROGRAM_TILES) {
        /* At most the range's cells: cim_command_check bounded it. */
        in_len = cim_command_src_bytes(c);
        cmd->in = g_try_malloc(in_len);
        if (!cmd->in) {
            qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: no memory for %"
                          PRIu64 " bytes of weights\n", in_len);
            return POLAR_CIM_ST_NO_RESOURCES;
        }
        st = polar_cim_sgl_xfer(s, &cmd->src, cmd->in, in_len, true);
        if (!st) {
            polar_cim_work_start(s, POLAR_CIM_WORK_PROGRAM);
        }
        return st;
    }

    st = polar_cim_sgl_init(&cmd->dst, cmd->sqe.dst_sgl, cmd->sqe.dst_nsge,
                            "destination");
    if (st) {
        return st;
    }
    cim_command_matmul_prepare(s->engine, &s->fw, c, &cmd->job);
    vector_bytes = c->in_dim + 4 * (uint64_t)c->out_dim;
    cmd->chunk = MIN(cmd->job.chunk,
                     MAX(1, POLAR_CIM_CHUNK_BYTES / vector_bytes));
    cmd->in = g_try_malloc((uint64_t)cmd->chunk * c->in_dim);
    cmd->out = g_try_malloc((uint64_t)cmd->chunk * c->out_dim * 4);
    if (!cmd->in || !cmd->out) {
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: no memory for a chunk "
                      "of %u vectors of %" PRIu64 " bytes\n", cmd->chunk,
                      vector_bytes);
        return POLAR_CIM_ST_NO_RESOURCES;
    }
    cmd->first = 0;
    cmd->n = 0;
    return POLAR_CIM_ST_OK;
}

/*
 * The next step of a MATMUL whose previous chunk (if any) the worker has
 * just finished with status cmd->status: writes that chunk's outputs,
 * then fetches the next chunk and hands it over. Returns true while the
 * worker has a chunk.
 */
static bool polar_cim_matmul_step(PolarCimState *s)
{
    PolarCimCmd *cmd = &s->cmd;
    struct cim_command *c = &cmd->c;
    uint64_t i, n;

    if (cmd->n) {
        if (cmd->status) {
            return false;
        }
        n = (uint64_t)cmd->n * c->out_dim;
        for (i = 0; i < n; i++) {
            cmd->out[i] = cpu_to_le32(cmd->out[i]);
        }
        cmd->status = polar_cim_sgl_xfer(s, &cmd->dst, cmd->out, n * 4,
                                         false);
        s->heartbeat += cmd->n;
        trace_polar_cim_chunk(cmd->qid, cmd->first, cmd->n, cmd->status);
        if (cmd->status) {
            return false;
        }
        cmd->first += cmd->n;
    }
    if (cmd->first == c->batch) {
        cmd->result = c->batch * c->out_dim * 4;
        return false;
    }
    cmd->n = MIN(cmd->chunk, c->batch - cmd->first);
    cmd->status = polar_cim_sgl_xfer(s, &cmd->src, cmd->in,
                                     (uint64_t)cmd->n * c->in_dim, true);
    if (cmd->status) {
        return false;
    }
    polar_cim_work_start(s, POLAR_CIM_WORK_MATMUL);
    return true;
}

/*
 * The checks every command gets at fetch, in the datasheet's order, and
 * the commands that need no engine work. Returns true when the command
 * has been handed to the worker, false when cmd->status is final.
 */
static bool polar_cim_cmd_execute(PolarCimState *s)
{
    PolarCimCmd *cmd = &s->cmd;
    struct polar_cim_sqe *e = &cmd->sqe;
    uint16_t st;

    cmd->result = 0;
    if (e->flags || e->rsvd0 || e->rsvd1 || e->rsvd2 || e->rsvd3) {
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: queue %u slot %u: "
                      "reserved SQE fields set\n", cmd->qid, cmd->slot);
        st = POLAR_CIM_ST_BAD_FIELD;
    } else if (s->fw_status != POLAR_CIM_FW_BOOTED &&
               e->opcode != POLAR_CIM_OP_NOP) {
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: queue %u: opcode 0x%x "
                      "without booted firmware\n", cmd->qid, e->opcode);
        st = POLAR_CIM_ST_NO_FIRMWARE;
    } else {
        switch (e->opcode) {
        case POLAR_CIM_OP_NOP:
        case POLAR_CIM_OP_FENCE:
            /*
             * One command executes at a time, so every command fetched
             * before a FENCE, on any queue, has completed when it runs.
             */
            st = POLAR_CIM_ST_OK;
            break;
        case POLAR_CIM_OP_READ_COUNTERS:
            st = polar_cim_cmd_read_counters(s, &cmd->result);
            break;
        case POLAR_CIM_OP_PROGRAM_TILES:
        case POLAR_CIM_OP_MATMUL:
            polar_cim_command_from_sqe(e, &cmd->c);
            st = cim_command_check(s->engine, &cmd->c, POLAR_CIM_MAX_BATCH);
            if (st) {
                qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: queue %u: "
                              "opcode 0x%x rejected with status %u\n",
                              cmd->qid, e->opcode, st);
                break;
            }
            st = polar_cim_cmd_compute_start(s);
            if (st) {
                break;
            }
            if (e->opcode == POLAR_CIM_OP_PROGRAM_TILES) {
                return true;
            }
            cmd->status = POLAR_CIM_ST_OK;
            return polar_cim_matmul_step(s);
        default:
            qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: bad opcode 0x%x\n",
                          e->opcode);
            st = POLAR_CIM_ST_BAD_OPCODE;
            break;
        }
    }
    cmd->status = st;
    return false;
}

/* Does the armed fault hit this fetch? */
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

/* Ends the command: STATUS.BUSY drops only here. */
static void polar_cim_cmd_end(PolarCimState *s)
{
    PolarCimCmd *cmd = &s->cmd;

    g_free(cmd->in);
    g_free(cmd->out);
    cmd->in = NULL;
    cmd->out = NULL;
    cmd->active = false;
    qemu_bh_schedule(s->bh);
}

/* Was the device reset, or the command's queue re-enabled, since fetch? */
static bool polar_cim_cmd_stale(PolarCimState *s)
{
    PolarCimCmd *cmd = &s->cmd;
    PolarCimQueue *queue = &s->queues[cmd->qid];

    return cmd->generation != s->generation || !queue->enabled ||
           cmd->queue_generation != queue->generation;
}

/*
 * The command has executed with cmd->status: after its modelled latency
 * (and an injected DELAY), posts the CQE and raises the interrupt.
 */
static void polar_cim_cmd_complete(PolarCimState *s)
{
    PolarCimCmd *cmd = &s->cmd;
    PolarCimQueue *queue = &s->queues[cmd->qid];
    struct polar_cim_cqe c;
    uint64_t cq_addr;

    if (polar_cim_cmd_stale(s)) {
        trace_polar_cim_dropped(cmd->qid, cmd->sqe.tag);
        polar_cim_cmd_end(s);
        return;
    }
    if (!cmd->waiting) {
        uint64_t us = 0;

        if (s->cycle_ps) {
            us = (polar_cim_cycles(s) - cmd->cycles_before) * s->cycle_ps /
                 1000000;
        }
        if (cmd->fault == POLAR_CIM_FAULT_DELAY) {
            us += cmd->fault_delay_us;
        }
        if (us) {
            cmd->waiting = true;
            timer_mod(s->latency_timer,
                      qemu_clock_get_us(QEMU_CLOCK_REALTIME) + us);
            return;
        }
    }
    cmd->waiting = false;

    s->commands++;
    cim_command_counters(s->engine, s->commands, s->live);
    s->progress++;
    queue->sq_head = (cmd->slot + 1) % queue->size;
    if (cmd->fault == POLAR_CIM_FAULT_DROP) {
        polar_cim_cmd_end(s);
        return;
    }
    c.tag = cpu_to_le32(cmd->fault == POLAR_CIM_FAULT_CORRUPT_CQE ?
                        ~cmd->sqe.tag : cmd->sqe.tag);
    c.status = cpu_to_le16(cmd->status);
    c.sq_head = cpu_to_le16(queue->sq_head);
    c.result = cpu_to_le32(cmd->status ? 0 : cmd->result);
    c.queue = cpu_to_le16(cmd->qid);
    c.phase = cpu_to_le16(queue->phase);
    cq_addr = queue->cq_base + (uint64_t)queue->cq_tail * sizeof(c);
    queue->cq_tail = (queue->cq_tail + 1) % queue->size;
    if (queue->cq_tail == 0) {
        queue->phase ^= 1;
    }
    if (polar_cim_dma(s, cq_addr, &c, sizeof(c), DMA_DIRECTION_FROM_DEVICE)) {
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: queue %u: CQE write at "
                      "0x%" PRIx64 " failed, queue stopped\n", cmd->qid,
                      cq_addr);
        queue->error = true;
        polar_cim_error(s, POLAR_CIM_ERROR_RING_DMA, cmd->qid);
        polar_cim_cmd_end(s);
        return;
    }
    trace_polar_cim_complete(cmd->qid, cmd->sqe.tag, cmd->status,
                             cmd->status ? 0 : cmd->result);
    polar_cim_raise(s, 1u << cmd->qid, cmd->qid);
    if (cmd->fault == POLAR_CIM_FAULT_ERROR_IRQ) {
        polar_cim_error(s, POLAR_CIM_ERROR_INJECTED, cmd->qid);
    }
    polar_cim_cmd_end(s);
}

static void polar_cim_latency_done(void *opaque)
{
    polar_cim_cmd_complete(opaque);
}

/* Fetches the SQE at the head of queue qid and starts executing it. */
static void polar_cim_cmd_start(PolarCimState *s, PolarCimQueue *queue,
                                unsigned qid)
{
    PolarCimCmd *cmd = &s->cmd;
    uint64_t sq_addr;

    *cmd = (PolarCimCmd){
        .active = true,
        .qid = qid,
        .slot = queue->sq_head,
        .generation = s->generation,
        .queue_generation = queue->generation,
        .fault = polar_cim_take_fault(s, qid),
        .fault_delay_us = s->fault_delay_us,
        .cycles_before = polar_cim_cycles(s),
    };
    queue->fetched++;
    sq_addr = queue->sq_base + (uint64_t)cmd->slot * sizeof(cmd->sqe);
    if (polar_cim_dma(s, sq_addr, &cmd->sqe, sizeof(cmd->sqe),
                      DMA_DIRECTION_TO_DEVICE)) {
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: queue %u: SQE read at "
                      "0x%" PRIx64 " failed, queue stopped\n", qid, sq_addr);
        queue->error = true;
        polar_cim_error(s, POLAR_CIM_ERROR_RING_DMA, qid);
        polar_cim_cmd_end(s);
        return;
    }
    polar_cim_sqe_to_cpu(&cmd->sqe);
    trace_polar_cim_cmd(qid, cmd->slot, cmd->sqe.opcode, cmd->sqe.tag);

    switch (cmd->fault) {
    case POLAR_CIM_FAULT_DMA_ERROR:
        cmd->status = POLAR_CIM_ST_DMA_ERROR;
        break;
    case POLAR_CIM_FAULT_STRAY_DMA: {
        uint8_t stray[64];

        /* A real device bug: DMA to an address nobody mapped for it. */
        if (polar_cim_dma(s, POLAR_CIM_STRAY_DMA_ADDR, stray, sizeof(stray),
                          DMA_DIRECTION_TO_DEVICE)) {
            qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: DMA read 0x%" PRIx64
                          "+%zu failed (injected stray DMA)\n",
                          (uint64_t)POLAR_CIM_STRAY_DMA_ADDR, sizeof(stray));
        }
        cmd->status = POLAR_CIM_ST_DMA_ERROR;
        break;
    }
    case POLAR_CIM_FAULT_FW_CRASH:
        s->fatal = true;
        polar_cim_error(s, POLAR_CIM_ERROR_FW_CRASH, qid);
        polar_cim_cmd_end(s);
        return;
    default:
        if (polar_cim_cmd_execute(s)) {
            return;             /* the worker has it */
        }
        break;
    }
    polar_cim_cmd_complete(s);
}

/*
 * The worker has handed back the command's work item: go on with it, or
 * stop it here if a reset, a queue disable or the device's exit made it
 * pointless.
 */
static void polar_cim_cmd_resume(PolarCimState *s)
{
    PolarCimCmd *cmd = &s->cmd;

    if (polar_cim_cmd_stale(s)) {
        trace_polar_cim_dropped(cmd->qid, cmd->sqe.tag);
        polar_cim_cmd_end(s);
        return;
    }
    if (cmd->status) {
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: queue %u: opcode 0x%x "
                      "failed in the array with status %u\n", cmd->qid,
                      cmd->sqe.opcode, cmd->status);
    }
    if (cmd->sqe.opcode == POLAR_CIM_OP_MATMUL && polar_cim_matmul_step(s)) {
        return;
    }
    polar_cim_cmd_complete(s);
}

/* ---- firmware boot and reset --------------------------------------------- */

static void polar_cim_boot_firmware(PolarCimState *s)
{
    uint64_t addr = s->fw_addr;
    uint32_t size = s->fw_size;
    uint32_t status;
    uint8_t *image;

    if (size < sizeof(struct polar_cim_fw_header) ||
        size > POLAR_CIM_FW_MAX_SIZE) {
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: firmware size %u out of "
                      "range\n", size);
        status = POLAR_CIM_FW_ERR_SIZE;
    } else {
        image = g_malloc(size);
        if (polar_cim_dma(s, addr, image, size, DMA_DIRECTION_TO_DEVICE)) {
            qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: firmware read at 0x%"
                          PRIx64 "+%u failed\n", addr, size);
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
    s->fw_status = status;
    s->fw_version = status == POLAR_CIM_FW_BOOTED ? s->fw.version : 0;
    polar_cim_raise(s, POLAR_CIM_INT_FW, s->num_queues);
}

/* A power-on reset clears the tiles and the counters: a fresh engine. */
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
    memset(&s->fw, 0, sizeof(s->fw));
    s->commands = 0;
    memset(s->live, 0, sizeof(s->live));
}

/* ---- the bottom half ------------------------------------------------------ */

/* A queue with work, round-robin. */
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
 * Everything the device does on its own, with the BQL held: continue the
 * command the worker handed back, clear the engine after a power-on
 * reset, boot firmware, then fetch and run commands.
 */
static void polar_cim_bh(void *opaque)
{
    PolarCimState *s = opaque;
    unsigned budget = POLAR_CIM_BH_BUDGET, qid;
    PolarCimQueue *queue;

    if (s->cmd.active) {
        if (s->cmd.waiting || polar_cim_work_running(s)) {
            return;
        }
        polar_cim_cmd_resume(s);
        if (s->cmd.active) {
            return;
        }
    }
    if (s->engine_reset_pending) {
        s->engine_reset_pending = false;
        polar_cim_engine_recreate(s);
    }
    if (s->fw_boot_pending) {
        s->fw_boot_pending = false;
        polar_cim_boot_firmware(s);
    }
    while (!s->cmd.active && (queue = polar_cim_next_queue(s, &qid))) {
        if (!budget--) {
            qemu_bh_schedule(s->bh);
            return;
        }
        polar_cim_cmd_start(s, queue, qid);
    }
}

/* ---- registers ----------------------------------------------------------- */

/*
 * A CTRL reset clears queues, firmware, interrupts and faults; the tiles
 * keep their weights, as non-volatile cells do, so a driver recovering
 * from a hang can re-run jobs without reprogramming. A power-on (system)
 * reset also clears the tiles. A command the worker is computing stops
 * at its next chunk; one waiting out its latency ends now.
 */
static void polar_cim_reset_regs(PolarCimState *s, bool power_on)
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
    if (s->cmd.active && s->cmd.waiting) {
        timer_del(s->latency_timer);
        s->cmd.waiting = false;
    }
    qemu_bh_schedule(s->bh);
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
        qemu_log_mask(LOG_GUEST_ERROR, "polar-cim: read of unknown queue %u "
                      "register 0x%" HWADDR_PRIx "\n", q, reg);
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
        qemu_bh_schedule(s->bh);
        break;
    case POLAR_CIM_Q_CQ_HEAD:
        if (!running || val >= queue->size) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "polar-cim: queue %u CQ head %u rejected\n", q, val);
            return;
        }
        queue->cq_head = val;
        qemu_bh_schedule(s->bh);
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
    case POLAR_CIM_REG_DESIGN:
        val = cim_engine_config(s->engine)->digital_planes |
              cim_engine_config(s->engine)->adc_bits_msb <<
              POLAR_CIM_DESIGN_MSB_BITS_SHIFT |
              cim_engine_config(s->engine)->adc_msb_levels <<
              POLAR_CIM_DESIGN_MSB_LEVELS_SHIFT;
        break;
    case POLAR_CIM_REG_STATUS:
        val = (s->fw_status == POLAR_CIM_FW_BOOTED ?
               POLAR_CIM_STATUS_FW_BOOTED : 0) |
              (s->fatal ? POLAR_CIM_STATUS_FATAL : 0) |
              (s->cmd.active ? POLAR_CIM_STATUS_BUSY : 0);
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
    trace_polar_cim_mmio_read(addr, val);
    return val;
}

static void polar_cim_mmio_write(void *opaque, hwaddr addr, uint64_t val,
                                 unsigned size)
{
    PolarCimState *s = opaque;

    trace_polar_cim_mmio_write(addr, val);
    if (addr >= POLAR_CIM_REG_QUEUE_BASE &&
        addr < POLAR_CIM_REG_Q(s->num_queues, 0)) {
        hwaddr off = addr - POLAR_CIM_REG_QUEUE_BASE;

        polar_cim_queue_write(s, off / POLAR_CIM_QUEUE_STRIDE,
                              off % POLAR_CIM_QUEUE_STRIDE, val);
        return;
    }

    switch (addr) {
    case POLAR_CIM_REG_SCRATCH:
        s->scratch = val;
        break;
    case POLAR_CIM_REG_CTRL:
        if (val & POLAR_CIM_CTRL_RESET) {
            trace_polar_cim_reset();
            polar_cim_reset_regs(s, false);
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
            qemu_bh_schedule(s->bh);
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
            /* The device publishes a consistent set after each command. */
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
    if (s->digital_planes > CIM_MAX_PLANES) {
        error_setg(errp, "polar-cim: digital-planes %" PRIu32 " is not in "
                   "0..%d", s->digital_planes, CIM_MAX_PLANES);
        return;
    }
    if (s->adc_bits_msb && (s->adc_bits_msb <= s->adc_bits ||
                            s->adc_bits_msb > CIM_MAX_ADC_BITS ||
                            s->adc_bits + s->adc_bits_msb >
                            CIM_MAX_ADC_BITS_SUM)) {
        error_setg(errp, "polar-cim: adc-bits-msb %" PRIu32 " is not 0 or "
                   "in adc-bits+1..%d with adc-bits + adc-bits-msb <= %d",
                   s->adc_bits_msb, CIM_MAX_ADC_BITS, CIM_MAX_ADC_BITS_SUM);
        return;
    }
    if (s->adc_msb_levels > CIM_MAX_MSB_LEVELS ||
        (s->adc_msb_levels && !s->adc_bits_msb)) {
        error_setg(errp, "polar-cim: adc-msb-levels %" PRIu32 " is not in "
                   "0..%d, or is set without adc-bits-msb",
                   s->adc_msb_levels, CIM_MAX_MSB_LEVELS);
        return;
    }
    cfg.digital_planes = s->digital_planes;
    cfg.adc_bits_msb = s->adc_bits_msb;
    cfg.adc_msb_levels = s->adc_msb_levels;
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
    if (s->cycle_ps > POLAR_CIM_MAX_CYCLE_PS) {
        error_setg(errp, "polar-cim: cycle-ps %" PRIu32 " is not in 0..%d",
                   s->cycle_ps, POLAR_CIM_MAX_CYCLE_PS);
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
    if (s->msix &&
        msix_init_exclusive_bar(pdev, s->num_queues + 1, POLAR_CIM_MSIX_BAR,
                                NULL) == 0) {
        for (v = 0; v <= s->num_queues; v++) {
            msix_vector_use(pdev, v);
        }
    }

    s->bh = qemu_bh_new_guarded(polar_cim_bh, s,
                                &DEVICE(pdev)->mem_reentrancy_guard);
    s->latency_timer = timer_new_us(QEMU_CLOCK_REALTIME,
                                    polar_cim_latency_done, s);
    qemu_mutex_init(&s->lock);
    qemu_cond_init(&s->work_cond);
    s->stopping = false;
    s->work = POLAR_CIM_WORK_NONE;
    qemu_thread_create(&s->worker, "polar-cim", polar_cim_worker, s,
                       QEMU_THREAD_JOINABLE);
}

static void polar_cim_exit(PCIDevice *pdev)
{
    PolarCimState *s = POLAR_CIM(pdev);

    /*
     * The worker never waits for the BQL we hold, so it stops after the
     * work item it may be running: at most one chunk of a MATMUL.
     */
    qemu_mutex_lock(&s->lock);
    s->stopping = true;
    qemu_cond_signal(&s->work_cond);
    qemu_mutex_unlock(&s->lock);
    qemu_thread_join(&s->worker);
    trace_polar_cim_exit(s->cmd.active);
    qemu_cond_destroy(&s->work_cond);
    qemu_mutex_destroy(&s->lock);
    timer_free(s->latency_timer);
    qemu_bh_delete(s->bh);
    g_free(s->cmd.in);
    g_free(s->cmd.out);
    if (msix_present(pdev)) {
        msix_uninit_exclusive_bar(pdev);
    }
    cim_engine_destroy(s->engine);
}

static void polar_cim_reset(DeviceState *dev)
{
    PolarCimState *s = POLAR_CIM(dev);

    s->scratch = 0;
    polar_cim_reset_regs(s, true);
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
    DEFINE_PROP_UINT32("digital-planes", PolarCimState, digital_planes, 0),
    DEFINE_PROP_UINT32("adc-bits-msb", PolarCimState, adc_bits_msb, 0),
    DEFINE_PROP_UINT32("adc-msb-levels", PolarCimState, adc_msb_levels, 0),
    DEFINE_PROP_UINT32("queues", PolarCimState, num_queues, 4),
    DEFINE_PROP_BOOL("msix", PolarCimState, msix, true),
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
    object_class_property_set_description(klass, "digital-planes",
        "most significant weight planes (sign plane first) read digitally "
        "as exact counts instead of through the ADC, 0..8");
    object_class_property_set_description(klass, "adc-bits-msb",
        "ADC bits of the most significant analog plane pairs, 0 = adc-bits "
        "for all; else adc-bits+1..16");
    object_class_property_set_description(klass, "adc-msb-levels",
        "significance levels (input plane + weight plane) converted at "
        "adc-bits-msb, 0 = 1 when adc-bits-msb is set");
    object_class_property_set_description(klass, "queues",
        "submission/completion ring pairs (1..16), one MSI-X vector each");
    object_class_property_set_description(klass, "msix",
        "on (default): MSI-X in BAR1; off: a chip without it, INTx only");
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
        "modelled completion latency per array cycle in ps, 0..1000000 "
        "(0 = none)");
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
