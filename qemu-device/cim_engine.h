// SPDX-License-Identifier: MIT
/*
 * cim_engine - bit-plane compute-in-memory arithmetic for polar-accel.
 *
 * Plain C11, no QEMU types: linked by the QEMU device and by libpolar-accel's
 * software backend. Every quantity that reaches an output is computed in
 * integer / fixed point only, so both builds are bit-identical whatever the
 * compiler's floating-point flags. Floating point appears only in
 * cim_energy_estimate(), a reporting helper.
 *
 * The model is written down in cim_engine.md; the formulas that define the
 * chip's behaviour are repeated next to the functions below so that an
 * independent reimplementation (tests/unit/cim_naive.h) can follow them.
 *
 * Thread-safety: an engine is used by one thread at a time (the device's
 * worker thread, or one library handle). Distinct engines are independent.
 * Inside cim_engine_matmul() the engine may split the batch over helper
 * threads of its own (cim_engine_set_threads); the result is the same
 * for any number of threads.
 * The free functions (cim_mix64, cim_hash64, cim_gauss_q17, cim_cell_*,
 * cim_adc_static) are pure and thread-safe.
 *
 * Errors are returned as -errno; nothing is printed.
 */
#ifndef CIM_ENGINE_H
#define CIM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits (arguments outside them give -EINVAL) ---------------------- */
#define CIM_MAX_ROWS        4096
#define CIM_MAX_COLS        4096
#define CIM_MAX_TILES       (1u << 20)
#define CIM_MAX_ADC_BITS    16
#define CIM_MAX_RECON_FRAC  8
#define CIM_MAX_SIGMA_Q16   (4 * 65536)   /* static, dynamic, ADC offset */
#define CIM_MAX_GAIN_SIGMA_Q16 16384      /* 0.25 */
#define CIM_MAX_FS_Q8       (65535u * 256u)
#define CIM_MAX_PLANES      8
#define CIM_MAX_MSB_LEVELS  15          /* i + j of two 8-plane operands */
#define CIM_MAX_ADC_BITS_SUM 28         /* adc_bits + adc_bits_msb */

/* ---- defaults ----------------------------------------------------------- */
#define CIM_DEFAULT_ROWS    128
#define CIM_DEFAULT_COLS    128
#define CIM_DEFAULT_TILES   64
#define CIM_DEFAULT_ADC_BITS 5

/**
 * enum cim_recon - how the digital back end turns ADC codes into outputs.
 * @CIM_RECON_CODES: shift-add the codes themselves and apply the ADC step
 *	FS/L once per output (the default; what NeuroSim's and ISAAC's
 *	digital back ends do): nothing below one LSB is thrown away.
 * @CIM_RECON_CELLS: round every conversion to Q(F) cell currents,
 *	F = recon_frac_bits (F = 0: whole cells), then shift-add; kept to
 *	compare with the chip model before the faithful back end.
 */
enum cim_recon {
	CIM_RECON_CODES = 0,
	CIM_RECON_CELLS = 1,
};

/** enum cim_fmt - operand formats */
enum cim_fmt {
	CIM_FMT_INT8 = 0, /* 8 planes, two's complement (weights always signed) */
	CIM_FMT_INT4 = 1, /* 4 planes, codes -8..7 signed / 0..15 unsigned     */
	CIM_FMT_NF4  = 2, /* weights only: 4-bit codebook index 0..15, stored as
			   * the signed 8-bit codebook value (8 planes)        */
};

