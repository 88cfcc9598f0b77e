// SPDX-License-Identifier: MIT
/*
 * ONNX import: a ModelProto (decoded by protobuf-c code generated at build
 * time from Debian's onnx.proto) becomes a struct polar_model.
 *
 * The nodes the graph output depends on are visited depth first from that
 * output, which orders them so that each comes after what it reads, finds
 * cycles (a node met again while its inputs are still being visited) and
 * leaves unused nodes out. Each node then becomes a layer, folds into the
 * layer before it (BatchNormalization, a bias Add) or renames that layer's
 * output (Flatten, Reshape, Identity, Dropout).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx.pb-c.h"
#include "polar/onnx.h"
#include "polar_internal.h"

/* Caps that keep a hostile file from asking for absurd memory. */
#define MAX_DIM 65536u
#define MAX_ELEMS (UINT64_C(1) << 26)
#define MAX_NODES 4096u

enum value_kind { V_NONE, V_ACT, V_CONST };

/**
 * struct value - one named tensor of the graph
 * @name: its name
 * @kind: computed from the input (V_ACT) or a constant (V_CONST)
 * @node: the node that produces it, or -1 (initializer, graph input)
 * @consumers: nodes that read it
 * @producer: V_ACT: the layer whose output it is, or POLAR_LAYER_INPUT
 * @direct: V_ACT: it is that layer's own output, not a reshaped view, so a
 *	BatchNormalization or bias can fold into the layer
 * @rank: V_ACT: 4 ([N, C, H, W]) or 2 ([N, F], then @c = F, @h = @w = 1)
 * @c, @h, @w: V_ACT: the shape of one sample
 * @pad: V_ACT: zero padding a Pad node added on every side of H and W,
 *	which the Conv or AveragePool that reads it takes as its own
 * @t: V_CONST: the tensor
 */
struct value {
	const char *name;
	enum value_kind kind;
	long node;
	unsigned int consumers;
	int producer;
	int direct;
	unsigned int rank;
	uint32_t c, h, w;
	uint32_t pad;
	const Onnx__TensorProto *t;
};

struct importer {
	const char *src;
	Onnx__GraphProto *g;
	struct value *vals;
	size_t nvals;
	unsigned char *state;	/* per node: 0 new, 1 visiting, 2 done */
	size_t *order, norder;
	struct polar_model *m;
	float *w[POLAR_MODEL_MAX_LAYERS], *b[POLAR_MODEL_MAX_LAYERS];
	const char *output;
};

static const char *node_name(const Onnx__NodeProto *n)
{
	return n->name && n->name[0] ? n->name : "(unnamed)";
}

/* A one-line error naming the file, the node and its operator. */
static int node_fail(struct importer *im, const Onnx__NodeProto *n,
		     const char *fmt, ...) POLAR_PRINTF(3, 4);
