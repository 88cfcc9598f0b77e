// SPDX-License-Identifier: MIT
/*
 * fp32 networks on the host: a packed, blocked sgemm (AVX2/FMA micro-kernel
 * chosen at run time, portable C otherwise), conv2d as im2col + sgemm,
 * maxpool, ReLU, linear, softmax cross-entropy, their gradients, Adam, and
 * deterministic data-parallel training on a few threads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <immintrin.h>

#include "polar/nn.h"
#include "polar_internal.h"
#include "cim_engine.h"

/* --- sgemm ------------------------------------------------------------- */

/*
 * GotoBLAS/BLIS structure: C is computed in MC x NC blocks over KC slices
 * of k; the slices of op(A) and op(B) are packed into MR-row and NR-column
 * panels (zero-padded at the edges), and an MR x NR micro-kernel
 * accumulates a panel pair in registers. Every element of C sums its k
 * products in increasing k order, one KC slice at a time, whatever m and n
 * are, so a row's result does not depend on the other rows.
 */
#define MR 6
#define NR 16
#define KC 256
#define MC 96
#define NC 512

typedef void (*kernel_fn)(size_t kc, const float *a, const float *b,
			  float *c, size_t ldc, int load_c);

__attribute__((target("avx2,fma")))
static void kernel_avx2(size_t kc, const float *a, const float *b, float *c,
			size_t ldc, int load_c)
{
	__m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
	__m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
	__m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
	__m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
	__m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
	__m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
	size_t p;

	for (p = 0; p < kc; p++) {
		__m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;

		av = _mm256_broadcast_ss(a + 0);
		c00 = _mm256_fmadd_ps(av, b0, c00);
		c01 = _mm256_fmadd_ps(av, b1, c01);
		av = _mm256_broadcast_ss(a + 1);
		c10 = _mm256_fmadd_ps(av, b0, c10);
		c11 = _mm256_fmadd_ps(av, b1, c11);
		av = _mm256_broadcast_ss(a + 2);
		c20 = _mm256_fmadd_ps(av, b0, c20);
		c21 = _mm256_fmadd_ps(av, b1, c21);
		av = _mm256_broadcast_ss(a + 3);
		c30 = _mm256_fmadd_ps(av, b0, c30);
		c31 = _mm256_fmadd_ps(av, b1, c31);
		av = _mm256_broadcast_ss(a + 4);
		c40 = _mm256_fmadd_ps(av, b0, c40);
		c41 = _mm256_fmadd_ps(av, b1, c41);
		av = _mm256_broadcast_ss(a + 5);
		c50 = _mm256_fmadd_ps(av, b0, c50);
		c51 = _mm256_fmadd_ps(av, b1, c51);
		a += MR;
		b += NR;
	}
#define STORE(row, lo, hi)						\
	do {								\
		float *r = c + (row) * ldc;				\
		if (load_c) {						\
			lo = _mm256_add_ps(_mm256_loadu_ps(r), lo);	\
			hi = _mm256_add_ps(_mm256_loadu_ps(r + 8), hi);	\
		}							\
		_mm256_storeu_ps(r, lo);				\
		_mm256_storeu_ps(r + 8, hi);				\
	} while (0)
	STORE(0, c00, c01);
	STORE(1, c10, c11);
	STORE(2, c20, c21);
	STORE(3, c30, c31);
	STORE(4, c40, c41);
	STORE(5, c50, c51);
#undef STORE
}

static void kernel_c(size_t kc, const float *a, const float *b, float *c,
		     size_t ldc, int load_c)
{
	float acc[MR][NR];
	size_t p, i, j;

	memset(acc, 0, sizeof(acc));
	for (p = 0; p < kc; p++) {
		for (i = 0; i < MR; i++)
			for (j = 0; j < NR; j++)
				acc[i][j] += a[i] * b[j];
		a += MR;
		b += NR;
	}
	for (i = 0; i < MR; i++)
		for (j = 0; j < NR; j++)
			c[i * ldc + j] = load_c ? c[i * ldc + j] + acc[i][j] :
				acc[i][j];
}

static kernel_fn pick_kernel(void)
{
	if (cim_cpu_features() & CIM_CPU_AVX2_FMA)
		return kernel_avx2;
	return kernel_c;
}

/* Per-thread packing buffers, freed when the thread exits. */
struct pack_bufs {
	float a[MC * KC];
	float b[KC * NC];
};

static pthread_key_t pack_key;
static pthread_once_t pack_once = PTHREAD_ONCE_INIT;
static kernel_fn kernel;

static void pack_init(void)
{
	pthread_key_create(&pack_key, free);
	kernel = pick_kernel();
}

static struct pack_bufs *pack_bufs(void)
{
	struct pack_bufs *p;

	pthread_once(&pack_once, pack_init);
	p = pthread_getspecific(pack_key);
	if (!p) {
		p = aligned_alloc(64, sizeof(*p));
		if (!p)
			abort();	/* 1.2 MB; nothing sensible to return */
		pthread_setspecific(pack_key, p);
	}
	return p;
}

/*
 * Packs op(A)[i0..i0+mc)[p0..p0+kc) into MR-row panels: panel element
 * (p, i) at dst[p * MR + i]. Loops run along memory in A.
 */
static void pack_a(int ta, const float *a, size_t lda, size_t i0, size_t mc,
		   size_t p0, size_t kc, float *dst)
{
	size_t ir, i, p;

	for (ir = 0; ir < mc; ir += MR, dst += MR * kc) {
		size_t rows = mc - ir < MR ? mc - ir : MR;

		if (rows < MR)
			memset(dst, 0, MR * kc * sizeof(float));
		if (ta) {
			for (p = 0; p < kc; p++) {
				const float *src = a + (p0 + p) * lda + i0 + ir;

				for (i = 0; i < rows; i++)
					dst[p * MR + i] = src[i];
			}
		} else {
			for (i = 0; i < rows; i++) {
				const float *src = a + (i0 + ir + i) * lda + p0;

				for (p = 0; p < kc; p++)
					dst[p * MR + i] = src[p];
			}
		}
	}
}

/*
 * Packs op(B)[p0..p0+kc)[j0..j0+nc) into NR-column panels: panel element
 * (p, j) at dst[p * NR + j].
 */
static void pack_b(int tb, const float *b, size_t ldb, size_t p0, size_t kc,
		   size_t j0, size_t nc, float *dst)
{
	size_t jr, j, p;

	for (jr = 0; jr < nc; jr += NR, dst += NR * kc) {
		size_t cols = nc - jr < NR ? nc - jr : NR;

		if (cols < NR)
			memset(dst, 0, NR * kc * sizeof(float));
		if (tb) {
			for (j = 0; j < cols; j++) {
				const float *src = b + (j0 + jr + j) * ldb + p0;

				for (p = 0; p < kc; p++)
					dst[p * NR + j] = src[p];
			}
		} else {
			for (p = 0; p < kc; p++)
				memcpy(dst + p * NR,
				       b + (p0 + p) * ldb + j0 + jr,
				       cols * sizeof(float));
		}
	}
}

