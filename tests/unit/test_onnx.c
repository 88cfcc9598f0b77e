// SPDX-License-Identifier: MIT
/*
 * ONNX import: models built here with protobuf-c (onnx_build.h) against a
 * plain reference forward pass written out in loops, and malformed files,
 * each of which must give a one-line error naming the file, node or field.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnx_build.h"
#include "polar/onnx.h"
#include "unit.h"

static uint64_t rng = 12345;

static float frand(void)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static void fill(float *v, size_t n, float scale, float offset)
{
	size_t i;

	for (i = 0; i < n; i++)
		v[i] = frand() * scale + offset;
}

/* --- the residual CNN of onnx_build.h: parameters and reference --------- */

static void cnn_params(struct ob_cnn *p)
{
	fill(p->w1, sizeof(p->w1) / 4, 0.5f, 0.0f);
	fill(p->b1, OB_C, 0.2f, 0.0f);
	fill(p->bn[0], OB_C, 0.5f, 1.0f);
	fill(p->bn[1], OB_C, 0.3f, 0.0f);
	fill(p->bn[2], OB_C, 0.3f, 0.0f);
	fill(p->bn[3], OB_C, 0.4f, 0.6f);
	fill(p->w2, sizeof(p->w2) / 4, 0.3f, 0.0f);
	fill(p->wm, sizeof(p->wm) / 4, 0.8f, 0.0f);
	fill(p->bm, OB_CLS, 0.2f, 0.0f);
}

/* conv, zero padding pad, stride s, kernel 3: in c x h x w -> o x oh x ow */
static void ref_conv(const double *x, int c, int h, int w, const float *wt,
		     const float *b, int o, int s, int pad, double *y, int *oh,
		     int *ow)
{
	int oc, i, oy, ox, ky, kx;

	*oh = (h + 2 * pad - 3) / s + 1;
	*ow = (w + 2 * pad - 3) / s + 1;
	for (oc = 0; oc < o; oc++)
		for (oy = 0; oy < *oh; oy++)
			for (ox = 0; ox < *ow; ox++) {
				double v = b ? b[oc] : 0.0;

				for (i = 0; i < c; i++)
					for (ky = 0; ky < 3; ky++)
						for (kx = 0; kx < 3; kx++) {
							int iy = oy * s + ky - pad;
							int ix = ox * s + kx - pad;

							if (iy < 0 || iy >= h || ix < 0 ||
							    ix >= w)
								continue;
							v += x[(i * h + iy) * w + ix] *
							     wt[((oc * c + i) * 3 + ky) * 3 + kx];
						}
				y[(oc * *oh + oy) * *ow + ox] = v;
			}
}