/**
 * struct cim_config - chip parameters (all fixed at creation).
 * Zero in a field marked "0 = default" selects the default.
 *
 * @rows: R, rows per tile (input index), 1..4096; 0 = 128.
 * @cols: C, columns per tile (output channel), 1..4096; 0 = 128.
 * @tiles: number of tiles, 1..2^20; 0 = 64.
 * @adc_bits: b, 1..16; 0 = 5. The ADC has L = 2^b - 1 steps.
 * @rows_per_conversion: G, rows summed per ADC conversion, 1..R; 0 = R.
 *	Rows [g*G, (g+1)*G) form row group g.
 * @adcs_per_tile: ADCs shared by a tile's columns (cycle model only);
 *	1..C; 0 = max(1, C/8) (NeuroSim's default 8:1 column mux).
 * @recon: enum cim_recon; 0 = CIM_RECON_CODES. See cim_engine.md.
 * @recon_frac_bits: F, fractional bits of one conversion's value under
 *	CIM_RECON_CELLS, 0..8 (0 = whole cells); must be 0 under
 *	CIM_RECON_CODES, which keeps every code unrounded.
 * @digital_planes: D, 0..8: the D most significant weight planes (the
 *	sign plane first) are read digitally: each of their row groups
 *	gives the exact count of active stored bits (no conductance
 *	deviation, read noise or ADC), added exactly to the output. Their
 *	stored bits still include stuck cells.
 * @adc_bits_msb: bm, 0 (off) or adc_bits + 1..16 with adc_bits + bm <=
 *	28: the ADC resolution of the analog conversions in the top
 *	@adc_msb_levels significance levels (below).
 * @adc_msb_levels: k, 0..15; 0 = 1 when @adc_bits_msb is set, and must be
 *	0 when it is not. A pair (input plane i, weight plane j) of an
 *	analog plane is converted at bm bits when i + j > s_max - k, s_max
 *	the largest i + j of an analog pair of the call's formats,
 *	(nx - 1) + (nw - 1 - D).
 * @sigma_static_q16: per-cell conductance deviation sigma, Q16 of a cell's
 *	unit current (65536 = 1.0), 0..4.0.
 * @sigma_dynamic_q16: read noise sigma per activated ON cell, Q16, 0..4.0.
 * @stuck_rate_ppm: probability of a stuck cell, parts per million, 0..1e6.
 * @adc_offset_sigma_q16: per-column ADC offset sigma, Q16 of one LSB, 0..4.0.
 * @adc_gain_sigma_q16: per-column ADC gain error sigma, Q16, 0..0.25.
 * @seed: chip seed; all static variability is a pure function of it.
 */
struct cim_config {
	uint32_t rows;
	uint32_t cols;
	uint32_t tiles;
	uint32_t adc_bits;
	uint32_t rows_per_conversion;
	uint32_t adcs_per_tile;
	uint32_t recon;
	uint32_t recon_frac_bits;
	uint32_t digital_planes;
	uint32_t adc_bits_msb;
	uint32_t adc_msb_levels;
	uint32_t sigma_static_q16;
	uint32_t sigma_dynamic_q16;
	uint32_t stuck_rate_ppm;
	uint32_t adc_offset_sigma_q16;
	uint32_t adc_gain_sigma_q16;
	uint64_t seed;
};

/** cim_recon_name() - "codes" or "cells"; NULL for any other value. */
const char *cim_recon_name(uint32_t recon);
/**
 * cim_recon_parse() - the enum cim_recon called @name ("codes", "cells"),
 * or -EINVAL. The device's property and the software backend's option
 * both read the name through it.
 */
int cim_recon_parse(const char *name);

/**
 * cim_adc_fs_for_recon() - the full scale (Q8 cells) a chip of @cfg should
 * convert at, given @fs_q8 chosen from statistics: raised to L = 2^b - 1
 * cells under whole-cell reconstruction without fractional bits, where a
 * step below one cell only rounds twice and clips earlier; unchanged
 * otherwise. The device's default full scale and the library's
 * calibration both go through it.
 */
uint32_t cim_adc_fs_for_recon(const struct cim_config *cfg, uint32_t fs_q8);

/** cim_config_default() - fill @cfg with the defaults (no noise, seed 0). */
void cim_config_default(struct cim_config *cfg);

/**
 * cim_config_resolve() - validate @in and write it to @out with every
 * "0 = default" field replaced by its value. Returns 0 or -EINVAL.
 */
int cim_config_resolve(const struct cim_config *in, struct cim_config *out);

/** struct cim_plane_pair - one step of a plane schedule */
struct cim_plane_pair {
	uint8_t x_plane; /* input bit-plane, 0 = LSB */
	uint8_t w_plane; /* weight bit-plane, 0 = LSB */
};