void polar_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k,
		 const float *a, size_t lda, const float *b, size_t ldb,
		 float beta, float *c, size_t ldc)
{
	struct pack_bufs *pb;
	size_t jc, pc, ic, jr, ir, i, j;

	if (!m || !n)
		return;
	if (!c || (k && (!a || !b))) {
		polar_null_arg(__func__, !c ? "c" : !a ? "a" : "b");
		return;
	}
	if ((k && lda < (trans_a ? m : k)) || (k && ldb < (trans_b ? k : n)) ||
	    ldc < n) {
		polar_fail(-EINVAL, "%s: lda %zu, ldb %zu, ldc %zu too small for "
			   "%zu x %zu x %zu", __func__, lda, ldb, ldc, m, n, k);
		return;
	}
	if (!k) {
		if (beta == 0.0f)
			for (i = 0; i < m; i++)
				memset(c + i * ldc, 0, n * sizeof(float));
		return;
	}
	pb = pack_bufs();
	for (jc = 0; jc < n; jc += NC) {
		size_t nc = n - jc < NC ? n - jc : NC;

		for (pc = 0; pc < k; pc += KC) {
			size_t kc = k - pc < KC ? k - pc : KC;
			int load_c = pc > 0 || beta != 0.0f;

			pack_b(trans_b, b, ldb, pc, kc, jc, nc, pb->b);
			for (ic = 0; ic < m; ic += MC) {
				size_t mc = m - ic < MC ? m - ic : MC;

				pack_a(trans_a, a, lda, ic, mc, pc, kc,
				       pb->a);
				for (jr = 0; jr < nc; jr += NR) {
					size_t nr = nc - jr < NR ? nc - jr : NR;

					for (ir = 0; ir < mc; ir += MR) {
						size_t mr = mc - ir < MR ?
							mc - ir : MR;
						const float *ap = pb->a + ir * kc;
						const float *bp = pb->b + jr * kc;
						float *cp = c + (ic + ir) * ldc +
							jc + jr;
						float tmp[MR * NR];

						if (mr == MR && nr == NR) {
							kernel(kc, ap, bp, cp,
							       ldc, load_c);
							continue;
						}
						kernel(kc, ap, bp, tmp, NR, 0);
						for (i = 0; i < mr; i++)
							for (j = 0; j < nr; j++)
								cp[i * ldc + j] =
								load_c ?
								cp[i * ldc + j] +
								tmp[i * NR + j] :
								tmp[i * NR + j];
					}
				}
			}
		}
	}
}

/* --- building models ------------------------------------------------------ */

size_t polar_layer_in_size(const struct polar_layer *l)
{
	if (!l) {
		polar_null_arg(__func__, "l");
		return 0;
	}
	return (size_t)l->in_c * l->in_h * l->in_w;
}

size_t polar_layer_out_size(const struct polar_layer *l)
{
	if (!l) {
		polar_null_arg(__func__, "l");
		return 0;
	}
	return (size_t)l->out_c * l->out_h * l->out_w;
}

int polar_model_init(struct polar_model *m, const char *arch, uint32_t c,
		     uint32_t h, uint32_t w)
{
	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	memset(m, 0, sizeof(*m));
	POLAR_NONNULL(__func__, arch);
	if (strlen(arch) >= sizeof(m->arch))
		return polar_fail(-EINVAL, "model arch \"%s\" too long", arch);
	if (!c || !h || !w)
		return polar_fail(-EINVAL, "model input %ux%ux%u is empty", c,
				  h, w);
	strcpy(m->arch, arch);
	m->in_c = c;
	m->in_h = h;
	m->in_w = w;
	m->pre.pixel_scale = 1.0f / 255.0f;
	return 0;
}

static struct polar_layer *add_layer(struct polar_model *m,
				     enum polar_layer_type type,
				     const char *name)
{
	struct polar_layer *l, *prev;

	if (m->params || m->nlayers == POLAR_MODEL_MAX_LAYERS ||
	    strlen(name) >= sizeof(l->name)) {
		polar_fail(-EINVAL, "%s: cannot add layer \"%s\" (finalized, "
			   "%d layers or name too long)", m->arch, name,
			   POLAR_MODEL_MAX_LAYERS);
		return NULL;
	}
	l = &m->layers[m->nlayers];
	memset(l, 0, sizeof(*l));
	l->type = type;
	strcpy(l->name, name);
	l->stride = 1;
	l->ninputs = 1;
	l->input[0] = (int32_t)m->nlayers - 1;
	l->input[1] = POLAR_LAYER_INPUT;
	if (m->nlayers) {
		prev = &m->layers[m->nlayers - 1];
		l->in_c = prev->out_c;
		l->in_h = prev->out_h;
		l->in_w = prev->out_w;
	} else {
		l->in_c = m->in_c;
		l->in_h = m->in_h;
		l->in_w = m->in_w;
	}
	return l;
}

int polar_model_add_conv2d(struct polar_model *m, const char *name,
			   uint32_t out_c, uint32_t kernel_size, uint32_t pad)
{
	struct polar_layer *l;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, name);
	l = add_layer(m, POLAR_LAYER_CONV2D, name);
	if (!l)
		return -EINVAL;
	if (!out_c || !kernel_size || !name[0] ||
	    l->in_h + 2 * pad < kernel_size || l->in_w + 2 * pad < kernel_size)
		return polar_fail(-EINVAL, "%s: conv2d %s: %u outputs of %ux%u "
				  "pad %u do not fit a %ux%ux%u input",
				  m->arch, name, out_c, kernel_size,
				  kernel_size, pad, l->in_c, l->in_h, l->in_w);
	l->kernel = kernel_size;
	l->pad = pad;
	l->out_c = out_c;
	l->out_h = l->in_h + 2 * pad - kernel_size + 1;
	l->out_w = l->in_w + 2 * pad - kernel_size + 1;
	l->rows = out_c;
	l->cols = l->in_c * kernel_size * kernel_size;
	m->nlayers++;
	return 0;
}

int polar_model_add_linear(struct polar_model *m, const char *name,
			   uint32_t out)
{
	struct polar_layer *l;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, name);
	l = add_layer(m, POLAR_LAYER_LINEAR, name);
	if (!l)
		return -EINVAL;
	if (!out || !name[0])
		return polar_fail(-EINVAL, "%s: linear \"%s\" with %u outputs",
				  m->arch, name, out);
	l->out_c = out;
	l->out_h = 1;
	l->out_w = 1;
	l->rows = out;
	l->cols = (uint32_t)polar_layer_in_size(l);
	m->nlayers++;
	return 0;
}

int polar_model_add_relu(struct polar_model *m)
{
	struct polar_layer *l;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	l = add_layer(m, POLAR_LAYER_RELU, "");
	if (!l)
		return -EINVAL;
	l->out_c = l->in_c;
	l->out_h = l->in_h;
	l->out_w = l->in_w;
	m->nlayers++;
	return 0;
}

int polar_model_add_maxpool2(struct polar_model *m)
{
	struct polar_layer *l;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	l = add_layer(m, POLAR_LAYER_MAXPOOL2, "");
	if (!l)
		return -EINVAL;
	if (l->in_h < 2 || l->in_w < 2)
		return polar_fail(-EINVAL, "%s: maxpool2 of a %ux%u input",
				  m->arch, l->in_h, l->in_w);
	l->out_c = l->in_c;
	l->out_h = l->in_h / 2;
	l->out_w = l->in_w / 2;
	m->nlayers++;
	return 0;
}

/*
 * splitmix64 for seeds, initial weights and shuffling: the engine's own
 * mixer (the state's next value is what cim_mix64 adds to its argument).
 */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = cim_mix64(*s);

	*s += UINT64_C(0x9e3779b97f4a7c15);
	return z;
}