/* The model of ob_residual_cnn() on one sample, in double. */
static void ref_cnn(const struct ob_cnn *p, const float *xf, double *out)
{
	double x[OB_IC * OB_IH * OB_IW], a[OB_C * 5 * 4], t[OB_C * 5 * 4], q[OB_C * 3 * 2],
	       mp[OB_C * 2], g[OB_C], z[OB_CLS], mx, sum;
	int i, h, w, h2, w2, oc, oy, ox, ky, kx, k;

	for (i = 0; i < OB_IC * OB_IH * OB_IW; i++)
		x[i] = xf[i];
	ref_conv(x, OB_IC, OB_IH, OB_IW, p->w1, p->b1, OB_C, 2, 1, a, &h, &w);
	for (oc = 0; oc < OB_C; oc++)
		for (i = 0; i < h * w; i++) {
			double v = a[oc * h * w + i];

			v = p->bn[0][oc] * (v - p->bn[2][oc]) /
			    sqrt(p->bn[3][oc] + 1e-3) + p->bn[1][oc];
			a[oc * h * w + i] = v > 0 ? v : 0;
		}
	ref_conv(a, OB_C, h, w, p->w2, NULL, OB_C, 1, 1, t, &h2, &w2);
	for (i = 0; i < OB_C * h * w; i++) {
		t[i] += a[i];
		t[i] = t[i] > 0 ? t[i] : 0;
	}
	/* Pad 1 then a 3x3 average, stride 2: zeros count. */
	for (oc = 0; oc < OB_C; oc++)
		for (oy = 0; oy < 3; oy++)
			for (ox = 0; ox < 2; ox++) {
				double s = 0;

				for (ky = 0; ky < 3; ky++)
					for (kx = 0; kx < 3; kx++) {
						int iy = oy * 2 + ky - 1;
						int ix = ox * 2 + kx - 1;

						if (iy >= 0 && iy < h && ix >= 0 &&
						    ix < w)
							s += t[(oc * h + iy) * w + ix];
					}
				q[(oc * 3 + oy) * 2 + ox] = s / 9;
			}
	/* 2x2 max, stride 1: 3 x 2 -> 2 x 1 */
	for (oc = 0; oc < OB_C; oc++)
		for (oy = 0; oy < 2; oy++) {
			double m = -INFINITY;

			for (ky = 0; ky < 2; ky++)
				for (kx = 0; kx < 2; kx++)
					if (q[(oc * 3 + oy + ky) * 2 + kx] > m)
						m = q[(oc * 3 + oy + ky) * 2 + kx];
			mp[oc * 2 + oy] = m;
		}
	for (oc = 0; oc < OB_C; oc++)
		g[oc] = (mp[oc * 2] + mp[oc * 2 + 1]) / 2;
	for (k = 0; k < OB_CLS; k++) {
		z[k] = p->bm[k];
		for (oc = 0; oc < OB_C; oc++)
			z[k] += g[oc] * p->wm[oc * OB_CLS + k];	/* MatMul [OB_C, OB_CLS] */
	}
	for (mx = z[0], k = 1; k < OB_CLS; k++)
		mx = z[k] > mx ? z[k] : mx;
	for (sum = 0, k = 0; k < OB_CLS; k++)
		sum += exp(z[k] - mx);
	for (k = 0; k < OB_CLS; k++)
		out[k] = exp(z[k] - mx) / sum;
}

static int parse(struct ob *b, const char *source, struct polar_model *m)
{
	uint8_t *buf;
	size_t len = ob_pack(b, &buf);
	int ret = polar_model_parse_onnx(m, buf, len, source, NULL);

	free(buf);
	return ret;
}

static void test_residual_cnn(void)
{
	struct ob_cnn p;
	struct ob b;
	struct polar_model m;
	float x[3 * OB_IC * OB_IH * OB_IW], y[3 * OB_CLS];
	double ref[OB_CLS], err = 0;
	int s, k;

	cnn_params(&p);
	ob_residual_cnn(&b, &p);
	CHECK(parse(&b, "cnn.onnx", &m) == 0, "%s", polar_errmsg());
	ob_free(&b);
	if (!m.params)
		return;
	CHECK_STR(m.arch, "onnx");
	CHECK(m.in_c == OB_IC && m.in_h == OB_IH && m.in_w == OB_IW && m.classes == OB_CLS,
	      "%ux%ux%u -> %u", m.in_c, m.in_h, m.in_w, m.classes);
	/* BN and the bias Add fold, Pad joins the pool, Flatten renames. */
	CHECK(m.nlayers == 10, "%u layers", m.nlayers);
	CHECK_STR(m.layers[0].name, "c1");
	CHECK(m.layers[0].stride == 2 && m.layers[0].out_h == 5 &&
	      m.layers[0].out_w == 4);
	CHECK(m.layers[3].type == POLAR_LAYER_ADD &&
	      m.layers[3].input[0] == 2 && m.layers[3].input[1] == 1,
	      "add reads %d, %d", m.layers[3].input[0], m.layers[3].input[1]);
	CHECK(m.layers[5].type == POLAR_LAYER_AVGPOOL && m.layers[5].pad == 1 &&
	      m.layers[5].count_pad == 1);
	CHECK(!polar_model_is_chain(&m));
	fill(x, sizeof(x) / 4, 1.0f, 0.5f);
	CHECK(polar_model_forward(&m, 3, x, y, NULL) == 0, "%s",
	      polar_errmsg());
	for (s = 0; s < 3; s++) {
		ref_cnn(&p, x + s * OB_IC * OB_IH * OB_IW, ref);
		for (k = 0; k < OB_CLS; k++)
			err = fmax(err, fabs(ref[k] - y[s * OB_CLS + k]));
	}
	CHECK(err < 1e-5, "max |polar - reference| = %g", err);
	{
		float grad[1];

		CHECK(polar_model_grad(&m, 1, x, (uint8_t[]){ 0 }, 1.0f, grad,
				       NULL, NULL) == -EOPNOTSUPP);
	}
	polar_model_free(&m);
}

