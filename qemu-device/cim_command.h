// SPDX-License-Identifier: MIT
/*
 * cim_command: what the polar-cim device's compute commands mean, as plain
 * C over cim_engine and cim_firmware. The QEMU device executes its
 * PROGRAM_TILES and MATMUL commands through these functions and the
 * library's software backend does the same, so both give the same status
 * codes and bit-identical outputs for the same command.
 */
#ifndef CIM_COMMAND_H
#define CIM_COMMAND_H

#include <stdint.h>

#include "cim_engine.h"
#include "cim_firmware.h"
#include "polar_cim_hw.h"

/*
 * A MATMUL is evaluated in chunks of at least CIM_COMMAND_BATCH_CHUNK
 * vectors and about CIM_COMMAND_CHUNK_MACS multiply-accumulates (a few
 * milliseconds at most), with a progress callback after each: large enough
 * that the engine's threads and per-call set-up pay, small enough that
 * HEARTBEAT keeps moving.
 */
#define CIM_COMMAND_BATCH_CHUNK	16
#define CIM_COMMAND_CHUNK_MACS	(1u << 21)

/**
 * struct cim_command - the compute fields of a submission entry, in CPU
 * byte order (see struct polar_cim_sqe for their meaning)
 */
struct cim_command {
	uint8_t opcode;
	uint8_t wfmt;
	uint8_t xfmt;
	uint16_t tile0;
	uint32_t in_dim;
	uint32_t out_dim;
	uint32_t batch;
	uint32_t adc_fs_q8;
	uint32_t rows_per_conv;
	uint32_t job_seed;
};

/**
 * cim_command_check() - the device's checks of a compute command before
 * any DMA: returns POLAR_CIM_ST_OK or the status the command completes
 * with. @max_batch bounds MATMUL's batch.
 */
uint16_t cim_command_check(const struct cim_engine *e,
			   const struct cim_command *c, uint32_t max_batch);

/* Bytes PROGRAM_TILES reads, MATMUL reads and MATMUL writes. */
uint64_t cim_command_src_bytes(const struct cim_command *c);
uint64_t cim_command_dst_bytes(const struct cim_command *c);

/**
 * cim_command_program() - PROGRAM_TILES: load out_dim x in_dim weight
 * codes @w (one byte each, NF4 as codebook index) into the tile range.
 */
uint16_t cim_command_program(struct cim_engine *e,
			     const struct cim_command *c, const int8_t *w);

/**
 * struct cim_command_matmul_job - a checked MATMUL set up for evaluation
 * in chunks of vectors, so that a caller can move each chunk's data on its
 * own and stop between chunks
 * @args: the engine's arguments, except the chunk's vectors and buffers
 * @sched: the firmware's plane schedule, @args.n_sched pairs of it
 * @chunk: vectors per chunk (CIM_COMMAND_BATCH_CHUNK at least)
 */
struct cim_command_matmul_job {
	struct cim_matmul_args args;
	struct cim_plane_pair sched[CIM_FW_MAX_PAIRS];
	uint32_t chunk;
};

/**
 * cim_command_matmul_prepare() - sets up @j for the MATMUL @c (which
 * cim_command_check() accepted) with the plane schedule and the default
 * ADC full scale of firmware @fw.
 */
void cim_command_matmul_prepare(const struct cim_engine *e,
				const struct cim_firmware *fw,
				const struct cim_command *c,
				struct cim_command_matmul_job *j);

/**
 * cim_command_matmul_chunk() - evaluates vectors @first..@first+@n-1 of
 * the MATMUL @j: @x holds their n x in_dim input codes, @y receives n x
 * out_dim INT32 sums. A vector's noise depends on its index in the whole
 * command, so any split into chunks gives the same outputs.
 */
uint16_t cim_command_matmul_chunk(struct cim_engine *e,
				  struct cim_command_matmul_job *j,
				  uint32_t first, uint32_t n, const int8_t *x,
				  int32_t *y);

/**
 * cim_command_matmul() - MATMUL: @x holds batch x in_dim input codes, @y
 * receives batch x out_dim INT32 sums (CPU byte order). The firmware @fw
 * supplies the plane schedule and the default ADC full scale. @progress,
 * if not NULL, is called with @opaque after each chunk of vectors.
 */
uint16_t cim_command_matmul(struct cim_engine *e,
			    const struct cim_firmware *fw,
			    const struct cim_command *c, const int8_t *x,
			    int32_t *y,
			    void (*progress)(void *opaque, uint32_t vectors),
			    void *opaque);

/**
 * cim_command_counters() - the device's counter registers (enum
 * polar_cim_counter, in CPU byte order) from the engine's counters and
 * @commands completed: what READ_COUNTERS and COUNTERS_LATCH report. The
 * energy is the engine's model (cim_energy_estimate) in femtojoules, for
 * reporting only.
 */
void cim_command_counters(const struct cim_engine *e, uint64_t commands,
			  uint64_t out[POLAR_CIM_NUM_COUNTERS]);

#endif /* CIM_COMMAND_H */
