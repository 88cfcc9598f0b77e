/* SPDX-License-Identifier: MIT */
/*
 * Builds small ONNX models in memory with the protobuf-c code generated
 * from Debian's onnx.proto, for the ONNX import tests (test_onnx.c) and the
 * fuzzer's seeds (tests/fuzz/mkseeds.c). Everything a builder allocates is
 * freed by ob_free().
 *
 *   struct ob b;
 *   ob_init(&b, "x", 4, (int64_t[]){ -1, 1, 8, 8 });   (-1: symbolic N)
 *   ob_const(&b, "w", 4, (int64_t[]){ 2, 1, 3, 3 }, weights);
 *   Onnx__NodeProto *c = ob_node(&b, "Conv", "conv1", "x,w", "y");
 *   ob_ints(&b, c, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
 *   ob_output(&b, "y");
 *   len = ob_pack(&b, &buf);
 */
#ifndef POLAR_ONNX_BUILD_H
#define POLAR_ONNX_BUILD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx.pb-c.h"

#define OB_MAX_ALLOCS 4096
#define OB_MAX_NODES 64
#define OB_MAX_INITS 64

struct ob {
	void *allocs[OB_MAX_ALLOCS];
	unsigned int nallocs;
	Onnx__ModelProto model;
	Onnx__GraphProto graph;
	Onnx__OperatorSetIdProto opset;
	Onnx__OperatorSetIdProto *opsets[1];
	Onnx__NodeProto *nodes[OB_MAX_NODES];
	Onnx__TensorProto *inits[OB_MAX_INITS];
	Onnx__ValueInfoProto *ins[2], *outs[2];
};

static void *ob_alloc(struct ob *b, size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p || b->nallocs == OB_MAX_ALLOCS)
		abort();
	b->allocs[b->nallocs++] = p;
	return p;
}

static char *ob_str(struct ob *b, const char *s)
{
	char *p = ob_alloc(b, strlen(s) + 1);

	strcpy(p, s);
	return p;
}

static Onnx__ValueInfoProto *ob_value_info(struct ob *b, const char *name,
					   unsigned int ndim,
					   const int64_t *dims)
{
	Onnx__ValueInfoProto *vi = ob_alloc(b, sizeof(*vi));
	Onnx__TypeProto *tp = ob_alloc(b, sizeof(*tp));
	Onnx__TypeProto__Tensor *tt = ob_alloc(b, sizeof(*tt));
	Onnx__TensorShapeProto *sh = ob_alloc(b, sizeof(*sh));
	unsigned int i;

	onnx__value_info_proto__init(vi);
	onnx__type_proto__init(tp);
	onnx__type_proto__tensor__init(tt);
	onnx__tensor_shape_proto__init(sh);
	vi->name = ob_str(b, name);
	vi->type = tp;
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	tt->has_elem_type = 1;
	tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	tt->shape = sh;
	sh->n_dim = ndim;
	sh->dim = ob_alloc(b, sizeof(*sh->dim) * ndim);
	for (i = 0; i < ndim; i++) {
		Onnx__TensorShapeProto__Dimension *d = ob_alloc(b, sizeof(*d));

		onnx__tensor_shape_proto__dimension__init(d);
		if (dims[i] < 0) {
			d->value_case =
				ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
			d->dim_param = ob_str(b, "N");
		} else {
			d->value_case =
				ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			d->dim_value = dims[i];
		}
		sh->dim[i] = d;
	}
	return vi;
}

/* A model whose one input is name, of shape dims (-1: symbolic batch). */
static void ob_init(struct ob *b, const char *name, unsigned int ndim,
		    const int64_t *dims)
{
	memset(b, 0, sizeof(*b));
	onnx__model_proto__init(&b->model);
	onnx__graph_proto__init(&b->graph);
	onnx__operator_set_id_proto__init(&b->opset);
	b->model.has_ir_version = 1;
	b->model.ir_version = 8;
	b->opset.has_version = 1;
	b->opset.version = 13;
	b->opset.domain = ob_str(b, "");
	b->opsets[0] = &b->opset;
	b->model.n_opset_import = 1;
	b->model.opset_import = b->opsets;
	b->model.producer_name = ob_str(b, "polar-accel tests");
	b->model.graph = &b->graph;
	b->graph.name = ob_str(b, "test");
	b->graph.node = b->nodes;
	b->graph.initializer = b->inits;
	b->graph.input = b->ins;
	b->graph.output = b->outs;
	b->ins[0] = ob_value_info(b, name, ndim, dims);
	b->graph.n_input = 1;
}