/*
 * An MLP on a rank-2 input: Reshape (a Constant shape), Gemm with transB 0
 * and BatchNormalization after it, Identity, Relu, Gemm with transB 1.
 */
static void test_mlp_gemm(void)
{
	float w1[6 * 3], b1[3], bn[4][3], w2[2 * 3], b2[2];
	float x[4 * 6], y[4 * 2];
	double err = 0;
	struct ob b;
	struct polar_model m;
	Onnx__NodeProto *n;
	Onnx__AttributeProto *a;
	int s, o, i;

	fill(w1, 18, 0.7f, 0.0f);
	fill(b1, 3, 0.2f, 0.0f);
	for (i = 0; i < 4; i++)
		fill(bn[i], 3, 0.3f, i == 0 || i == 3 ? 1.0f : 0.0f);
	fill(w2, 6, 0.7f, 0.0f);
	fill(b2, 2, 0.2f, 0.0f);
	ob_init(&b, "in", 2, (int64_t[]){ -1, 6 });
	ob_const(&b, "w1", 2, (int64_t[]){ 6, 3 }, w1);
	ob_const(&b, "b1", 1, (int64_t[]){ 3 }, b1);
	ob_const(&b, "s", 1, (int64_t[]){ 3 }, bn[0]);
	ob_const(&b, "t", 1, (int64_t[]){ 3 }, bn[1]);
	ob_const(&b, "mu", 1, (int64_t[]){ 3 }, bn[2]);
	ob_const(&b, "var", 1, (int64_t[]){ 3 }, bn[3]);
	ob_const(&b, "w2", 2, (int64_t[]){ 2, 3 }, w2);
	ob_const(&b, "b2", 2, (int64_t[]){ 1, 2 }, b2);
	n = ob_node(&b, "Constant", "shape", "", "shape");
	a = ob_attr(&b, n, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
	a->t = ob_tensor(&b, "shape", 1, (int64_t[]){ 2 });
	a->t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
	a->t->n_int64_data = 2;
	a->t->int64_data = ob_alloc(&b, 16);
	a->t->int64_data[0] = -1;
	a->t->int64_data[1] = 6;
	ob_node(&b, "Reshape", "flat", "in,shape", "flat");
	ob_node(&b, "Gemm", "/fc1/Gemm", "flat,w1,b1", "h");
	ob_node(&b, "BatchNormalization", "bn", "h,s,t,mu,var", "hb");
	ob_node(&b, "Identity", "id", "hb", "hi");
	ob_node(&b, "Relu", "relu", "hi", "hr");
	n = ob_node(&b, "Gemm", "/fc2/Gemm", "hr,w2,b2", "out");
	ob_int(&b, n, "transB", 1);
	ob_output(&b, "out");
	CHECK(parse(&b, "mlp.onnx", &m) == 0, "%s", polar_errmsg());
	ob_free(&b);
	if (!m.params)
		return;
	CHECK(m.nlayers == 3 && m.in_c == 6 && m.classes == 2,
	      "%u layers, in %u, %u classes", m.nlayers, m.in_c, m.classes);
	fill(x, 24, 1.0f, 0.0f);
	CHECK(polar_model_forward(&m, 4, x, y, NULL) == 0, "%s",
	      polar_errmsg());
	for (s = 0; s < 4; s++) {
		double h[3], z;

		for (o = 0; o < 3; o++) {
			h[o] = b1[o];
			for (i = 0; i < 6; i++)
				h[o] += x[s * 6 + i] * w1[i * 3 + o];
			h[o] = bn[0][o] * (h[o] - bn[2][o]) /
			       sqrt(bn[3][o] + 1e-5) + bn[1][o];
			h[o] = h[o] > 0 ? h[o] : 0;
		}
		for (o = 0; o < 2; o++) {
			z = b2[o];
			for (i = 0; i < 3; i++)
				z += h[i] * w2[o * 3 + i];
			err = fmax(err, fabs(z - y[s * 2 + o]));
		}
	}
	CHECK(err < 1e-5, "max |polar - reference| = %g", err);
	polar_model_free(&m);
}

/* One line, naming what it should. */
static void check_error(int ret, const char *want1, const char *want2)
{
	const char *msg = polar_errmsg();

	fprintf(stderr, "  error: %s\n", msg);
	CHECK(ret == -EINVAL, "ret %d", ret);
	CHECK(!strchr(msg, '\n'), "two lines: %s", msg);
	CHECK(strstr(msg, want1) && (!want2 || strstr(msg, want2)),
	      "\"%s\" lacks \"%s\" / \"%s\"", msg, want1, want2 ? want2 : "");
}

static void test_malformed(void)
{
	struct ob_cnn p;
	struct ob b;
	struct polar_model m;
	uint8_t *buf;
	size_t len, cut;
	int i;

	cnn_params(&p);

	/* Truncated anywhere: an error, never a model or a crash. */
	ob_residual_cnn(&b, &p);
	len = ob_pack(&b, &buf);
	ob_free(&b);
	for (cut = 1; cut < len; cut += len / 7) {
		int ret = polar_model_parse_onnx(&m, buf, cut, "trunc.onnx",
						 NULL);

		CHECK(ret == -EINVAL && !m.params, "cut at %zu: %d", cut, ret);
		CHECK(strstr(polar_errmsg(), "trunc.onnx") &&
		      !strchr(polar_errmsg(), '\n'), "%s", polar_errmsg());
	}
	CHECK(polar_model_parse_onnx(&m, buf, len / 2, "trunc.onnx", NULL) ==
	      -EINVAL);
	check_error(-EINVAL, "trunc.onnx: not an ONNX model", NULL);
	free(buf);

	/* An operator not supported. */
	ob_residual_cnn(&b, &p);
	b.nodes[2]->op_type = ob_str(&b, "Tanh");
	check_error(parse(&b, "op.onnx", &m), "op.onnx: node 'r1' (Tanh)",
		    "not supported");
	ob_free(&b);

	/* An attribute not supported. */
	ob_residual_cnn(&b, &p);
	ob_int(&b, b.nodes[0], "group", 2);
	check_error(parse(&b, "group.onnx", &m), "node '/c1/Conv' (Conv)",
		    "group 2");
	ob_free(&b);

	/* Initializer data that does not fill its shape. */
	ob_residual_cnn(&b, &p);
	b.inits[0]->n_float_data -= 9;
	check_error(parse(&b, "short.onnx", &m), "tensor 'w1' has 99 floats",
		    "[4,3,3,3] needs 108");
	ob_free(&b);

	/* An initializer whose shape does not fit the node. */
	ob_residual_cnn(&b, &p);
	b.inits[6]->dims[1] = 2;
	b.inits[6]->n_float_data = OB_C * 2 * 9;
	check_error(parse(&b, "shape.onnx", &m),
		    "node '/c2/Conv' (Conv): weight 'w2' has shape [4,2,3,3]",
		    "expected [?,4,3,3]");
	ob_free(&b);

	/* A cycle: c1 reads r2's output, which depends on c1. */
	ob_residual_cnn(&b, &p);
	b.nodes[0]->input[0] = ob_str(&b, "r2");
	check_error(parse(&b, "cycle.onnx", &m), "cycle.onnx: node", "cycle");
	ob_free(&b);

	/* A tensor no one produces. */
	ob_residual_cnn(&b, &p);
	b.nodes[4]->input[1] = ob_str(&b, "nothing");
	check_error(parse(&b, "missing.onnx", &m),
		    "missing.onnx: node 'res' (Add): input 'nothing'",
		    "produced by no node");
	ob_free(&b);

	/* A graph output no node computes; two graph inputs. */
	ob_residual_cnn(&b, &p);
	b.outs[0]->name = ob_str(&b, "x");
	check_error(parse(&b, "out.onnx", &m), "out.onnx: graph output 'x'",
		    NULL);
	ob_free(&b);

	/*
	 * Names proto2 leaves NULL when a file omits them (fuzz_onnx found
	 * the graph input's): an error, not a NULL strcmp().
	 */
	ob_residual_cnn(&b, &p);
	b.ins[0]->name = NULL;
	check_error(parse(&b, "noname.onnx", &m), "noname.onnx: graph input 0",
		    "no name");
	ob_free(&b);
	ob_residual_cnn(&b, &p);
	b.outs[0]->name = NULL;
	check_error(parse(&b, "noname.onnx", &m), "noname.onnx: the graph output",
		    "no name");
	ob_free(&b);

	/* BatchNormalization after something it cannot fold into. */
	ob_residual_cnn(&b, &p);
	b.nodes[1]->input[0] = ob_str(&b, "x");
	check_error(parse(&b, "bn.onnx", &m), "node '/bn/BN'", "cannot fold");
	ob_free(&b);

	/* Every prefix of one mutated byte after another: no crash. */
	ob_residual_cnn(&b, &p);
	len = ob_pack(&b, &buf);
	ob_free(&b);
	for (i = 0; i < 200; i++) {
		size_t at = (size_t)((frand() * 0.5f + 0.5f) * (float)len);

		buf[at % len] ^= (uint8_t)(1u << (i % 8));
		if (!polar_model_parse_onnx(&m, buf, len, "flip.onnx", NULL))
			polar_model_free(&m);
		else
			CHECK(!strchr(polar_errmsg(), '\n'), "%s",
			      polar_errmsg());
	}
	free(buf);
}

static void test_preprocess(void)
{
	float img[2 * 2 * 2] = { 0, 1, 0.5f, 0.25f, 1, 0, 0.2f, 0.4f };
	float orig[8];
	struct polar_dataset d = { .count = 1, .channels = 2, .rows = 2,
				   .cols = 2, .images = img, .classes = 1 };
	struct polar_preprocess pre = { 1.0f / 255.0f, 0, { 0 }, { 0 } };
	int i;

	memcpy(orig, img, sizeof(img));
	CHECK(polar_dataset_preprocess(&d, &pre) == 0);
	CHECK(!memcmp(img, orig, sizeof(img)), "ToTensor changed the images");
	pre = (struct polar_preprocess){ 1.0f / 255.0f, 2, { 0.5f, 0.25f },
					 { 0.5f, 2.0f } };
	CHECK(polar_dataset_preprocess(&d, &pre) == 0);
	for (i = 0; i < 8; i++) {
		float want = (orig[i] - pre.mean[i / 4]) / pre.std[i / 4];

		CHECK(fabsf(img[i] - want) < 1e-6f, "[%d] %g, want %g", i,
		      (double)img[i], (double)want);
	}
	pre.channels = 1;
	CHECK(polar_dataset_preprocess(&d, &pre) == -EINVAL);
	pre.channels = 2;
	pre.std[1] = 0;
	CHECK(polar_dataset_preprocess(&d, &pre) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "channel 1"), "%s", polar_errmsg());
}