/* Uniform in [0, 1) with 24 bits. */
static float rng_float(uint64_t *s)
{
	return (float)(rng_next(s) >> 40) * (1.0f / 16777216.0f);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

static size_t round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

int polar_model_finalize(struct polar_model *m, uint64_t seed)
{
	size_t off = 0;
	unsigned int i, last = 0;
	uint64_t rng = seed;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	if (!m->nlayers)
		return polar_fail(-EINVAL, "%s: model has no layers", m->arch);
	for (i = 0; i < m->nlayers; i++) {
		struct polar_layer *l = &m->layers[i];

		if (!l->rows)
			continue;
		l->weight_off = off;
		off += round16((size_t)l->rows * l->cols);
		l->bias_off = off;
		off += round16(l->rows);
		last = i;
	}
	m->nparams = off;
	m->classes = (uint32_t)polar_layer_out_size(&m->layers[m->nlayers - 1]);
	m->params = aligned_alloc(64, (off * sizeof(float) + 63) / 64 * 64 +
				  64);
	if (!m->params)
		return polar_fail(-ENOMEM, "%s: out of memory for %zu "
				  "parameters", m->arch, off);
	memset(m->params, 0, off * sizeof(float));
	for (i = 0; i < m->nlayers; i++) {
		struct polar_layer *l = &m->layers[i];
		size_t j, nw = (size_t)l->rows * l->cols;
		float bound;

		if (!l->rows)
			continue;
		l->weight = m->params + l->weight_off;
		l->bias = m->params + l->bias_off;
		bound = i == last ? 1.0f / sqrtf((float)l->cols) :
			sqrtf(6.0f / (float)l->cols);
		for (j = 0; j < nw; j++)
			l->weight[j] = (2.0f * rng_float(&rng) - 1.0f) * bound;
	}
	return 0;
}

int polar_model_create(struct polar_model *m, const char *arch,
		       uint64_t seed)
{
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	if (!arch) {
		memset(m, 0, sizeof(*m));
		return polar_null_arg(__func__, "arch");
	}
	if (!strcmp(arch, "cnn")) {
		ret = polar_model_init(m, arch, 1, 28, 28);
		ret = ret ? ret : polar_model_add_conv2d(m, "conv1", 16, 5, 2);
		ret = ret ? ret : polar_model_add_relu(m);
		ret = ret ? ret : polar_model_add_maxpool2(m);
		ret = ret ? ret : polar_model_add_conv2d(m, "conv2", 32, 5, 2);
		ret = ret ? ret : polar_model_add_relu(m);
		ret = ret ? ret : polar_model_add_maxpool2(m);
		ret = ret ? ret : polar_model_add_linear(m, "fc1", 128);
		ret = ret ? ret : polar_model_add_relu(m);
		ret = ret ? ret : polar_model_add_linear(m, "fc2", 10);
	} else if (!strcmp(arch, "mlp")) {
		ret = polar_model_init(m, arch, 1, 28, 28);
		ret = ret ? ret : polar_model_add_linear(m, "fc1", 256);
		ret = ret ? ret : polar_model_add_relu(m);
		ret = ret ? ret : polar_model_add_linear(m, "fc2", 128);
		ret = ret ? ret : polar_model_add_relu(m);
		ret = ret ? ret : polar_model_add_linear(m, "fc3", 10);
	} else {
		memset(m, 0, sizeof(*m));
		return polar_fail(-EINVAL, "unknown model arch \"%s\" (want cnn "
				  "or mlp)", arch);
	}
	ret = ret ? ret : polar_model_finalize(m, seed);
	if (ret)
		polar_model_free(m);
	return ret;
}

void polar_model_free(struct polar_model *m)
{
	if (!m)
		return;
	free(m->params);
	memset(m, 0, sizeof(*m));
}

/* --- safetensors ---------------------------------------------------------- */

int polar_model_to_tensors(const struct polar_model *m,
			   struct polar_tensors *ts)
{
	char name[64];
	unsigned int i;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, ts);
	for (i = 0; i < m->nlayers; i++) {
		const struct polar_layer *l = &m->layers[i];
		uint64_t shape[4];
		unsigned int ndim;

		if (!l->rows)
			continue;
		shape[0] = l->rows;
		if (l->type == POLAR_LAYER_CONV2D) {
			shape[1] = l->in_c;
			shape[2] = shape[3] = l->kernel;
			ndim = 4;
		} else {
			shape[1] = l->cols;
			ndim = 2;
		}
		snprintf(name, sizeof(name), "%s.weight", l->name);
		ret = polar_tensors_add(ts, name, POLAR_DTYPE_F32, ndim, shape,
					l->weight);
		if (ret)
			return ret;
		snprintf(name, sizeof(name), "%s.bias", l->name);
		ret = polar_tensors_add(ts, name, POLAR_DTYPE_F32, 1, shape,
					l->bias);
		if (ret)
			return ret;
	}
	return polar_tensors_set_meta(ts, "arch", m->arch);
}

int polar_model_from_tensors(struct polar_model *m,
			     const struct polar_tensors *ts)
{
	const char *arch, *source;
	const struct polar_tensor *w, *b;
	char name[64];
	unsigned int i;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	memset(m, 0, sizeof(*m));
	POLAR_NONNULL(__func__, ts);
	arch = polar_tensors_meta(ts, "arch");
	source = ts->source[0] ? ts->source : "tensors";
	if (!arch)
		return polar_fail(-EINVAL, "%s: no \"arch\" in __metadata__",
				  source);
	ret = polar_model_create(m, arch, 0);
	if (ret)
		return polar_fail(ret, "%s: unknown model arch \"%s\" (want cnn "
				  "or mlp)", source, arch);
	for (i = 0; i < m->nlayers; i++) {
		const struct polar_layer *l = &m->layers[i];

		if (!l->rows)
			continue;
		snprintf(name, sizeof(name), "%s.weight", l->name);
		if (l->type == POLAR_LAYER_CONV2D)
			ret = polar_tensors_get(ts, name, POLAR_DTYPE_F32, &w,
						4, (int)l->rows, (int)l->in_c,
						(int)l->kernel, (int)l->kernel);
		else
			ret = polar_tensors_get(ts, name, POLAR_DTYPE_F32, &w,
						2, (int)l->rows, (int)l->cols);
		if (ret)
			goto fail;
		snprintf(name, sizeof(name), "%s.bias", l->name);
		ret = polar_tensors_get(ts, name, POLAR_DTYPE_F32, &b, 1,
					(int)l->rows);
		if (ret)
			goto fail;
		memcpy(l->weight, w->data, w->nbytes);
		memcpy(l->bias, b->data, b->nbytes);
	}
	return 0;
fail:
	polar_model_free(m);
	return ret;
}

int polar_model_load(struct polar_model *m, const char *path)
{
	struct polar_tensors ts;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	memset(m, 0, sizeof(*m));
	POLAR_NONNULL(__func__, path);
	ret = polar_tensors_load(path, &ts);
	if (ret)
		return ret;
	ret = polar_model_from_tensors(m, &ts);
	polar_tensors_free(&ts);
	return ret;
}

/* --- layers, forward ------------------------------------------------------ */

/*
 * The kernel columns kx with 0 <= ox * stride + kx - pad < in_w:
 * [*lo, *hi).
 */
static void kx_range(const struct polar_layer *l, uint32_t ox, uint32_t *lo,
		     uint32_t *hi)
{
	long x0 = (long)ox * l->stride;
	long a = (long)l->pad - x0, b = (long)l->in_w + l->pad - x0;

	*lo = a < 0 ? 0 : (uint32_t)a;
	*hi = b > (long)l->kernel ? l->kernel : b < 0 ? 0 : (uint32_t)b;
	if (*hi < *lo)
		*hi = *lo;
}

void polar_conv2d_im2col(const struct polar_layer *l, size_t n,
			 const float *x, float *cols)
{
	size_t s, insz, plane;
	uint32_t oy, ox, c, ky, k, lo, hi;

	if (!l || !x || !cols) {
		polar_null_arg(__func__, !l ? "l" : !x ? "x" : "cols");
		return;
	}
	if (l->type != POLAR_LAYER_CONV2D) {
		polar_fail(-EINVAL, "%s: l is not a conv2d layer", __func__);
		return;
	}
	insz = polar_layer_in_size(l);
	plane = (size_t)l->in_h * l->in_w;
	k = l->kernel;
	for (s = 0; s < n; s++) {
		const float *xs = x + s * insz;

		for (oy = 0; oy < l->out_h; oy++) {
			for (ox = 0; ox < l->out_w; ox++) {
				float *r = cols;

				kx_range(l, ox, &lo, &hi);
				for (c = 0; c < l->in_c; c++) {
					for (ky = 0; ky < k; ky++, r += k) {
						long iy = (long)oy * l->stride +
							  ky - l->pad;
						const float *src;

						if (iy < 0 || iy >= l->in_h) {
							memset(r, 0,
							       k * sizeof(float));
							continue;
						}
						src = xs + c * plane + iy * l->in_w +
							((long)ox * l->stride +
							 lo - l->pad);
						if (lo)
							memset(r, 0,
							       lo * sizeof(float));
						memcpy(r + lo, src,
						       (hi - lo) * sizeof(float));
						if (hi < k)
							memset(r + hi, 0, (k - hi) *
							       sizeof(float));
					}
				}
				cols += l->cols;
			}
		}
	}
}

