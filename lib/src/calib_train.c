// SPDX-License-Identifier: MIT
/*
 * Trained host paths (polar_calib_train(), see <polar/calib.h>): all
 * layers' A, B and bias corrections trained jointly through the main
 * paths' real outputs, by distillation from the fp32 model plus
 * Fisher-weighted layer errors, with Adam and early stopping on held-out
 * images. The forward and backward passes are nn.c's; the polarized
 * layers enter through the matmul hook.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "polar/calib.h"
#include "polar/qlayer.h"
#include "polar/quant.h"
#include "polar_internal.h"

#define ADAM_B1 0.9f
#define ADAM_B2 0.999f
#define ADAM_EPS 1e-8f

/*
 * One trained tensor (A, B or bias of one layer) in the flat vectors, and
 * the scale of its steps: its initial RMS. Adam moves every element by
 * about lr per step, which for fc1's 1568-input A shifts A x by hundreds
 * of times more than for conv1's 25-input one; relative steps keep a
 * tensor's update in proportion to the tensor.
 */
struct param {
	float *p;
	size_t n, off;
	float scale;
};

struct trainer {
	const struct polar_model *m;
	struct polar_model shadow;	/* weights deq(Q(W)) + B A: the backward */
	struct polar_calib_train_layer *ly;
	const struct polar_calib_train_opts *o;
	unsigned int first;		/* the first trained layer */
	size_t maxn, insz;
	struct nn_ws *ws, *fp;		/* polarized, fp32 */
	float *wq[POLAR_MODEL_MAX_LAYERS];	/* deq(Q(W)) */
	float *wsh[POLAR_MODEL_MAX_LAYERS];	/* the shadow's weights */
	float *z, *dyrows, *dyb;	/* product rows x rank, rows x out */
	float *batch;			/* maxn images */
	struct param prm[3 * POLAR_MODEL_MAX_LAYERS];
	unsigned int nprm;
	size_t np;
	float *grad, *mom, *vel, *best;
	unsigned int steps;
};

static int trained(const struct trainer *t, unsigned int i)
{
	return t->ly[i].qlayer != NULL;
}

static size_t product_rows(const struct polar_layer *l, size_t n)
{
	return l->type == POLAR_LAYER_CONV2D ? n * l->out_h * l->out_w : n;
}

/* The polarized layer: the main path's real output plus B (A x) + bias. */
static int hook_polarized(void *p, const struct polar_model *m,
			  unsigned int i, const float *x, size_t nrows, float *y)
{
	struct trainer *t = p;
	const struct polar_calib_train_layer *ly = &t->ly[i];
	const struct polar_layer *l = &m->layers[i];
	size_t k;
	uint32_t o;
	int ret;

	if (!ly->qlayer)
		return -ENOSYS;
	ret = polar_qlayer_forward(ly->qlayer, (uint32_t)nrows, x, y,
				   POLAR_FWD_DEVICE_ONLY);
	if (ret)
		return ret;
	polar_sgemm(0, 1, nrows, ly->rank, l->cols, x, l->cols, ly->A, l->cols,
		    0.0f, t->z, ly->rank);
	polar_sgemm(0, 1, nrows, l->rows, ly->rank, t->z, ly->rank, ly->B,
		    ly->rank, 1.0f, y, l->rows);
	for (k = 0; k < nrows; k++)
		for (o = 0; o < l->rows; o++)
			y[k * l->rows + o] += ly->bias[o];
	return 0;
}

/* The shadow's weights of the trained layers: deq(Q(W)) + B A. */
static void update_shadow(struct trainer *t)
{
	unsigned int i;

	for (i = 0; i < t->m->nlayers; i++) {
		const struct polar_layer *l = &t->m->layers[i];

		if (!trained(t, i))
			continue;
		memcpy(t->wsh[i], t->wq[i], sizeof(float) * l->rows * l->cols);
		polar_sgemm(0, 0, l->rows, l->cols, t->ly[i].rank, t->ly[i].B,
			    t->ly[i].rank, t->ly[i].A, l->cols, 1.0f, t->wsh[i],
			    l->cols);
	}
}

/*
 * Forward n images through both models; returns the batch's summed loss
 * in *loss and its correct predictions in *correct. With grad, also the
 * backward pass, accumulating d(mean loss)/d(params) into t->grad.
 */