/**
 * struct cim_counters - what costs energy, accumulated since the last reset.
 * @array_activations: row-group activations: one per (batch item, tile,
 *	plane pair, row group containing at least one programmed row).
 * @cell_reads: sum over activations of (programmed rows in the group x
 *	programmed columns of the tile): cells biased by the activation.
 * @adc_conversions: one per (item, tile, analog plane pair, row group,
 *	column), at either resolution.
 * @adc_conversions_msb: those of them at adc_bits_msb bits.
 * @digital_reads: one per (item, tile, digital plane pair, row group,
 *	column): an exact count instead of a conversion.
 * @digital_read_rows: their programmed rows summed: the inputs of the
 *	popcount adder trees.
 * @shift_adds: one per conversion or digital read (shifted into the column
 *	accumulator) + one per (item, output) per extra row tile (tile partial
 *	sums added digitally).
 * @output_scales: one per (item, output) under CIM_RECON_CODES: the
 *	multiply of the code sum by the ADC step FS/L.
 * @macs: logical multiply-accumulates, batch x in_dim x out_dim.
 * @bytes_weights: weight bytes programmed (INT8: 1/weight, INT4/NF4: 1/2).
 * @bytes_in: input bytes (INT8: 1/element, INT4: 1/2).
 * @bytes_out: output bytes (4 per INT32 output).
 * @cells_programmed: cells written (weights x planes).
 * @cycles: critical-path cycles: per call, the busiest tile's cycles, where
 *	a tile spends 1 cycle per activation plus ceil(cols/adcs_per_tile)
 *	cycles converting that activation's columns; tiles of a call run
 *	concurrently, calls back to back. Programming is not counted.
 * @tile_cycles: the same, summed over tiles.
 * @jobs: successful cim_engine_matmul() calls.
 */
struct cim_counters {
	uint64_t array_activations;
	uint64_t cell_reads;
	uint64_t adc_conversions;
	uint64_t adc_conversions_msb;
	uint64_t digital_reads;
	uint64_t digital_read_rows;
	uint64_t shift_adds;
	uint64_t output_scales;
	uint64_t macs;
	uint64_t bytes_weights;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t cells_programmed;
	uint64_t cycles;
	uint64_t tile_cycles;
	uint64_t jobs;
};

struct cim_engine;

int cim_engine_create(const struct cim_config *cfg, struct cim_engine **out);
void cim_engine_destroy(struct cim_engine *e);
/** cim_engine_config() - the resolved configuration (defaults filled in). */
const struct cim_config *cim_engine_config(const struct cim_engine *e);

/**
 * cim_engine_set_codebook() - replace the NF4 codebook (16 signed 8-bit
 * values, index 0..15). Affects later cim_engine_program() calls only.
 * Default: QLoRA NF4 values v scaled as round(v * 127), see cim_nf4_default.
 */
int cim_engine_set_codebook(struct cim_engine *e, const int8_t cb[16]);
extern const int8_t cim_nf4_default[16];

/**
 * cim_engine_program() - program a weight matrix into tiles [tile0, tile0+n).
 * @w: out_dim x in_dim, row-major (w[o * in_dim + i]). INT8: -128..127;
 *	INT4: -8..7; NF4: codebook index 0..15. Any other code -> -EINVAL.
 *
 * Tiling: row_tiles = ceil(in_dim / R), col_tiles = ceil(out_dim / C),
 * n = row_tiles * col_tiles; block (rt, ct) holds inputs [rt*R, ...) and
 * outputs [ct*C, ...) in tile tile0 + ct * row_tiles + rt. Cells outside the
 * matrix hold zero. Stuck cells override the programmed bit.
 * Returns n (tiles used), -EINVAL (bad argument), -ERANGE (tiles outside
 * the chip).
 */
int cim_engine_program(struct cim_engine *e, uint32_t tile0, uint32_t in_dim,
		       uint32_t out_dim, enum cim_fmt fmt, const int8_t *w);

/**
 * struct cim_matmul_args - one job on a programmed tile range.
 * @tile0, @in_dim, @out_dim, @wfmt: must match a cim_engine_program() call
 *	(same tiling; each tile's recorded format and block shape are checked).
 * @xfmt: CIM_FMT_INT8 or CIM_FMT_INT4.
 * @x_signed: 1 = two's complement inputs (MSB plane weighs -2^(n-1)),
 *	0 = unsigned (INT8 codes are read as uint8_t; INT4 codes 0..15).
 * @adc_fs_q8: ADC full scale in cell currents, Q8 (256 = one cell);
 *	0 = rows_per_conversion; otherwise 256..CIM_MAX_FS_Q8.
 * @job_seed: seeds the dynamic read noise of this job.
 * @batch: number of input vectors (>= 1).
 * @item0: index of x[0] within the whole job: vector k draws the noise of
 *	item item0 + k, so a job split into chunks (item0 = 0, n, 2n, ...)
 *	gives the same result as one call. item0 + batch must fit in 32 bits.
 * @x: batch x in_dim input codes. @y: batch x out_dim INT32 outputs.
 * @sched, @n_sched: plane pairs to evaluate (no duplicates, planes in
 *	range); NULL = all pairs, MSB first. The order does not change the
 *	result (noise is counter-based).
 */