/* Adds the im2col-shaped gradient dcols back onto dx (zeroed here). */
static void conv2d_col2im(const struct polar_layer *l, size_t n,
			  const float *dcols, float *dx)
{
	size_t s, insz = polar_layer_in_size(l), plane = (size_t)l->in_h *
		l->in_w;
	uint32_t oy, ox, c, ky, kx, k = l->kernel, lo, hi;

	memset(dx, 0, n * insz * sizeof(float));
	for (s = 0; s < n; s++) {
		float *xs = dx + s * insz;

		for (oy = 0; oy < l->out_h; oy++) {
			for (ox = 0; ox < l->out_w; ox++) {
				const float *r = dcols;

				kx_range(l, ox, &lo, &hi);
				for (c = 0; c < l->in_c; c++) {
					for (ky = 0; ky < k; ky++, r += k) {
						long iy = (long)oy * l->stride +
							  ky - l->pad;
						float *dst;

						if (iy < 0 || iy >= l->in_h)
							continue;
						dst = xs + c * plane + iy * l->in_w +
							((long)ox * l->stride +
							 lo - l->pad);
						for (kx = lo; kx < hi; kx++)
							dst[kx - lo] += r[kx];
					}
				}
				dcols += l->cols;
			}
		}
	}
}

size_t polar_layer_scratch_size(const struct polar_layer *l, size_t n)
{
	size_t pos;

	if (!l) {
		polar_null_arg(__func__, "l");
		return 0;
	}
	pos = (size_t)l->out_h * l->out_w;
	if (l->type != POLAR_LAYER_CONV2D)
		return 0;
	return n * pos * (l->cols + l->rows);
}

/* y[r][o] = x[r] . W[o] (no bias), through the hook when it has one. */
static int layer_matmul(const struct polar_model *m, unsigned int i,
			const float *x, size_t nrows, float *y,
			const struct polar_matmul_hook *hook)
{
	const struct polar_layer *l = &m->layers[i];
	int ret;

	if (hook && hook->matmul) {
		ret = hook->matmul(hook->ctx, m, i, x, nrows, y);
		if (ret != -ENOSYS)
			return ret;
	}
	polar_sgemm(0, 1, nrows, l->rows, l->cols, x, l->cols, l->weight,
		    l->cols, 0.0f, y, l->rows);
	return 0;
}

/*
 * ReLU and its gradient, four lanes at a time with GCC vector types (SSE
 * on any x86-64): y = x > 0 ? x : 0, dx = y > 0 ? dy : 0, branch-free.
 */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static void relu_fwd(const float *x, float *y, size_t n)
{
	const v4f zero = { 0.0f, 0.0f, 0.0f, 0.0f };
	size_t j = 0;

	for (; j + 4 <= n; j += 4) {
		v4f v;
		v4i r;

		memcpy(&v, x + j, sizeof(v));
		r = (v4i)v & (v4i)(v > zero);
		memcpy(y + j, &r, sizeof(r));
	}
	for (; j < n; j++)
		y[j] = x[j] > 0.0f ? x[j] : 0.0f;
}

static void relu_bwd(const float *y, const float *dy, float *dx, size_t n)
{
	const v4f zero = { 0.0f, 0.0f, 0.0f, 0.0f };
	size_t j = 0;

	for (; j + 4 <= n; j += 4) {
		v4f v, d;
		v4i r;

		memcpy(&v, y + j, sizeof(v));
		memcpy(&d, dy + j, sizeof(d));
		r = (v4i)d & (v4i)(v > zero);
		memcpy(dx + j, &r, sizeof(r));
	}
	for (; j < n; j++)
		dx[j] = y[j] > 0.0f ? dy[j] : 0.0f;
}

/*
 * One layer forward. cols (conv: n * pos * cols floats) keeps the im2col
 * matrix and tmp (conv: n * pos * rows) the position-major product; idx
 * (maxpool, may be NULL) records which input each output came from.
 */
/*
 * Max or average over each window of a maxpool or avgpool layer; padding
 * cells never win a max and count in an average only with count_pad.
 */
static void pool_fwd(const struct polar_layer *l, size_t n, const float *x,
		     float *y)
{
	size_t insz = polar_layer_in_size(l), outsz = polar_layer_out_size(l);
	size_t s;
	uint32_t c, oy, ox, ky, kx;

	for (s = 0; s < n; s++)
		for (c = 0; c < l->in_c; c++) {
			const float *xc = x + s * insz +
					  (size_t)c * l->in_h * l->in_w;
			float *yc = y + s * outsz +
				    (size_t)c * l->out_h * l->out_w;

			for (oy = 0; oy < l->out_h; oy++)
				for (ox = 0; ox < l->out_w; ox++) {
					long y0 = (long)oy * l->stride - l->pad;
					long x0 = (long)ox * l->stride - l->pad;
					float best = -INFINITY, sum = 0.0f;
					uint32_t cells = 0;

					for (ky = 0; ky < l->kernel; ky++) {
						long iy = y0 + ky;

						if (iy < 0 || iy >= l->in_h)
							continue;
						for (kx = 0; kx < l->kernel; kx++) {
							long ix = x0 + kx;
							float v;

							if (ix < 0 || ix >= l->in_w)
								continue;
							v = xc[iy * l->in_w + ix];
							best = v > best ? v : best;
							sum += v;
							cells++;
						}
					}
					if (l->type == POLAR_LAYER_MAXPOOL)
						yc[oy * l->out_w + ox] = best;
					else
						yc[oy * l->out_w + ox] = sum /
							(float)(l->count_pad ?
								l->kernel * l->kernel :
								cells);
				}
		}
}

static void softmax_fwd(size_t n, size_t len, const float *x, float *y)
{
	size_t s, j;

	for (s = 0; s < n; s++, x += len, y += len) {
		float mx = x[0], sum = 0.0f;

		for (j = 1; j < len; j++)
			mx = x[j] > mx ? x[j] : mx;
		for (j = 0; j < len; j++) {
			y[j] = expf(x[j] - mx);
			sum += y[j];
		}
		for (j = 0; j < len; j++)
			y[j] /= sum;
	}
}

static int layer_fwd(const struct polar_model *m, unsigned int i, size_t n,
		     const float *x, const float *x2, float *y, float *cols,
		     float *tmp, uint32_t *idx,
		     const struct polar_matmul_hook *hook)
{
	const struct polar_layer *l = &m->layers[i];
	size_t insz = polar_layer_in_size(l), outsz = polar_layer_out_size(l);
	size_t s, j, pos = (size_t)l->out_h * l->out_w;
	uint32_t c, oy, ox, o;
	int ret;

	switch (l->type) {
	case POLAR_LAYER_CONV2D:
		polar_conv2d_im2col(l, n, x, cols);
		ret = layer_matmul(m, i, cols, n * pos, tmp, hook);
		if (ret)
			return ret;
		for (s = 0; s < n; s++)
			for (o = 0; o < l->rows; o++) {
				float *ys = y + s * outsz + o * pos, bo = l->bias[o];
				const float *t = tmp + s * pos * l->rows + o;

				for (j = 0; j < pos; j++)
					ys[j] = t[j * l->rows] + bo;
			}
		return 0;
	case POLAR_LAYER_LINEAR:
		ret = layer_matmul(m, i, x, n, y, hook);
		if (ret)
			return ret;
		for (s = 0; s < n; s++)
			for (o = 0; o < l->rows; o++)
				y[s * l->rows + o] += l->bias[o];
		return 0;
	case POLAR_LAYER_RELU:
		relu_fwd(x, y, n * insz);
		return 0;
	case POLAR_LAYER_MAXPOOL2:
		for (s = 0; s < n; s++)
			for (c = 0; c < l->in_c; c++)
				for (oy = 0; oy < l->out_h; oy++)
					for (ox = 0; ox < l->out_w; ox++) {
						size_t base = s * insz +
							((size_t)c * l->in_h +
							 2 * oy) * l->in_w + 2 * ox;
						size_t at[4] = {
							base, base + 1,
							base + l->in_w,
							base + l->in_w + 1,
						};
						size_t best = at[0], q;
						size_t out = s * outsz +
							((size_t)c * l->out_h +
							 oy) * l->out_w + ox;

						for (q = 1; q < 4; q++)
							if (x[at[q]] > x[best])
								best = at[q];
						y[out] = x[best];
						if (idx)
							idx[out] = (uint32_t)
								(best - s * insz);
					}
		return 0;
	case POLAR_LAYER_MAXPOOL:
	case POLAR_LAYER_AVGPOOL:
		pool_fwd(l, n, x, y);
		return 0;
	case POLAR_LAYER_GLOBAL_AVGPOOL:
		for (s = 0; s < n; s++)
			for (c = 0; c < l->in_c; c++) {
				const float *xc = x + s * insz +
						  (size_t)c * l->in_h * l->in_w;
				size_t plane = (size_t)l->in_h * l->in_w;
				float sum = 0.0f;

				for (j = 0; j < plane; j++)
					sum += xc[j];
				y[s * outsz + c] = sum / (float)plane;
			}
		return 0;
	case POLAR_LAYER_ADD:
		for (j = 0; j < n * outsz; j++)
			y[j] = x[j] + x2[j];
		return 0;
	case POLAR_LAYER_SOFTMAX:
		softmax_fwd(n, outsz, x, y);
		return 0;
	}
	return polar_fail(-EINVAL, "%s: layer %u has unknown type %d",
			  m->arch, i, (int)l->type);
}