static int run_batch(struct trainer *t, size_t n, const float *x,
		     const uint8_t *labels, int grad, double *loss,
		     size_t *correct)
{
	const struct polar_model *m = t->m;
	struct polar_matmul_hook hook = { hook_polarized, t };
	unsigned int i, L = m->nlayers, C = m->classes;
	const float *in = x, *fin = x;
	float *cur, *next;
	double lsum = 0.0;
	size_t s, ok = 0;
	int ret;

	for (i = 0; i < L; i++) {
		ret = polar_nn_layer_fwd(m, i, t->ws, n, in, &hook);
		if (!ret)
			ret = polar_nn_layer_fwd(m, i, t->fp, n, fin, NULL);
		if (ret)
			return ret;
		in = t->ws->act[i + 1];
		fin = t->fp->act[i + 1];
	}
	cur = t->ws->g[0];
	next = t->ws->g[1];
	/* Distillation: KL(p_fp32 || p_polarized); d/dz = p - p_fp32. */
	for (s = 0; s < n; s++) {
		const float *z = t->ws->act[L] + s * C, *zt = t->fp->act[L] + s * C;
		float *d = cur + s * C, mx = z[0], mt = zt[0], sum = 0, st = 0;
		unsigned int j, best = 0;

		for (j = 1; j < C; j++) {
			mx = z[j] > mx ? z[j] : mx;
			mt = zt[j] > mt ? zt[j] : mt;
			best = z[j] > z[best] ? j : best;
		}
		for (j = 0; j < C; j++) {
			sum += expf(z[j] - mx);
			st += expf(zt[j] - mt);
		}
		for (j = 0; j < C; j++) {
			float lp = z[j] - mx - logf(sum);
			float lpt = zt[j] - mt - logf(st);
			float pt = expf(lpt);

			lsum += (double)(pt * (lpt - lp));
			d[j] = (expf(lp) - pt) / (float)n;
		}
		ok += labels && best == labels[s];
	}
	for (i = L; i-- > t->first;) {
		const struct polar_layer *l = &m->layers[i];
		const float *xin = i ? t->ws->act[i] : x;

		if (trained(t, i) && t->ly[i].fisher && t->o->layer_weight > 0) {
			size_t pos = product_rows(l, 1), outsz = (size_t)l->rows * pos;
			const float *yp = t->ws->act[i + 1], *yf = t->fp->act[i + 1];
			const float *f = t->ly[i].fisher;
			float w = t->o->layer_weight;

			size_t k;

			for (s = 0; s < n; s++)
				for (k = 0; k < outsz; k++) {
					size_t at = s * outsz + k;
					float e = yp[at] - yf[at];
					float fo = w * f[k / pos] / (float)pos;

					lsum += 0.5 * (double)(fo * e * e);
					cur[at] += fo * e / (float)n;
				}
		}
		if (!grad)
			continue;
		if (trained(t, i)) {
			const struct polar_calib_train_layer *ly = &t->ly[i];
			size_t N = product_rows(l, n);
			const float *X = l->type == POLAR_LAYER_CONV2D ?
					 t->ws->cols[i] : xin;
			const float *dy = cur;
			float *gA, *gB, *gb;
			unsigned int k;
			uint32_t o;

			for (k = 0; k < t->nprm; k++)
				if (t->prm[k].p == ly->A)
					break;
			gA = t->grad + t->prm[k].off;
			gB = t->grad + t->prm[k + 1].off;
			gb = t->grad + t->prm[k + 2].off;
			if (l->type == POLAR_LAYER_CONV2D) {
				polar_nn_conv_rows(l, n, cur, t->dyrows);
				dy = t->dyrows;
			}
			/* y += B z + bias, z = A x */
			polar_sgemm(0, 1, N, ly->rank, l->cols, X, l->cols, ly->A,
				    l->cols, 0.0f, t->z, ly->rank);
			polar_sgemm(1, 0, l->rows, ly->rank, N, dy, l->rows, t->z,
				    ly->rank, 1.0f, gB, ly->rank);
			polar_sgemm(0, 0, N, ly->rank, l->rows, dy, l->rows, ly->B,
				    ly->rank, 0.0f, t->dyb, ly->rank);
			polar_sgemm(1, 0, ly->rank, l->cols, N, t->dyb, ly->rank,
				    X, l->cols, 1.0f, gA, l->cols);
			for (s = 0; s < N; s++)
				for (o = 0; o < l->rows; o++)
					gb[o] += dy[s * l->rows + o];
		}
		if (i > t->first) {
			float *tmp;

			polar_nn_layer_bwd(&t->shadow, i, t->ws, n, xin, cur, next);
			tmp = cur;
			cur = next;
			next = tmp;
		}
	}
	*loss = lsum;
	*correct = ok;
	return 0;
}