struct cim_matmul_args {
	uint32_t tile0;
	uint32_t in_dim;
	uint32_t out_dim;
	enum cim_fmt wfmt;
	enum cim_fmt xfmt;
	int x_signed;
	uint32_t adc_fs_q8;
	uint64_t job_seed;
	uint32_t batch;
	uint32_t item0;
	const int8_t *x;
	int32_t *y;
	const struct cim_plane_pair *sched;
	uint32_t n_sched;
};

/**
 * cim_engine_matmul() - y = CIM(W x) for each batch item.
 * Returns 0, -EINVAL (bad argument or tile range not programmed with this
 * format / shape), -ERANGE (tiles outside the chip), -ENOMEM.
 * On error @y is unspecified and counters are unchanged.
 */
int cim_engine_matmul(struct cim_engine *e, const struct cim_matmul_args *a);

#define CIM_MAX_THREADS 16

/*
 * Lets cim_engine_matmul() split a large batch over @threads threads (1..
 * CIM_MAX_THREADS; the default is 1). Items are independent and the
 * arithmetic is integer, so results and counters do not change.
 */
int cim_engine_set_threads(struct cim_engine *e, unsigned int threads);

/**
 * enum cim_kernel - how cim_engine_matmul() evaluates conversions.
 * @CIM_KERNEL_AUTO: the fastest kernel this CPU runs (the default).
 * @CIM_KERNEL_PORTABLE: plain C, AND + popcount over bit-planes.
 * @CIM_KERNEL_AVX2: for a chip without read noise (static deviations,
 *	stuck cells, ADC offsets and gains are fine), each conversion's
 *	analog sum is an 8-bit dot product (cim_engine.md,
 *	"Performance"): vpmaddubsw; needs AVX2 and FMA and an even
 *	rows_per_conversion of at most 128.
 * @CIM_KERNEL_AVX512: the same with AVX-512 VNNI's vpdpbusd; needs
 *	AVX-512 F/BW/DQ/VL/VNNI and rows_per_conversion a multiple of 4.
 * A selected kernel is the fastest one allowed: a chip or CPU it does not
 * cover runs the next one down (AVX512, AVX2, PORTABLE). Every kernel
 * computes the same function: results and counters do not depend on the
 * choice, only the time does (tests compare them).
 */
enum cim_kernel {
	CIM_KERNEL_AUTO = 0,
	CIM_KERNEL_PORTABLE = 1,
	CIM_KERNEL_AVX2 = 2,
	CIM_KERNEL_AVX512 = 3,
};

/*
 * Selects the kernel; -EINVAL for an unknown one, -EOPNOTSUPP when this
 * CPU cannot run it.
 */
int cim_engine_set_kernel(struct cim_engine *e, enum cim_kernel k);

/*
 * cim_cpu_features() - the vector units of this CPU that the engine and the
 * library's kernels choose from: the one place that asks the CPU, so that
 * every kernel choice agrees. CIM_CPU_AVX512 is F, VL, DQ and BW together.
 */
#define CIM_CPU_POPCNT		(1u << 0)
#define CIM_CPU_AVX2_FMA	(1u << 1)
#define CIM_CPU_AVX512		(1u << 2)
#define CIM_CPU_AVX512_VNNI	(1u << 3)
unsigned int cim_cpu_features(void);
/**
 * cim_engine_kernel_name() - "avx512", "avx2" or "portable": the kernel a
 * MATMUL on this engine's chip uses (a chip the dot-product kernels do not
 * cover, such as one with read noise, says "portable" whatever was
 * selected).
 */
const char *cim_engine_kernel_name(const struct cim_engine *e);

void cim_engine_counters(const struct cim_engine *e, struct cim_counters *c);
void cim_engine_reset_counters(struct cim_engine *e);