int polar_layer_forward_inputs(const struct polar_model *m,
			       unsigned int layer, size_t n,
			       const float *const *in, float *y,
			       float *scratch,
			       const struct polar_matmul_hook *hook)
{
	const struct polar_layer *l;

	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, in);
	POLAR_NONNULL(__func__, y);
	if (layer >= m->nlayers)
		return polar_fail(-EINVAL, "%s: no layer %u", m->arch, layer);
	l = &m->layers[layer];
	if (!in[0] || (l->ninputs > 1 && !in[1]))
		return polar_fail(-EINVAL, "%s: in[%d] is NULL", __func__,
				  in[0] ? 1 : 0);
	if (!scratch && l->type == POLAR_LAYER_CONV2D)
		return polar_fail(-EINVAL, "%s: scratch is NULL for conv2d "
				  "layer %u", __func__, layer);
	return layer_fwd(m, layer, n, in[0], l->ninputs > 1 ? in[1] : NULL, y,
			 scratch,
			 scratch ? scratch + n * l->out_h * l->out_w * l->cols :
			 NULL, NULL, hook);
}

int polar_layer_forward(const struct polar_model *m, unsigned int layer,
			size_t n, const float *x, float *y, float *scratch,
			const struct polar_matmul_hook *hook)
{
	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, x);
	POLAR_NONNULL(__func__, y);
	if (layer < m->nlayers && m->layers[layer].ninputs > 1)
		return polar_fail(-EINVAL, "%s: layer %u (%s) reads %u inputs: "
				  "use polar_layer_forward_inputs()", m->arch,
				  layer, m->layers[layer].name,
				  m->layers[layer].ninputs);
	return polar_layer_forward_inputs(m, layer, n, &x, y, scratch, hook);
}

static size_t max_act(const struct polar_model *m)
{
	size_t mx = (size_t)m->in_c * m->in_h * m->in_w;
	unsigned int i;

	for (i = 0; i < m->nlayers; i++)
		if (polar_layer_out_size(&m->layers[i]) > mx)
			mx = polar_layer_out_size(&m->layers[i]);
	return mx;
}

int polar_model_is_chain(const struct polar_model *m)
{
	unsigned int i;

	if (!m) {
		polar_null_arg(__func__, "m");
		return 0;
	}
	for (i = 0; i < m->nlayers; i++) {
		const struct polar_layer *l = &m->layers[i];
		int ok;

		switch (l->type) {
		case POLAR_LAYER_CONV2D:
			ok = l->stride == 1;
			break;
		case POLAR_LAYER_LINEAR:
		case POLAR_LAYER_RELU:
		case POLAR_LAYER_MAXPOOL2:
			ok = 1;
			break;
		default:
			ok = 0;
		}
		if (!ok || l->ninputs != 1 || l->input[0] != (int32_t)i - 1) {
			polar_fail(-EOPNOTSUPP, "%s: layer %u (%s) is not part "
				   "of a chain of stride-1 conv2d, linear, relu "
				   "and maxpool2 layers", m->arch, i, l->name);
			return 0;
		}
	}
	return 1;
}

/*
 * Which of nslots activation buffers each layer's output goes to: a
 * buffer is free again after the last layer that reads it, so a chain
 * needs two and a residual block three.
 */
int polar_model_last_reader(const struct polar_model *m, unsigned int *last)
{
	unsigned int i, k;

	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, last);
	for (i = 0; i < m->nlayers; i++)
		last[i] = i;
	for (i = 0; i < m->nlayers; i++)
		for (k = 0; k < m->layers[i].ninputs; k++)
			if (m->layers[i].input[k] >= 0)
				last[m->layers[i].input[k]] = i;
	return 0;
}

static unsigned int plan_slots(const struct polar_model *m,
			       unsigned int *slot)
{
	unsigned int last[POLAR_MODEL_MAX_LAYERS], i, k, nslots = 0;
	uint64_t busy = 0;

	polar_model_last_reader(m, last);
	for (i = 0; i < m->nlayers; i++) {
		for (k = 0; busy >> k & 1; k++)
			;
		slot[i] = k;
		busy |= UINT64_C(1) << k;
		if (k + 1 > nslots)
			nslots = k + 1;
		for (k = 0; k <= i; k++)
			if (last[k] == i)
				busy &= ~(UINT64_C(1) << slot[k]);
	}
	return nslots;
}

#define FWD_CHUNK 256

int polar_model_forward(const struct polar_model *m, size_t n,
			const float *x, float *logits,
			const struct polar_matmul_hook *hook)
{
	size_t act, scr = 0, insz, done, chunk;
	unsigned int slot[POLAR_MODEL_MAX_LAYERS], nslots, i, k;
	float *buf[POLAR_MODEL_MAX_LAYERS] = { 0 }, *scratch;
	int ret = 0;

	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, x);
	POLAR_NONNULL(__func__, logits);
	act = max_act(m);
	if (!m->params)
		return polar_fail(-EINVAL, "%s: model has no parameters",
				  m->arch);
	for (i = 0; i < m->nlayers; i++)
		if (polar_layer_scratch_size(&m->layers[i], 1) > scr)
			scr = polar_layer_scratch_size(&m->layers[i], 1);
	nslots = plan_slots(m, slot);
	chunk = n < FWD_CHUNK ? n : FWD_CHUNK;
	scratch = malloc(chunk * scr * sizeof(float) + 64);
	ret = scratch ? 0 : -ENOMEM;
	for (k = 0; k < nslots && !ret; k++) {
		buf[k] = malloc(chunk * act * sizeof(float) + 64);
		ret = buf[k] ? 0 : -ENOMEM;
	}
	if (ret) {
		ret = polar_fail(-ENOMEM, "%s: out of memory", m->arch);
		goto out;
	}
	insz = (size_t)m->in_c * m->in_h * m->in_w;
	for (done = 0; done < n && !ret; done += chunk) {
		size_t b = n - done < chunk ? n - done : chunk;

		for (i = 0; i < m->nlayers && !ret; i++) {
			const struct polar_layer *l = &m->layers[i];
			float *out = i + 1 == m->nlayers ?
				logits + done * m->classes : buf[slot[i]];
			const float *in[2];

			for (k = 0; k < l->ninputs; k++)
				in[k] = l->input[k] < 0 ? x + done * insz :
					buf[slot[l->input[k]]];
			ret = polar_layer_forward_inputs(m, i, b, in, out,
							 scratch, hook);
		}
	}
out:
	for (k = 0; k < nslots; k++)
		free(buf[k]);
	free(scratch);
	return ret;
}

static unsigned int argmax(const float *z, unsigned int n)
{
	unsigned int j, best = 0;

	for (j = 1; j < n; j++)
		if (z[j] > z[best])
			best = j;
	return best;
}