static int node_fail(struct importer *im, const Onnx__NodeProto *n,
		     const char *fmt, ...)
{
	char why[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return polar_fail(-EINVAL, "%s: node '%s' (%s): %s", im->src,
			  node_name(n), n->op_type ? n->op_type : "?", why);
}

static struct value *find(struct importer *im, const char *name)
{
	size_t i;

	for (i = 0; i < im->nvals; i++)
		if (!strcmp(im->vals[i].name, name))
			return &im->vals[i];
	return NULL;
}

static struct value *define(struct importer *im, const char *name, long node)
{
	struct value *v = find(im, name);

	if (v) {
		if (node >= 0)
			polar_fail(-EINVAL, "%s: node '%s' (%s): output '%s' is "
				   "already defined", im->src,
				   node_name(im->g->node[node]),
				   im->g->node[node]->op_type, name);
		else
			polar_fail(-EINVAL, "%s: tensor '%s' is defined twice",
				   im->src, name);
		return NULL;
	}
	v = &im->vals[im->nvals++];
	memset(v, 0, sizeof(*v));
	v->name = name;
	v->node = node;
	return v;
}

/* --- tensors ------------------------------------------------------------- */

static void shape_str(const Onnx__TensorProto *t, char *buf, size_t len)
{
	size_t i, at = 0;

	at += snprintf(buf, len, "[");
	for (i = 0; i < t->n_dims && at < len; i++)
		at += snprintf(buf + at, len - at, "%s%lld", i ? "," : "",
			       (long long)t->dims[i]);
	if (at < len)
		snprintf(buf + at, len - at, "]");
}

/* Element count of t's shape, or -1 (error set) when it is not sane. */
static int64_t tensor_count(struct importer *im, const Onnx__TensorProto *t)
{
	uint64_t count = 1;
	size_t i;

	for (i = 0; i < t->n_dims; i++) {
		if (t->dims[i] < 0 || (uint64_t)t->dims[i] > MAX_ELEMS) {
			polar_fail(-EINVAL, "%s: tensor '%s': dimension %zu is "
				   "%lld", im->src, t->name ? t->name : "",
				   i, (long long)t->dims[i]);
			return -1;
		}
		count *= (uint64_t)t->dims[i];
		if (count > MAX_ELEMS) {
			polar_fail(-EINVAL, "%s: tensor '%s' has more than "
				   "%llu elements", im->src,
				   t->name ? t->name : "",
				   (unsigned long long)MAX_ELEMS);
			return -1;
		}
	}
	return (int64_t)count;
}

/*
 * The float data of t (count elements, copied to out, which has room for
 * count), checking that its type and byte length match its shape.
 */
static int tensor_floats(struct importer *im, const Onnx__TensorProto *t,
			 float *out, size_t count)
{
	char shape[96];

	shape_str(t, shape, sizeof(shape));
	if (!t->has_data_type || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
		return polar_fail(-EINVAL, "%s: tensor '%s' has data type %d, "
				  "want FLOAT (1)", im->src, t->name ? t->name : "",
				  t->has_data_type ? t->data_type : 0);
	if (t->has_data_location &&
	    t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
		return polar_fail(-EINVAL, "%s: tensor '%s' keeps its data in an "
				  "external file, not supported", im->src,
				  t->name ? t->name : "");
	if (t->has_raw_data) {
		if (t->raw_data.len != count * sizeof(float))
			return polar_fail(-EINVAL, "%s: tensor '%s' has %zu bytes "
					  "of data, its shape %s needs %zu",
					  im->src, t->name ? t->name : "",
					  t->raw_data.len, shape,
					  count * sizeof(float));
		/* ONNX stores raw data little-endian, as this host is. */
		memcpy(out, t->raw_data.data, count * sizeof(float));
		return 0;
	}
	if (t->n_float_data != count)
		return polar_fail(-EINVAL, "%s: tensor '%s' has %zu floats, its "
				  "shape %s needs %zu", im->src,
				  t->name ? t->name : "", t->n_float_data, shape,
				  count);
	memcpy(out, t->float_data, count * sizeof(float));
	return 0;
}

/* An int64 tensor of at most max elements (a Reshape's shape). */
static int tensor_int64s(struct importer *im, const Onnx__TensorProto *t,
			 int64_t *out, size_t max, size_t *count)
{
	int64_t n = tensor_count(im, t);

	if (n < 0)
		return -EINVAL;
	if (!t->has_data_type || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
	    (size_t)n > max)
		return polar_fail(-EINVAL, "%s: tensor '%s' is not an INT64 "
				  "tensor of at most %zu values", im->src,
				  t->name ? t->name : "", max);
	*count = (size_t)n;
	if (t->has_raw_data) {
		if (t->raw_data.len != *count * sizeof(int64_t))
			return polar_fail(-EINVAL, "%s: tensor '%s' has %zu "
					  "bytes of data, want %zu", im->src,
					  t->name ? t->name : "",
					  t->raw_data.len,
					  *count * sizeof(int64_t));
		memcpy(out, t->raw_data.data, *count * sizeof(int64_t));
		return 0;
	}
	if (t->n_int64_data != *count)
		return polar_fail(-EINVAL, "%s: tensor '%s' has %zu values, want "
				  "%zu", im->src, t->name ? t->name : "",
				  t->n_int64_data, *count);
	memcpy(out, t->int64_data, *count * sizeof(int64_t));
	return 0;
}

/* Checks that constant t has the shape of the ndim dims (-1: any). */
static int want_shape(struct importer *im, const Onnx__NodeProto *n,
		      const char *what, const Onnx__TensorProto *t,
		      unsigned int ndim, const int64_t *dims)
{
	char have[96], want[96];
	size_t i, at = 0;
	int ok = t->n_dims == ndim;

	for (i = 0; ok && i < ndim; i++)
		ok = dims[i] < 0 || t->dims[i] == dims[i];
	if (ok)
		return 0;
	shape_str(t, have, sizeof(have));
	at += snprintf(want, sizeof(want), "[");
	for (i = 0; i < ndim && at < sizeof(want); i++)
		at += snprintf(want + at, sizeof(want) - at, dims[i] < 0 ?
			       "%s?" : "%s%lld", i ? "," : "",
			       (long long)dims[i]);
	if (at < sizeof(want))
		snprintf(want + at, sizeof(want) - at, "]");
	return node_fail(im, n, "%s '%s' has shape %s, expected %s", what,
			 t->name ? t->name : "", have, want);
}

/* --- attributes ----------------------------------------------------------- */

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n,
					const char *name)
{
	size_t i;

	for (i = 0; i < n->n_attribute; i++)
		if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
			return n->attribute[i];
	return NULL;
}

static int attr_int(struct importer *im, const Onnx__NodeProto *n,
		    const char *name, int64_t def, int64_t *out)
{
	const Onnx__AttributeProto *a = attr(n, name);

	*out = def;
	if (!a)
		return 0;
	if (!a->has_i)
		return node_fail(im, n, "attribute %s is not an int", name);
	*out = a->i;
	return 0;
}

static int attr_float(struct importer *im, const Onnx__NodeProto *n,
		      const char *name, float def, float *out)
{
	const Onnx__AttributeProto *a = attr(n, name);

	*out = def;
	if (!a)
		return 0;
	if (!a->has_f)
		return node_fail(im, n, "attribute %s is not a float", name);
	*out = a->f;
	return 0;
}

/*
 * An ints attribute whose values must all be equal (a square window, the
 * same stride or pad on every side); *out = that value, def if absent.
 */
static int attr_same_ints(struct importer *im, const Onnx__NodeProto *n,
			  const char *name, size_t want, int64_t def,
			  int64_t *out)
{
	const Onnx__AttributeProto *a = attr(n, name);
	size_t i;

	*out = def;
	if (!a)
		return 0;
	if (a->n_ints != want)
		return node_fail(im, n, "attribute %s has %zu values, want %zu",
				 name, a->n_ints, want);
	for (i = 1; i < a->n_ints; i++)
		if (a->ints[i] != a->ints[0])
			return node_fail(im, n, "attribute %s is not the same "
					 "on every side (%lld, %lld): not "
					 "supported", name,
					 (long long)a->ints[0],
					 (long long)a->ints[i]);
	*out = a->ints[0];
	return 0;
}

/* Fails on any attribute not in the NULL-terminated list known. */
static int only_attrs(struct importer *im, const Onnx__NodeProto *n,
		      const char *const *known)
{
	size_t i, k;

	for (i = 0; i < n->n_attribute; i++) {
		const char *name = n->attribute[i]->name ?
				   n->attribute[i]->name : "";

		for (k = 0; known[k] && strcmp(known[k], name); k++)
			;
		if (!known[k])
			return node_fail(im, n, "attribute %s not supported",
					 name);
	}
	return 0;
}

static int auto_pad_ok(struct importer *im, const Onnx__NodeProto *n)
{
	const Onnx__AttributeProto *a = attr(n, "auto_pad");

	if (a && a->has_s && a->s.len && !(a->s.len == 6 &&
					  !memcmp(a->s.data, "NOTSET", 6)))
		return node_fail(im, n, "auto_pad %.*s not supported (want "
				 "NOTSET and explicit pads)", (int)a->s.len,
				 (const char *)a->s.data);
	return 0;
}

static int all_ones(struct importer *im, const Onnx__NodeProto *n,
		    const char *name)
{
	const Onnx__AttributeProto *a = attr(n, name);
	size_t i;

	for (i = 0; a && i < a->n_ints; i++)
		if (a->ints[i] != 1)
			return node_fail(im, n, "%s of %lld not supported (want "
					 "1)", name, (long long)a->ints[i]);
	return 0;
}

/* --- graph ------------------------------------------------------------------ */

/* Input k of node n: a value with a kind, or an error. */
static struct value *input(struct importer *im, const Onnx__NodeProto *n,
			   size_t k, enum value_kind kind)
{
	struct value *v;

	if (k >= n->n_input || !n->input[k][0]) {
		node_fail(im, n, "input %zu is missing", k);
		return NULL;
	}
	v = find(im, n->input[k]);
	if (!v || v->kind == V_NONE) {
		node_fail(im, n, "input '%s' is produced by no node, "
			  "initializer or graph input", n->input[k]);
		return NULL;
	}
	if (v->pad && strcmp(n->op_type, "Conv") &&
	    strcmp(n->op_type, "AveragePool")) {
		node_fail(im, n, "input '%s' comes from a Pad: supported only "
			  "before Conv and AveragePool", n->input[k]);
		return NULL;
	}
	if (kind != V_NONE && v->kind != kind) {
		node_fail(im, n, "input '%s' must be %s", n->input[k],
			  kind == V_CONST ? "a constant (an initializer)" :
			  "computed from the graph input, not a constant");
		return NULL;
	}
	return v;
}

static struct value *output(struct importer *im, const Onnx__NodeProto *n)
{
	if (n->n_output != 1 && strcmp(n->op_type, "Dropout") &&
	    strcmp(n->op_type, "MaxPool")) {
		node_fail(im, n, "has %zu outputs, want 1", n->n_output);
		return NULL;
	}
	if (!n->n_output) {
		node_fail(im, n, "has no output");
		return NULL;
	}
	return find(im, n->output[0]);
}

/*
 * Depth first from node i over what it reads, appending it to im->order
 * after its inputs' producers.
 */
static int visit(struct importer *im, size_t i)
{
	const Onnx__NodeProto *n = im->g->node[i];
	size_t k;
	int ret;

	if (im->state[i] == 2)
		return 0;
	im->state[i] = 1;
	for (k = 0; k < n->n_input; k++) {
		struct value *v;

		if (!n->input[k][0])
			continue;
		v = find(im, n->input[k]);
		if (!v)
			return node_fail(im, n, "input '%s' is produced by no "
					 "node, initializer or graph input",
					 n->input[k]);
		if (v->node < 0)
			continue;
		if (im->state[v->node] == 1)
			return node_fail(im, n, "input '%s' depends on this "
					 "node's own output: the graph has a "
					 "cycle", n->input[k]);
		ret = visit(im, (size_t)v->node);
		if (ret)
			return ret;
	}
	im->state[i] = 2;
	im->order[im->norder++] = i;
	return 0;
}

/* A short layer name from the node's: "/layer1/conv1/Conv" -> "layer1.conv1". */
static void layer_name(struct importer *im, const Onnx__NodeProto *n,
		       char *out, size_t len)
{
	const char *base = n->name ? n->name : "", *s = base, *end;
	size_t j, o = 0;
	unsigned int i;

	while (*s == '/')
		s++;
	end = strrchr(s, '/');
	if (!end)
		end = s + strlen(s);
	for (; s < end && o + 1 < len; s++)
		out[o++] = *s == '/' ? '.' : *s;
	out[o] = 0;
	for (i = 0; o && i < im->m->nlayers; i++)
		if (!strcmp(im->m->layers[i].name, out))
			o = 0;
	if (!o || (size_t)(end - base) >= len)
		snprintf(out, len, "%s%u", n->op_type, im->m->nlayers);
	for (j = 0; out[j]; j++)
		if (out[j] == ',' || out[j] == ' ')
			out[j] = '_';
}

/* Appends a layer reading from (and shaped by) the values in. */
static struct polar_layer *add_layer(struct importer *im,
				     const Onnx__NodeProto *n,
				     enum polar_layer_type type,
				     struct value *const *in, unsigned int nin)
{
	struct polar_model *m = im->m;
	struct polar_layer *l;
	unsigned int k;

	if (m->nlayers == POLAR_MODEL_MAX_LAYERS) {
		node_fail(im, n, "the model would have more than %d layers",
			  POLAR_MODEL_MAX_LAYERS);
		return NULL;
	}
	l = &m->layers[m->nlayers];
	memset(l, 0, sizeof(*l));
	l->type = type;
	layer_name(im, n, l->name, sizeof(l->name));
	l->stride = 1;
	l->ninputs = nin;
	l->input[1] = POLAR_LAYER_INPUT;
	for (k = 0; k < nin; k++)
		l->input[k] = in[k]->producer;
	l->in_c = in[0]->c;
	l->in_h = in[0]->h;
	l->in_w = in[0]->w;
	l->out_c = l->in_c;
	l->out_h = l->in_h;
	l->out_w = l->in_w;
	m->nlayers++;
	return l;
}

/* Makes value out the output of the last layer. */
static void produced(struct importer *im, struct value *out,
		     unsigned int rank)
{
	const struct polar_layer *l = &im->m->layers[im->m->nlayers - 1];

	out->kind = V_ACT;
	out->producer = (int)im->m->nlayers - 1;
	out->direct = 1;
	out->rank = rank;
	out->c = l->out_c;
	out->h = l->out_h;
	out->w = l->out_w;
}

/*
 * Makes out another name of x's layer output, viewed as rank, c x h x w;
 * direct when a BatchNormalization or bias may still fold into it.
 */
static void alias(struct value *out, const struct value *x,
		  unsigned int rank, uint32_t c, uint32_t h, uint32_t w,
		  int direct)
{
	out->kind = V_ACT;
	out->producer = x->producer;
	out->direct = direct && x->producer >= 0;
	out->pad = 0;
	out->rank = rank;
	out->c = c;
	out->h = h;
	out->w = w;
}

static int alloc_weights(struct importer *im, struct polar_layer *l)
{
	unsigned int i = (unsigned int)(l - im->m->layers);

	im->w[i] = calloc((size_t)l->rows * l->cols, sizeof(float));
	im->b[i] = calloc(l->rows, sizeof(float));
	if (!im->w[i] || !im->b[i])
		return polar_fail(-ENOMEM, "%s: out of memory for layer %s",
				  im->src, l->name);
	return 0;
}

/* A bias constant of rows values (shape [rows] or [1, rows]) into b. */
static int read_bias(struct importer *im, const Onnx__NodeProto *n,
		     const struct value *c, uint32_t rows, float *b)
{
	int64_t cnt = tensor_count(im, c->t);
	char shape[96];

	if (cnt < 0)
		return -EINVAL;
	shape_str(c->t, shape, sizeof(shape));
	if (cnt != rows || c->t->n_dims < 1 || c->t->dims[c->t->n_dims - 1] != rows)
		return node_fail(im, n, "bias '%s' has shape %s, expected [%u]",
				 c->name, shape, rows);
	return tensor_floats(im, c->t, b, rows);
}

static int op_conv(struct importer *im, const Onnx__NodeProto *n)
{
	static const char *const known[] = { "kernel_shape", "strides", "pads",
		"dilations", "group", "auto_pad", NULL };
	struct value *x, *w, *bias = NULL, *out;
	struct polar_layer *l;
	int64_t stride, pad, group, k, dims[4];
	int ret;

	if ((ret = only_attrs(im, n, known)) || (ret = auto_pad_ok(im, n)) ||
	    (ret = all_ones(im, n, "dilations")) ||
	    (ret = attr_int(im, n, "group", 1, &group)) ||
	    (ret = attr_same_ints(im, n, "strides", 2, 1, &stride)) ||
	    (ret = attr_same_ints(im, n, "pads", 4, 0, &pad)))
		return ret;
	if (group != 1)
		return node_fail(im, n, "group %lld not supported (want 1)",
				 (long long)group);
	x = input(im, n, 0, V_ACT);
	w = x ? input(im, n, 1, V_CONST) : NULL;
	if (!w)
		return -EINVAL;
	pad += x->pad;
	if (n->n_input > 2 && n->input[2][0] &&
	    !(bias = input(im, n, 2, V_CONST)))
		return -EINVAL;
	if (x->rank != 4)
		return node_fail(im, n, "input '%s' has rank %u, want 4",
				 x->name, x->rank);
	if (w->t->n_dims != 4 || w->t->dims[2] != w->t->dims[3])
		return node_fail(im, n, "weight '%s' is not [out, in, k, k]",
				 w->name);
	k = w->t->dims[2];
	dims[0] = -1;
	dims[1] = x->c;
	dims[2] = dims[3] = k;
	if ((ret = want_shape(im, n, "weight", w->t, 4, dims)))
		return ret;
	if (tensor_count(im, w->t) <= 0)
		return node_fail(im, n, "weight '%s' is empty", w->name);
	ret = attr_same_ints(im, n, "kernel_shape", 2, k, &dims[0]);
	if (ret)
		return ret;
	if (dims[0] != k)
		return node_fail(im, n, "kernel_shape %lld differs from the "
				 "weight's %lld", (long long)dims[0],
				 (long long)k);
	if (stride < 1 || stride > 64 || pad < 0 || pad > 64 ||
	    x->h + 2 * pad < k || x->w + 2 * pad < k)
		return node_fail(im, n, "a %lldx%lld kernel, stride %lld, pad "
				 "%lld does not fit a %ux%u input",
				 (long long)k, (long long)k, (long long)stride,
				 (long long)pad, x->h, x->w);
	l = add_layer(im, n, POLAR_LAYER_CONV2D, &x, 1);
	if (!l)
		return -EINVAL;
	l->kernel = (uint32_t)k;
	l->pad = (uint32_t)pad;
	l->stride = (uint32_t)stride;
	l->out_c = (uint32_t)w->t->dims[0];
	l->out_h = (uint32_t)((x->h + 2 * pad - k) / stride + 1);
	l->out_w = (uint32_t)((x->w + 2 * pad - k) / stride + 1);
	l->rows = l->out_c;
	l->cols = (uint32_t)(x->c * k * k);
	ret = alloc_weights(im, l);
	if (!ret)
		ret = tensor_floats(im, w->t, im->w[im->m->nlayers - 1],
				    (size_t)l->rows * l->cols);
	if (!ret && bias)
		ret = read_bias(im, n, bias, l->rows, im->b[im->m->nlayers - 1]);
	out = ret ? NULL : output(im, n);
	if (!out)
		return -EINVAL;
	produced(im, out, 4);
	return 0;
}

/* Gemm and MatMul: a linear layer over the features of x. */
static int op_linear(struct importer *im, const Onnx__NodeProto *n, int gemm)
{
	static const char *const known[] = { "alpha", "beta", "transA",
		"transB", NULL };
	struct value *x, *w, *bias = NULL, *out;
	struct polar_layer *l;
	int64_t ta = 0, tb = 0, rows, cols, dims[2];
	float alpha = 1.0f, beta = 1.0f, *wt;
	int ret;

	if (gemm) {
		if ((ret = only_attrs(im, n, known)) ||
		    (ret = attr_int(im, n, "transA", 0, &ta)) ||
		    (ret = attr_int(im, n, "transB", 0, &tb)) ||
		    (ret = attr_float(im, n, "alpha", 1.0f, &alpha)) ||
		    (ret = attr_float(im, n, "beta", 1.0f, &beta)))
			return ret;
		if (ta || alpha != 1.0f || beta != 1.0f)
			return node_fail(im, n, "transA %lld, alpha %g, beta %g "
					 "not supported (want 0, 1, 1)",
					 (long long)ta, (double)alpha,
					 (double)beta);
	} else if ((ret = only_attrs(im, n, known + 4))) {
		return ret;
	}
	x = input(im, n, 0, V_ACT);
	w = x ? input(im, n, 1, V_CONST) : NULL;
	if (!w)
		return -EINVAL;
	if (gemm && n->n_input > 2 && n->input[2][0] &&
	    !(bias = input(im, n, 2, V_CONST)))
		return -EINVAL;
	if (x->rank != 2)
		return node_fail(im, n, "input '%s' has rank %u, want 2 "
				 "(Flatten it first)", x->name, x->rank);
	cols = x->c;
	if (w->t->n_dims != 2)
		return node_fail(im, n, "weight '%s' has rank %zu, want 2",
				 w->name, w->t->n_dims);
	rows = tb ? w->t->dims[0] : w->t->dims[1];
	dims[0] = tb ? -1 : cols;
	dims[1] = tb ? cols : -1;
	if ((ret = want_shape(im, n, "weight", w->t, 2, dims)))
		return ret;
	if (rows < 1 || rows > MAX_DIM)
		return node_fail(im, n, "weight '%s' has %lld outputs", w->name,
				 (long long)rows);
	l = add_layer(im, n, POLAR_LAYER_LINEAR, &x, 1);
	if (!l)
		return -EINVAL;
	l->out_c = (uint32_t)rows;
	l->out_h = l->out_w = 1;
	l->rows = (uint32_t)rows;
	l->cols = (uint32_t)cols;
	ret = alloc_weights(im, l);
	wt = ret ? NULL : malloc(sizeof(float) * rows * cols);
	if (!ret && !wt)
		ret = polar_fail(-ENOMEM, "%s: out of memory", im->src);
	if (!ret)
		ret = tensor_floats(im, w->t, wt, (size_t)rows * cols);
	if (!ret) {
		float *dst = im->w[im->m->nlayers - 1];
		int64_t o, i;

		/* Our weights are [out, in], PyTorch's nn.Linear layout. */
		for (o = 0; o < rows; o++)
			for (i = 0; i < cols; i++)
				dst[o * cols + i] = tb ? wt[o * cols + i] :
						    wt[i * rows + o];
	}
	free(wt);
	if (!ret && bias)
		ret = read_bias(im, n, bias, l->rows, im->b[im->m->nlayers - 1]);
	out = ret ? NULL : output(im, n);
	if (!out)
		return ret ? ret : -EINVAL;
	produced(im, out, 2);
	return 0;
}

/* The layer a BatchNormalization or bias Add can fold into, or NULL. */
static int foldable(struct importer *im, const struct value *x)
{
	const struct polar_layer *l;

	if (!x->direct || x->producer < 0 || x->consumers != 1 ||
	    !strcmp(x->name, im->output))
		return -1;
	l = &im->m->layers[x->producer];
	return l->rows ? x->producer : -1;
}

static int op_batchnorm(struct importer *im, const Onnx__NodeProto *n)
{
	static const char *const known[] = { "epsilon", "momentum",
		"training_mode", "spatial", NULL };
	struct value *x, *p[4], *out;
	float *v[4] = { 0 }, eps;
	int64_t training, dims[1];
	int li, ret, k;
	uint32_t o, rows, i;

	if ((ret = only_attrs(im, n, known)) ||
	    (ret = attr_float(im, n, "epsilon", 1e-5f, &eps)) ||
	    (ret = attr_int(im, n, "training_mode", 0, &training)))
		return ret;
	if (training)
		return node_fail(im, n, "training_mode 1 not supported");
	x = input(im, n, 0, V_ACT);
	if (!x)
		return -EINVAL;
	li = foldable(im, x);
	if (li < 0)
		return node_fail(im, n, "input '%s' is not the output of a "
				 "Conv, Gemm or MatMul read by it alone: "
				 "cannot fold", x->name);
	rows = im->m->layers[li].rows;
	dims[0] = rows;
	for (k = 0; k < 4; k++) {
		static const char *const what[] = { "scale", "bias", "mean",
			"var" };

		p[k] = input(im, n, (size_t)k + 1, V_CONST);
		if (!p[k])
			return -EINVAL;
		if ((ret = want_shape(im, n, what[k], p[k]->t, 1, dims)))
			return ret;
	}
	for (k = 0; k < 4; k++) {
		v[k] = malloc(sizeof(float) * rows);
		ret = v[k] ? tensor_floats(im, p[k]->t, v[k], rows) :
			     polar_fail(-ENOMEM, "%s: out of memory", im->src);
		if (ret)
			goto out;
	}
	/*
	 * y = scale (W x + b - mean) / sqrt(var + eps) + bias: scale W's
	 * rows and move b, in double so that folding adds no error PyTorch's
	 * own BatchNorm would not make.
	 */
	for (o = 0; o < rows; o++) {
		double s = (double)v[0][o] / sqrt((double)v[3][o] + eps);
		float *w = im->w[li] + (size_t)o * im->m->layers[li].cols;

		for (i = 0; i < im->m->layers[li].cols; i++)
			w[i] = (float)(w[i] * s);
		im->b[li][o] = (float)((im->b[li][o] - (double)v[2][o]) * s +
				       v[1][o]);
	}
	out = output(im, n);
	if (!out) {
		ret = -EINVAL;
		goto out;
	}
	alias(out, x, x->rank, x->c, x->h, x->w, 1);
out:
	for (k = 0; k < 4; k++)
		free(v[k]);
	return ret;
}

static int op_add(struct importer *im, const Onnx__NodeProto *n)
{
	struct value *a, *b, *out;
	int li, ret;

	if ((ret = only_attrs(im, n, (const char *const[]){ NULL })))
		return ret;
	a = input(im, n, 0, V_NONE);
	b = a ? input(im, n, 1, V_NONE) : NULL;
	if (!b)
		return -EINVAL;
	if (a->kind == V_CONST) {
		struct value *t = a;

		a = b;
		b = t;
	}
	if (a->kind == V_CONST)
		return node_fail(im, n, "adds two constants");
	out = output(im, n);
	if (!out)
		return -EINVAL;
	if (b->kind == V_CONST) {
		li = foldable(im, a);
		if (li < 0 || im->m->layers[li].type != POLAR_LAYER_LINEAR)
			return node_fail(im, n, "adds constant '%s' to '%s', "
					 "which is not the output of a Gemm "
					 "or MatMul read by it alone",
					 b->name, a->name);
		{
			uint32_t o, rows = im->m->layers[li].rows;
			float *add = malloc(sizeof(float) * rows);

			ret = add ? read_bias(im, n, b, rows, add) :
				    polar_fail(-ENOMEM, "%s: out of memory",
					       im->src);
			for (o = 0; !ret && o < rows; o++)
				im->b[li][o] += add[o];
			free(add);
			if (ret)
				return ret;
		}
		alias(out, a, a->rank, a->c, a->h, a->w, 1);
		return 0;
	}
	if (a->rank != b->rank || a->c != b->c || a->h != b->h || a->w != b->w)
		return node_fail(im, n, "adds '%s' [%u,%u,%u] and '%s' "
				 "[%u,%u,%u]: shapes differ (no broadcast)",
				 a->name, a->c, a->h, a->w, b->name, b->c,
				 b->h, b->w);
	{
		struct value *in[2] = { a, b };

		if (!add_layer(im, n, POLAR_LAYER_ADD, in, 2))
			return -EINVAL;
	}
	/* Of one size, but the two may be viewed differently (flattened). */
	im->m->layers[im->m->nlayers - 1].out_c = a->c;
	im->m->layers[im->m->nlayers - 1].out_h = a->h;
	im->m->layers[im->m->nlayers - 1].out_w = a->w;
	produced(im, out, a->rank);
	return 0;
}

static int op_pool(struct importer *im, const Onnx__NodeProto *n,
		   enum polar_layer_type type)
{
	static const char *const known[] = { "kernel_shape", "strides", "pads",
		"ceil_mode", "dilations", "auto_pad", "storage_order",
		"count_include_pad", NULL };
	struct value *x, *out;
	struct polar_layer *l;
	int64_t k, stride, pad, ceil_mode, order, count_pad;
	int ret;

	if ((ret = only_attrs(im, n, known)) || (ret = auto_pad_ok(im, n)) ||
	    (ret = all_ones(im, n, "dilations")) ||
	    (ret = attr_same_ints(im, n, "kernel_shape", 2, 0, &k)) ||
	    (ret = attr_same_ints(im, n, "strides", 2, 1, &stride)) ||
	    (ret = attr_same_ints(im, n, "pads", 4, 0, &pad)) ||
	    (ret = attr_int(im, n, "ceil_mode", 0, &ceil_mode)) ||
	    (ret = attr_int(im, n, "storage_order", 0, &order)) ||
	    (ret = attr_int(im, n, "count_include_pad", 0, &count_pad)))
		return ret;
	if (ceil_mode || order)
		return node_fail(im, n, "ceil_mode %lld, storage_order %lld not "
				 "supported (want 0)", (long long)ceil_mode,
				 (long long)order);
	x = input(im, n, 0, V_ACT);
	if (!x)
		return -EINVAL;
	if (x->rank != 4)
		return node_fail(im, n, "input '%s' has rank %u, want 4",
				 x->name, x->rank);
	if (x->pad) {
		/* Zeros from the Pad count in the average. */
		if (pad && !count_pad)
			return node_fail(im, n, "pads after a Pad with "
					 "count_include_pad 0 not supported");
		pad += x->pad;
		count_pad = 1;
	}
	if (k < 1 || k > 64 || stride < 1 || stride > 64 || pad < 0 ||
	    pad >= k || x->h + 2 * pad < k || x->w + 2 * pad < k)
		return node_fail(im, n, "a %lldx%lld window, stride %lld, pad "
				 "%lld does not fit a %ux%u input",
				 (long long)k, (long long)k, (long long)stride,
				 (long long)pad, x->h, x->w);
	l = add_layer(im, n, type, &x, 1);
	if (!l)
		return -EINVAL;
	l->kernel = (uint32_t)k;
	l->stride = (uint32_t)stride;
	l->pad = (uint32_t)pad;
	l->count_pad = count_pad != 0;
	l->out_h = (uint32_t)((x->h + 2 * pad - k) / stride + 1);
	l->out_w = (uint32_t)((x->w + 2 * pad - k) / stride + 1);
	out = output(im, n);
	if (!out)
		return -EINVAL;
	produced(im, out, 4);
	return 0;
}

/* A layer of the same shape as its input (Relu, Softmax, global pool). */
static int op_simple(struct importer *im, const Onnx__NodeProto *n,
		     enum polar_layer_type type)
{
	struct value *x, *out;
	struct polar_layer *l;
	int64_t axis;
	int ret;

	if (type == POLAR_LAYER_SOFTMAX) {
		if ((ret = only_attrs(im, n, (const char *const[]){ "axis",
							       NULL })) ||
		    (ret = attr_int(im, n, "axis", -1, &axis)))
			return ret;
	} else if ((ret = only_attrs(im, n, (const char *const[]){ NULL }))) {
		return ret;
	}
	x = input(im, n, 0, V_ACT);
	if (!x)
		return -EINVAL;
	if (type == POLAR_LAYER_SOFTMAX &&
	    (x->rank != 2 || (axis != 1 && axis != -1)))
		return node_fail(im, n, "softmax over axis %lld of a rank %u "
				 "input not supported (want the features of "
				 "[N, F])", (long long)axis, x->rank);
	if (type == POLAR_LAYER_GLOBAL_AVGPOOL && x->rank != 4)
		return node_fail(im, n, "input '%s' has rank %u, want 4",
				 x->name, x->rank);
	l = add_layer(im, n, type, &x, 1);
	if (!l)
		return -EINVAL;
	if (type == POLAR_LAYER_GLOBAL_AVGPOOL)
		l->out_h = l->out_w = 1;
	out = output(im, n);
	if (!out)
		return -EINVAL;
	produced(im, out, x->rank);
	/* Relu and softmax keep the view (a flattened input stays [N, F]). */
	if (type != POLAR_LAYER_GLOBAL_AVGPOOL) {
		out->c = x->c;
		out->h = x->h;
		out->w = x->w;
	}
	return 0;
}

/* Flatten, Reshape, Identity, Dropout: a new name (and view) of x. */
static int op_view(struct importer *im, const Onnx__NodeProto *n)
{
	struct value *x, *out;
	uint64_t feat;
	int flatten = !strcmp(n->op_type, "Flatten");
	int reshape = !strcmp(n->op_type, "Reshape");
	int64_t axis, shape[4] = { 0 };
	size_t ns = 0;
	int ret;

	x = input(im, n, 0, V_ACT);
	if (!x)
		return -EINVAL;
	feat = (uint64_t)x->c * x->h * x->w;
	if (flatten) {
		if ((ret = only_attrs(im, n, (const char *const[]){ "axis",
							       NULL })) ||
		    (ret = attr_int(im, n, "axis", 1, &axis)))
			return ret;
		if (axis != 1)
			return node_fail(im, n, "axis %lld not supported (want "
					 "1)", (long long)axis);
	} else if (reshape) {
		struct value *s = input(im, n, 1, V_CONST);

		if (!s)
			return -EINVAL;
		if ((ret = only_attrs(im, n, (const char *const[]){ "allowzero",
							       NULL })) ||
		    (ret = tensor_int64s(im, s->t, shape, 4, &ns)))
			return ret;
		if (ns != 2 || !(shape[0] == -1 || shape[0] == 0 ||
				 shape[0] == 1) ||
		    !(shape[1] == (int64_t)feat ||
		      (shape[1] == -1 && shape[0] != -1)))
			return node_fail(im, n, "reshape to %zu dimensions "
					 "(%lld, %lld) not supported (want [N, "
					 "%llu], a flatten)", ns,
					 (long long)shape[0],
					 (long long)(ns > 1 ? shape[1] : 0),
					 (unsigned long long)feat);
	} else if (!strcmp(n->op_type, "Dropout")) {
		if ((ret = only_attrs(im, n, (const char *const[]){ "seed",
							       "ratio", NULL })))
			return ret;
		if (n->n_input > 2 && n->input[2][0])
			return node_fail(im, n, "a training_mode input is "
					 "not supported");
	} else if ((ret = only_attrs(im, n, (const char *const[]){ NULL }))) {
		return ret;
	}
	out = output(im, n);
	if (!out)
		return -EINVAL;
	if (flatten || reshape)
		alias(out, x, 2, (uint32_t)feat, 1, 1, 0);
	else
		alias(out, x, x->rank, x->c, x->h, x->w,
		      x->direct && x->consumers == 1);
	return 0;
}

/*
 * Pad: zeros on every side of H and W, taken up by the Conv or
 * AveragePool that reads it (torch.onnx.export writes AvgPool2d with
 * padding and count_include_pad as Pad then AveragePool).
 */
static int op_pad(struct importer *im, const Onnx__NodeProto *n)
{
	const Onnx__AttributeProto *mode = attr(n, "mode");
	struct value *x, *p, *out;
	int64_t pads[8] = { 0 };
	size_t np = 0, i;
	int ret;

	if ((ret = only_attrs(im, n, (const char *const[]){ "mode", NULL })))
		return ret;
	if (mode && mode->has_s && !(mode->s.len == 8 &&
				     !memcmp(mode->s.data, "constant", 8)))
		return node_fail(im, n, "mode %.*s not supported (want "
				 "constant)", (int)mode->s.len,
				 (const char *)mode->s.data);
	x = input(im, n, 0, V_ACT);
	p = x ? input(im, n, 1, V_CONST) : NULL;
	if (!p)
		return -EINVAL;
	if (n->n_input > 2 && n->input[2][0]) {
		struct value *cv = input(im, n, 2, V_CONST);
		float zero;

		if (!cv)
			return -EINVAL;
		if (tensor_count(im, cv->t) != 1)
			return node_fail(im, n, "constant_value '%s' is not "
					 "one value", cv->name);
		ret = tensor_floats(im, cv->t, &zero, 1);
		if (ret)
			return ret;
		if (zero != 0.0f)
			return node_fail(im, n, "constant_value %g not "
					 "supported (want 0)", (double)zero);
	}
	ret = tensor_int64s(im, p->t, pads, 8, &np);
	if (ret)
		return ret;
	for (i = 1; i < np; i++)
		if (pads[i] != (i % 4 < 2 ? 0 : pads[2]))
			break;
	if (x->rank != 4 || np != 8 || i != np || pads[2] < 0 ||
	    pads[2] > 64 || x->pad)
		return node_fail(im, n, "pads must be the same on every side "
				 "of H and W and 0 on N and C of a rank-4 "
				 "input");
	out = output(im, n);
	if (!out)
		return -EINVAL;
	alias(out, x, 4, x->c, x->h, x->w, 0);
	out->pad = (uint32_t)pads[2];
	return 0;
}

static int convert(struct importer *im, const Onnx__NodeProto *n)
{
	const char *op = n->op_type;

	if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx"))
		return node_fail(im, n, "operator domain '%s' not supported",
				 n->domain);
	if (!strcmp(op, "Conv"))
		return op_conv(im, n);
	if (!strcmp(op, "Gemm"))
		return op_linear(im, n, 1);
	if (!strcmp(op, "MatMul"))
		return op_linear(im, n, 0);
	if (!strcmp(op, "BatchNormalization"))
		return op_batchnorm(im, n);
	if (!strcmp(op, "Add"))
		return op_add(im, n);
	if (!strcmp(op, "Relu"))
		return op_simple(im, n, POLAR_LAYER_RELU);
	if (!strcmp(op, "Softmax"))
		return op_simple(im, n, POLAR_LAYER_SOFTMAX);
	if (!strcmp(op, "GlobalAveragePool"))
		return op_simple(im, n, POLAR_LAYER_GLOBAL_AVGPOOL);
	if (!strcmp(op, "MaxPool"))
		return op_pool(im, n, POLAR_LAYER_MAXPOOL);
	if (!strcmp(op, "AveragePool"))
		return op_pool(im, n, POLAR_LAYER_AVGPOOL);
	if (!strcmp(op, "Flatten") || !strcmp(op, "Reshape") ||
	    !strcmp(op, "Identity") || !strcmp(op, "Dropout"))
		return op_view(im, n);
	if (!strcmp(op, "Pad"))
		return op_pad(im, n);
	if (!strcmp(op, "Constant"))
		return 0;	/* defined with the initializers */
	return node_fail(im, n, "operator not supported (libpolar-accel "
			 "imports Conv, Gemm, MatMul, Add, Relu, MaxPool, "
			 "AveragePool, GlobalAveragePool, Flatten, Reshape, "
			 "BatchNormalization, Softmax)");
}

/* The graph input: one float tensor [N, C, H, W] or [N, F]. */
static int graph_input(struct importer *im, const Onnx__ValueInfoProto *vi)
{
	const Onnx__TypeProto__Tensor *tt;
	const Onnx__TensorShapeProto *sh;
	uint64_t d[4] = { 1, 1, 1, 1 };
	struct value *v;
	size_t i;

	tt = vi->type && vi->type->value_case ==
		ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? vi->type->tensor_type :
		NULL;
	sh = tt ? tt->shape : NULL;
	if (!tt || tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || !sh ||
	    (sh->n_dim != 4 && sh->n_dim != 2))
		return polar_fail(-EINVAL, "%s: graph input '%s' is not a float "
				  "tensor [N, C, H, W] or [N, F]", im->src,
				  vi->name);
	for (i = 1; i < sh->n_dim; i++) {
		const Onnx__TensorShapeProto__Dimension *dim = sh->dim[i];

		if (dim->value_case !=
		    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
		    dim->dim_value < 1 || dim->dim_value > MAX_DIM)
			return polar_fail(-EINVAL, "%s: graph input '%s': "
					  "dimension %zu is not a size from 1 "
					  "to %u", im->src, vi->name, i,
					  MAX_DIM);
		d[i] = (uint64_t)dim->dim_value;
	}
	if (d[1] * d[2] * d[3] > (1u << 24))
		return polar_fail(-EINVAL, "%s: graph input '%s' has more than "
				  "%u values per sample", im->src, vi->name,
				  1u << 24);
	v = define(im, vi->name, -1);
	if (!v)
		return -EINVAL;
	v->kind = V_ACT;
	v->producer = POLAR_LAYER_INPUT;
	v->direct = 0;
	v->rank = (unsigned int)sh->n_dim;
	v->c = (uint32_t)d[1];
	v->h = (uint32_t)d[2];
	v->w = (uint32_t)d[3];
	return polar_model_init(im->m, "onnx", v->c, v->h, v->w);
}

static int import(struct importer *im, const Onnx__ModelProto *mp)
{
	Onnx__GraphProto *g = mp->graph;
	struct value *out;
	size_t i, k, nv, ninputs = 0;
	unsigned int l;
	int ret;

	if (!g)
		return polar_fail(-EINVAL, "%s: the model has no graph", im->src);
	im->g = g;
	if (g->n_node > MAX_NODES)
		return polar_fail(-EINVAL, "%s: %zu nodes, at most %u", im->src,
				  g->n_node, MAX_NODES);
	if (g->n_output != 1)
		return polar_fail(-EINVAL, "%s: the graph has %zu outputs, want 1",
				  im->src, g->n_output);
	/* proto2 leaves a string a file omits NULL. */
	if (!g->output[0]->name || !g->output[0]->name[0])
		return polar_fail(-EINVAL, "%s: the graph output has no name",
				  im->src);
	for (i = 0; i < g->n_input; i++)
		if (!g->input[i]->name || !g->input[i]->name[0])
			return polar_fail(-EINVAL, "%s: graph input %zu has no "
					  "name", im->src, i);
	im->output = g->output[0]->name;
	nv = g->n_initializer + g->n_input;
	for (i = 0; i < g->n_node; i++)
		nv += g->node[i]->n_output;
	im->vals = calloc(nv + 1, sizeof(*im->vals));
	im->state = calloc(g->n_node + 1, 1);
	im->order = calloc(g->n_node + 1, sizeof(*im->order));
	if (!im->vals || !im->state || !im->order)
		return polar_fail(-ENOMEM, "%s: out of memory", im->src);
	for (i = 0; i < g->n_initializer; i++) {
		struct value *v;

		if (!g->initializer[i]->name || !g->initializer[i]->name[0])
			return polar_fail(-EINVAL, "%s: initializer %zu has no "
					  "name", im->src, i);
		v = define(im, g->initializer[i]->name, -1);
		if (!v)
			return -EINVAL;
		v->kind = V_CONST;
		v->t = g->initializer[i];
		if (tensor_count(im, v->t) < 0)
			return -EINVAL;
	}
	/* Older exporters list the initializers among the inputs too. */
	for (i = 0; i < g->n_input; i++) {
		if (find(im, g->input[i]->name))
			continue;
		if (ninputs++)
			return polar_fail(-EINVAL, "%s: the graph has more than "
					  "one input ('%s')", im->src,
					  g->input[i]->name);
		ret = graph_input(im, g->input[i]);
		if (ret)
			return ret;
	}
	if (!ninputs)
		return polar_fail(-EINVAL, "%s: the graph has no input", im->src);
	for (i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *n = g->node[i];

		if (!n->op_type)
			return polar_fail(-EINVAL, "%s: node %zu has no "
					  "op_type", im->src, i);
		for (k = 0; k < n->n_output; k++) {
			struct value *v;

			if (!n->output[k][0])
				continue;
			v = define(im, n->output[k], (long)i);
			if (!v)
				return -EINVAL;
			if (!strcmp(n->op_type, "Constant")) {
				const Onnx__AttributeProto *a = attr(n, "value");

				if (!a || !a->t || n->n_output != 1)
					return node_fail(im, n, "only a tensor "
							 "'value' is supported");
				v->kind = V_CONST;
				v->t = a->t;
				if (tensor_count(im, v->t) < 0)
					return -EINVAL;
			}
		}
	}
	for (i = 0; i < g->n_node; i++)
		for (k = 0; k < g->node[i]->n_input; k++) {
			struct value *v = find(im, g->node[i]->input[k]);

			if (v)
				v->consumers++;
		}
	out = find(im, im->output);
	if (!out)
		return polar_fail(-EINVAL, "%s: graph output '%s' is produced "
				  "by no node", im->src, im->output);
	if (out->node < 0)
		return polar_fail(-EINVAL, "%s: graph output '%s' is not "
				  "computed by any node", im->src, im->output);
	ret = visit(im, (size_t)out->node);
	for (i = 0; !ret && i < im->norder; i++)
		ret = convert(im, g->node[im->order[i]]);
	if (ret)
		return ret;
	if (out->kind != V_ACT || out->producer != (int)im->m->nlayers - 1 ||
	    !im->m->nlayers)
		return polar_fail(-EINVAL, "%s: graph output '%s' is not the "
				  "output of a layer", im->src, im->output);
	ret = polar_model_finalize(im->m, 0);
	for (l = 0; !ret && l < im->m->nlayers; l++) {
		struct polar_layer *ly = &im->m->layers[l];

		if (!ly->rows)
			continue;
		memcpy(ly->weight, im->w[l], sizeof(float) * ly->rows * ly->cols);
		memcpy(ly->bias, im->b[l], sizeof(float) * ly->rows);
	}
	return ret;
}

int polar_model_parse_onnx(struct polar_model *m, const void *buf, size_t len,
			   const char *source,
			   const struct polar_preprocess *pre)
{
	struct importer im = { 0 };
	Onnx__ModelProto *mp;
	unsigned int l;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	memset(m, 0, sizeof(*m));
	POLAR_NONNULL(__func__, buf);
	POLAR_NONNULL(__func__, source);
	if (pre && (pre->channels > POLAR_PRE_MAX_CHANNELS ||
		    !isfinite(pre->pixel_scale) || pre->pixel_scale == 0.0f))
		return polar_fail(-EINVAL, "%s: pre: pixel_scale %g, %u "
				  "channels", __func__,
				  (double)pre->pixel_scale, pre->channels);
	mp = onnx__model_proto__unpack(NULL, len, buf);
	if (!mp)
		return polar_fail(-EINVAL, "%s: not an ONNX model (%zu bytes "
				  "that do not decode as a ModelProto: "
				  "truncated or another format)", source, len);
	im.src = source;
	im.m = m;
	ret = import(&im, mp);
	if (!ret && pre) {
		if (pre->channels && pre->channels != m->in_c)
			ret = polar_fail(-EINVAL, "%s: preprocessing for %u "
					 "channels, the model takes %u", source,
					 pre->channels, m->in_c);
		else
			m->pre = *pre;
	}
	for (l = 0; l < POLAR_MODEL_MAX_LAYERS; l++) {
		free(im.w[l]);
		free(im.b[l]);
	}
	free(im.vals);
	free(im.state);
	free(im.order);
	onnx__model_proto__free_unpacked(mp, NULL);
	if (ret)
		polar_model_free(m);
	return ret;
}

int polar_model_load_onnx(struct polar_model *m, const char *path,
			  const struct polar_preprocess *pre)
{
	void *buf;
	size_t len;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, m);
	memset(m, 0, sizeof(*m));
	POLAR_NONNULL(__func__, path);
	ret = polar_read_file(path, &buf, &len);
	if (ret)
		return ret;
	ret = polar_model_parse_onnx(m, buf, len, path, pre);
	free(buf);
	return ret;
}