static void test_load_file(void)
{
	struct polar_model m;
	struct polar_preprocess pre = { 1.0f, 3, { 1, 2, 3 }, { 4, 5, 6 } };
	char path[] = "/tmp/polar-onnx-XXXXXX";
	struct ob_cnn p;
	struct ob b;
	uint8_t *buf;
	size_t len;
	FILE *f;
	int fd;

	cnn_params(&p);
	ob_residual_cnn(&b, &p);
	len = ob_pack(&b, &buf);
	ob_free(&b);
	fd = mkstemp(path);
	f = fd >= 0 ? fdopen(fd, "wb") : NULL;
	CHECK(f && fwrite(buf, 1, len, f) == len && !fclose(f));
	free(buf);
	CHECK(polar_model_load_onnx(&m, path, &pre) == 0, "%s",
	      polar_errmsg());
	CHECK(m.pre.channels == 3 && m.pre.std[2] == 6.0f);
	polar_model_free(&m);
	CHECK(polar_model_load_onnx(&m, path, NULL) == 0);
	CHECK(m.pre.pixel_scale == 1.0f / 255.0f && m.pre.channels == 0);
	polar_model_free(&m);
	pre.channels = 1;
	CHECK(polar_model_load_onnx(&m, path, &pre) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "takes 3"), "%s", polar_errmsg());
	unlink(path);
	CHECK(polar_model_load_onnx(&m, path, NULL) == -ENOENT);
	CHECK(strstr(polar_errmsg(), path), "%s", polar_errmsg());
}

int main(void)
{
	RUN(test_residual_cnn);
	RUN(test_mlp_gemm);
	RUN(test_malformed);
	RUN(test_preprocess);
	RUN(test_load_file);
	return unit_summary();
}