static void adam_step(struct trainer *t)
{
	float lr = t->o->lr, bc1, bc2;
	unsigned int k;
	size_t j;

	t->steps++;
	bc1 = 1.0f - powf(ADAM_B1, (float)t->steps);
	bc2 = 1.0f - powf(ADAM_B2, (float)t->steps);
	for (k = 0; k < t->nprm; k++) {
		const struct param *pr = &t->prm[k];
		float step = lr * pr->scale;

		for (j = 0; j < pr->n; j++) {
			size_t at = pr->off + j;
			float g = t->grad[at];

			t->mom[at] = ADAM_B1 * t->mom[at] + (1 - ADAM_B1) * g;
			t->vel[at] = ADAM_B2 * t->vel[at] + (1 - ADAM_B2) * g * g;
			pr->p[j] -= step * (t->mom[at] / bc1) /
				    (sqrtf(t->vel[at] / bc2) + ADAM_EPS);
		}
	}
	update_shadow(t);
}

/* Copies the factors to (save) or from the flat vector v. */
static void factors(struct trainer *t, float *v, int save)
{
	unsigned int k;

	for (k = 0; k < t->nprm; k++) {
		const struct param *pr = &t->prm[k];

		if (save)
			memcpy(v + pr->off, pr->p, sizeof(float) * pr->n);
		else
			memcpy(pr->p, v + pr->off, sizeof(float) * pr->n);
	}
	if (!save)
		update_shadow(t);
}

/* Mean loss and accuracy on d, in batches. */
static int measure(struct trainer *t, const struct polar_dataset *d,
		   double *loss, double *accuracy)
{
	double lsum = 0, l;
	size_t s0, ok = 0, c;
	int ret = 0;

	for (s0 = 0; s0 < d->count && !ret; s0 += t->maxn) {
		size_t b = d->count - s0 < t->maxn ? d->count - s0 : t->maxn;

		ret = run_batch(t, b, d->images + s0 * t->insz,
				d->labels ? d->labels + s0 : NULL, 0, &l, &c);
		lsum += l;
		ok += c;
	}
	*loss = lsum / (double)d->count;
	*accuracy = (double)ok / (double)d->count;
	return ret;
}

static void trainer_free(struct trainer *t)
{
	unsigned int i;

	polar_nn_ws_free(t->ws);
	polar_nn_ws_free(t->fp);
	for (i = 0; i < POLAR_MODEL_MAX_LAYERS; i++) {
		free(t->wq[i]);
		free(t->wsh[i]);
	}
	free(t->z);
	free(t->dyrows);
	free(t->dyb);
	free(t->batch);
	free(t->grad);
	free(t->mom);
	free(t->vel);
	free(t->best);
}