static unsigned int cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 64 ? 64 : (unsigned int)n;
}

struct eval_job {
	const struct polar_model *m;
	const struct polar_dataset *d;
	const struct polar_matmul_hook *hook;
	size_t begin, end, correct;
	int ret;
	char err[512];
};

static void *eval_thread(void *arg)
{
	struct eval_job *j = arg;
	size_t insz = (size_t)j->m->in_c * j->m->in_h * j->m->in_w, s, at;
	float *logits = malloc(FWD_CHUNK * j->m->classes * sizeof(float));

	if (!logits) {
		j->ret = -ENOMEM;
		snprintf(j->err, sizeof(j->err), "out of memory");
		return NULL;
	}
	for (at = j->begin; at < j->end && !j->ret; at += FWD_CHUNK) {
		size_t b = j->end - at < FWD_CHUNK ? j->end - at : FWD_CHUNK;

		j->ret = polar_model_forward(j->m, b, j->d->images + at * insz,
					     logits, j->hook);
		if (j->ret) {
			snprintf(j->err, sizeof(j->err), "%s", polar_errmsg());
			break;
		}
		for (s = 0; s < b; s++)
			j->correct += argmax(logits + s * j->m->classes,
					     j->m->classes) ==
				j->d->labels[at + s];
	}
	free(logits);
	return NULL;
}

int polar_model_evaluate(const struct polar_model *m,
			 const struct polar_dataset *d, unsigned int threads,
			 const struct polar_matmul_hook *hook,
			 double *accuracy)
{
	struct eval_job jobs[64];
	pthread_t th[64];
	size_t correct = 0;
	unsigned int t, started = 0;
	int ret = 0;

	polar_clear_error();
	POLAR_NONNULL(__func__, accuracy);
	*accuracy = 0.0;
	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, d);
	if ((size_t)d->channels * d->rows * d->cols !=
	    (size_t)m->in_c * m->in_h * m->in_w)
		return polar_fail(-EINVAL, "%s: data set images are %ux%ux%u, "
				  "the model takes %ux%ux%u", m->arch,
				  d->channels, d->rows, d->cols, m->in_c,
				  m->in_h, m->in_w);
	if (!d->count)
		return 0;
	if (!threads)
		threads = cpu_count();
	if (threads > 64)
		threads = 64;
	if (threads > d->count)
		threads = (unsigned int)d->count;
	for (t = 0; t < threads; t++) {
		memset(&jobs[t], 0, sizeof(jobs[t]));
		jobs[t].m = m;
		jobs[t].d = d;
		jobs[t].hook = hook;
		jobs[t].begin = d->count * t / threads;
		jobs[t].end = d->count * (t + 1) / threads;
	}
	for (t = 1; t < threads; t++) {
		if (pthread_create(&th[t], NULL, eval_thread, &jobs[t]))
			break;
		started = t;
	}
	eval_thread(&jobs[0]);
	/* Whatever could not start runs here. */
	for (t = started + 1; t < threads; t++)
		eval_thread(&jobs[t]);
	for (t = 1; t <= started; t++)
		pthread_join(th[t], NULL);
	for (t = 0; t < threads; t++) {
		if (jobs[t].ret && !ret) {
			ret = jobs[t].ret;
			polar_fail(ret, "%s", jobs[t].err);
		}
		correct += jobs[t].correct;
	}
	if (!ret)
		*accuracy = (double)correct / (double)d->count;
	return ret;
}

/* --- gradients ------------------------------------------------------------ */

static void ws_free(struct nn_ws *ws)
{
	unsigned int i;

	if (!ws)
		return;
	for (i = 0; i < POLAR_MODEL_MAX_LAYERS; i++) {
		free(ws->act[i + 1]);
		free(ws->cols[i]);
		free(ws->idx[i]);
	}
	free(ws->tmp);
	free(ws->dcols);
	free(ws->g[0]);
	free(ws->g[1]);
	free(ws);
}

static float *falloc(size_t n)
{
	return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64 + 64);
}

static struct nn_ws *ws_alloc(const struct polar_model *m, size_t maxn)
{
	struct nn_ws *ws = calloc(1, sizeof(*ws));
	size_t tmp = 0, dcols = 0, act = max_act(m);
	unsigned int i;
	int bad = !ws;

	for (i = 0; !bad && i < m->nlayers; i++) {
		const struct polar_layer *l = &m->layers[i];
		size_t pos = (size_t)l->out_h * l->out_w;

		ws->act[i + 1] = falloc(maxn * polar_layer_out_size(l));
		bad |= !ws->act[i + 1];
		if (l->type == POLAR_LAYER_CONV2D) {
			ws->cols[i] = falloc(maxn * pos * l->cols);
			bad |= !ws->cols[i];
			if (maxn * pos * l->rows > tmp)
				tmp = maxn * pos * l->rows;
			if (maxn * pos * l->cols > dcols)
				dcols = maxn * pos * l->cols;
		} else if (l->type == POLAR_LAYER_MAXPOOL2) {
			ws->idx[i] = malloc(maxn * polar_layer_out_size(l) *
					    sizeof(uint32_t) + 64);
			bad |= !ws->idx[i];
		}
	}
	if (!bad) {
		ws->maxn = maxn;
		ws->tmp = falloc(tmp);
		ws->dcols = falloc(dcols);
		ws->g[0] = falloc(maxn * act);
		ws->g[1] = falloc(maxn * act);
		bad = !ws->tmp || !ws->dcols || !ws->g[0] || !ws->g[1];
	}
	if (bad) {
		ws_free(ws);
		polar_fail(-ENOMEM, "%s: out of memory for a workspace of %zu "
			   "samples", m->arch, maxn);
		return NULL;
	}
	return ws;
}

void polar_nn_conv_rows(const struct polar_layer *l, size_t n, const float *dy,
			float *rows)
{
	size_t s, j, pos = (size_t)l->out_h * l->out_w,
	       outsz = polar_layer_out_size(l);
	uint32_t o;

	for (s = 0; s < n; s++)
		for (o = 0; o < l->rows; o++) {
			const float *d = dy + s * outsz + o * pos;
			float *t = rows + s * pos * l->rows + o;

			for (j = 0; j < pos; j++)
				t[j * l->rows] = d[j];
		}
}

/*
 * Backward through layer i: dy -> dx (when dx), accumulating the weight
 * and bias gradients into grad (when grad).
 */
static void layer_bwd(const struct polar_model *m, unsigned int i,
		      struct nn_ws *ws, size_t n, const float *x,
		      const float *y, const float *dy, float *dx, float *grad,
		      int weights)
{
	const struct polar_layer *l = &m->layers[i];
	size_t insz = polar_layer_in_size(l), outsz = polar_layer_out_size(l);
	size_t s, j, pos = (size_t)l->out_h * l->out_w;
	uint32_t o;

	switch (l->type) {
	case POLAR_LAYER_CONV2D: {
		float *dypm = ws->tmp;

		polar_nn_conv_rows(l, n, dy, dypm);
		if (grad) {
			float *db = grad + l->bias_off;

			if (weights)
				polar_sgemm(1, 0, l->rows, l->cols, n * pos,
					    dypm, l->rows, ws->cols[i],
					    l->cols, 1.0f,
					    grad + l->weight_off, l->cols);
			for (s = 0; s < n; s++)
				for (o = 0; o < l->rows; o++) {
					const float *d = dy + s * outsz + o * pos;
					float sum = 0.0f;

					for (j = 0; j < pos; j++)
						sum += d[j];
					db[o] += sum;
				}
		}
		if (dx) {
			polar_sgemm(0, 0, n * pos, l->cols, l->rows, dypm,
				    l->rows, l->weight, l->cols, 0.0f,
				    ws->dcols, l->cols);
			conv2d_col2im(l, n, ws->dcols, dx);
		}
		return;
	}
	case POLAR_LAYER_LINEAR: {
		if (grad) {
			float *db = grad + l->bias_off;

			if (weights)
				polar_sgemm(1, 0, l->rows, l->cols, n, dy,
					    l->rows, x, l->cols, 1.0f,
					    grad + l->weight_off, l->cols);
			for (s = 0; s < n; s++)
				for (o = 0; o < l->rows; o++)
					db[o] += dy[s * l->rows + o];
		}
		if (dx)
			polar_sgemm(0, 0, n, l->cols, l->rows, dy, l->rows,
				    l->weight, l->cols, 0.0f, dx, l->cols);
		return;
	}
	case POLAR_LAYER_RELU:
		if (dx)
			relu_bwd(y, dy, dx, n * insz);
		return;
	case POLAR_LAYER_MAXPOOL2:
		if (dx) {
			memset(dx, 0, n * insz * sizeof(float));
			for (s = 0; s < n; s++)
				for (j = 0; j < outsz; j++)
					dx[s * insz + ws->idx[i][s * outsz + j]] +=
						dy[s * outsz + j];
		}
		return;
	default:
		/* polar_model_is_chain() keeps other layers out. */
		return;
	}
}