/* ---- the documented definition of variability --------------------------
 *
 * cim_mix64(x): splitmix64 output function of x + 0x9E3779B97F4A7C15 (the
 *	increment is added before the finaliser).
 * cim_hash64(seed, addr) = cim_mix64(cim_mix64(seed) ^ addr).
 *
 * cim_gauss_q17(key): Irwin-Hall normal sample, Q17 (131072 = 1 sigma):
 *	for k = 0..2: w_k = cim_mix64(key + (k + 1) * 0x9E3779B97F4A7C15);
 *	the 12 16-bit chunks u of w_0..w_2 give sum(2u + 1) - 786432,
 *	which has mean exactly 0 and sigma 2^17 (to 1e-9).
 *
 * round_shift(v, s) = floor((v + 2^(s-1)) / 2^s) (round half up).
 *
 * Cell address (domain d, tile t, row r, column c, plane p):
 *	d << 60 | t << 40 | r << 24 | c << 8 | p.
 * dg (Q7, units of 1/128 cell current), domain CIM_DOM_DG:
 *	clamp(round_shift(gauss_q17(hash(seed, addr)) * sigma_static_q16, 26),
 *	      -128, 127)                     (0 when sigma_static_q16 == 0)
 * stuck, domain CIM_DOM_STUCK: h = hash(seed, addr);
 *	stuck iff ((h >> 32) * 1000000) >> 32 < stuck_rate_ppm; value h & 1.
 * ADC gain (Q16), domain CIM_DOM_GAIN, address with r = p = 0:
 *	clamp(65536 + round_shift(gauss * adc_gain_sigma_q16, 17), 0, 131072)
 * ADC offset (Q8 of one LSB), domain CIM_DOM_OFFSET, address with
 * r = p = 0:
 *	round_shift(gauss * adc_offset_sigma_q16, 25)
 * Dynamic noise of a conversion (Q8 cell currents) with n ON cells active:
 *	item_key = hash(job_seed, CIM_DOM_JOB << 60 | item), item = item0 + k;
 *	addr = t << 40 | c << 24 | g << 8 | x_plane << 4 | w_plane;
 *	sig_n = isqrt(sigma_dynamic_q16^2 * n)       (floor, Q16)
 *	noise = round_shift(gauss_q17(hash(item_key, addr)) * sig_n, 25)
 *	(k = index in the call's batch, t = absolute tile, c = column in the
 *	tile, g = row group in the tile; no draw when n == 0)
 *
 * Row groups g = 0 .. ceil(rows_used / G) - 1 of a tile, rows_used the
 * programmed block's rows: a group with no programmed row is not
 * converted (no noise, no offset, no count).
 * One conversion (input plane i, weight plane j, column c, group g):
 *	active rows: x bit i = 1 and stored (post-stuck) weight bit j = 1
 *	S_q8 = 256 n + 2 * sum(dg of active cells) + noise
 *	L = 2^b - 1; FS = adc_fs_q8 (Q8); gain, offset from cim_adc_static()
 *	M_c  = floor((2 * gain * L * 256 + FS) / (2 * FS))  (once per call)
 *	code = clamp(round_shift(S_q8 * M_c + offset * 65536, 24), 0, L)
 *	value = code                                       (CIM_RECON_CODES)
 *	value = floor((2 * code * FS * 2^F + 256 L) / (512 L))  (CELLS)
 *		(= round(code * FS / L) in Q(F) cell currents)
 *	acc += s_i * s_j * 2^(i+j) * value, s = -1 for the MSB plane of a
 *		signed operand (weights always), else +1
 * Chip design (digital_planes D, adc_bits_msb bm, adc_msb_levels k), per
 * pair of the call (nx, nw planes of the operands):
 *	digital pair, j >= nw - D: no conversion; per row group
 *		n = count of active rows (stored bits, so stuck cells
 *		count; no dg, no noise, no offset) and
 *		acc_d += s_i * s_j * 2^(i+j) * n
 *	MSB pair, analog with i + j > (nx - 1) + (nw - 1 - D) - k and
 *		bm != 0: converted as above with L_m = 2^bm - 1 in place of L
 *		(its own M_c), value in its own step FS/L_m
 *	every other pair: L as above.
 *	With bm set, CODES weighs a code by the other ADC's L
 *	(value = code * L_m at L, code * L at L_m) so that acc is in steps
 *	of FS/(L L_m) and L_e = L L_m below; otherwise L_e = L. CELLS values
 *	are already in Q(F) cells.
 * Output, acc summed over all row groups and row tiles of the column:
 *	CODES: v = floor((2 * acc * FS + 256 L_e) / (512 L_e))
 *		(= round(acc * FS / (256 L_e)) cells, FS in Q8: the ADC step
 *		applied once per output)
 *	CELLS: v = round_shift(acc, F) (acc when F = 0)
 *	y = clamp(v + acc_d, INT32)
 * Exactness with no variability: CODES at FS = L cells and G <= L, any b;
 * CELLS (F = 0) at FS = G <= L except b = 10..12 with G > 1014, where
 * the rounded M_c moves a code (cim_engine.md).
 */