static int check_args(const struct polar_model *m,
		      const struct polar_calib_train_layer *ly,
		      const struct polar_dataset *train,
		      const struct polar_dataset *val,
		      const struct polar_calib_train_opts *o)
{
	size_t insz = (size_t)m->in_c * m->in_h * m->in_w;
	const struct polar_dataset *d[2] = { train, val };
	unsigned int i, any = 0, k;

	/* The backward pass exists for chains of the built-in layers. */
	if (!polar_model_is_chain(m))
		return -EOPNOTSUPP;

	if (o->epochs < 1 || o->epochs > 1000)
		return polar_fail(-EINVAL, "calib_train: epochs is %u, allowed "
				  "1..1000", o->epochs);
	if (o->batch < 1 || o->batch > 4096)
		return polar_fail(-EINVAL, "calib_train: batch is %u, allowed "
				  "1..4096", o->batch);
	if (!(o->lr > 0 && o->lr <= 1))
		return polar_fail(-EINVAL, "calib_train: lr is %g, allowed "
				  "(0, 1]", (double)o->lr);
	if (!(o->layer_weight >= 0 && isfinite(o->layer_weight)))
		return polar_fail(-EINVAL, "calib_train: layer_weight is %g, "
				  "allowed finite >= 0", (double)o->layer_weight);
	if (!m->params || !m->nlayers || !m->classes)
		return polar_fail(-EINVAL, "calib_train: model has no "
				  "parameters");
	for (k = 0; k < 2; k++) {
		const char *nm = k ? "val" : "train";
		if (!d[k]->count || !d[k]->images)
			return polar_fail(-EINVAL, "calib_train: %s has no "
					  "images", nm);
		if ((size_t)d[k]->channels * d[k]->rows * d[k]->cols != insz)
			return polar_fail(-EINVAL, "calib_train: %s's images "
					  "are %ux%ux%u, the model's inputs "
					  "%ux%ux%u", nm, d[k]->channels,
					  d[k]->rows, d[k]->cols, m->in_c,
					  m->in_h, m->in_w);
	}
	for (i = 0; i < m->nlayers; i++) {
		const struct polar_layer *l = &m->layers[i];
		const struct polar_qweights *q;

		if (!ly[i].qlayer)
			continue;
		if (l->type != POLAR_LAYER_CONV2D && l->type != POLAR_LAYER_LINEAR)
			return polar_fail(-EINVAL, "calib_train: layer %u has a "
					  "qlayer but no weights", i);
		q = polar_qlayer_qweights(ly[i].qlayer);
		if (!q || q->out_dim != l->rows || q->in_dim != l->cols)
			return polar_fail(-EINVAL, "calib_train: layer %u's "
					  "qlayer is not %ux%u", i, l->rows,
					  l->cols);
		if (!ly[i].rank || ly[i].rank > l->rows || ly[i].rank > l->cols)
			return polar_fail(-EINVAL, "calib_train: layer %u's "
					  "rank is %u, allowed 1..%u", i,
					  ly[i].rank, l->rows < l->cols ?
					  l->rows : l->cols);
		if (!ly[i].A || !ly[i].B || !ly[i].bias)
			return polar_fail(-EINVAL, "calib_train: layer %u's %s "
					  "is NULL", i, !ly[i].A ? "A" :
					  !ly[i].B ? "B" : "bias");
		any = 1;
	}
	if (!any)
		return polar_fail(-EINVAL, "calib_train: no layer has a qlayer "
				  "to train");
	return 0;
}

static int trainer_init(struct trainer *t, const struct polar_model *m,
			struct polar_calib_train_layer *ly,
			const struct polar_calib_train_opts *o, size_t maxn)
{
	size_t zmax = 0, dymax = 0;
	unsigned int i;

	memset(t, 0, sizeof(*t));
	t->m = m;
	t->ly = ly;
	t->o = o;
	t->maxn = maxn;
	t->insz = (size_t)m->in_c * m->in_h * m->in_w;
	t->shadow = *m;
	t->first = m->nlayers;
	for (i = 0; i < m->nlayers; i++) {
		const struct polar_layer *l = &m->layers[i];
		size_t N = product_rows(l, maxn);

		if (!trained(t, i))
			continue;
		if (t->first == m->nlayers)
			t->first = i;
		t->prm[t->nprm++] = (struct param){ ly[i].A,
			(size_t)ly[i].rank * l->cols, 0, 0 };
		t->prm[t->nprm++] = (struct param){ ly[i].B,
			(size_t)l->rows * ly[i].rank, 0, 0 };
		t->prm[t->nprm++] = (struct param){ ly[i].bias, l->rows, 0, 0 };
		if (N * ly[i].rank > zmax)
			zmax = N * ly[i].rank;
		if (N * l->rows > dymax)
			dymax = N * l->rows;
		t->wq[i] = malloc(sizeof(float) * l->rows * l->cols);
		t->wsh[i] = malloc(sizeof(float) * l->rows * l->cols);
		if (!t->wq[i] || !t->wsh[i])
			return polar_fail(-ENOMEM, "calib_train: out of memory");
		if (polar_dequantize_weights(polar_qlayer_qweights(ly[i].qlayer),
					     t->wq[i]))
			return -EINVAL;
		t->shadow.layers[i].weight = t->wsh[i];
	}
	for (i = 0; i < t->nprm; i++) {
		struct param *pr = &t->prm[i];
		double ss = 0;
		size_t j;

		pr->off = t->np;
		t->np += pr->n;
		for (j = 0; j < pr->n; j++)
			ss += (double)pr->p[j] * pr->p[j];
		/* a tensor that starts at 0 (no bias correction) steps by lr */
		pr->scale = ss > 0 ? (float)sqrt(ss / (double)pr->n) : 1.0f;
	}
	t->ws = polar_nn_ws_alloc(m, maxn);
	t->fp = polar_nn_ws_alloc(m, maxn);
	if (!t->ws || !t->fp)
		return -ENOMEM;
	t->z = malloc(sizeof(float) * zmax);
	t->dyb = malloc(sizeof(float) * zmax);
	t->dyrows = malloc(sizeof(float) * dymax);
	t->batch = malloc(sizeof(float) * maxn * t->insz);
	t->grad = calloc(t->np, sizeof(float));
	t->mom = calloc(t->np, sizeof(float));
	t->vel = calloc(t->np, sizeof(float));
	t->best = malloc(sizeof(float) * t->np);
	if (!t->z || !t->dyb || !t->dyrows || !t->batch || !t->grad ||
	    !t->mom || !t->vel || !t->best)
		return polar_fail(-ENOMEM, "calib_train: out of memory");
	update_shadow(t);
	return 0;
}