static void ob_output(struct ob *b, const char *name)
{
	b->outs[b->graph.n_output++] = ob_value_info(b, name, 0, NULL);
}

static Onnx__TensorProto *ob_tensor(struct ob *b, const char *name,
				    unsigned int ndim, const int64_t *dims)
{
	Onnx__TensorProto *t = ob_alloc(b, sizeof(*t));

	onnx__tensor_proto__init(t);
	t->name = ob_str(b, name);
	t->n_dims = ndim;
	t->dims = ob_alloc(b, sizeof(int64_t) * ndim);
	memcpy(t->dims, dims, sizeof(int64_t) * ndim);
	t->has_data_type = 1;
	return t;
}

/* An initializer of floats (count = the product of dims, read from data). */
static Onnx__TensorProto *ob_const(struct ob *b, const char *name,
				   unsigned int ndim, const int64_t *dims,
				   const float *data)
{
	Onnx__TensorProto *t = ob_tensor(b, name, ndim, dims);
	size_t count = 1;
	unsigned int i;

	for (i = 0; i < ndim; i++)
		count *= (size_t)dims[i];
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->n_float_data = count;
	t->float_data = ob_alloc(b, sizeof(float) * count);
	memcpy(t->float_data, data, sizeof(float) * count);
	b->inits[b->graph.n_initializer++] = t;
	return t;
}

static Onnx__TensorProto *ob_const_int64(struct ob *b, const char *name,
					 size_t count, const int64_t *data)
{
	int64_t dim = (int64_t)count;
	Onnx__TensorProto *t = ob_tensor(b, name, 1, &dim);

	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
	t->n_int64_data = count;
	t->int64_data = ob_alloc(b, sizeof(int64_t) * count);
	memcpy(t->int64_data, data, sizeof(int64_t) * count);
	b->inits[b->graph.n_initializer++] = t;
	return t;
}

/* Splits "a,b,c" into a string array; *n gets the count. */
static char **ob_names(struct ob *b, const char *list, size_t *n)
{
	char **v = ob_alloc(b, sizeof(char *) * 8), *s = ob_str(b, list), *t;

	*n = 0;
	if (!list[0])
		return v;
	for (t = strtok(s, ","); t && *n < 8; t = strtok(NULL, ","))
		v[(*n)++] = t;
	return v;
}

static Onnx__NodeProto *ob_node(struct ob *b, const char *op, const char *name,
				const char *inputs, const char *outputs)
{
	Onnx__NodeProto *n = ob_alloc(b, sizeof(*n));

	onnx__node_proto__init(n);
	n->op_type = ob_str(b, op);
	n->name = ob_str(b, name);
	n->input = ob_names(b, inputs, &n->n_input);
	n->output = ob_names(b, outputs, &n->n_output);
	n->attribute = ob_alloc(b, sizeof(*n->attribute) * 8);
	b->nodes[b->graph.n_node++] = n;
	return n;
}

static Onnx__AttributeProto *ob_attr(struct ob *b, Onnx__NodeProto *n,
				     const char *name,
				     Onnx__AttributeProto__AttributeType type)
{
	Onnx__AttributeProto *a = ob_alloc(b, sizeof(*a));

	onnx__attribute_proto__init(a);
	a->name = ob_str(b, name);
	a->has_type = 1;
	a->type = type;
	n->attribute[n->n_attribute++] = a;
	return a;
}

static void ob_ints(struct ob *b, Onnx__NodeProto *n, const char *name,
		    size_t count, const int64_t *v)
{
	Onnx__AttributeProto *a = ob_attr(b, n, name,
					  ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);

	a->n_ints = count;
	a->ints = ob_alloc(b, sizeof(int64_t) * count);
	memcpy(a->ints, v, sizeof(int64_t) * count);
}

static void ob_int(struct ob *b, Onnx__NodeProto *n, const char *name,
		   int64_t v)
{
	Onnx__AttributeProto *a = ob_attr(b, n, name,
					  ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);

	a->has_i = 1;
	a->i = v;
}

static void ob_float(struct ob *b, Onnx__NodeProto *n, const char *name,
		     float v)
{
	Onnx__AttributeProto *a = ob_attr(b, n, name,
					  ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);

	a->has_f = 1;
	a->f = v;
}