/*
 * Forward, softmax cross-entropy and backward for n <= ws->maxn samples;
 * !weights leaves the weights' gradients out (the biases' are the same).
 */
static int ws_grad(const struct polar_model *m, struct nn_ws *ws, size_t n,
		   const float *x, const uint8_t *labels, float scale,
		   float *grad, double *loss, size_t *correct, int weights)
{
	unsigned int i, L = m->nlayers, C = m->classes;
	const float *in = x;
	double lsum = 0.0;
	size_t s, ok = 0;
	float *dz, *cur, *next;
	int ret;

	if (!n)
		goto done;
	for (i = 0; i < L; i++) {
		ret = layer_fwd(m, i, n, in, NULL, ws->act[i + 1], ws->cols[i],
				ws->tmp, ws->idx[i], NULL);
		if (ret)
			return ret;
		in = ws->act[i + 1];
	}
	dz = ws->g[0];
	for (s = 0; s < n; s++) {
		const float *z = ws->act[L] + s * C;
		float *d = dz + s * C, mx = z[0], sum = 0.0f;
		unsigned int j, y = labels[s];

		if (y >= C)
			return polar_fail(-EINVAL, "%s: label %u of sample %zu "
					  "is not below %u", m->arch, y, s, C);
		for (j = 1; j < C; j++)
			mx = z[j] > mx ? z[j] : mx;
		for (j = 0; j < C; j++) {
			d[j] = expf(z[j] - mx);
			sum += d[j];
		}
		lsum += (double)(logf(sum) + mx - z[y]);
		ok += argmax(z, C) == y;
		for (j = 0; j < C; j++)
			d[j] = (d[j] / sum - (j == y ? 1.0f : 0.0f)) * scale;
	}
	cur = ws->g[0];
	next = ws->g[1];
	for (i = L; i-- > 0;) {
		float *t;

		layer_bwd(m, i, ws, n, i ? ws->act[i] : x, ws->act[i + 1], cur,
			  i ? next : NULL, grad, weights);
		t = cur;
		cur = next;
		next = t;
	}
done:
	if (loss)
		*loss = lsum;
	if (correct)
		*correct = ok;
	return 0;
}

int polar_model_grad(const struct polar_model *m, size_t n, const float *x,
		     const uint8_t *labels, float scale, float *grad,
		     double *loss, size_t *correct)
{
	struct nn_ws *ws;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, x);
	POLAR_NONNULL(__func__, labels);
	POLAR_NONNULL(__func__, grad);
	if (!m->params)
		return polar_fail(-EINVAL, "%s: model has no parameters",
				  m->arch);
	if (!polar_model_is_chain(m))
		return -EOPNOTSUPP;
	ws = ws_alloc(m, n ? n : 1);
	if (!ws)
		return -ENOMEM;
	ret = ws_grad(m, ws, n, x, labels, scale, grad, loss, correct, 1);
	ws_free(ws);
	return ret;
}

int polar_model_bias_grad(const struct polar_model *m, size_t n,
			  const float *x, const uint8_t *labels, float *grad)
{
	struct nn_ws *ws = ws_alloc(m, n ? n : 1);
	int ret;

	if (!ws)
		return -ENOMEM;
	ret = ws_grad(m, ws, n, x, labels, 1.0f, grad, NULL, NULL, 0);
	ws_free(ws);
	return ret;
}

uint64_t polar_nn_rng_below(uint64_t *s, uint64_t n)
{
	return rng_below(s, n);
}

struct nn_ws *polar_nn_ws_alloc(const struct polar_model *m, size_t maxn)
{
	return ws_alloc(m, maxn);
}

void polar_nn_ws_free(struct nn_ws *ws)
{
	ws_free(ws);
}

int polar_nn_layer_fwd(const struct polar_model *m, unsigned int i,
		       struct nn_ws *ws, size_t n, const float *x,
		       const struct polar_matmul_hook *hook)
{
	/* Training runs on chains (polar_model_is_chain()): one input. */
	return layer_fwd(m, i, n, x, NULL, ws->act[i + 1], ws->cols[i],
			 ws->tmp, ws->idx[i], hook);
}

void polar_nn_layer_bwd(const struct polar_model *m, unsigned int i,
			struct nn_ws *ws, size_t n, const float *x,
			const float *dy, float *dx)
{
	layer_bwd(m, i, ws, n, x, ws->act[i + 1], dy, dx, NULL, 0);
}

/* --- training ------------------------------------------------------------- */

/*
 * A batch is cut into SHARDS shards; shard s's gradient goes to grad[s]
 * and the step sums them in shard order, so threads change nothing but
 * speed. Threads take shards t, t + T, ...; then each updates a fixed
 * slice of the parameters.
 */
#define SHARDS 4

struct trainer {
	struct polar_model *m;
	unsigned int threads;
	struct nn_ws *ws[SHARDS];	/* one per thread */
	float *grad[SHARDS];
	float *mom, *vel;
	/* The current step. */
	size_t n;
	const float *x;
	const uint8_t *y;
	float scale, lr, bc1, bc2;
	double loss[SHARDS];
	size_t correct[SHARDS];
	int ret[SHARDS];
	char err[SHARDS][512];
	int quit, ready;
	pthread_mutex_t lock;
	pthread_cond_t go;
	pthread_barrier_t start, mid, end;
	pthread_t th[SHARDS];
};

#define ADAM_B1 0.9f
#define ADAM_B2 0.999f
#define ADAM_EPS 1e-8f

static void trainer_work(struct trainer *tr, unsigned int t)
{
	size_t np = tr->m->nparams, insz = (size_t)tr->m->in_c * tr->m->in_h *
		tr->m->in_w, b, e, i;
	unsigned int s;
	float *p = tr->m->params;

	for (s = t; s < SHARDS; s += tr->threads) {
		b = tr->n * s / SHARDS;
		e = tr->n * (s + 1) / SHARDS;
		memset(tr->grad[s], 0, np * sizeof(float));
		tr->ret[s] = ws_grad(tr->m, tr->ws[t], e - b, tr->x + b * insz,
				     tr->y + b, tr->scale, tr->grad[s],
				     &tr->loss[s], &tr->correct[s], 1);
		if (tr->ret[s])
			snprintf(tr->err[s], sizeof(tr->err[s]), "%s",
				 polar_errmsg());
	}
	pthread_barrier_wait(&tr->mid);
	for (s = 0; s < SHARDS; s++)
		if (tr->ret[s])
			return;
	b = np * t / tr->threads;
	e = np * (t + 1) / tr->threads;
	for (i = b; i < e; i++) {
		float g = tr->grad[0][i], mh, vh;

		for (s = 1; s < SHARDS; s++)
			g += tr->grad[s][i];
		tr->mom[i] = ADAM_B1 * tr->mom[i] + (1.0f - ADAM_B1) * g;
		tr->vel[i] = ADAM_B2 * tr->vel[i] + (1.0f - ADAM_B2) * g * g;
		mh = tr->mom[i] / tr->bc1;
		vh = tr->vel[i] / tr->bc2;
		p[i] -= tr->lr * mh / (sqrtf(vh) + ADAM_EPS);
	}
}