int polar_calib_train(const struct polar_model *m,
		      struct polar_calib_train_layer *layers,
		      const struct polar_dataset *train,
		      const struct polar_dataset *val,
		      const struct polar_calib_train_opts *opts,
		      struct polar_calib_train_result *res)
{
	struct polar_calib_train_progress pg = { 0 };
	struct trainer t;
	uint64_t rng;
	size_t *perm = NULL, j, s0;
	unsigned int e, bad = 0;
	double vl, va;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	POLAR_NONNULL(__func__, layers);
	POLAR_NONNULL(__func__, train);
	POLAR_NONNULL(__func__, val);
	POLAR_NONNULL(__func__, opts);
	POLAR_NONNULL(__func__, res);
	memset(res, 0, sizeof(*res));
	ret = check_args(m, layers, train, val, opts);
	if (ret)
		return ret;
	ret = trainer_init(&t, m, layers, opts, opts->batch);
	perm = malloc(sizeof(size_t) * train->count);
	if (!ret && !perm)
		ret = polar_fail(-ENOMEM, "calib_train: out of memory");
	if (!ret)
		ret = measure(&t, val, &res->val_loss0, &res->val_accuracy0);
	if (ret)
		goto out;
	res->val_loss = res->val_loss0;
	res->val_accuracy = res->val_accuracy0;
	factors(&t, t.best, 1);
	rng = opts->seed;
	pg.epochs = opts->epochs;
	pg.batches = (train->count + opts->batch - 1) / opts->batch;
	for (e = 1; e <= opts->epochs && !ret; e++) {
		double lsum = 0;
		size_t seen = 0;

		for (j = 0; j < train->count; j++)
			perm[j] = j;
		for (j = train->count; j-- > 1;) {
			size_t k = (size_t)polar_nn_rng_below(&rng, j + 1),
			       tmp = perm[j];

			perm[j] = perm[k];
			perm[k] = tmp;
		}
		pg.epoch = e;
		pg.epoch_done = 0;
		for (s0 = 0; s0 < train->count && !ret; s0 += opts->batch) {
			size_t b = train->count - s0 < opts->batch ?
				   train->count - s0 : opts->batch, c;
			double l;

			for (j = 0; j < b; j++)
				memcpy(t.batch + j * t.insz, train->images +
				       perm[s0 + j] * t.insz,
				       sizeof(float) * t.insz);
			memset(t.grad, 0, sizeof(float) * t.np);
			ret = run_batch(&t, b, t.batch, NULL, 1, &l, &c);
			if (ret)
				break;
			adam_step(&t);
			lsum += l;
			seen += b;
			pg.batch = s0 / opts->batch + 1;
			pg.loss = lsum / (double)seen;
			if (opts->progress)
				opts->progress(opts->ctx, &pg);
		}
		if (!ret)
			ret = measure(&t, val, &vl, &va);
		if (ret)
			break;
		res->epochs_run = e;
		pg.val_loss = vl;
		pg.epoch_done = 1;
		if (opts->progress)
			opts->progress(opts->ctx, &pg);
		if (vl < res->val_loss) {
			res->val_loss = vl;
			res->val_accuracy = va;
			res->best_epoch = e;
			factors(&t, t.best, 1);
			bad = 0;
		} else if (opts->patience && ++bad >= opts->patience) {
			break;
		}
	}
	factors(&t, t.best, 0);
out:
	free(perm);
	trainer_free(&t);
	return ret;
}