#define CIM_DOM_DG     1u
#define CIM_DOM_STUCK  2u
#define CIM_DOM_GAIN   3u
#define CIM_DOM_OFFSET 4u
#define CIM_DOM_JOB    5u

uint64_t cim_mix64(uint64_t x);
uint64_t cim_hash64(uint64_t seed, uint64_t addr);
int32_t cim_gauss_q17(uint64_t key);
uint64_t cim_cell_addr(uint32_t domain, uint32_t tile, uint32_t row,
		       uint32_t col, uint32_t plane);
/** cim_cell_dg_q7() - static conductance deviation of one cell, Q7. */
int32_t cim_cell_dg_q7(const struct cim_config *cfg, uint32_t tile,
		       uint32_t row, uint32_t col, uint32_t plane);
/** cim_cell_stuck() - -1 if the cell works, else the stuck bit (0 or 1). */
int cim_cell_stuck(const struct cim_config *cfg, uint32_t tile, uint32_t row,
		   uint32_t col, uint32_t plane);
/** cim_adc_static() - per-column ADC gain (Q16) and offset (Q8 LSB). */
void cim_adc_static(const struct cim_config *cfg, uint32_t tile, uint32_t col,
		    int32_t *gain_q16, int32_t *offset_q8);

/* ---- energy (reporting only; double is fine here) ----------------------- */

/**
 * struct cim_energy_params - energy per operation, joules. Defaults (see
 * cim_engine.md for sources) from cim_energy_params_default().
 * @e_cell_read: one cell biased during one row-group activation.
 * @e_adc_conv: one conversion at @e_adc_ref_bits; scaled by 2^(b - ref)
 *	(constant Walden figure of merit).
 * @e_shift_add: one 32-bit digital add (shift is wiring).
 * @e_popcount_row: one row's share of a digital read's popcount adder
 *	tree (a tree over G one-bit inputs has about 2 G full-adder bits).
 * @e_output_scale: one 32-bit integer multiply (an output's code sum by
 *	the ADC step, CIM_RECON_CODES).
 * @e_io_byte: one input/output byte through an on-chip SRAM buffer.
 * @e_weight_byte: one weight byte fetched from DRAM to program tiles.
 * @e_cell_write: one cell programmed (0 by default: not modelled).
 */
struct cim_energy_params {
	double e_cell_read;
	double e_adc_conv;
	double e_adc_ref_bits;
	double e_shift_add;
	double e_popcount_row;
	double e_output_scale;
	double e_io_byte;
	double e_weight_byte;
	double e_cell_write;
};

/** struct cim_energy - joules by category, and TOPS/W of the compute. */
struct cim_energy {
	double array;
	double adc;
	double digital;
	double io;
	double weights;
	double total;          /* all of the above */
	double compute;        /* array + adc + digital */
	double tops_per_w;     /* 2 * macs / compute / 1e12 */
	double tops_per_w_all; /* 2 * macs / total / 1e12 */
};

void cim_energy_params_default(struct cim_energy_params *p);
/**
 * cim_energy_estimate() - @p NULL = defaults; @adc_bits as configured, for
 * a chip without MSB conversions (cim_energy_estimate_chip() otherwise).
 */
void cim_energy_estimate(const struct cim_counters *c, uint32_t adc_bits,
			 const struct cim_energy_params *p,
			 struct cim_energy *out);
/**
 * cim_energy_estimate_chip() - the same for the chip @cfg (resolved): its
 * MSB conversions at adc_bits_msb bits, its digital reads.
 */
void cim_energy_estimate_chip(const struct cim_counters *c,
			      const struct cim_config *cfg,
			      const struct cim_energy_params *p,
			      struct cim_energy *out);

#ifdef __cplusplus
}
#endif
#endif /* CIM_ENGINE_H */