struct worker_arg {
	struct trainer *tr;
	unsigned int t;
};

static void *trainer_thread(void *arg)
{
	struct worker_arg *w = arg;

	/* The barriers exist once every thread that could start has. */
	pthread_mutex_lock(&w->tr->lock);
	while (!w->tr->ready)
		pthread_cond_wait(&w->tr->go, &w->tr->lock);
	pthread_mutex_unlock(&w->tr->lock);
	for (;;) {
		pthread_barrier_wait(&w->tr->start);
		if (w->tr->quit)
			break;
		trainer_work(w->tr, w->t);
		pthread_barrier_wait(&w->tr->end);
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int polar_model_train(struct polar_model *m, const struct polar_dataset *d,
		      const struct polar_train_opts *opts)
{
	unsigned int epochs;
	size_t bs, insz, batches, total, step = 0, warm;
	float lr0;
	struct worker_arg wa[SHARDS];
	struct trainer tr;
	struct polar_train_progress pr;
	unsigned int t, ep, started = 0;
	size_t *perm = NULL, i, b;
	float *bx = NULL;
	uint8_t *by = NULL;
	uint64_t rng;
	int ret = 0;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, d);
	POLAR_NONNULL(__func__, opts);
	if (!polar_model_is_chain(m))
		return -EOPNOTSUPP;
	epochs = opts->epochs ? opts->epochs : 5;
	bs = opts->batch ? opts->batch : 64;
	lr0 = opts->lr > 0.0f ? opts->lr : 2e-3f;
	insz = (size_t)m->in_c * m->in_h * m->in_w;
	batches = (d->count + bs - 1) / bs;
	rng = opts->seed ^ UINT64_C(0x5851f42d4c957f2d);
	memset(&tr, 0, sizeof(tr));
	memset(&pr, 0, sizeof(pr));
	if (!m->params)
		return polar_fail(-EINVAL, "%s: model has no parameters",
				  m->arch);
	if ((size_t)d->channels * d->rows * d->cols != insz)
		return polar_fail(-EINVAL, "%s: data set images are %ux%ux%u, "
				  "the model takes %ux%ux%u", m->arch,
				  d->channels, d->rows, d->cols, m->in_c,
				  m->in_h, m->in_w);
	if (!d->count)
		return polar_fail(-EINVAL, "%s: empty training set", m->arch);
	tr.m = m;
	tr.threads = opts->threads ? opts->threads : cpu_count();
	if (tr.threads > SHARDS)
		tr.threads = SHARDS;
	for (t = 0; t < tr.threads; t++) {
		tr.ws[t] = ws_alloc(m, (bs + SHARDS - 1) / SHARDS);
		if (!tr.ws[t]) {
			ret = -ENOMEM;
			goto out;
		}
	}
	for (t = 0; t < SHARDS; t++) {
		tr.grad[t] = falloc(m->nparams);
		ret = tr.grad[t] ? 0 : -ENOMEM;
		if (ret)
			goto nomem;
	}
	tr.mom = falloc(m->nparams);
	tr.vel = falloc(m->nparams);
	perm = malloc(d->count * sizeof(*perm));
	bx = falloc(bs * insz);
	by = malloc(bs);
	if (!tr.mom || !tr.vel || !perm || !bx || !by)
		goto nomem;
	memset(tr.mom, 0, m->nparams * sizeof(float));
	memset(tr.vel, 0, m->nparams * sizeof(float));
	for (i = 0; i < d->count; i++)
		perm[i] = i;

	pthread_mutex_init(&tr.lock, NULL);
	pthread_cond_init(&tr.go, NULL);
	for (t = 1; t < tr.threads; t++) {
		wa[t].tr = &tr;
		wa[t].t = t;
		if (pthread_create(&tr.th[t], NULL, trainer_thread, &wa[t]))
			break;	/* train with the threads that started */
		started = t;
	}
	tr.threads = started + 1;
	pthread_barrier_init(&tr.start, NULL, tr.threads);
	pthread_barrier_init(&tr.mid, NULL, tr.threads);
	pthread_barrier_init(&tr.end, NULL, tr.threads);
	pthread_mutex_lock(&tr.lock);
	tr.ready = 1;
	pthread_cond_broadcast(&tr.go);
	pthread_mutex_unlock(&tr.lock);

	total = (size_t)epochs * batches;
	warm = total > 1000 ? 100 : total / 10;
	for (ep = 0; ep < epochs && !ret; ep++) {
		double lsum = 0.0, t0 = now_s();
		size_t ok = 0, seen = 0;

		for (i = d->count - 1; i > 0; i--) {
			size_t j = (size_t)rng_below(&rng, i + 1), tmp = perm[i];

			perm[i] = perm[j];
			perm[j] = tmp;
		}
		for (b = 0; b < batches && !ret; b++) {
			size_t n = d->count - b * bs < bs ? d->count - b * bs :
				bs;
			double frac;

			for (i = 0; i < n; i++) {
				const float *src = d->images +
					perm[b * bs + i] * insz;
				float *dst = bx + i * insz;

				by[i] = d->labels[perm[b * bs + i]];
				if (opts->flip && (rng_next(&rng) >> 63)) {
					size_t r, c, w = d->cols;

					for (r = 0; r < insz / w; r++)
						for (c = 0; c < w; c++)
							dst[r * w + c] =
								src[r * w + w - 1 - c];
				} else {
					memcpy(dst, src, insz * sizeof(float));
				}
			}
			step++;
			if (step <= warm)
				tr.lr = lr0 * (float)step / (float)warm;
			else {
				frac = (double)(step - warm) /
					(double)(total - warm + 1);
				tr.lr = (float)(lr0 * 0.5 *
						(1.0 + cos(M_PI * frac)));
			}
			tr.bc1 = (float)(1.0 - pow(ADAM_B1, (double)step));
			tr.bc2 = (float)(1.0 - pow(ADAM_B2, (double)step));
			tr.n = n;
			tr.x = bx;
			tr.y = by;
			tr.scale = 1.0f / (float)n;
			pthread_barrier_wait(&tr.start);
			trainer_work(&tr, 0);
			pthread_barrier_wait(&tr.end);
			for (t = 0; t < SHARDS; t++) {
				if (tr.ret[t]) {
					ret = polar_fail(tr.ret[t], "%s",
							 tr.err[t]);
					break;
				}
				lsum += tr.loss[t];
				ok += tr.correct[t];
			}
			seen += n;
			if (opts->progress && (b % 10 == 9 || b + 1 == batches)) {
				memset(&pr, 0, sizeof(pr));
				pr.epoch = ep + 1;
				pr.epochs = epochs;
				pr.batch = b + 1;
				pr.batches = batches;
				pr.loss = lsum / (double)seen;
				pr.accuracy = (double)ok / (double)seen;
				pr.images_per_s = (double)seen /
					(now_s() - t0 + 1e-9);
				pr.lr = tr.lr;
				opts->progress(opts->ctx, &pr);
			}
		}
		if (!ret && opts->progress) {
			pr.epoch_done = 1;
			pr.test_accuracy = -1.0;
			if (opts->test)
				ret = polar_model_evaluate(m, opts->test,
							   tr.threads, NULL,
							   &pr.test_accuracy);
			if (!ret)
				opts->progress(opts->ctx, &pr);
		}
	}
	tr.quit = 1;
	if (tr.threads > 1)
		pthread_barrier_wait(&tr.start);
	for (t = 1; t <= started; t++)
		pthread_join(tr.th[t], NULL);
	pthread_barrier_destroy(&tr.start);
	pthread_barrier_destroy(&tr.mid);
	pthread_barrier_destroy(&tr.end);
	pthread_cond_destroy(&tr.go);
	pthread_mutex_destroy(&tr.lock);
	goto out;
nomem:
	ret = polar_fail(-ENOMEM, "%s: out of memory for training", m->arch);
out:
	for (t = 0; t < SHARDS; t++) {
		ws_free(tr.ws[t]);
		free(tr.grad[t]);
	}
	free(tr.mom);
	free(tr.vel);
	free(perm);
	free(bx);
	free(by);
	return ret;
}