/* The serialised model, malloc'd (the caller frees it); its length. */
static size_t ob_pack(struct ob *b, uint8_t **out)
{
	size_t len = onnx__model_proto__get_packed_size(&b->model);

	*out = malloc(len ? len : 1);
	if (!*out)
		abort();
	return onnx__model_proto__pack(&b->model, *out);
}

static void ob_free(struct ob *b)
{
	while (b->nallocs)
		free(b->allocs[--b->nallocs]);
}

#define OB_IC 3
#define OB_IH 9
#define OB_IW 7
#define OB_C 4
#define OB_CLS 5

/* The parameters of ob_residual_cnn(): input OB_IC x OB_IH x OB_IW, OB_C channels. */
struct ob_cnn {
	float w1[OB_C * OB_IC * 9], b1[OB_C];
	float bn[4][OB_C];		/* scale, bias, mean, var */
	float w2[OB_C * OB_C * 9];
	float wm[OB_C * OB_CLS], bm[OB_CLS];
};

/*
 * conv(stride 2, pad 1) + BN + Relu -> a; conv(pad 1) -> Add(., a) ->
 * Relu -> Pad 1 + AveragePool 3 stride 2 -> MaxPool 2 stride 1 ->
 * GlobalAveragePool -> Flatten -> MatMul + Add -> Softmax.
 */
static void ob_residual_cnn(struct ob *b, const struct ob_cnn *p)
{
	Onnx__NodeProto *n;

	ob_init(b, "x", 4, (int64_t[]){ -1, OB_IC, OB_IH, OB_IW });
	ob_const(b, "w1", 4, (int64_t[]){ OB_C, OB_IC, 3, 3 }, p->w1);
	ob_const(b, "b1", 1, (int64_t[]){ OB_C }, p->b1);
	ob_const(b, "bn.scale", 1, (int64_t[]){ OB_C }, p->bn[0]);
	ob_const(b, "bn.bias", 1, (int64_t[]){ OB_C }, p->bn[1]);
	ob_const(b, "bn.mean", 1, (int64_t[]){ OB_C }, p->bn[2]);
	ob_const(b, "bn.var", 1, (int64_t[]){ OB_C }, p->bn[3]);
	ob_const(b, "w2", 4, (int64_t[]){ OB_C, OB_C, 3, 3 }, p->w2);
	ob_const(b, "wm", 2, (int64_t[]){ OB_C, OB_CLS }, p->wm);
	ob_const(b, "bm", 1, (int64_t[]){ OB_CLS }, p->bm);
	ob_const_int64(b, "pads", 8, (int64_t[]){ 0, 0, 1, 1, 0, 0, 1, 1 });
	n = ob_node(b, "Conv", "/c1/Conv", "x,w1,b1", "c1");
	ob_ints(b, n, "strides", 2, (int64_t[]){ 2, 2 });
	ob_ints(b, n, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
	ob_ints(b, n, "kernel_shape", 2, (int64_t[]){ 3, 3 });
	n = ob_node(b, "BatchNormalization", "/bn/BN",
		    "c1,bn.scale,bn.bias,bn.mean,bn.var", "bn1");
	ob_float(b, n, "epsilon", 1e-3f);
	ob_node(b, "Relu", "r1", "bn1", "a");
	n = ob_node(b, "Conv", "/c2/Conv", "a,w2", "c2");
	ob_ints(b, n, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
	ob_node(b, "Add", "res", "c2,a", "sum");
	ob_node(b, "Relu", "r2", "sum", "r2");
	ob_node(b, "Pad", "pad", "r2,pads", "padded");
	n = ob_node(b, "AveragePool", "avg", "padded", "avg");
	ob_ints(b, n, "kernel_shape", 2, (int64_t[]){ 3, 3 });
	ob_ints(b, n, "strides", 2, (int64_t[]){ 2, 2 });
	n = ob_node(b, "MaxPool", "max", "avg", "max");
	ob_ints(b, n, "kernel_shape", 2, (int64_t[]){ 2, 2 });
	ob_node(b, "GlobalAveragePool", "gap", "max", "gap");
	ob_node(b, "Flatten", "flat", "gap", "flat");
	ob_node(b, "MatMul", "/fc/MatMul", "flat,wm", "mm");
	ob_node(b, "Add", "/fc/Add", "mm,bm", "logits");
	n = ob_node(b, "Softmax", "softmax", "logits", "probs");
	ob_int(b, n, "axis", 1);
	ob_output(b, "probs");
}

#endif /* POLAR_ONNX_BUILD_H */
